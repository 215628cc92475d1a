"""Held-out metrics: log-ALC error, nadir error, grade discrimination and calibration.

All metrics use observed labs only (the simulated truth is never read): the "observed nadir" is
the lowest lab after day 0, and the grade labels are its CTCAE v5 grade (needs at least
``min_labs`` labs). ``nadir_mae`` compares it with the predicted trajectory's minimum over the
*same* lab days, so sparse sampling does not count as model error.
"""

from __future__ import annotations

import math

import numpy as np

from lymphonet.evaluation.metrics import auroc  # one AUROC for training and evaluation


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
    y3, y4 = nadir_obs < 0.5, nadir_obs < 0.2
    return {
        "log_alc_rmse": float(np.sqrt(np.mean(log_err**2))) if log_err.size else math.nan,
        "nadir_mae": float(np.mean(np.abs(nadir_pred - nadir_obs))) if nadir_obs.size else math.nan,
        "auroc_grade4": auroc(y4, p_g4),
        "auroc_grade3plus": auroc(y3, p_g3),
        "brier_grade4": float(np.mean((p_g4 - y4) ** 2)) if y4.size else math.nan,
        "brier_grade3plus": float(np.mean((p_g3 - y3) ** 2)) if y3.size else math.nan,
        "coverage90": float(np.mean(inside90)) if inside90.size else math.nan,
        "nll": float(np.mean(nll)) if nll.size else math.nan,
        "n_patients": float(nadir_obs.size),
        "n_labs": float(log_err.size),
        "grade4_rate": float(np.mean(y4)) if y4.size else math.nan,
    }


#: Metrics shown in the comparison table, with their display names (lower/higher is better).
TABLE_METRICS = (("log_alc_rmse", "log-ALC RMSE", "lower"), ("nadir_mae", "nadir MAE (10^9/L)",
                 "lower"), ("auroc_grade4", "grade-4 AUROC", "higher"),
                 ("auroc_grade3plus", "grade>=3 AUROC", "higher"),
                 ("brier_grade4", "grade-4 Brier", "lower"),
                 ("brier_grade3plus", "grade>=3 Brier", "lower"),
                 ("coverage90", "90% interval coverage", "0.90"))


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
                 f"{any_res.get('grade4_rate', math.nan):.2f})")
    return "\n".join(lines)
