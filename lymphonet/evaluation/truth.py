"""What a simulated cohort's truth lets the evaluation score (SIMULATED cohorts only).

A simulated cohort folder holds ``truth.csv`` (true nadir and grade per plan) and
``trajectories.parquet`` (true daily ALC). :class:`CohortTruth` reads them (None for a user's own
cohort, where truth metrics are simply absent); :func:`truth_values` scores a model's
predictions against them: the RMSE of log ALC against the true daily ALC from day 1 to
:data:`TRUE_HORIZON_DAYS` (no lab noise, no missing visits), the error of the predicted nadir
against the true one, and the discrimination and Brier score of grade >= 3 / grade 4 against the
TRUE nadir grade (the labs only sample the trajectory, so observed grades are noisy labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lymphonet import metrics as M

#: Last day of the truth comparison of trajectories (days from the first fraction).
TRUE_HORIZON_DAYS = 365
#: Subgroups defined by the simulator's truth: name -> (truth.csv column, threshold); plans at or
#: above the threshold form ``truth:<name>``, the others ``truth:not_<name>``. The reactive-nodes
#: dose is the effect only the dose image carries (lymphonet.twin.dose_effects).
TRUTH_GROUPS = {"reactive_nodes_dosed": ("reactive_nodes_mean_gy", 10.0)}


@dataclass(frozen=True)
class CohortTruth:
    """True daily ALC, nadir and grade of the plans of a simulated cohort.

    Attributes:
        days: ``[T]`` days 0..T-1.
        alc: plan_id -> ``[T]`` true daily ALC (10^9/L).
        nadir: plan_id -> true nadir (10^9/L); grade: plan_id -> true CTCAE grade.
        groups: subgroup name -> plan_id -> membership (:data:`TRUTH_GROUPS`, where the
            truth has the column).
    """

    days: np.ndarray
    alc: dict[str, np.ndarray]
    nadir: dict[str, float]
    grade: dict[str, int]
    groups: dict[str, dict[str, bool]] | None = None

    @classmethod
    def load(cls, root: str | Path) -> CohortTruth | None:
        """The truth beside a cohort (folder or manifest file), or None when it has none."""
        root = Path(root)
        root = root if root.is_dir() else root.parent
        t_csv, traj = root / "truth.csv", root / "trajectories.parquet"
        if not (t_csv.is_file() and traj.is_file()):
            return None
        t = pd.read_csv(t_csv)
        long = pd.read_parquet(traj)
        wide = long.pivot(index="plan_id", columns="day", values="alc_true")
        days = wide.columns.to_numpy(float)
        alc = {str(p): row.astype(float) for p, row in zip(wide.index, wide.to_numpy())}
        ids = t["plan_id"].astype(str)
        groups = {name: dict(zip(ids, t[col].to_numpy(float) >= cut))
                  for name, (col, cut) in TRUTH_GROUPS.items() if col in t.columns}
        return cls(days, alc, dict(zip(ids, t["nadir_alc"].astype(float))),
                   dict(zip(ids, t["grade"].astype(int))), groups)

    def group_masks(self, plan_ids) -> dict[str, np.ndarray]:
        """``truth:<name>`` and ``truth:not_<name>`` -> ``[N]`` bool, for the plans given."""
        out = {}
        for name, member in (self.groups or {}).items():
            inside = np.array([member.get(str(p), False) for p in plan_ids])
            known = np.array([str(p) in member for p in plan_ids])
            out[f"truth:{name}"], out[f"truth:not_{name}"] = inside, known & ~inside
        return out

    def rows(self, plan_ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``alc`` ``[N, T]``, ``nadir`` ``[N]``, ``grade`` ``[N]`` of the plans (NaN / -1 for a
        plan without truth)."""
        nan = np.full(len(self.days), np.nan)
        alc = np.stack([self.alc.get(str(p), nan) for p in plan_ids])
        nadir = np.array([self.nadir.get(str(p), np.nan) for p in plan_ids], float)
        grade = np.array([self.grade.get(str(p), -1) for p in plan_ids], int)
        return alc, nadir, grade


def true_labels(grade: np.ndarray) -> dict[str, np.ndarray]:
    """``{"g3", "g4"}``: 1.0 / 0.0 from the true grade, NaN without truth."""
    ok = grade >= 0
    return {"g3": np.where(ok, (grade >= 3).astype(float), np.nan),
            "g4": np.where(ok, (grade >= 4).astype(float), np.nan)}


def _log_sq_err(pred_days, pred_alc, true_days, true_alc) -> np.ndarray:
    """``[N]`` mean squared log error per plan over the shared days 1..TRUE_HORIZON_DAYS."""
    days = np.intersect1d(pred_days.astype(int), true_days.astype(int))
    days = days[(days >= 1) & (days <= TRUE_HORIZON_DAYS)]
    pi = np.searchsorted(pred_days.astype(int), days)
    ti = np.searchsorted(true_days.astype(int), days)
    err = np.log(np.maximum(pred_alc[:, pi], 1e-6)) - np.log(np.maximum(true_alc[:, ti], 1e-6))
    return np.nanmean(err ** 2, axis=1) if days.size else np.full(len(pred_alc), np.nan)


def truth_values(pred, true_days: np.ndarray, true_alc: np.ndarray, true_nadir: np.ndarray,
                 true_grade: np.ndarray, w: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
    """metric -> (``[R]`` values under plan weights ``w`` ``[R, N]``, n) against the truth.

    Metrics: ``true_log_alc_rmse`` (trajectory models), ``true_nadir_mae`` (10^9/L; minimum of
    the predicted trajectory over days 0..TRUE_HORIZON_DAYS vs the true nadir), and
    ``true_auroc_*`` / ``true_brier_*`` of the predicted probabilities against the true grade.
    """
    sel = w[0] > 0
    out: dict[str, tuple[np.ndarray, int]] = {}
    labels = true_labels(true_grade)
    for ep in ("g3", "g4"):
        p, y = getattr(pred, ep), labels[ep]
        ok = sel & np.isfinite(p) & np.isfinite(y)
        if ok.any():
            out[f"true_auroc_{ep}"] = (M.auroc(y, p, w), int(ok.sum()))
            out[f"true_brier_{ep}"] = (M.brier(y, p, w), int(ok.sum()))
    if pred.alc is not None:
        mse = _log_sq_err(pred.days, pred.alc, true_days, true_alc)
        ok = sel & np.isfinite(mse)
        if ok.any():
            out["true_log_alc_rmse"] = (np.sqrt(M.weighted_mean(mse, w)), int(ok.sum()))
        upto = pred.days <= TRUE_HORIZON_DAYS
        err = np.abs(pred.alc[:, upto].min(1) - true_nadir)
        ok = sel & np.isfinite(err)
        if ok.any():
            out["true_nadir_mae"] = (M.weighted_mean(err, w), int(ok.sum()))
    return out
