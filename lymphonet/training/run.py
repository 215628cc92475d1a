"""One training run end to end: data, hybrid, mechanistic baseline, comparison, summary.

``lymphonet train`` calls :func:`run_training`; ``train.py`` shows the same steps written out.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from lymphonet.config import dump_config, to_dict
from lymphonet.errors import InputError
from lymphonet.training import distributed as dist_utils
from lymphonet.training.checkpoint import load_checkpoint, save_checkpoint
from lymphonet.training.config import TrainingRunConfig
from lymphonet.training.loop import (
    build_model,
    evaluate,
    fit,
    mechanistic_config,
    predict,
    set_seed,
)
from lymphonet.training.metrics import format_table
from lymphonet.training.tracking import NullTracker, make_tracker


@dataclass
class PreparedData:
    """Datasets of the three roles plus what the model and the checkpoint need.

    Attributes:
        train, val, test: Datasets yielding contract items.
        model_inputs: ``n_channels``, ``n_clinical``, ``n_dose_summary``.
        encoder: Fitted clinical encoder as a JSON-able dict (None for synthetic data).
        split_path: The split file (None for synthetic data).
        split_summary: De-identified plan counts per fold x site x modality (no identifiers).
    """

    train: Dataset
    val: Dataset
    test: Dataset
    model_inputs: dict[str, int]
    encoder: dict[str, Any] | None = None
    split_path: Path | None = None
    split_summary: list[dict[str, Any]] | None = None


def ensure_cohort(cfg: TrainingRunConfig, run_dir: Path, info=dist_utils.SINGLE_PROCESS) -> Path:
    """The cohort folder: ``cohort.path``, or a simulated one in ``run_dir/cohort`` (reused)."""
    if cfg.cohort.path:
        root = Path(cfg.cohort.path)
        if not root.exists():
            raise InputError("cohort folder not found", file=root, field="cohort.path")
        return root
    root = run_dir / "cohort"
    if info.is_main and not (root / "manifest.csv").exists():
        from lymphonet.twin.cohort import simulate_cohort

        c = cfg.cohort
        print(f"generating a SIMULATED cohort of {c.n} patients in {root} ...", flush=True)
        simulate_cohort(c.n, list(c.sites), list(c.modalities), seed=c.seed, out_dir=root,
                        paired=c.paired, spacing_mm=c.spacing_mm, particles=c.particles,
                        write_trajectories=False, progress=cfg.train.progress)
    dist_utils.barrier(info)
    return root


def _fold_roles(folds: np.ndarray, cfg: TrainingRunConfig) -> tuple[list[int], list[int], list[int]]:
    t = cfg.train
    if t.test_fold == t.val_fold:
        raise InputError("train.test_fold and train.val_fold must differ", field="train.val_fold")
    test = [i for i, f in enumerate(folds) if f == t.test_fold]
    val = [i for i, f in enumerate(folds) if f == t.val_fold]
    train = [i for i, f in enumerate(folds) if f not in (t.test_fold, t.val_fold)]
    if not train or not val or not test:
        raise InputError(f"empty fold role (train {len(train)}, val {len(val)}, test {len(test)})",
                         field="train.n_folds")
    return train, val, test


def prepare_data(cfg: TrainingRunConfig, run_dir: Path, info=dist_utils.SINGLE_PROCESS) -> PreparedData:
    """Cohort -> split (saved once, reused) -> cached datasets for train / val / test folds."""
    if cfg.cohort.synthetic:
        from lymphonet.training.synthetic import SyntheticCohort

        ds = SyntheticCohort(cfg.cohort.n, seed=cfg.cohort.seed, n_days=cfg.model.n_days)
        folds = np.arange(len(ds)) % cfg.train.n_folds
        tr, va, te = _fold_roles(folds, cfg)
        inputs = {"n_channels": ds.n_channels, "n_clinical": ds.n_clinical,
                  "n_dose_summary": ds.n_dose_summary}
        return PreparedData(Subset(ds, tr), Subset(ds, va), Subset(ds, te), inputs)
    from lymphonet.training.data import cohort_datasets

    root = ensure_cohort(cfg, run_dir, info)
    return cohort_datasets(cfg, root, _fold_roles, info)


def make_loaders(data: PreparedData, batch_size: int, num_workers: int, seed: int,
                 info=dist_utils.SINGLE_PROCESS, device: torch.device | None = None):
    """(train, val, test) DataLoaders; the train loader is sharded with DistributedSampler."""
    from torch.utils.data.distributed import DistributedSampler

    pin = device is not None and torch.device(device).type == "cuda"
    common = {"num_workers": num_workers, "pin_memory": pin, "persistent_workers": num_workers > 0}
    # the shuffle depends only on (seed, epoch) -- also single-process -- so --resume is exact
    sampler = DistributedSampler(data.train, info.world_size, info.rank, shuffle=True, seed=seed)
    train = DataLoader(data.train, batch_size, sampler=sampler, drop_last=False, **common)
    val = DataLoader(data.val, batch_size * 2, shuffle=False, **common)
    test = DataLoader(data.test, batch_size * 2, shuffle=False, **common)
    return train, val, test


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_training(cfg: TrainingRunConfig, *, device: str | None = None, resume: str | None = None,
                 tracking: bool | None = None, tracking_uri: str | None = None,
                 out_dir: str | None = None) -> dict[str, Any]:
    """Train the hybrid, fit the mechanistic baseline, compare them on the held-out fold.

    Args:
        cfg: Resolved config.
        device: "cuda", "mps", "cpu" or None (auto).
        resume: Checkpoint to continue from ("auto" = ``<run_dir>/last.pt`` if present).
        tracking: Override ``cfg.tracking.enabled``.
        tracking_uri: Override the tracking URI.
        out_dir: Override ``cfg.out_dir`` (runs are in ``<out_dir>/<name>``).

    Returns:
        Summary dict: ``results`` (model -> metrics), paths, timings.
    """
    t_start = time.perf_counter()
    info, dev = dist_utils.setup(device)
    try:
        return _run(cfg, info, dev, resume, tracking, tracking_uri, out_dir, t_start)
    finally:
        dist_utils.teardown()


def _run(cfg, info, dev, resume, tracking, tracking_uri, out_dir, t_start) -> dict[str, Any]:
    out_root = Path(out_dir or cfg.out_dir)
    cfg = replace(cfg, out_dir=str(out_root))
    run_dir = out_root / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    t = cfg.train
    if t.torch_threads > 0:
        torch.set_num_threads(t.torch_threads)
    set_seed(t.seed + info.rank, t.deterministic)
    data = prepare_data(cfg, run_dir, info)
    t_data = time.perf_counter() - t_start
    train_dl, val_dl, test_dl = make_loaders(data, t.batch_size, t.num_workers, t.seed, info, dev)
    progress = t.progress and info.is_main
    enabled = cfg.tracking.enabled if tracking is None else tracking
    tracker = make_tracker(enabled and info.is_main, out_root, cfg.name, cfg.tracking.experiment,
                           tracking_uri or cfg.tracking.uri) if info.is_main else NullTracker()
    cfg_dict = to_dict(cfg)
    if info.is_main:
        dump_config(cfg, run_dir / "config.yaml")
        tracker.log_config(cfg_dict)
        if data.split_path is not None:
            tracker.log_tags({"split_sha256": _file_sha256(data.split_path),
                              "split_file": str(Path(data.split_path).resolve())})
            summary_path = run_dir / "split_summary.json"
            summary_path.write_text(json.dumps(data.split_summary, indent=1))
            tracker.log_artifact(summary_path)

    def save(tag, model, optimizer, scheduler, state, model_cfg_dict=cfg_dict):
        if info.is_main:
            save_checkpoint(run_dir / f"{tag}.pt", model, config=model_cfg_dict,
                            model_inputs=data.model_inputs, state=state, optimizer=optimizer,
                            scheduler=scheduler, encoder=data.encoder)

    resume_ckpt = None
    if resume:
        path = run_dir / "last.pt" if resume == "auto" else Path(resume)
        if path.exists() or resume != "auto":
            resume_ckpt = load_checkpoint(path)
            best = path.parent / "best.pt"
            if best.exists():
                resume_ckpt["best_model"] = load_checkpoint(best)["model"]

    # ---- the hybrid
    model = build_model(cfg.model, data.model_inputs).to(dev)
    ddp_model = dist_utils.wrap(model, info, dev)
    state = fit(ddp_model, train_dl, val_dl, epochs=t.epochs, lr=t.lr,
                weight_decay=t.weight_decay, loss_cfg=cfg.loss, device=dev, amp=t.amp,
                grad_clip=t.grad_clip, lr_schedule=t.lr_schedule, patience=t.patience,
                min_delta=t.min_delta, max_bad_steps=t.max_bad_steps, info=info,
                progress=progress, on_epoch=lambda e, m: tracker.log_metrics(m, step=e),
                checkpoint_fn=save, resume=resume_ckpt, desc="hybrid epochs")
    t_hybrid = time.perf_counter() - t_start - t_data
    if info.is_main:
        save("final", model, None, None, state)

    # ---- the population mechanistic model (theta = 0): only its noise model is fitted
    mech_cfg = mechanistic_config(cfg.model)
    mech = build_model(mech_cfg, data.model_inputs).to(dev)
    fit(dist_utils.wrap(mech, info, dev), train_dl, val_dl, epochs=t.baseline_epochs, lr=max(t.lr, 1e-2), weight_decay=0.0,
        loss_cfg=cfg.loss, device=dev, lr_schedule="none", patience=t.baseline_epochs,
        info=info, progress=progress, desc="mechanistic epochs")
    results, preds = {}, {}
    for name, net in (("hybrid", model), ("mechanistic", mech)):
        results[name] = evaluate(net, test_dl, dev, amp=t.amp, min_labs=cfg.loss.min_labs_for_nadir)
        preds[name] = predict(net, test_dl, dev, amp=t.amp)
        lo, hi = net.noise.interval(torch.as_tensor(preds[name]["alc"]),
                                    torch.as_tensor(preds[name]["days"]))
        preds[name]["lo"], preds[name]["hi"] = lo.detach().numpy(), hi.detach().numpy()
    summary = {"results": results, "run_dir": str(run_dir.resolve()),
               "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
               "stopped_early": state["stopped_early"], "data_s": t_data, "hybrid_s": t_hybrid,
               "total_s": time.perf_counter() - t_start, "world_size": info.world_size,
               "device": str(dev), "tracking_uri": tracker.uri, "run_id": tracker.run_id,
               "epoch_s": float(np.mean([h["epoch_s"] for h in state["history"]] or [np.nan])),
               "patients_per_s": float(np.mean([h["patients_per_s"] for h in state["history"]]
                                               or [np.nan]))}
    if info.is_main:
        _finish(cfg, run_dir, state, results, preds, summary, tracker, model, test_dl, dev)
    return summary


def _finish(cfg, run_dir, state, results, preds, summary, tracker, model, test_dl, dev) -> None:
    """Plots, metrics file, MLflow logging and the printed summary (rank 0)."""
    from lymphonet.training.plots import learning_curves, trajectories

    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    files = []
    if state["history"]:
        files.append(learning_curves(state["history"], plots / "learning_curves.png"))
    files.append(trajectories(preds, plots / "trajectories.png"))
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=1, default=float))
    (run_dir / "history.json").write_text(json.dumps(state["history"], indent=1))
    for name, res in results.items():
        tracker.log_metrics({f"test_{name}_{k}": v for k, v in res.items()})
    for f in files + [run_dir / "metrics.json", run_dir / "config.yaml"]:
        tracker.log_artifact(f)
    if cfg.tracking.log_model and tracker.enabled:
        tracker.log_model(model.cpu(), model_example(model, test_dl))
        model.to(dev)
    tracker.end()
    print(f"\nHeld-out fold (test fold {cfg.train.test_fold}), hybrid vs mechanistic-only (population, theta = 0):"
          )
    print(format_table(results))
    print(f"\nrun folder : {summary['run_dir']}")
    print(f"model      : {(run_dir / 'best.pt').resolve()} (best epoch {state['best_epoch']} of "
          f"{state['epoch']}{', stopped early' if state['stopped_early'] else ''})")
    print(f"plots      : {plots.resolve()}")
    if tracker.enabled:
        print(f"MLflow     : {tracker.uri} (run {tracker.run_id}); browse with "
              f"`mlflow ui --backend-store-uri {tracker.uri}`")
    print(f"time       : data {summary['data_s']:.0f} s, hybrid training {summary['hybrid_s']:.0f} s "
          f"({summary['epoch_s']:.1f} s/epoch, {summary['patients_per_s']:.1f} patients/s), "
          f"total {summary['total_s']:.0f} s on {summary['device']}")


def model_example(model: torch.nn.Module, loader: DataLoader) -> dict[str, Any]:
    """Small numpy input/output example for the MLflow signature (no identifiers)."""
    batch = next(iter(loader))
    batch = {k: v[:2] for k, v in batch.items() if k != "index"}
    model.eval()
    with torch.no_grad():
        out = model(batch)
    inputs = {k: v.numpy() for k, v in batch.items()}
    import lymphonet

    reqs = [f"torch=={torch.__version__.split('+')[0]}", f"lymphonet=={lymphonet.__version__}"]
    return {"inputs": inputs, "outputs": out.alc.numpy(), "requirements": reqs}
