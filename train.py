"""Train the hybrid lymphopenia model, top to bottom. ``lymphonet train`` runs this file.

    python train.py                                   # configs/default.yaml, simulated cohort
    python train.py --config configs/smoke.yaml --set train.epochs=3
    torchrun --nproc_per_node 2 train.py --device cpu # DistributedDataParallel (gloo on CPU)

The steps: config in -> processes and seeds -> data (cohort, split, cache, loaders) -> the hybrid,
trained by the epoch loop below with early stopping on the validation loss, checkpoints that
carry their config (``last.pt`` every epoch, ``best.pt`` on improvement) -> the population
mechanistic model (theta = 0; only its noise model is fitted) -> both scored on the held-out
fold -> plots, metrics and MLflow. The evaluation harness trains its networks with :func:`fit`
from this file too, so there is one training loop.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from lymphonet.config import dump_config, to_dict
from lymphonet.data.prepare import (
    ensure_cohort,
    load_datasets,
    make_loaders,
    prepare_split_and_cache,
)
from lymphonet.errors import InputError
from lymphonet.scoring.mlflow_pyfunc import log_run_model
from lymphonet.training import distributed
from lymphonet.training.checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from lymphonet.training.config import TrainingRunConfig, load_training_config
from lymphonet.training.loop import (
    build_model,
    evaluate,
    make_optimizer,
    make_scaler,
    make_scheduler,
    mechanistic_config,
    progress_bar,
    set_seed,
    train_one_epoch,
)
from lymphonet.training.outputs import run_summary, write_outputs
from lymphonet.training.script import add_arguments
from lymphonet.training.tracking import NullTracker, make_tracker


def fit(model, train_dl, val_dl, cfg: TrainingRunConfig, device, *,
        info=distributed.SINGLE_PROCESS, save=None, on_epoch=None,
        resume: dict[str, Any] | None = None, desc: str = "epochs") -> dict[str, Any]:
    """The training loop: epochs of ``train_one_epoch`` + validation, early stopping, best weights.

    Args:
        model: The (possibly DDP-wrapped) model; holds the best weights on return.
        train_dl, val_dl: Loaders (the training sampler is re-seeded with the 0-based epoch).
        cfg: The run config: ``cfg.train`` gives the optimisation (epochs, lr, weight_decay,
            lr_schedule, patience, min_delta, amp, grad_clip, max_bad_steps), ``cfg.loss`` the
            loss and the labs a validation nadir needs.
        device: Where to train.
        info: Distributed info.
        save: ``save(tag, model, optimizer, scheduler, state)`` writes "last" / "best" (rank 0).
        on_epoch: ``on_epoch(epoch, metrics)`` after each epoch (logging).
        resume: A loaded checkpoint (weights, optimiser, scheduler, state, RNG, best weights).
        desc: Progress-bar label.

    Returns:
        ``state``: ``epoch``, ``best_metric``, ``best_epoch``, ``bad_epochs``, ``history``,
        ``stopped_early``.
    """
    t = cfg.train
    optimizer = make_optimizer(model, t.lr, t.weight_decay)
    scheduler = make_scheduler(optimizer, t.lr_schedule, t.epochs)
    scaler = make_scaler(device, t.amp)
    state = {"epoch": 0, "best_metric": math.inf, "best_epoch": -1, "bad_epochs": 0,
             "history": [], "stopped_early": False}
    best_weights = _restore(resume, model, optimizer, scheduler, state)
    for epoch in progress_bar(range(state["epoch"], t.epochs), t.progress and info.is_main,
                              desc=desc, unit="epoch", initial=state["epoch"], total=t.epochs):
        if hasattr(train_dl.sampler, "set_epoch"):
            train_dl.sampler.set_epoch(epoch)  # the shuffle depends on (seed, epoch) only
        metrics = train_one_epoch(model, train_dl, optimizer, cfg.loss, device, amp=t.amp,
                                  grad_clip=t.grad_clip, scaler=scaler,
                                  max_bad_steps=t.max_bad_steps, info=info)
        if scheduler is not None:
            scheduler.step()
        val = evaluate(model, val_dl, device, amp=t.amp, loss_cfg=cfg.loss)
        metrics.update({f"val_{k}": v for k, v in val.items()}, lr=optimizer.param_groups[0]["lr"])
        state["epoch"] = epoch + 1
        state["history"].append({"epoch": epoch + 1, **{k: float(v) for k, v in metrics.items()}})
        improved = val["loss"] < state["best_metric"] - t.min_delta
        if improved:
            state.update(best_metric=float(val["loss"]), best_epoch=epoch + 1, bad_epochs=0)
            best_weights = {k: v.detach().clone().cpu()
                            for k, v in distributed.unwrap(model).state_dict().items()}
        else:
            state["bad_epochs"] += 1
        if on_epoch is not None:
            on_epoch(epoch + 1, metrics)
        if save is not None:
            if improved:
                save("best", model, optimizer, scheduler, state)
            save("last", model, optimizer, scheduler, state)
        if state["bad_epochs"] >= t.patience:
            state["stopped_early"] = True
            break
    if best_weights is not None:
        distributed.unwrap(model).load_state_dict(best_weights)
    return state


def _restore(resume, model, optimizer, scheduler, state) -> dict[str, torch.Tensor] | None:
    """Load a checkpoint's weights, optimiser, scheduler, state and RNG; return its best weights."""
    if resume is None:
        return None
    distributed.unwrap(model).load_state_dict(resume["model"])
    if resume.get("optimizer"):
        optimizer.load_state_dict(resume["optimizer"])
    if scheduler is not None and resume.get("scheduler"):
        scheduler.load_state_dict(resume["scheduler"])
    state.update(resume["state"])
    set_rng_state(resume["rng"])
    return resume.get("best_model")


def fit_mechanistic_baseline(cfg: TrainingRunConfig, model_inputs, train_dl, val_dl, device,
                             info=distributed.SINGLE_PROCESS):
    """The mechanistic model at its priors (theta = 0): only its noise model is fitted, for
    ``train.baseline_epochs`` epochs at ``train.baseline_lr``, without early stopping."""
    t = cfg.train
    mech = build_model(mechanistic_config(cfg.model), model_inputs).to(device)
    baseline = replace(t, epochs=t.baseline_epochs, lr=t.baseline_lr, weight_decay=0.0,
                       lr_schedule="none", patience=t.baseline_epochs)
    fit(distributed.wrap(mech, info, device), train_dl, val_dl, replace(cfg, train=baseline),
        device, info=info, desc="mechanistic epochs")
    return mech


def prepare_data(cfg: TrainingRunConfig, run_dir: Path, info, device):
    """Cohort -> split -> cache (rank 0), then datasets and loaders (every rank)."""
    t = cfg.train
    root = None
    if not cfg.cohort.synthetic:
        if info.is_main:
            root = ensure_cohort(cfg.cohort, run_dir, progress=t.progress)
            prepare_split_and_cache(cfg, root, progress=t.progress)
        distributed.barrier(info)
        root = root or ensure_cohort(cfg.cohort, run_dir)
    data = load_datasets(cfg, root)
    loaders = make_loaders(data, t.batch_size, t.num_workers, t.seed, world_size=info.world_size,
                           rank=info.rank, device=device)
    return data, loaders


def start_tracking(cfg: TrainingRunConfig, data, run_dir: Path, info, enabled: bool,
                   uri: str | None):
    """The run's tracker (rank 0), with the config, the dataset input and the split hash."""
    if not info.is_main:
        return NullTracker()
    tracker = make_tracker(enabled, cfg.out_dir, cfg.name, cfg.tracking.experiment, uri)
    dump_config(cfg, run_dir / "config.yaml")
    tracker.log_config(to_dict(cfg))
    tracker.log_dataset(data.dataset, "training")  # which data trained this model
    if data.split_sha256:
        tracker.log_tags({"split_sha256": data.split_sha256})
    return tracker


def train(cfg: TrainingRunConfig, *, device: str | None = None, resume: str | None = None,
          tracking: bool | None = None, tracking_uri: str | None = None,
          out_dir: str | None = None, on_epoch=None) -> dict[str, Any]:
    """One training run; returns the summary (``results``: model -> held-out metrics).

    ``on_epoch(epoch, metrics)`` is called after each epoch of the hybrid (a sweep reports to
    its pruner there, and may raise to stop the run: the MLflow run then ends as KILLED)."""
    t_start = time.perf_counter()
    info, dev = distributed.setup(device)
    try:
        # ---- config, folders, seeds
        cfg = replace(cfg, out_dir=str(out_dir or cfg.out_dir))
        t = cfg.train
        run_dir = Path(cfg.out_dir) / cfg.name
        run_dir.mkdir(parents=True, exist_ok=True)
        if t.torch_threads > 0:
            torch.set_num_threads(t.torch_threads)
        set_seed(t.seed + info.rank, t.deterministic)

        # ---- data: cohort -> split -> cache, datasets, loaders
        data, (train_dl, val_dl, test_dl) = prepare_data(cfg, run_dir, info, dev)
        t_data = time.perf_counter() - t_start

        # ---- tracking; checkpoints carry the config, the encoder and the split hash
        enabled = cfg.tracking.enabled if tracking is None else tracking
        tracker = start_tracking(cfg, data, run_dir, info, enabled,
                                 tracking_uri or cfg.tracking.uri)
        cfg_dict = to_dict(cfg)

        def save(tag, model, optimizer, scheduler, state):
            if info.is_main:
                save_checkpoint(run_dir / f"{tag}.pt", model, config=cfg_dict,
                                model_inputs=data.model_inputs,
                                state={**state, "split_sha256": data.split_sha256},
                                optimizer=optimizer, scheduler=scheduler, encoder=data.encoder)

        # ---- the hybrid
        def epoch_done(epoch, metrics):
            tracker.log_metrics(metrics, step=epoch)
            if on_epoch is not None:
                on_epoch(epoch, metrics)

        model = build_model(cfg.model, data.model_inputs).to(dev)
        try:
            state = fit(distributed.wrap(model, info, dev), train_dl, val_dl, cfg, dev,
                        info=info, save=save, on_epoch=epoch_done, desc="hybrid epochs",
                        resume=_resume_checkpoint(resume, run_dir, cfg_dict, data.split_sha256))
        except BaseException as err:  # a sweep's pruning, Ctrl-C, a failure: say why
            tracker.log_tags({"stopped": f"{type(err).__name__}: {err}"[:250]})
            tracker.end("KILLED")
            raise
        t_hybrid = time.perf_counter() - t_start - t_data
        save("final", model, None, None, state)

        # ---- the mechanistic model at its priors, then both on the held-out fold
        mech = fit_mechanistic_baseline(cfg, data.model_inputs, train_dl, val_dl, dev, info)
        results = {name: evaluate(net, test_dl, dev, amp=t.amp, loss_cfg=cfg.loss)
                   for name, net in (("hybrid", model), ("mechanistic", mech))}
        times = {"data_s": t_data, "hybrid_s": t_hybrid, "total_s": time.perf_counter() - t_start}
        summary = run_summary(state, results, run_dir, times, tracker,
                              world_size=info.world_size, device=dev,
                              split_sha256=data.split_sha256)
        if info.is_main:
            write_outputs(cfg, run_dir, state, {"hybrid": model, "mechanistic": mech}, results,
                          summary, tracker, test_dl, dev)
            if cfg.tracking.log_model:  # a pyfunc model over the export bundle, no pickle
                tracker.log_model(lambda: log_run_model(run_dir))
            tracker.end()
        return summary
    finally:
        distributed.teardown()


def _resume_checkpoint(resume: str | None, run_dir: Path, cfg_dict: dict[str, Any],
                       split_sha256: str | None) -> dict[str, Any] | None:
    """The checkpoint to continue from ("auto": ``last.pt`` if present), with its best weights.

    Refused when it was trained on another split or with other data, model or loss settings
    (only ``train.epochs`` and the runtime switches may change on resume).
    """
    if not resume:
        return None
    path = run_dir / "last.pt" if resume == "auto" else Path(resume)
    if resume == "auto" and not path.exists():
        return None
    ckpt = load_checkpoint(path)
    changed = [k for k in ("data", "model", "loss", "cohort") if ckpt["config"].get(k) != cfg_dict[k]]
    if ckpt["state"].get("split_sha256") != split_sha256:
        changed.append("split file")
    if changed:
        raise InputError(f"cannot resume: the checkpoint was trained with other {', '.join(changed)}"
                         "; start a new run (another name or out folder)", file=path.name,
                         field="--resume")
    best = path.parent / "best.pt"
    if best.exists():
        ckpt["best_model"] = load_checkpoint(best)["model"]
    return ckpt


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python train.py`` and ``lymphonet train``."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    args = ap.parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Run :func:`train` from parsed arguments."""
    cfg = load_training_config(args.config, args.set)
    summary = train(cfg, device=args.device, resume=args.resume,
                    tracking=False if args.no_tracking else None,
                    tracking_uri=args.tracking_uri, out_dir=args.out)
    return 0 if summary else 1


if __name__ == "__main__":
    sys.exit(main())
