"""One harness for every model: held-out folds of the saved split -> long metrics table.

:func:`evaluate_models` takes a cohort folder and a trained checkpoint (or a training config) and,
for each requested fold of the cohort's saved split (``<cohort>/splits.csv``, the file the
training code writes and reuses), builds the fold's data (:class:`~.estimators.FoldData`) and
runs every estimator (:mod:`lymphonet.evaluation.estimators`) on it: ``fit`` on the other folds
(networks with early stopping on the validation fold, baselines on training + validation), then
``predict`` the held-out fold. The checkpoint's hybrid is used as is for its own test fold; any
other fold gets the hybrid retrained from the checkpoint's config, seeded ``seed + fold``.

Held-out predictions of all folds are pooled (each plan is held out once) and scored by
:func:`~lymphonet.evaluation.tables.score_predictions`: point estimates plus 95% percentile
bootstrap intervals from resampling PATIENTS (the same replicates for every model, so paired
differences against the hybrid get intervals too), overall and per site, modality, particle vs
photon and fold. :func:`cross_validate` is the K-fold run in one call. Everything is seeded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lymphonet.errors import InputError
from lymphonet.evaluation.estimators import (
    Estimator,
    FoldData,
    NotScored,
    PretrainedNetwork,
)
from lymphonet.evaluation.networks import load_trained
from lymphonet.evaluation.registry import MODEL_NAMES, make_estimator
from lymphonet.evaluation.tables import (
    Outcomes,
    Predictions,
    concat_outcomes,
    concat_predictions,
    score_predictions,
)


@dataclass(frozen=True)
class EvaluationOptions:
    """How :func:`evaluate_models` evaluates.

    Attributes:
        folds: None (the checkpoint's / config's test fold), ``"all"``, ``"0,2"`` or a list.
        n_boot: Bootstrap replicates (patients resampled with replacement).
        seed: Seed of training, baselines (``seed + fold``) and bootstrap.
        early_days: Last lab day the early-fit mechanistic model may use.
        models: Subset of :data:`MODEL_NAMES`, in table order.
        device: Torch device for the networks (default CPU).
        kim_coefficients: Coefficients for :class:`~lymphonet.evaluation.baselines.KimNomogram`.
        progress: Print one line per fold and model.
        reference: Model the paired differences are taken against (``"<model> - <reference>"``
            rows; falls back to the first scored model when it was not run).
    """

    folds: str | Sequence[int] | None = None
    n_boot: int = 1000
    seed: int = 0
    early_days: float = 14.0
    models: tuple[str, ...] = MODEL_NAMES
    device: str | None = None
    kim_coefficients: dict[str, float] | None = None
    progress: bool = False
    reference: str = "hybrid"


@dataclass
class EvaluationResult:
    """Output of :func:`evaluate_models`: the metrics table and what it was computed from."""

    metrics: pd.DataFrame
    predictions: dict[str, Predictions]
    outcomes: Outcomes
    notes: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Split:
    """The cohort, each plan's fold in the saved split, where the split lives, and the
    simulator's truth (None for a cohort without)."""

    cohort: Any
    plan_fold: np.ndarray
    n_folds: int
    directory: Path
    truth: Any = None


# ---------------------------------------------------------------------------------------------
# folds


def _resolve_folds(folds, n_folds: int, default: int) -> list[int]:
    if folds is None:
        return [default]
    if isinstance(folds, str):
        if folds.strip().lower() == "all":
            return list(range(n_folds))
        try:
            folds = [int(f) for f in folds.split(",") if f.strip()]
        except ValueError:
            raise InputError(f"folds must be 'all' or comma-separated integers, got {folds!r}",
                             field="--folds") from None
    folds = sorted({int(f) for f in folds})
    bad = [f for f in folds if not 0 <= f < n_folds]
    if bad or not folds:
        raise InputError(f"folds {bad or folds} outside 0..{n_folds - 1}", field="--folds")
    return folds


def _load_split(cohort: str | Path, config) -> _Split:
    """Load the cohort and its saved split (written once if missing); >= 3 folds."""
    from lymphonet.data.splits import get_or_make_splits
    from lymphonet.io.cohort import load_cohort

    root = Path(cohort)
    coh = load_cohort(root, errors="collect")
    split_dir = root if root.is_dir() else root.parent
    splits = get_or_make_splits(coh.plans, split_dir / "splits.csv", config.train.n_folds,
                                config.train.seed)
    n_folds = int(splits["fold"].max()) + 1
    if n_folds < 3:
        raise InputError(f"need >= 3 folds (train, validation, test), the split has {n_folds}",
                         file=split_dir / "splits.csv", field="fold")
    fold_of = dict(zip(splits["plan_id"], splits["fold"]))
    plan_fold = np.array([fold_of[p.plan_id] for p in coh.plans])
    from lymphonet.evaluation.truth import CohortTruth

    return _Split(coh, plan_fold, n_folds, split_dir, CohortTruth.load(root))


def fold_data(split: _Split, config, k: int, *, seed: int, device,
              encoder: dict | None = None) -> FoldData:
    """The data of held-out fold ``k``: validation fold = the config's ``val_fold`` for its own
    test fold, else ``(k + 1) mod K``; training folds = the rest; the clinical encoder is
    ``encoder`` (a checkpoint's, as a dict) or fitted on the training folds."""
    from lymphonet.data.clinical import ClinicalEncoder
    from lymphonet.data.dataset import PlanDataset
    from lymphonet.evaluation.mechanistic import dataset_table

    t, data_cfg, pf = config.train, config.data, split.plan_fold
    val = t.val_fold if k == t.test_fold else (k + 1) % split.n_folds
    idx = lambda sel: [int(i) for i in np.flatnonzero(sel)]
    tr, va, te = idx((pf != k) & (pf != val)), idx(pf == val), idx(pf == k)
    enc = ClinicalEncoder.from_dict(encoder) if encoder else None
    train = PlanDataset(split.cohort, data_cfg, indices=tr, clinical_encoder=enc,
                        augment=data_cfg.augment)
    make = lambda ix: PlanDataset(split.cohort, data_cfg, indices=ix,
                                  clinical_encoder=train.clinical_encoder)
    val_ds, test, fit = make(va), make(te), make(tr + va)
    inputs = {"n_channels": train.n_channels, "n_clinical": train.n_clinical,
              "n_dose_summary": train.n_dose_summary}
    return FoldData(fold=k, val_fold=val, seed=seed, config=config, device=device, train=train,
                    val=val_ds, test=test, fit=fit, model_inputs=inputs,
                    fit_table=dataset_table(fit), test_table=dataset_table(test),
                    truth=split.truth)


# ---------------------------------------------------------------------------------------------
# the loop


def run_estimators(folds: Iterable[FoldData], estimators: Sequence[Estimator],
                   progress: bool = False):
    """Fit every estimator on each fold's training data and predict its held-out plans.

    Returns:
        ``(outcomes, predictions, notes)``: the pooled :class:`Outcomes`, model name -> pooled
        :class:`Predictions` (estimators refused with :class:`NotScored` on any fold are left
        out, their reason in ``notes``; a scored estimator's ``note`` attribute is added).
    """
    outs: list[Outcomes] = []
    preds: dict[str, list[Predictions]] = {e.name: [] for e in estimators}
    notes: dict[str, str] = {}
    for fold in folds:
        outs.append(fold.outcomes)
        for est in estimators:
            if est.name in notes:
                continue
            if progress:
                print(f"fold {fold.fold}: {est.name}", flush=True)
            try:
                pred = est.fit(fold).predict(fold)
            except NotScored as err:
                notes[est.name] = str(err)
                continue
            if len(pred.g3) != len(fold.test_plans) or len(pred.g4) != len(fold.test_plans):
                raise ValueError(f"{est.name} predicted {len(pred.g3)} plans, held-out fold "
                                 f"{fold.fold} has {len(fold.test_plans)}")
            preds[est.name].append(pred)
    pooled = {m: concat_predictions(v) for m, v in preds.items()
              if m not in notes and len(v) == len(outs)}
    for est in estimators:
        if est.name in pooled and getattr(est, "note", None):
            notes[est.name] = est.note
    return concat_outcomes(outs), pooled, notes


def _estimators(opts: EvaluationOptions, pretrained: PretrainedNetwork | None,
                extra: Sequence[Estimator]) -> list[Estimator]:
    ests = [make_estimator(m, early_days=opts.early_days, kim_coefficients=opts.kim_coefficients,
                           pretrained=pretrained) for m in opts.models] + list(extra)
    names = [e.name for e in ests]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"models {dup} given twice", field="models")
    return ests


def _options(options: EvaluationOptions | None, overrides: dict[str, Any]) -> EvaluationOptions:
    opts = replace(options or EvaluationOptions(), **overrides)
    opts = replace(opts, models=tuple(opts.models))
    unknown = [m for m in opts.models if m not in MODEL_NAMES]
    if unknown:
        raise InputError(f"unknown models {unknown}; known {list(MODEL_NAMES)}", field="models")
    return opts


def evaluate_models(cohort: str | Path, *, checkpoint: str | Path | None = None, config=None,
                    options: EvaluationOptions | None = None,
                    estimators: Sequence[Estimator] = (), **overrides) -> EvaluationResult:
    """Fit / load every model on the saved split and score the held-out folds.

    Args:
        cohort: Cohort folder (its ``splits.csv`` is reused, or written once).
        checkpoint: A ``lymphonet train`` checkpoint (``best.pt``) or an exported bundle
            folder; its config and clinical encoder are used, and its weights for its own
            test fold (:func:`load_trained`).
        config: A :class:`~lymphonet.training.config.TrainingRunConfig` when no checkpoint
            (every hybrid is then trained here).
        options: :class:`EvaluationOptions` (default: all models, the test fold, 1000
            replicates, seed 0).
        estimators: Further estimators (anything with ``name``, ``fit(fold)``,
            ``predict(fold)``) scored after ``options.models``.
        **overrides: :class:`EvaluationOptions` fields replacing those of ``options``
            (``n_boot=200, folds="all"``, ...).

    Returns:
        :class:`EvaluationResult`.
    """
    import torch

    opts = _options(options, overrides)
    trained = None
    if checkpoint is not None:
        config, *trained = load_trained(checkpoint)
    if config is None:
        raise InputError("give a checkpoint or a training config", field="--model")
    if not (Path(cohort).is_dir() or Path(cohort).is_file()):
        raise InputError("cohort folder not found", file=Path(cohort), field="--cohort")
    dev = torch.device(opts.device or "cpu")
    split = _load_split(cohort, config)
    fold_list = _resolve_folds(opts.folds, split.n_folds, config.train.test_fold)
    own = config.train.test_fold
    pretrained = None if trained is None else PretrainedNetwork(own, trained[1])
    ests = _estimators(opts, pretrained, estimators)
    folds = (fold_data(split, config, k, seed=opts.seed + k, device=dev,
                       encoder=trained[0] if trained and k == own else None) for k in fold_list)
    outcomes, pooled, notes = run_estimators(folds, ests, opts.progress)
    reference = opts.reference if opts.reference in pooled else next(iter(pooled), opts.reference)
    table = score_predictions(pooled, outcomes, n_boot=opts.n_boot, seed=opts.seed,
                              reference=reference)
    settings = {"folds": fold_list, "n_folds": split.n_folds, "n_boot": opts.n_boot,
                "seed": opts.seed, "early_days": opts.early_days,
                "checkpoint": str(checkpoint) if checkpoint else None,
                "n_plans": len(outcomes.plan_ids),
                "n_patients": len(set(outcomes.patient_ids)),
                "simulated": (split.directory / "truth.csv").is_file(),
                "truth_metrics": split.truth is not None, "reference": reference}
    return EvaluationResult(table, pooled, outcomes, notes, settings)


def cross_validate(config, cohort: str | Path, **kwargs) -> EvaluationResult:
    """K-fold cross-validation in one call: every fold of the saved split held out once, every
    model trained on the other folds (seeded ``seed + fold``), predictions pooled and scored.

    ``kwargs`` are :func:`evaluate_models`' (``options``, ``estimators``, ``checkpoint`` and
    :class:`EvaluationOptions` fields such as ``n_boot``, ``seed``, ``models``)."""
    if "folds" in kwargs:
        raise TypeError("cross_validate holds out every fold; use evaluate_models for a subset")
    return evaluate_models(cohort, config=config, folds="all", **kwargs)
