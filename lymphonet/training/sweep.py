"""Hyper-parameter sweeps with Optuna over existing config keys, every trial an MLflow run.

A search space is a YAML file (``configs/space_*.yaml``)::

    metric: val_loss          # reported after every epoch; the trial's value is its minimum
    direction: minimize
    pruner: median            # median | hyperband | none
    space:
      train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
      model.dropout: {low: 0.0, high: 0.3}
      model.mlp_layers: {low: 1, high: 3, type: int}
      model.encoder.width: {choices: [4, 8, 12]}

Keys are config keys (unknown ones are refused like ``--set``). Each trial trains through
``train.py``'s one loop with its sampled overrides, as an MLflow run nested under the sweep's
parent run (its full config, metrics per epoch, and a ``stopped`` tag when pruned); the pruner
sees the metric after every epoch. The study lives in an RDB storage (default: SQLite beside the
MLflow store, ``<out_dir>/optuna.db``), so a killed sweep resumes where it stopped (``--trials``
is the total), and processes on several machines sharing one storage URL (e.g. PostgreSQL) run
trials of the same study in parallel; ``jobs`` starts that many local worker processes. The
best trial's config is written to ``<out_dir>/<study>/best.yaml`` for ``lymphonet train --config``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from lymphonet.errors import InputError

PRUNERS = ("median", "hyperband", "none")


@dataclass(frozen=True)
class SweepSpace:
    """A parsed search space: ``params`` key -> spec dict, plus metric, direction, pruner."""

    params: dict[str, dict[str, Any]]
    metric: str = "val_loss"
    direction: str = "minimize"
    pruner: str = "median"


def load_space(path: str | Path) -> SweepSpace:
    """Read and check a search-space YAML (unknown top-level keys and bad specs refused)."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    unknown = set(raw) - {"space", "metric", "direction", "pruner"}
    if unknown or not isinstance(raw.get("space"), dict) or not raw["space"]:
        raise InputError(f"a search space needs a non-empty 'space' mapping (unknown keys: "
                         f"{sorted(unknown)})", file=path, field="space")
    for key, spec in raw["space"].items():
        ok = isinstance(spec, dict) and (
            ("choices" in spec and set(spec) <= {"choices"})
            or ({"low", "high"} <= set(spec) and set(spec) <= {"low", "high", "log", "type",
                                                               "step"}))
        if not ok:
            raise InputError(f"space.{key}: give {{low, high[, log, type, step]}} or "
                             "{choices: [...]}", file=path, field=f"space.{key}")
    space = SweepSpace(raw["space"], raw.get("metric", "val_loss"),
                       raw.get("direction", "minimize"), raw.get("pruner", "median"))
    if space.direction not in ("minimize", "maximize") or space.pruner not in PRUNERS:
        raise InputError(f"direction must be minimize|maximize and pruner one of {PRUNERS}",
                         file=path, field="direction")
    return space


def suggest(trial, space: SweepSpace) -> dict[str, Any]:
    """One value per key from an Optuna trial."""
    out = {}
    for key, spec in space.params.items():
        if "choices" in spec:
            out[key] = trial.suggest_categorical(key, list(spec["choices"]))
        elif spec.get("type") == "int":
            out[key] = trial.suggest_int(key, int(spec["low"]), int(spec["high"]),
                                         step=int(spec.get("step", 1)),
                                         log=bool(spec.get("log", False)))
        else:
            out[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]),
                                           log=bool(spec.get("log", False)))
    return out


def overrides_of(values: dict[str, Any]) -> list[str]:
    """``--set`` strings of sampled values (YAML flow style: lists stay lists)."""
    return [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
            for k, v in values.items()]


@dataclass(frozen=True)
class SweepJob:
    """What every worker of one sweep needs (plain data, so it crosses processes)."""

    config: str
    space: str
    study: str
    storage: str
    trials: int
    out_dir: str
    overrides: tuple[str, ...] = ()
    parent_run_id: str | None = None
    tracking_uri: str | None = None
    tracking: bool = True
    seed: int = 0


def _pruner(name: str):
    import optuna

    return {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2,
                                                          n_warmup_steps=1),
            "hyperband": optuna.pruners.HyperbandPruner,
            "none": optuna.pruners.NopPruner}[name]()


def _objective(job: SweepJob, space: SweepSpace):
    """The Optuna objective: train one trial through ``train.py`` and return the best metric."""
    import optuna

    from lymphonet.training.config import load_training_config
    from lymphonet.training.script import load_train_script

    sign = 1.0 if space.direction == "minimize" else -1.0

    def objective(trial) -> float:
        values = suggest(trial, space)
        cfg = load_training_config(job.config, list(job.overrides) + overrides_of(values))
        cfg = replace(cfg, name=f"{job.study}-trial{trial.number}",
                      tracking=replace(cfg.tracking, log_model=False))
        best = [math.inf]

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            if space.metric not in metrics:
                raise InputError(f"metric {space.metric!r} is not reported; choose from "
                                 f"{sorted(metrics)}", file=job.space, field="metric")
            value = float(metrics[space.metric])
            best[0] = min(best[0], sign * value)
            trial.report(value, epoch)
            if trial.should_prune():
                trial.set_user_attr("pruned_at_epoch", epoch)
                raise optuna.TrialPruned(f"pruned at epoch {epoch} ({space.metric} {value:.4g})")

        load_train_script().train(cfg, tracking=job.tracking, tracking_uri=job.tracking_uri,
                                  out_dir=job.out_dir, on_epoch=on_epoch)
        return sign * best[0]

    return objective


def work(job: SweepJob, attach: bool = False, worker: int = 0) -> None:
    """One worker: run trials of the study until it holds ``job.trials`` finished ones (complete
    or pruned; parallel workers may finish one more each). ``attach``: make the sweep's parent
    run active here (a worker process). The sampler is seeded ``job.seed + worker``, so parallel
    workers do not propose the same values (on several machines give each its own
    ``--sampler-seed``)."""
    import optuna

    from lymphonet.training.tracking import attach_run

    space = load_space(job.space)
    if attach and job.tracking and job.parent_run_id:
        attach_run(job.tracking_uri, job.out_dir, job.parent_run_id)
    study = optuna.load_study(study_name=job.study, storage=job.storage,
                              pruner=_pruner(space.pruner),
                              sampler=optuna.samplers.TPESampler(seed=job.seed + worker))
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    if len(study.get_trials(deepcopy=False, states=done)) >= job.trials:
        return
    study.optimize(_objective(job, space),
                   callbacks=[optuna.study.MaxTrialsCallback(job.trials, states=done)])


@dataclass(frozen=True)
class SweepOptions:
    """How :func:`run_sweep` runs a study.

    Attributes:
        study: Study name (default ``<config name>-sweep``).
        storage: Optuna RDB URL (default ``sqlite:///<out_dir>/optuna.db``).
        jobs: Local worker processes sharing the storage.
        out_dir: Output root (default: the config's ``out_dir``).
        overrides: ``--set`` strings applied to every trial.
        tracking, tracking_uri: MLflow tracking of the parent and trial runs.
        sampler_seed: Seed of the TPE sampler (default the config's ``train.seed``; worker i of
            ``jobs`` uses it + i).
    """

    study: str | None = None
    storage: str | None = None
    jobs: int = 1
    out_dir: str | Path | None = None
    overrides: tuple[str, ...] = ()
    tracking: bool = True
    tracking_uri: str | None = None
    sampler_seed: int | None = None


def run_sweep(config: str | Path, space: str | Path, trials: int,
              options: SweepOptions | None = None, **settings) -> dict[str, Any]:
    """Run (or resume) a sweep; returns the best trial and where its config was written.

    Args:
        config: Base training config YAML.
        space: Search-space YAML (:func:`load_space`).
        trials: Total finished trials (complete or pruned) the study should hold.
        options: :class:`SweepOptions`; ``**settings`` replace its fields by name.
    """
    import multiprocessing

    import optuna

    from lymphonet.training.config import load_training_config
    from lymphonet.training.tracking import make_tracker

    o = replace(options or SweepOptions(), **settings)
    sp = load_space(space)
    base = load_training_config(config, list(o.overrides))
    if trials < 1 or o.jobs < 1:
        raise InputError("--trials and --jobs must be >= 1", field="--trials")
    out = Path(o.out_dir or base.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = o.study or f"{base.name}-sweep"
    storage = o.storage or f"sqlite:///{(out.resolve() / 'optuna.db').as_posix()}"
    optuna.create_study(study_name=name, storage=storage, direction=sp.direction,
                        load_if_exists=True)
    uri = o.tracking_uri or base.tracking.uri
    parent = make_tracker(o.tracking, out, f"sweep {name}", base.tracking.experiment, uri)
    parent.log_tags({"optuna_study": name, "optuna_storage": storage.split(":")[0],
                     "sweep_space": Path(space).name})
    job = SweepJob(str(config), str(space), name, storage, trials, str(out), tuple(o.overrides),
                   parent.run_id, uri, o.tracking,
                   base.train.seed if o.sampler_seed is None else o.sampler_seed)
    try:
        if o.jobs == 1:
            work(job)
        else:
            ctx = multiprocessing.get_context("spawn")
            procs = [ctx.Process(target=work, args=(job, True, i)) for i in range(o.jobs)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
        result = _finish(job, sp, out, parent)
    finally:
        parent.end()
    return result


def _finish(job: SweepJob, space: SweepSpace, out: Path, parent) -> dict[str, Any]:
    """Write ``trials.csv`` and the best trial's ``best.yaml``; log both to the parent run."""
    import optuna
    import pandas as pd

    from lymphonet.config import dump_config
    from lymphonet.training.config import load_training_config

    study = optuna.load_study(study_name=job.study, storage=job.storage)
    folder = out / job.study
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"trial": t.number, "state": t.state.name, "value": t.value,
             "pruned_at_epoch": t.user_attrs.get("pruned_at_epoch"),
             "mlflow_run_name": f"{job.study}-trial{t.number}",
             **{f"param.{k}": v for k, v in t.params.items()}} for t in study.trials]
    pd.DataFrame(rows).to_csv(folder / "trials.csv", index=False)
    parent.log_artifact(folder / "trials.csv")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    result = {"study": job.study, "n_trials": len(study.trials), "n_complete": len(complete),
              "n_pruned": sum(r["state"] == "PRUNED" for r in rows), "best_config": None}
    if complete:
        best = study.best_trial
        cfg = load_training_config(job.config, list(job.overrides) + overrides_of(best.params))
        cfg = replace(cfg, name=f"{job.study}-best")
        dump_config(cfg, folder / "best.yaml")
        parent.log_artifact(folder / "best.yaml")
        parent.log_metrics({f"best_{space.metric}": float(best.value)})
        result.update(best_value=float(best.value), best_params=dict(best.params),
                      best_trial=best.number, best_config=folder / "best.yaml")
    return result
