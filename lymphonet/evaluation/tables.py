"""The metrics table: held-out predictions and outcomes, pooled over folds and scored.

:class:`Predictions` is what every estimator returns for the plans of a held-out fold,
:class:`Outcomes` what was observed for them. :func:`score_predictions` scores all models on the
same plans: point estimates plus 95% percentile bootstrap intervals from resampling PATIENTS
(the same replicates for every model, so paired differences against the reference model get
intervals too), overall and per site, modality, particle vs photon and fold. Metric definitions
live in :mod:`lymphonet.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lymphonet import metrics as M
from lymphonet.evaluation.decisions import PARTICLES, decision_values
from lymphonet.evaluation.truth import truth_values

METRIC_COLUMNS = ("model", "metric", "subgroup", "value", "ci_low", "ci_high", "n",
                  "boot_undefined")


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
        true_days, true_alc, true_nadir, true_grade: ``[T]``, ``[N, T]``, ``[N]``, ``[N]`` the
            simulator's truth (:mod:`lymphonet.evaluation.truth`), or None for a cohort without.
        truth_groups: ``truth:<name>`` -> ``[N]`` bool, subgroups the truth defines (scored
            like the site and modality subgroups), or None.
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
    true_days: np.ndarray | None = None
    true_alc: np.ndarray | None = None
    true_nadir: np.ndarray | None = None
    true_grade: np.ndarray | None = None
    truth_groups: dict[str, np.ndarray] | None = None

    @property
    def nadir(self) -> np.ndarray:
        """``[N]`` observed nadir (NaN with fewer than :data:`metrics.MIN_LABS` labs)."""
        return M.observed_nadir(self.obs_days, self.obs_alc, self.obs_mask)


def outcomes_of(table: dict, plans, fold: int, truth=None) -> Outcomes:
    """The observed outcomes of N plans (``table``: their batch-contract arrays) held out in
    ``fold``, with the simulator's truth of the plans when ``truth`` (a
    :class:`~lymphonet.evaluation.truth.CohortTruth`) is given."""
    days = table["fraction_days"].numpy()
    mask = table["fraction_mask"].numpy()
    extra = {}
    if truth is not None:
        alc, nadir, grade = truth.rows([p.plan_id for p in plans])
        extra = {"true_days": truth.days, "true_alc": alc, "true_nadir": nadir,
                 "true_grade": grade,
                 "truth_groups": truth.group_masks([p.plan_id for p in plans]) or None}
    return Outcomes(
        plan_ids=np.array([p.plan_id for p in plans]),
        patient_ids=np.array([p.patient_id for p in plans]),
        sites=np.array([(p.site or "unknown").lower() for p in plans]),
        modalities=np.array([p.modality for p in plans]),
        folds=np.full(len(plans), fold), obs_days=table["obs_days"].numpy().astype(float),
        obs_alc=table["obs_alc"].numpy().astype(float), obs_mask=table["obs_mask"].numpy(),
        end_rt_day=np.where(mask, days, -np.inf).max(1), **extra)


# ---------------------------------------------------------------------------------------------
# pooling


def _pad_cat(arrays: list[np.ndarray], fill) -> np.ndarray:
    """Concatenate ``[N_i, M_i]`` arrays along rows, padding columns to the largest M."""
    m = max(a.shape[1] for a in arrays)
    return np.concatenate([np.pad(a, ((0, 0), (0, m - a.shape[1])), constant_values=fill)
                           for a in arrays])


def concat_outcomes(parts: list[Outcomes]) -> Outcomes:
    """Outcomes of several folds as one (lab columns padded)."""
    kw = {}
    for name in Outcomes.__dataclass_fields__:
        vals = [getattr(p, name) for p in parts]
        if any(v is None for v in vals):
            kw[name] = None
        elif name == "truth_groups":
            kw[name] = {g: np.concatenate([v[g] for v in vals]) for g in vals[0]}
        elif name == "true_days":
            kw[name] = max(vals, key=len)  # grids of several cohorts all start at day 0
        elif name == "true_alc":
            kw[name] = _pad_cat(vals, np.nan)
        else:
            kw[name] = _pad_cat(vals, False if name == "obs_mask" else 0) if vals[0].ndim == 2 \
                else np.concatenate(vals)
    return Outcomes(**kw)


def concat_predictions(parts: list[Predictions]) -> Predictions:
    """One model's predictions of several folds as one (trajectories cut to the shortest grid)."""
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
    """Boolean plan masks: all, each site, each modality, particle (proton + carbon), each fold,
    and the subgroups the simulator's truth defines."""
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
    groups.update({g: m for g, m in (out.truth_groups or {}).items() if m.any()})
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
    """One table row; ``boot_undefined`` counts the replicates where the metric is undefined
    (e.g. no event drawn), which the percentile interval leaves out: read the interval as
    conditional on the metric existing, and distrust it when the count is large."""
    boot = np.asarray(arr[1:], float)
    lo, hi = M.percentile_ci(boot, level)
    return {"model": model, "metric": metric, "subgroup": group, "value": float(arr[0]),
            "ci_low": lo, "ci_high": hi, "n": n,
            "boot_undefined": int((~np.isfinite(boot)).sum())}


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
        for m, p in predictions.items():
            vals[m].update(decision_values(p, labels, outcomes, w))
        if outcomes.true_alc is not None:
            for m, p in predictions.items():
                vals[m].update(truth_values(p, outcomes.true_days, outcomes.true_alc,
                                            outcomes.true_nadir, outcomes.true_grade, w))
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
