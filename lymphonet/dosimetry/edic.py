"""EDIC: the effective dose to the circulating immune cells (Jin et al.).

Jin and colleagues estimate the dose to the circulating lymphocyte pool as a weighted sum of mean
organ doses, with a body term whose weight grows with the number of fractions:

    EDIC = 0.12 MLD + 0.08 MHD + [0.45 + 0.35 * 0.85 * sqrt(n / 45)] * MBD

with MLD, MHD, MBD the mean lung, heart and body doses (total course, Gy) and n the number of
fractions. At n = 45 the body coefficient is 0.45 + 0.2975 = 0.7475.

References:
    Jin JY, Hu C, Xiao Y, et al. Higher radiation dose to the immune cells correlates with worse tumor
    control and overall survival in patients with stage III NSCLC: a secondary analysis of RTOG0617.
    Cancers (Basel) 2021;13:6193. The EDIC model itself was proposed earlier by Jin et al.; the
    coefficients above are those of that publication; published EDIC medians are 5.6-6.3 Gy in
    RTOG 0617.
"""

from __future__ import annotations

import numpy as np

from lymphonet.dosimetry.dvh import mean_body_dose_gy, require_structures_on_dose_grid
from lymphonet.errors import InputError
from lymphonet.io.volume import StructureSet, Volume
from lymphonet.organs import PAIRED

__all__ = ["edic_body_coefficient", "edic_from_structures", "edic_gy"]

#: Weights of the mean lung and heart doses (Jin et al.).
LUNG_WEIGHT = 0.12
HEART_WEIGHT = 0.08


def _as_checked_array(value, field: str, *, positive: bool = False) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    bad = ~np.isfinite(arr) | ((arr <= 0) if positive else (arr < 0))
    if np.any(bad):
        first = arr[bad].flat[0]
        need = "> 0" if positive else ">= 0"
        raise InputError(f"must be finite and {need}, got {first!r}", field=field)
    return arr


def edic_body_coefficient(n_fractions) -> np.ndarray | float:
    """Weight of the mean body dose, ``0.45 + 0.35 * 0.85 * sqrt(n / 45)``.

    Args:
        n_fractions: Number of fractions, scalar or array (> 0, whole numbers).

    Returns:
        Coefficient, float for scalar input, else an array of the input's shape.
    """
    n = _as_checked_array(n_fractions, "n_fractions", positive=True)
    if np.any(n != np.round(n)):
        raise InputError("number of fractions must be a whole number", field="n_fractions")
    coef = 0.45 + 0.35 * 0.85 * np.sqrt(n / 45.0)
    return float(coef) if coef.ndim == 0 else coef


def edic_gy(mean_lung_gy, mean_heart_gy, mean_body_gy, n_fractions) -> np.ndarray | float:
    """Effective dose to the circulating immune cells, Gy (broadcast over arrays).

    Args:
        mean_lung_gy: Mean dose to both lungs, total course, Gy (>= 0).
        mean_heart_gy: Mean heart dose, Gy (>= 0).
        mean_body_gy: Mean body dose, Gy (>= 0).
        n_fractions: Number of fractions (> 0, whole).

    Returns:
        EDIC in Gy: a float when every input is scalar, else an array of the broadcast shape.

    Raises:
        InputError: a NaN, infinite or negative dose, or a non-positive / non-integer fraction
            count; the error names the offending argument.
    """
    mld = _as_checked_array(mean_lung_gy, "mean_lung_gy")
    mhd = _as_checked_array(mean_heart_gy, "mean_heart_gy")
    mbd = _as_checked_array(mean_body_gy, "mean_body_gy")
    coef = np.asarray(edic_body_coefficient(n_fractions))
    try:
        out = LUNG_WEIGHT * mld + HEART_WEIGHT * mhd + coef * mbd
    except ValueError as err:  # shapes that do not broadcast
        raise InputError(f"input shapes do not broadcast: {err}", field="edic inputs") from None
    return float(out) if out.ndim == 0 else out


def _organ_mask(structures: StructureSet, organ: str) -> np.ndarray | None:
    """Mask of ``organ``; for a paired organ, the combined structure or the union of both sides."""
    mask = structures.masks.get(organ)
    if mask is not None and mask.any():
        return mask
    if organ in PAIRED:
        left, right = PAIRED[organ]
        have = [side for side in (left, right) if side in structures.masks
                and structures.masks[side].any()]
        if len(have) == 2:
            return structures.masks[left] | structures.masks[right]
        if len(have) == 1:
            raise InputError(f"only {have[0]!r} found: the mean dose of {organ!r} needs both sides "
                             f"({left!r} and {right!r}) or a combined {organ!r} structure",
                             file=structures.source, field=organ)
    return None


def edic_from_structures(dose: Volume, structures: StructureSet, n_fractions: int, *,
                         missing: str = "raise", patient: str | None = None) -> float:
    """EDIC of one plan from its dose and canonical structures.

    Uses ``"lungs"`` (or the union of ``"lung_left"`` and ``"lung_right"``), ``"heart"`` and
    ``"body"``; rename clinic structures to canonical names first (e.g. ``StructureSet.rename``).

    Args:
        dose: Total course dose, Gy.
        structures: Masks on the dose grid.
        n_fractions: Number of fractions.
        missing: ``"raise"`` (default): a missing or empty lung or heart structure is an error.
            ``"zero"``: count its mean dose as 0 Gy, for plans where the organ is genuinely far from
            the beam (e.g. a pelvic plan without a heart contour). The body is always required:
            its mean dose carries most of the EDIC and cannot be assumed.
        patient: Patient id for error messages.

    Returns:
        EDIC in Gy.

    Raises:
        InputError: missing organ (names it), bad ``missing`` value, bad dose or fraction count.
        GeometryError: structures on another grid than the dose.
    """
    if missing not in ("raise", "zero"):
        raise InputError(f"missing must be 'raise' or 'zero', got {missing!r}", field="missing",
                         patient=patient)
    require_structures_on_dose_grid(dose, structures, patient)
    mbd = mean_body_dose_gy(dose, structures, "body", patient=patient)  # also validates the dose
    means: dict[str, float] = {}
    for organ in ("lungs", "heart"):
        try:
            mask = _organ_mask(structures, organ)
        except InputError as err:
            raise err.with_context(patient=patient) from None
        if mask is None:
            if missing == "zero":
                means[organ] = 0.0
                continue
            raise InputError(f"no (or an empty) {organ!r} structure for EDIC (pass missing='zero' "
                             "to count it as 0 Gy)", patient=patient, file=structures.source,
                             field=organ)
        means[organ] = float(np.mean(dose.array[mask], dtype=np.float64))
    try:
        return float(edic_gy(means["lungs"], means["heart"], mbd, n_fractions))
    except InputError as err:
        raise err.with_context(patient=patient) from None
