"""``lymphonet export``: a trained checkpoint -> a checksummed model bundle for scoring.

Examples::

    lymphonet export --checkpoint runs/default/best.pt --out models/default
    lymphonet export --run runs/default --out models/default
    lymphonet export --run 3f2a9c... --runs-dir runs --out models/default   # MLflow run id
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a trained model as a verified bundle (weights, config, metadata, "
                       "ONNX / TorchScript, checksums)",
        description="Write a model bundle: weights without pickle, the resolved config, the "
                    "clinical encoder, metadata.json (inputs, outputs, training cohort, metrics, "
                    "versions, intended use and limits), the network as ONNX (if onnx and "
                    "onnxscript are installed) and TorchScript with parity figures, and "
                    "checksums.sha256.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="checkpoint file (best.pt / final.pt of a run)")
    src.add_argument("--run", help="run folder, or an MLflow run id looked up under --runs-dir")
    p.add_argument("--runs-dir", default="runs", help="where run folders are (default: runs)")
    p.add_argument("--out", required=True, help="bundle folder to create")
    p.add_argument("--no-onnx", action="store_true", help="do not export network.onnx")
    p.add_argument("--no-torchscript", action="store_true", help="do not export network.ts")
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    p.add_argument("--register", metavar="NAME",
                   help="also log the bundle as an MLflow pyfunc model (no pickle) and register "
                        "a new version of NAME in the MLflow Model Registry")
    p.add_argument("--tracking-uri", help="MLflow store for --register (default: "
                                          "MLFLOW_TRACKING_URI or <runs-dir>/mlruns.db)")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from lymphonet.bundle.export import export_bundle, resolve_run_checkpoint

    ckpt = args.checkpoint or resolve_run_checkpoint(args.run, args.runs_dir)
    out = export_bundle(ckpt, args.out, onnx=not args.no_onnx,
                        torchscript=not args.no_torchscript, overwrite=args.force)
    meta = json.loads((out / "metadata.json").read_text())
    print(f"bundle {out} (model_version {meta['model_version']}) from {ckpt}")
    for kind, res in meta["parity"].items():
        detail = (f"max |diff| vs eager torch = {res['max_abs_diff']:.2e}"
                  if res.get("max_abs_diff") is not None else res.get("skipped")
                  or res.get("error") or res.get("note"))
        print(f"  {kind:<12} {detail}")
    if args.register:
        _register(out, args)
    return 0


def _register(bundle, args) -> None:
    """Log the bundle as a pyfunc model in an MLflow run named ``export`` and register it."""
    from lymphonet.errors import InputError
    from lymphonet.scoring.mlflow_pyfunc import log_model
    from lymphonet.training.tracking import make_tracker

    tracker = make_tracker(True, args.runs_dir, "export", uri=args.tracking_uri)
    if not tracker.enabled:
        raise InputError("the MLflow store could not be opened", field="--tracking-uri")
    try:
        info = log_model(bundle, registered_model_name=args.register)
    finally:
        tracker.end()
    version = getattr(info, "registered_model_version", None)
    print(f"registered {args.register} version {version} in {tracker.uri} "
          f"(serve: mlflow models serve -m models:/{args.register}/{version} "
          "--env-manager local)")
