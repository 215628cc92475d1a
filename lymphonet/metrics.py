"""Evaluation metrics with patient-level bootstrap weights (numpy only, vectorised).

Every metric takes optional ``weights``: ``None`` (each plan once), ``[N]`` or ``[R, N]`` (R
bootstrap replicates at once). A bootstrap replicate that resamples patients with replacement is
exactly a vector of non-negative integer weights per plan (how often its patient was drawn), so
point estimates and all R replicates are computed by the same code, without copying data.
Scalars come back for ``None`` / ``[N]`` weights, ``[R]`` arrays for ``[R, N]``.

Definitions (all on observed labs only; the simulated truth is never read):

* grade labels: the observed nadir is the lowest lab after day 0 (needs ``MIN_LABS`` labs);
  grade >= 3 when it is < 0.5 and grade 4 when < 0.2 x 10^9/L (CTCAE v5);
* AUROC: Mann-Whitney probability that a positive outranks a negative, ties counted half;
* AUPRC: average precision, sum over score thresholds of (recall step) x precision
  (the step-wise definition, no interpolation);
* Brier score: mean squared difference of probability and outcome;
* calibration slope ``b`` and intercept ``a`` by logistic recalibration (Cox 1958; Steyerberg,
  Clinical Prediction Models, 2nd ed. 2019, ch. 15): ``b`` from ``logit P(y) = a' + b logit p``,
  ``a`` (calibration-in-the-large) from ``logit P(y) = a + logit p`` (slope fixed at 1). A
  calibrated model has ``b = 1`` and ``a = 0``; ``b < 1`` means too extreme predictions;
* log-ALC RMSE per time window (see :data:`WINDOWS`), nadir MAE (the predicted trajectory's
  minimum over the patient's *own lab days* vs the lowest of those labs, as in
  :mod:`lymphonet.training.metrics`), and interval coverage (share of labs inside the model's
  central predictive interval). Trajectory metrics use labs up to the model's horizon (last grid
  day); the grade labels use every lab after day 0.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from lymphonet.schema import CTCAE_CUTOFFS_ALC

#: CTCAE v5 cut-offs (10^9/L): grade >= 3 below 0.5, grade 4 below 0.2.
GRADE3_ALC, GRADE4_ALC = CTCAE_CUTOFFS_ALC[3], CTCAE_CUTOFFS_ALC[4]


def normal_quantile(p: float) -> float:
    """z with Phi(z) = p for the standard normal (the one quantile function of lymphonet; a
    central interval of coverage ``level`` is +- ``normal_quantile(0.5 + level / 2)``)."""
    return NormalDist().inv_cdf(float(p))


#: Labs after day 0 a plan needs for its observed nadir (and grade labels) to count.
MIN_LABS = 2
#: Time windows of lab days: name, lower and upper bound (exclusive, inclusive) of the days after
#: the end of RT (last fraction day); "during_rt" is day 0 up to the last fraction. The bins are
#: contiguous and centred roughly on 1, 3, 6 and 12 months after RT.
WINDOWS: tuple[tuple[str, float, float], ...] = (
    ("during_rt", -math.inf, 0.0), ("month_1", 0.0, 60.0), ("month_3", 60.0, 135.0),
    ("month_6", 135.0, 270.0), ("month_12", 270.0, 450.0))


# ---------------------------------------------------------------------------------------------
# weights and bootstrap

def _weights(weights, n: int) -> tuple[np.ndarray, bool]:
    """``[R, N]`` float weights and whether the input was 2-D."""
    if weights is None:
        return np.ones((1, n)), False
    w = np.asarray(weights, float)
    if w.ndim == 1:
        return w[None], False
    return w, True


def _out(values: np.ndarray, batched: bool):
    return values if batched else float(values[0])


def patient_bootstrap_weights(patient_ids, n_boot: int, seed: int = 0) -> np.ndarray:
    """``[n_boot, N]`` plan weights for bootstrap replicates that resample PATIENTS.

    Each replicate draws as many patients as there are, with replacement; a plan's weight is
    how often its patient was drawn, so all plans of one patient (e.g. a photon and a proton plan)
    stay together. Deterministic for a given seed.
    """
    ids = np.asarray(patient_ids).astype(str)
    uniq, inverse = np.unique(ids, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniq), size=(n_boot, len(uniq)))
    counts = np.zeros((n_boot, len(uniq)))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
    return counts[:, inverse]


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaN replicates, e.g. one class, ignored)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return math.nan, math.nan
    lo, hi = np.quantile(v, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------
# classification

def _prepare(y_true, score, weights):
    y = np.asarray(y_true, float)
    s = np.asarray(score, float)
    w, batched = _weights(weights, y.size)
    ok = np.isfinite(s) & np.isfinite(y)
    w = np.where(ok[None], w, 0.0)
    return np.where(ok, y, 0.0) > 0.5, np.where(ok, s, 0.0), w, batched


def _tie_groups(s_sorted: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in a sorted 1-D array."""
    return np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]]) if s_sorted.size else \
        np.zeros(0, int)


def auroc(y_true, score, weights=None):
    """Weighted area under the ROC curve (Mann-Whitney U / (n_pos n_neg), ties half).

    Args:
        y_true: ``[N]`` binary outcomes.
        score: ``[N]`` scores (higher = more likely positive); non-finite entries are left out.
        weights: None, ``[N]`` or ``[R, N]`` non-negative weights.

    Returns:
        float (or ``[R]``); NaN where one class has zero weight.
    """
    y, s, w, batched = _prepare(y_true, score, weights)
    if y.size == 0:
        return _out(np.full(w.shape[0], math.nan), batched)
    order = np.argsort(s, kind="mergesort")
    starts = _tie_groups(s[order])
    wp = np.add.reduceat(w[:, order] * y[order], starts, axis=1)       # [R, G]
    wn = np.add.reduceat(w[:, order] * ~y[order], starts, axis=1)
    neg_below = np.cumsum(wn, axis=1) - wn
    num = (wp * (neg_below + 0.5 * wn)).sum(1)
    den = wp.sum(1) * wn.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out(np.where(den > 0, num / np.where(den > 0, den, 1.0), math.nan), batched)


def auprc(y_true, score, weights=None):
    """Weighted average precision: sum over thresholds of (recall increase) x precision.

    Same definition as scikit-learn's ``average_precision_score`` (thresholds at the distinct
    scores, highest first). NaN when no positive has weight.
    """
    y, s, w, batched = _prepare(y_true, score, weights)
    if y.size == 0:
        return _out(np.full(w.shape[0], math.nan), batched)
    order = np.argsort(-s, kind="mergesort")
    starts = _tie_groups(-s[order])
    tp = np.cumsum(np.add.reduceat(w[:, order] * y[order], starts, axis=1), axis=1)
    fp = np.cumsum(np.add.reduceat(w[:, order] * ~y[order], starts, axis=1), axis=1)
    pos = tp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1.0), 0.0)
        d_recall = np.diff(np.concatenate([np.zeros_like(pos), tp], 1), axis=1) / np.where(
            pos > 0, pos, 1.0)
    ap = (d_recall * precision).sum(1)
    return _out(np.where(pos[:, 0] > 0, ap, math.nan), batched)


def brier(y_true, prob, weights=None):
    """Weighted Brier score ``sum w (p - y)^2 / sum w``; NaN when no weight."""
    y, p, w, batched = _prepare(y_true, prob, weights)
    tot = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out(np.where(tot > 0, (w * (p - y) ** 2).sum(1) / np.where(tot > 0, tot, 1), math.nan),
                    batched)


def _logit(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    p = np.clip(p, eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _loglik(w, y, x, beta) -> np.ndarray:
    """``[R]`` weighted Bernoulli log-likelihood of ``logit P = beta0 + beta1 x``."""
    eta = beta[:, :1] + beta[:, 1:] * x[None]
    return (w * (y * eta - np.logaddexp(0.0, eta))).sum(1)


def _damped(w, y, x, beta, step, max_halvings: int = 20) -> np.ndarray:
    """Newton step halved per row until the log-likelihood does not decrease."""
    base = _loglik(w, y, x, beta)
    scale = np.ones(len(beta))
    for _ in range(max_halvings):
        worse = _loglik(w, y, x, beta + scale[:, None] * step) < base - 1e-12
        if not worse.any():
            break
        scale[worse] *= 0.5
    return scale[:, None] * step


def calibration(y_true, prob, weights=None, max_iter: int = 30, tol: float = 1e-7):
    """Calibration slope and intercept by logistic recalibration (Newton-Raphson, batched).

    Args:
        y_true: ``[N]`` binary outcomes; prob: ``[N]`` predicted probabilities.
        weights: None, ``[N]`` or ``[R, N]``.

    Returns:
        ``(slope, intercept)``: floats or ``[R]`` arrays. ``slope`` is b in
        ``logit P(y) = a' + b logit(p)``; ``intercept`` is a in ``logit P(y) = a + logit(p)``
        (calibration-in-the-large). NaN where one class is missing or the fit does not converge
        (perfect separation has no finite slope).
    """
    y, p, w, batched = _prepare(y_true, prob, weights)
    x = _logit(p)
    r = w.shape[0]
    wp, wn = (w * y).sum(1), (w * ~y).sum(1)
    ok = (wp > 0) & (wn > 0)
    # slope: 2-parameter Newton on (a', b); only rows not yet converged are updated
    beta = np.tile([0.0, 1.0], (r, 1))
    conv = np.zeros(r, bool)
    act = np.flatnonzero(ok)
    for _ in range(max_iter):
        if act.size == 0:
            break
        wa = w[act]
        mu = _sigmoid(beta[act, :1] + beta[act, 1:] * x[None])
        res, v = wa * (y - mu), wa * mu * (1 - mu)
        g0, g1 = res.sum(1), res @ x
        h00, h01, h11 = v.sum(1) + 1e-12, v @ x, v @ (x * x) + 1e-12
        det = h00 * h11 - h01**2
        with np.errstate(invalid="ignore", divide="ignore"):
            step = np.stack([(h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det], 1)
        step = np.clip(np.where(np.isfinite(step), step, 0.0), -5.0, 5.0)
        step = _damped(wa, y, x, beta[act], step)
        beta[act] += step
        done = np.abs(step).max(1) < tol
        conv[act[done]] = True
        act = act[~done]
    slope = np.where(ok & conv & (np.abs(beta[:, 1]) < 1e3), beta[:, 1], math.nan)
    # intercept with offset logit(p), slope fixed at 1 (always finite when both classes occur)
    a = np.zeros(r)
    conv_a = np.zeros(r, bool)
    act = np.flatnonzero(ok)
    for _ in range(max_iter):
        if act.size == 0:
            break
        wa = w[act]
        mu = _sigmoid(a[act, None] + x[None])
        step = np.clip((wa * (y - mu)).sum(1) / ((wa * mu * (1 - mu)).sum(1) + 1e-12), -5, 5)
        a[act] += step
        done = np.abs(step) < tol
        conv_a[act[done]] = True
        act = act[~done]
    intercept = np.where(ok & conv_a, a, math.nan)
    return _out(slope, batched), _out(intercept, batched)


# ---------------------------------------------------------------------------------------------
# trajectories

def interpolate_rows(days: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation of each row of ``values`` ``[N, T]`` (on grid ``days`` ``[T]``,
    ascending) at ``t`` ``[N, M]``; outside the grid the end values are used."""
    days = np.asarray(days, float)
    tc = np.clip(t, days[0], days[-1])
    i1 = np.clip(np.searchsorted(days, tc, side="right"), 1, len(days) - 1)
    i0 = i1 - 1
    span = np.where(days[i1] > days[i0], days[i1] - days[i0], 1.0)
    frac = (tc - days[i0]) / span
    v0 = np.take_along_axis(values, i0, 1)
    v1 = np.take_along_axis(values, i1, 1)
    return v0 + frac * (v1 - v0)


def lab_mask(obs_days, obs_alc, obs_mask, horizon_day: float | None = None) -> np.ndarray:
    """``[N, M]`` labs that count: given, positive, after day 0 and not past ``horizon_day``."""
    m = np.asarray(obs_mask, bool) & (np.asarray(obs_alc) > 0) & (np.asarray(obs_days) > 0)
    if horizon_day is not None:
        m &= np.asarray(obs_days) <= horizon_day
    return m


def observed_nadir(obs_days, obs_alc, obs_mask, min_labs: int = MIN_LABS) -> np.ndarray:
    """``[N]`` lowest lab after day 0 (10^9/L); NaN with fewer than ``min_labs`` labs."""
    m = lab_mask(obs_days, obs_alc, obs_mask)
    low = np.where(m, obs_alc, np.inf).min(1)
    return np.where(m.sum(1) >= min_labs, low, np.nan)


def grade_labels(nadir: np.ndarray) -> dict[str, np.ndarray]:
    """``{"g3": ..., "g4": ...}`` float labels (1/0, NaN where the nadir is NaN)."""
    nadir = np.asarray(nadir, float)
    lab = lambda cut: np.where(np.isfinite(nadir), (nadir < cut).astype(float), np.nan)
    return {"g3": lab(GRADE3_ALC), "g4": lab(GRADE4_ALC)}


def window_index(obs_days: np.ndarray, end_rt_day: np.ndarray) -> np.ndarray:
    """``[N, M]`` index into :data:`WINDOWS` of each lab (-1 outside every window)."""
    u = np.asarray(obs_days, float) - np.asarray(end_rt_day, float)[:, None]
    idx = np.full(u.shape, -1, int)
    for k, (_, lo, hi) in enumerate(WINDOWS):
        idx[(u > lo) & (u <= hi)] = k
    return idx


def trajectory_stats(days, alc, obs_days, obs_alc, obs_mask, end_rt_day, lower=None, upper=None,
                     min_labs: int = MIN_LABS) -> dict[str, np.ndarray]:
    """Per-plan sufficient statistics of the trajectory metrics (summed later with weights).

    Args:
        days: ``[T]`` grid days; alc: ``[N, T]`` predicted ALC (10^9/L).
        obs_days, obs_alc, obs_mask: ``[N, M]`` labs.
        end_rt_day: ``[N]`` day of the last fraction.
        lower, upper: ``[N, T]`` central predictive interval, or None.

    Returns:
        ``sse`` / ``n_labs`` ``[N, W + 1]`` (squared log errors and lab counts per window, last
        column all windows), ``abs_nadir_err`` ``[N]`` (NaN when not evaluable), ``inside`` /
        ``n_cov`` ``[N]`` (labs inside the interval, labs checked).
    """
    days = np.asarray(days, float)
    m = lab_mask(obs_days, obs_alc, obs_mask, float(days[-1]))
    t = np.where(m, obs_days, days[0])
    obs = np.where(m, obs_alc, 1.0)
    pred = np.maximum(interpolate_rows(days, np.asarray(alc, float), t), 1e-6)
    err2 = np.where(m, (np.log(pred) - np.log(obs)) ** 2, 0.0)
    win = window_index(obs_days, end_rt_day)
    n_w = len(WINDOWS)
    sse = np.zeros((m.shape[0], n_w + 1))
    cnt = np.zeros_like(sse)
    for k in range(n_w):
        sel = m & (win == k)
        sse[:, k], cnt[:, k] = np.where(sel, err2, 0).sum(1), sel.sum(1)
    sse[:, n_w], cnt[:, n_w] = err2.sum(1), m.sum(1)
    nadir_obs = np.where(m, obs, np.inf).min(1)  # over the same (within-horizon) labs
    nadir_pred = np.where(m, pred, np.inf).min(1)
    abs_err = np.where(m.sum(1) >= min_labs, np.abs(nadir_pred - nadir_obs), np.nan)
    out = {"sse": sse, "n_labs": cnt, "abs_nadir_err": abs_err}
    if lower is not None and upper is not None:
        lo = interpolate_rows(days, np.asarray(lower, float), t)
        hi = interpolate_rows(days, np.asarray(upper, float), t)
        inside = m & (obs >= lo) & (obs <= hi)
        out["inside"], out["n_cov"] = inside.sum(1).astype(float), m.sum(1).astype(float)
    return out


def weighted_ratio(num: np.ndarray, den: np.ndarray, weights=None):
    """``sum w num / sum w den`` per replicate (NaN where the denominator is 0)."""
    w, batched = _weights(weights, num.shape[0])
    a, b = w @ np.nan_to_num(num), w @ den
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out(np.where(b > 0, a / np.where(b > 0, b, 1.0), math.nan), batched)


def weighted_mean(values: np.ndarray, weights=None):
    """Weighted mean of ``[N]`` values, NaN entries left out."""
    v = np.asarray(values, float)
    return weighted_ratio(np.where(np.isfinite(v), v, 0.0), np.isfinite(v).astype(float), weights)


def trajectory_metrics(stats: dict[str, np.ndarray], weights=None) -> dict[str, np.ndarray | float]:
    """log-ALC RMSE (all labs and per window), nadir MAE and coverage from
    :func:`trajectory_stats` under ``weights``."""
    out = {}
    names = [w[0] for w in WINDOWS] + ["all"]
    for k, name in enumerate(names):
        mse = weighted_ratio(stats["sse"][:, k], stats["n_labs"][:, k], weights)
        out[f"log_alc_rmse_{name}"] = np.sqrt(mse)
    out["nadir_mae"] = weighted_mean(stats["abs_nadir_err"], weights)
    if "inside" in stats:
        out["coverage"] = weighted_ratio(stats["inside"], stats["n_cov"], weights)
    return out


# ---------------------------------------------------------------------------------------------
# the per-epoch summary of training and validation (names shared with the evaluation harness)


def summarise(log_err: np.ndarray, nadir_pred: np.ndarray, nadir_obs: np.ndarray,
              p_g3: np.ndarray, p_g4: np.ndarray, inside90: np.ndarray, nll: np.ndarray
              ) -> dict[str, float]:
    """Metrics from pooled per-lab and per-patient arrays.

    Args:
        log_err: ``[N_labs]`` log(pred) - log(obs).
        nadir_pred, nadir_obs: ``[N_pat]`` predicted (at lab days) and observed nadir (10^9/L).
        p_g3, p_g4: ``[N_pat]`` P(grade >= 3), P(grade 4).
        inside90: ``[N_labs]`` bool, lab inside the 90% predictive interval.
        nll: ``[N_labs]`` per-lab negative log-likelihood (log scale).
    """
    y3, y4 = nadir_obs < GRADE3_ALC, nadir_obs < GRADE4_ALC
    return {
        "log_alc_rmse_all": float(np.sqrt(np.mean(log_err**2))) if log_err.size else math.nan,
        "nadir_mae": float(np.mean(np.abs(nadir_pred - nadir_obs))) if nadir_obs.size else math.nan,
        "auroc_g4": auroc(y4, p_g4),
        "auroc_g3": auroc(y3, p_g3),
        "brier_g4": float(np.mean((p_g4 - y4) ** 2)) if y4.size else math.nan,
        "brier_g3": float(np.mean((p_g3 - y3) ** 2)) if y3.size else math.nan,
        "coverage": float(np.mean(inside90)) if inside90.size else math.nan,
        "nll": float(np.mean(nll)) if nll.size else math.nan,
        "n_patients": float(nadir_obs.size),
        "n_labs": float(log_err.size),
        "rate_g4": float(np.mean(y4)) if y4.size else math.nan,
    }


#: Metrics shown in the comparison table, with their display names (lower/higher is better).
TABLE_METRICS = (("log_alc_rmse_all", "log-ALC RMSE", "lower"), ("nadir_mae", "nadir MAE (10^9/L)",
                 "lower"), ("auroc_g4", "grade-4 AUROC", "higher"),
                 ("auroc_g3", "grade>=3 AUROC", "higher"),
                 ("brier_g4", "grade-4 Brier", "lower"),
                 ("brier_g3", "grade>=3 Brier", "lower"),
                 ("coverage", "90% interval coverage", "0.90"))


def format_table(results: dict[str, dict[str, float]]) -> str:
    """Side-by-side plain-text table of :data:`TABLE_METRICS` for each model (columns)."""
    names = list(results)
    width = max(12, *(len(n) + 2 for n in names))
    lines = [f"{'metric':<24}" + "".join(f"{n:>{width}}" for n in names) + "   better"]
    for key, label, better in TABLE_METRICS:
        vals = "".join(f"{results[n].get(key, math.nan):>{width}.4f}" for n in names)
        lines.append(f"{label:<24}{vals}   {better}")
    any_res = results[names[0]]
    lines.append(f"(held-out: {int(any_res.get('n_patients', 0))} plans, "
                 f"{int(any_res.get('n_labs', 0))} labs, observed grade-4 rate "
                 f"{any_res.get('rate_g4', math.nan):.2f})")
    return "\n".join(lines)
