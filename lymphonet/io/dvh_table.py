"""Cumulative organ DVHs as physicists export them (the HEDOS format), checked and read.

A file is a table with columns ``dose_bins`` (Gy, for the whole course, increasing) and
``coverage`` (percent of the organ's volume receiving at least that dose, non-increasing, 100 at
the first bin). The differential histogram is what the blood-dose engine needs: the volume share
between two bins sits at their midpoint, and the share at or above the last bin at the last bin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lymphonet.errors import InputError, UnitError

#: Tolerance on the first bin's coverage (percent): a cumulative DVH starts at (about) 100%.
START_TOLERANCE_PCT = 1.0


@dataclass(frozen=True)
class RelativeDVH:
    """A differential DVH without absolute volume.

    Attributes:
        dose_gy: ``[B]`` bin doses (Gy; per fraction once divided).
        fraction: ``[B]`` share of the organ's volume in each bin (sums to 1).
    """

    dose_gy: np.ndarray
    fraction: np.ndarray

    def per_fraction(self, n_fractions: int) -> RelativeDVH:
        """The same DVH with doses divided by ``n_fractions`` (course -> one fraction)."""
        return RelativeDVH(self.dose_gy / float(n_fractions), self.fraction)

    @property
    def mean_gy(self) -> float:
        return float(np.dot(self.dose_gy, self.fraction))


def read_cumulative_dvh(path: str | Path, *, organ: str | None = None) -> RelativeDVH:
    """Read a cumulative DVH file (columns ``dose_bins`` in Gy and ``coverage`` in %).

    Raises:
        InputError: Missing file or column, non-numeric, NaN, negative or decreasing doses,
            increasing coverage, or a first bin far from 100%.
        UnitError: Coverage that looks like a fraction (max <= 1) rather than percent.
    """
    import pandas as pd

    path = Path(path)
    where = {"file": path.name, "patient": None}
    if not path.is_file():
        raise InputError("DVH file not found", field=organ or "dvh", **where)
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError) as err:
        raise InputError(f"cannot read DVH table ({type(err).__name__})", field=organ, **where
                         ) from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in ("dose_bins", "coverage") if c not in table.columns]
    if missing:
        raise InputError(f"columns {missing} missing (expected dose_bins in Gy, coverage in %)",
                         field=missing[0], **where)
    dose = pd.to_numeric(table["dose_bins"], errors="coerce").to_numpy(float)
    cov = pd.to_numeric(table["coverage"], errors="coerce").to_numpy(float)
    _check(dose, cov, where)
    share = np.append(-np.diff(cov), cov[-1]) / 100.0
    mids = np.append((dose[:-1] + dose[1:]) / 2.0, dose[-1])
    keep = share > 0
    return RelativeDVH(mids[keep], share[keep] / share[keep].sum())


def _check(dose: np.ndarray, cov: np.ndarray, where: dict) -> None:
    if dose.size < 2 or not (np.isfinite(dose).all() and np.isfinite(cov).all()):
        raise InputError("needs at least two rows of numbers in dose_bins and coverage",
                         field="dose_bins", **where)
    if dose.min() < 0 or np.any(np.diff(dose) <= 0):
        raise InputError("dose_bins must be >= 0 Gy and increasing", field="dose_bins", **where)
    if cov.max() <= 1.0 + 1e-9:
        raise UnitError("coverage is at most 1: it looks like a fraction, but the format is "
                        "percent (100 = the whole organ)", field="coverage", **where)
    if np.any(np.diff(cov) > 1e-6) or cov.min() < 0:
        raise InputError("coverage must be a non-increasing percentage (a cumulative DVH)",
                         field="coverage", **where)
    if abs(cov[0] - 100.0) > START_TOLERANCE_PCT:
        raise InputError(f"coverage starts at {cov[0]:g}%, not 100%: not a cumulative DVH of "
                         "the whole organ", field="coverage", **where)
