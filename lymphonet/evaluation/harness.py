"""One harness for every model: held-out folds of the saved split -> long metrics table.

:func:`evaluate_models` takes a cohort folder and a trained checkpoint (or a training config) and,
for each requested fold of the cohort's saved split (``<cohort>/splits.csv``, the file the
training code writes and reuses):

1. trains / loads the networks on the other folds (the checkpoint is used for its own test fold;
   any other fold gets the hybrid retrained from the checkpoint's config, seeded
   ``seed + fold``); the CNN-only ablation (``use_kinetics = False``) is trained the same way;
2. fits the baselines of :mod:`lymphonet.evaluation.baselines` on the training + validation folds;
3. predicts the held-out fold with every model.

Held-out predictions of all folds are pooled (each plan is held out once) and scored by
:func:`score_predictions`: point estimates plus 95% percentile bootstrap intervals from
resampling PATIENTS (the same replicates for every model, so paired differences against the
hybrid get intervals too), overall and per site, modality, particle vs photon and fold.
:func:`cross_validate` is the K-fold run in one call. Everything is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lymphonet import metrics as M
from lymphonet.errors import InputError
from lymphonet.evaluation.baselines import (
    DVHGradientBoosting,
    DVHLogistic,
    EDICLogistic,
    KimNomogram,
    MechanisticEarlyFit,
    MechanisticPopulation,
    dataset_table,
    tabular_features,
)

#: Models in report order (``kim_nomogram`` only with coefficients, see baselines).
MODEL_NAMES = ("hybrid", "cnn_only", "mechanistic_population", "mechanistic_early_fit",
               "edic_logistic", "dvh_logistic", "dvh_gradient_boosting", "kim_nomogram")
METRIC_COLUMNS = ("model", "metric", "subgroup", "value", "ci_low", "ci_high", "n")
PARTICLES = ("proton", "carbon")


@dataclass
class Predictions:
    """One model's held-out predictions for N plans.

    Attributes:
        g3, g4: ``[N]`` P(grade >= 3), P(grade 4) (NaN where the model does not apply).
        days: ``[T]`` grid days; alc, lower, upper: ``[N, T]`` trajectory and central predictive
            interval (10^9/L), or None for classifiers.
    """

    g3: np.ndarray
    g4: np.ndarray
    days: np.ndarray | None = None
    alc: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None


@dataclass
class Outcomes:
    """What was observed for the N held-out plans (never model inputs beyond the labs).

    Attributes:
        plan_ids, patient_ids, sites, modalities: ``[N]`` str arrays; folds: ``[N]`` int.
        obs_days, obs_alc, obs_mask: ``[N, M]`` labs (days, 10^9/L, bool).
        end_rt_day: ``[N]`` day of the last fraction.
    """

    plan_ids: np.ndarray
    patient_ids: np.ndarray
    sites: np.ndarray
    modalities: np.ndarray
    folds: np.ndarray
    obs_days: np.ndarray
    obs_alc: np.ndarray
    obs_mask: np.ndarray
    end_rt_day: np.ndarray

    @property
    def nadir(self) -> np.ndarray:
        """``[N]`` observed nadir (NaN with fewer than :data:`metrics.MIN_LABS` labs)."""
        return M.observed_nadir(self.obs_days, self.obs_alc, self.obs_mask)


@dataclass
class EvaluationResult:
    """Output of :func:`evaluate_models`: the metrics table and what it was computed from."""

    metrics: pd.DataFrame
    predictions: dict[str, Predictions]
    outcomes: Outcomes
    notes: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# pooling


def _pad_cat(arrays: list[np.ndarray], fill) -> np.ndarray:
    """Concatenate ``[N_i, M_i]`` arrays along rows, padding columns to the largest M."""
    m = max(a.shape[1] for a in arrays)
    return np.concatenate([np.pad(a, ((0, 0), (0, m - a.shape[1])), constant_values=fill)
                           for a in arrays])


def _concat_outcomes(parts: list[Outcomes]) -> Outcomes:
    kw = {}
    for name in Outcomes.__dataclass_fields__:
        vals = [getattr(p, name) for p in parts]
        kw[name] = _pad_cat(vals, False if name == "obs_mask" else 0) if vals[0].ndim == 2 \
            else np.concatenate(vals)
    return Outcomes(**kw)


def _concat_predictions(parts: list[Predictions]) -> Predictions:
    kw = {"g3": np.concatenate([p.g3 for p in parts]), "g4": np.concatenate([p.g4 for p in parts])}
    if all(p.alc is not None for p in parts):
        t = min(len(p.days) for p in parts)
        kw["days"] = parts[0].days[:t]
        for k in ("alc", "lower", "upper"):
            if all(getattr(p, k) is not None for p in parts):
                kw[k] = np.concatenate([getattr(p, k)[:, :t] for p in parts])
    return Predictions(**kw)


# ---------------------------------------------------------------------------------------------
# scoring


def subgroups(out: Outcomes) -> dict[str, np.ndarray]:
    """Boolean plan masks: all, each site, each modality, particle (proton + carbon), each fold."""
    groups = {"all": np.ones(len(out.plan_ids), bool)}
    for s in sorted(set(out.sites)):
        groups[f"site={s}"] = out.sites == s
    mods = sorted(set(out.modalities))
    for m in mods:
        groups[f"modality={m}"] = out.modalities == m
    particle = np.isin(out.modalities, PARTICLES)
    if len(set(mods) & set(PARTICLES)) > 1 and (~particle).any():
        groups["modality=particle"] = particle
    if len(set(out.folds)) > 1:
        for k in sorted(set(out.folds)):
            groups[f"fold={k}"] = out.folds == k
    return groups


def _model_values(pred: Predictions, labels, stats, w) -> dict[str, tuple[np.ndarray, int]]:
    """metric -> (``[R]`` values under weights ``w`` ``[R, N]``, n) for one model."""
    sel = w[0] > 0
    vals: dict[str, tuple[np.ndarray, int]] = {}
    for ep in ("g3", "g4"):
        p, y = getattr(pred, ep), labels[ep]
        ok = sel & np.isfinite(p) & np.isfinite(y)
        if not ok.any():
            continue
        n = int(ok.sum())
        vals[f"auroc_{ep}"] = (M.auroc(y, p, w), n)
        vals[f"auprc_{ep}"] = (M.auprc(y, p, w), n)
        vals[f"brier_{ep}"] = (M.brier(y, p, w), n)
        slope, icpt = M.calibration(y, p, w)
        vals[f"calibration_slope_{ep}"] = (slope, n)
        vals[f"calibration_intercept_{ep}"] = (icpt, n)
        vals[f"mean_p_{ep}"] = (M.weighted_mean(np.where(np.isfinite(y), p, np.nan), w), n)
    if stats is not None:
        tm = M.trajectory_metrics(stats, w)
        names = [x[0] for x in M.WINDOWS] + ["all"]
        for k, nm in enumerate(names):
            vals[f"log_alc_rmse_{nm}"] = (tm[f"log_alc_rmse_{nm}"],
                                          int(stats["n_labs"][sel, k].sum()))
        vals["nadir_mae"] = (tm["nadir_mae"], int(np.isfinite(stats["abs_nadir_err"][sel]).sum()))
        if "coverage" in tm:
            vals["coverage"] = (tm["coverage"], int(stats["n_cov"][sel].sum()))
        vals["mean_nadir"] = (M.weighted_mean(pred.alc.min(1), w), int(sel.sum()))
    return vals


def _observed_values(labels, nadir, w) -> dict[str, tuple[np.ndarray, int]]:
    sel = w[0] > 0
    out = {f"rate_{ep}": (M.weighted_mean(labels[ep], w), int((sel & np.isfinite(labels[ep])).sum()))
           for ep in ("g3", "g4")}
    out["mean_nadir"] = (M.weighted_mean(nadir, w), int((sel & np.isfinite(nadir)).sum()))
    return out


def _row(model, metric, group, arr, n, level) -> dict[str, Any]:
    lo, hi = M.percentile_ci(arr[1:], level)
    return {"model": model, "metric": metric, "subgroup": group, "value": float(arr[0]),
            "ci_low": lo, "ci_high": hi, "n": n}


def score_predictions(predictions: dict[str, Predictions], outcomes: Outcomes, *,
                      n_boot: int = 1000, seed: int = 0, reference: str = "hybrid",
                      level: float = 0.95) -> pd.DataFrame:
    """Score every model on the same plans with patient-bootstrap intervals.

    Args:
        predictions: model name -> :class:`Predictions` (rows aligned with ``outcomes``).
        outcomes: The held-out plans.
        n_boot: Bootstrap replicates (patients resampled with replacement).
        seed: Bootstrap seed (same seed, same table).
        reference: Model the paired differences are taken against (``"<model> - <reference>"``
            rows, same replicates).
        level: Interval probability.

    Returns:
        Long DataFrame with columns :data:`METRIC_COLUMNS` (``model`` ``"observed"`` holds the
        observed grade rates and mean nadir; metric ``particle_minus_photon_*`` rows compare
        particle and photon plans).
    """
    n = len(outcomes.plan_ids)
    w_all = np.vstack([np.ones((1, n)), M.patient_bootstrap_weights(outcomes.patient_ids,
                                                                     n_boot, seed)])
    nadir = outcomes.nadir
    labels = M.grade_labels(nadir)
    stats = {m: None if p.alc is None else M.trajectory_stats(
        p.days, p.alc, outcomes.obs_days, outcomes.obs_alc, outcomes.obs_mask,
        outcomes.end_rt_day, p.lower, p.upper) for m, p in predictions.items()}
    rows: list[dict[str, Any]] = []
    for group, mask in subgroups(outcomes).items():
        w = w_all * mask[None]
        vals = {m: _model_values(p, labels, stats[m], w) for m, p in predictions.items()}
        vals["observed"] = _observed_values(labels, nadir, w)
        for m, v in vals.items():
            rows += [_row(m, k, group, a, c, level) for k, (a, c) in v.items()]
        if reference in vals:
            for m, v in vals.items():
                if m in (reference, "observed"):
                    continue
                for k, (a, c) in v.items():
                    if k in vals[reference] and not k.startswith("mean_"):
                        rows.append(_row(f"{m} - {reference}", k, group,
                                         a - vals[reference][k][0], c, level))
    rows += _particle_vs_photon(predictions, outcomes, labels, nadir, w_all, level)
    df = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    return df[df["n"] > 0].reset_index(drop=True)


def _particle_vs_photon(predictions, outcomes, labels, nadir, w_all, level) -> list[dict]:
    """Particle minus photon: observed grade rates / mean nadir vs each model's predictions."""
    particle = np.isin(outcomes.modalities, PARTICLES)
    photon = outcomes.modalities == "photon"
    if not particle.any() or not photon.any():
        return []
    n = int(particle.sum() + photon.sum())
    wp, wx = w_all * particle[None], w_all * photon[None]
    diff = lambda v: M.weighted_mean(v, wp) - M.weighted_mean(v, wx)
    rows = [_row("observed", f"particle_minus_photon_{ep}", "all", diff(labels[ep]), n, level)
            for ep in ("g3", "g4")]
    rows.append(_row("observed", "particle_minus_photon_nadir", "all", diff(nadir), n, level))
    for m, p in predictions.items():
        for ep in ("g3", "g4"):
            v = np.where(np.isfinite(labels[ep]), getattr(p, ep), np.nan)
            if np.isfinite(v[particle]).any() and np.isfinite(v[photon]).any():
                rows.append(_row(m, f"particle_minus_photon_{ep}", "all", diff(v), n, level))
        if p.alc is not None:
            rows.append(_row(m, "particle_minus_photon_nadir", "all", diff(p.alc.min(1)), n,
                             level))
    return rows


# ---------------------------------------------------------------------------------------------
# models per fold


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


def _outcomes(table: dict, plans, fold: int) -> Outcomes:
    days = table["fraction_days"].numpy()
    mask = table["fraction_mask"].numpy()
    return Outcomes(
        plan_ids=np.array([p.plan_id for p in plans]),
        patient_ids=np.array([p.patient_id for p in plans]),
        sites=np.array([(p.site or "unknown").lower() for p in plans]),
        modalities=np.array([p.modality for p in plans]),
        folds=np.full(len(plans), fold), obs_days=table["obs_days"].numpy().astype(float),
        obs_alc=table["obs_alc"].numpy().astype(float), obs_mask=table["obs_mask"].numpy(),
        end_rt_day=np.where(mask, days, -np.inf).max(1))


def train_network(model_cfg, cfg, train_ds, val_ds, model_inputs: dict[str, int], device,
                  seed: int):
    """Train one network through ``train.py``'s loop (the same ``fit`` as ``lymphonet train``:
    optimiser, schedule, AMP, early stopping on the validation fold), seeded; returns it in eval
    mode with its best weights."""
    from dataclasses import replace

    from lymphonet.data.prepare import PreparedData, make_loaders
    from lymphonet.training.loop import build_model, set_seed
    from lymphonet.training.script import load_train_script

    t = cfg.train
    set_seed(seed, t.deterministic)
    train_dl, val_dl, _ = make_loaders(PreparedData(train_ds, val_ds, val_ds, model_inputs),
                                       t.batch_size, 0, seed, device=device)
    model = build_model(model_cfg, model_inputs).to(device)
    quiet = replace(cfg, train=replace(t, progress=False))
    load_train_script().fit(model, train_dl, val_dl, quiet, device, epochs=t.epochs, lr=t.lr,
                            weight_decay=t.weight_decay, lr_schedule=t.lr_schedule,
                            patience=t.patience)
    return model.eval()


def network_predictions(model, dataset, device, batch_size: int = 32,
                        level: float = 0.9) -> Predictions:
    """Trajectories, grade probabilities (the model's noise model) and intervals of a network."""
    import torch
    from torch.utils.data import DataLoader

    from lymphonet.training.loop import to_device

    model.eval()
    acc: dict[str, list] = {k: [] for k in ("alc", "lower", "upper", "g3", "g4")}
    days = None
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size, shuffle=False):
            out = model(to_device(batch, device))
            alc = out.alc.float()
            days = out.days.float()
            probs = model.noise.grade_probabilities(alc.min(1).values)
            lo, hi = model.noise.interval(alc, days, level)
            for k, v in (("alc", alc), ("lower", lo), ("upper", hi), ("g3", probs[3]),
                         ("g4", probs[4])):
                acc[k].append(v.cpu())
    cat = {k: torch.cat(v).numpy().astype(float) for k, v in acc.items()}
    return Predictions(days=days.cpu().numpy().astype(float), **cat)


def _tabular(table_fit, plans_fit, table_test, plans_test, seed, kim_coefficients, notes):
    from lymphonet.data.batch import DOSE_SUMMARY_NAMES

    xf = tabular_features(table_fit, plans_fit, DOSE_SUMMARY_NAMES)
    xt = tabular_features(table_test, plans_test, DOSE_SUMMARY_NAMES)
    y = M.grade_labels(M.observed_nadir(table_fit["obs_days"].numpy(), table_fit["obs_alc"].numpy(),
                                        table_fit["obs_mask"].numpy()))
    nt = len(plans_test)
    makers = {"edic_logistic": ("edic", lambda: EDICLogistic()),
              "dvh_logistic": ("dvh", lambda: DVHLogistic()),
              "dvh_gradient_boosting": ("dvh", lambda: DVHGradientBoosting(random_state=seed))}
    out = {}
    for name, (feat, make) in makers.items():
        probs = {}
        for ep in ("g3", "g4"):
            ok = np.isfinite(y[ep])
            est = make().fit(xf[feat][ok], y[ep][ok].astype(int))
            pr = est.predict_proba(xt[feat])
            probs[ep] = pr[:, list(est.classes_).index(1)] if 1 in est.classes_ else np.zeros(nt)
        out[name] = Predictions(**probs)
    kim = KimNomogram(kim_coefficients)
    brain = np.isfinite(xt["kim"]).all(1)
    if not kim.available:
        notes["kim_nomogram"] = ("not scored: the published coefficients of Kim et al. 2024 are "
                                 "not available to lymphonet (pass them explicitly to use it)")
    elif brain.any():
        kim.fit(xt["kim"][brain])
        g3 = np.full(nt, np.nan)
        g3[brain] = kim.predict_proba(xt["kim"][brain])[:, 1]
        out["kim_nomogram"] = Predictions(g3=g3, g4=np.full(nt, np.nan))
    return out


def _trajectory_model(est, fit_table, test_table, **fit_kw) -> Predictions:
    est.fit(fit_table, **fit_kw)
    p = est.predict_trajectory(test_table)
    return Predictions(g3=p["g3"], g4=p["g4"], days=p["days"].astype(float), alc=p["alc"],
                       lower=p["lower"], upper=p["upper"])


def load_trained(path: str | Path):
    """``(TrainingRunConfig, clinical encoder dict or None, model in eval mode)`` from a
    checkpoint file (``lymphonet train``'s ``best.pt``) or a model bundle folder
    (``lymphonet export``; verified by :func:`lymphonet.export.load_bundle`)."""
    from lymphonet.config import from_dict
    from lymphonet.training.config import TrainingRunConfig

    path = Path(path)
    if path.is_dir():
        import json

        from lymphonet.bundle.export import load_bundle

        bundle = load_bundle(path)
        raw = json.loads((path / "config.json").read_text())
        cfg = from_dict(TrainingRunConfig, raw, where="bundle config.json")
        return cfg, bundle.encoder.to_dict(), bundle.model
    from lymphonet.training.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(path)
    cfg = from_dict(TrainingRunConfig, ckpt["config"], where="checkpoint.config")
    return cfg, ckpt.get("encoder"), model_from_checkpoint(ckpt)


def evaluate_models(cohort: str | Path, *, checkpoint: str | Path | None = None, config=None,
                    folds=None, n_boot: int = 1000, seed: int = 0, early_days: float = 14.0,
                    models: tuple[str, ...] = MODEL_NAMES, device: str | None = None,
                    kim_coefficients: dict[str, float] | None = None,
                    progress: bool = False) -> EvaluationResult:
    """Fit / load every model on the saved split and score the held-out folds.

    Args:
        cohort: Cohort folder (its ``splits.csv`` is reused, or written once).
        checkpoint: A ``lymphonet train`` checkpoint (``best.pt``) or an exported bundle
            folder; its config and clinical encoder are used, and its weights for its own
            test fold (:func:`load_trained`).
        config: A :class:`~lymphonet.training.config.TrainingRunConfig` when no checkpoint
            (every hybrid is then trained here).
        folds: None (the checkpoint's / config's test fold), ``"all"``, ``"0,2"`` or a list.
        n_boot: Bootstrap replicates; seed: seed of training, baselines and bootstrap.
        early_days: Last lab day the early-fit mechanistic model may use.
        models: Subset of :data:`MODEL_NAMES`.
        device: Torch device for the networks (default CPU).
        kim_coefficients: Coefficients for :class:`~lymphonet.evaluation.baselines.KimNomogram`.
        progress: Print one line per fold and model.

    Returns:
        :class:`EvaluationResult`.
    """
    import torch

    from lymphonet.data.clinical import ClinicalEncoder
    from lymphonet.data.dataset import PlanDataset
    from lymphonet.data.splits import get_or_make_splits
    from lymphonet.io.cohort import load_cohort

    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown:
        raise InputError(f"unknown models {unknown}; known {list(MODEL_NAMES)}", field="models")
    trained = None
    if checkpoint is not None:
        config, *trained = load_trained(checkpoint)
    if config is None:
        raise InputError("give a checkpoint or a training config", field="--model")
    root = Path(cohort)
    if not (root.is_dir() or root.is_file()):
        raise InputError("cohort folder not found", file=root, field="--cohort")
    dev = torch.device(device or "cpu")
    coh = load_cohort(root, errors="collect")
    split_dir = root if root.is_dir() else root.parent
    splits = get_or_make_splits(coh.plans, split_dir / "splits.csv", config.train.n_folds,
                                config.train.seed)
    n_folds = int(splits["fold"].max()) + 1
    if n_folds < 3:
        raise InputError(f"need >= 3 folds (train, validation, test), the split has {n_folds}",
                         file=split_dir / "splits.csv", field="fold")
    fold_list = _resolve_folds(folds, n_folds, config.train.test_fold)
    fold_of = dict(zip(splits["plan_id"], splits["fold"]))
    plan_fold = np.array([fold_of[p.plan_id] for p in coh.plans])
    data_cfg = config.data
    notes: dict[str, str] = {}
    outs, preds = [], {m: [] for m in models}
    for k in fold_list:
        own = trained is not None and k == config.train.test_fold
        val = config.train.val_fold if k == config.train.test_fold else (k + 1) % n_folds
        idx = lambda sel: [int(i) for i in np.flatnonzero(sel)]
        tr, va, te = (idx((plan_fold != k) & (plan_fold != val)), idx(plan_fold == val),
                      idx(plan_fold == k))
        enc = ClinicalEncoder.from_dict(trained[0]) if own and trained[0] else None
        train_ds = PlanDataset(coh, data_cfg, indices=tr, clinical_encoder=enc,
                               augment=data_cfg.augment)
        enc = train_ds.clinical_encoder
        val_ds = PlanDataset(coh, data_cfg, indices=va, clinical_encoder=enc)
        test_ds = PlanDataset(coh, data_cfg, indices=te, clinical_encoder=enc)
        fit_ds = PlanDataset(coh, data_cfg, indices=tr + va, clinical_encoder=enc)
        inputs = {"n_channels": train_ds.n_channels, "n_clinical": train_ds.n_clinical,
                  "n_dose_summary": train_ds.n_dose_summary}
        fit_table, test_table = dataset_table(fit_ds), dataset_table(test_ds)
        outs.append(_outcomes(test_table, test_ds.plans, k))
        fseed = seed + k
        n_days = config.model.n_days
        population = None
        for m in models:
            if progress:
                print(f"fold {k}: {m}", flush=True)
            if m == "hybrid":
                net = (trained[1].to(dev) if own else
                       train_network(config.model, config, train_ds, val_ds, inputs, dev, fseed))
                preds[m].append(network_predictions(net, test_ds, dev))
            elif m == "cnn_only":
                net = train_network(replace(config.model, use_kinetics=False), config, train_ds,
                                    val_ds, inputs, dev, fseed)
                preds[m].append(network_predictions(net, test_ds, dev))
            elif m == "mechanistic_population":
                est = MechanisticPopulation(n_days=n_days)
                preds[m].append(_trajectory_model(est, fit_table, test_table))
                population = est.population_
            elif m == "mechanistic_early_fit":
                preds[m].append(_trajectory_model(
                    MechanisticEarlyFit(early_days=early_days, n_days=n_days, seed=fseed),
                    fit_table, test_table, population=population))
        tab = _tabular(fit_table, fit_ds.plans, test_table, test_ds.plans, fseed,
                       kim_coefficients, notes)
        for m in models:
            if m in tab:
                preds[m].append(tab[m])
    outcomes = _concat_outcomes(outs)
    pooled = {m: _concat_predictions(v) for m, v in preds.items() if len(v) == len(fold_list)}
    if "mechanistic_early_fit" in pooled:
        notes["mechanistic_early_fit"] = (f"uses each patient's labs up to day {early_days:g}: "
                                          "its error on those days is partly in-sample")
    table = score_predictions(pooled, outcomes, n_boot=n_boot, seed=seed)
    settings = {"folds": fold_list, "n_folds": n_folds, "n_boot": n_boot, "seed": seed,
                "early_days": early_days, "checkpoint": str(checkpoint) if checkpoint else None,
                "n_plans": len(outcomes.plan_ids),
                "n_patients": len(set(outcomes.patient_ids)),
                "simulated": (split_dir / "truth.csv").is_file()}
    return EvaluationResult(table, pooled, outcomes, notes, settings)


def cross_validate(config, cohort: str | Path, *, n_boot: int = 1000, seed: int = 0,
                   **kwargs) -> EvaluationResult:
    """K-fold cross-validation in one call: every fold of the saved split held out once, every
    model trained on the other folds (seeded ``seed + fold``), predictions pooled and scored."""
    return evaluate_models(cohort, config=config, folds="all", n_boot=n_boot, seed=seed, **kwargs)
