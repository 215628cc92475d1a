"""``lymphonet train``: train the hybrid model and compare it with the mechanistic model."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train the hybrid model (default: on a generated SIMULATED cohort)",
        description="Train the hybrid CNN + kinetics model. With no arguments it uses "
                    "configs/default.yaml, generates a simulated cohort into runs/<name>/cohort "
                    "(reused when present), trains, and prints held-out metrics for the hybrid "
                    "and the population mechanistic model side by side. Multi-GPU: "
                    "torchrun --nproc_per_node N -m lymphonet train ...")
    p.add_argument("--config", help="YAML config (default: configs/default.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.epochs=5 (repeatable)")
    p.add_argument("--device", help="cuda, cuda:N, mps or cpu (default: best available)")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="continue from a checkpoint (no value: <out>/<name>/last.pt)")
    p.add_argument("--out", help="output root (default: config out_dir, 'runs')")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or "
                                          "sqlite:///<out>/mlruns.db)")
    p.add_argument("--no-tracking", action="store_true", help="do not track with MLflow")
    p.set_defaults(func=run)


def run(args) -> int:
    from lymphonet.training.config import load_training_config
    from lymphonet.training.run import run_training

    cfg = load_training_config(args.config, args.set)
    summary = run_training(cfg, device=args.device, resume=args.resume,
                           tracking=False if args.no_tracking else None,
                           tracking_uri=args.tracking_uri, out_dir=args.out)
    return 0 if summary else 1
