"""Dose-volume histograms and DVH statistics, exact and vectorised.

Definitions used throughout (dose in Gy, volume in cm^3 = cc, every voxel of a structure counts with
its full volume ``voxel_cc``; no partial-volume weighting):

* **Cumulative DVH** ``V(D)``: the volume receiving a dose ``>= D``.
* **Vx Gy**: ``V(x)``, in cc (``v{x}gy_cc``) and in percent of the structure volume (``v{x}gy_pct``).
* **Dx%** (``d{x}_gy``): the minimum dose to the hottest x% of the volume. Sort the N voxel doses in
  decreasing order ``d_(1) >= ... >= d_(N)`` and take ``d_(k)`` with ``k = ceil(x N / 100)``, clamped to
  ``[1, N]``. So ``Dx%`` is the largest dose D such that at least x% of the volume receives ``>= D``;
  it is read off the sorted voxel doses exactly, *without interpolation* (nearest-rank rule).
  D0 is the maximum and D100 the minimum.
* **Dx cc** (``d{x}cc_gy``): the same with ``k = ceil(x / voxel_cc)``. When the structure is smaller
  than x cc the value is ``0.0``, the convention of dicompyler-core (``DVH.dose_constraint`` returns
  0 for a volume larger than the structure), so tables can be compared with its output.
* **Integral dose** (``integral_dose_gy_l``): ``sum(dose * voxel_cc) / 1000`` in Gy·L. Assuming unit
  density (1 L = 1 kg), 1 Gy·L is 1 J of energy imparted.

Doses must be finite and non-negative; anything else is an :class:`~lymphonet.errors.InputError`.
Masks must be boolean (a label map passed by mistake would otherwise be read silently).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lymphonet.errors import GeometryError, InputError
from lymphonet.io.volume import StructureSet, Volume

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DVH",
    "cumulative_dvh",
    "dose_histogram",
    "dvh_stats",
    "dvh_table",
    "mean_body_dose_gy",
    "require_structures_on_dose_grid",
    "stat_names",
]

#: Relative tolerance used when turning a volume fraction into a voxel rank (guards ``ceil`` against
#: floating-point noise such as ``0.95 * 100 = 95.00000000000001``).
_RANK_EPS = 1e-9


@dataclass(frozen=True)
class DVH:
    """A cumulative dose-volume histogram.

    Attributes:
        dose_edges_gy: Bin edges, shape ``(n_bins + 1,)``, Gy, starting at 0 and increasing.
        volume_cc: Shape ``(n_bins + 1,)``: ``volume_cc[i]`` is the volume (cc) receiving a dose
            ``>= dose_edges_gy[i]``. Non-increasing; ``volume_cc[0]`` is the structure volume.
    """

    dose_edges_gy: np.ndarray
    volume_cc: np.ndarray

    @property
    def total_volume_cc(self) -> float:
        """Structure volume in cc (the volume receiving >= 0 Gy)."""
        return float(self.volume_cc[0]) if self.volume_cc.size else 0.0

    @property
    def relative(self) -> np.ndarray:
        """Cumulative volume as a fraction of the structure volume, shape ``(n_bins + 1,)``, in [0, 1].

        All zeros for an empty structure.
        """
        total = self.total_volume_cc
        return self.volume_cc / total if total > 0 else np.zeros_like(self.volume_cc)

    @property
    def volume_pct(self) -> np.ndarray:
        """Cumulative volume in percent of the structure volume, shape ``(n_bins + 1,)``."""
        return 100.0 * self.relative

    @property
    def differential_cc(self) -> np.ndarray:
        """Volume (cc) with dose in ``[edge_i, edge_{i+1})``, shape ``(n_bins,)``."""
        return self.volume_cc[:-1] - self.volume_cc[1:]

    @property
    def bin_centers_gy(self) -> np.ndarray:
        """Centres of the dose bins, shape ``(n_bins,)``, Gy."""
        return 0.5 * (self.dose_edges_gy[:-1] + self.dose_edges_gy[1:])

    def volume_at_cc(self, dose_gy: float) -> float:
        """Volume (cc) receiving ``>= dose_gy``, read from the histogram at the first edge >= dose.

        Exact when ``dose_gy`` is an edge; otherwise accurate to one bin.
        """
        i = int(np.searchsorted(self.dose_edges_gy, dose_gy, side="left"))
        return float(self.volume_cc[i]) if i < self.volume_cc.size else 0.0


def _context(patient: str | None, file: str | None) -> dict:
    return {"patient": patient, "file": file}


def _check_mask(mask: np.ndarray | None, shape: tuple[int, ...], name: str = "mask",
                **context) -> np.ndarray | None:
    """Validate a boolean mask against the dose shape (``None`` means the whole grid)."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise GeometryError(f"mask shape {mask.shape} != dose shape {tuple(shape)}", field=name,
                            **context)
    if mask.dtype != np.bool_:
        raise InputError(f"mask must be boolean, got dtype {mask.dtype} (convert a label map with "
                         "labels == value first)", field=name, **context)
    return mask


def _check_values(values: np.ndarray, field: str = "dose", **context) -> None:
    """Refuse NaN / inf / negative doses with an :class:`InputError` naming ``field``."""
    if values.size == 0:
        return
    lo, hi = float(np.min(values)), float(np.max(values))
    if not (math.isfinite(lo) and math.isfinite(hi)):  # min/max propagate NaN
        n_bad = int(np.count_nonzero(~np.isfinite(values)))
        raise InputError(f"dose has {n_bad} non-finite (NaN or inf) voxel(s)", field=field,
                         **context)
    if lo < 0:
        raise InputError(f"dose must be >= 0 Gy, minimum is {lo:.6g} Gy", field=field, **context)


def _masked_values(dose_gy: np.ndarray, mask: np.ndarray | None, **context) -> np.ndarray:
    dose_gy = np.asarray(dose_gy)
    mask = _check_mask(mask, dose_gy.shape, **context)
    values = dose_gy.ravel() if mask is None else dose_gy[mask]
    _check_values(values, **context)
    return values


def _check_voxel_cc(voxel_cc: float) -> float:
    voxel_cc = float(voxel_cc)
    if not (math.isfinite(voxel_cc) and voxel_cc > 0):
        raise InputError(f"voxel volume must be a positive number of cc, got {voxel_cc}",
                         field="voxel_cc")
    return voxel_cc


def _edges(n_bins: int, bin_width_gy: float) -> np.ndarray:
    """``n_bins + 1`` edges ``i * bin_width_gy``; for widths 1/m (0.01, 0.25, ...) computed as i / m so
    that each edge is the double nearest its decimal value (0.35, not 0.35000000000000003)."""
    per_gy = round(1.0 / bin_width_gy)
    if per_gy >= 1 and abs(per_gy * bin_width_gy - 1.0) < 1e-12:
        return np.arange(n_bins + 1, dtype=np.float64) / per_gy
    return np.arange(n_bins + 1, dtype=np.float64) * bin_width_gy


def cumulative_dvh(
    dose_gy: np.ndarray,
    mask: np.ndarray | None,
    voxel_cc: float,
    *,
    bin_width_gy: float = 0.01,
    max_dose_gy: float | None = None,
) -> DVH:
    """Cumulative DVH of the voxels in ``mask`` (exact at the bin edges).

    Args:
        dose_gy: Dose array, any shape, Gy (finite, >= 0).
        mask: Boolean array of the same shape, or ``None`` for every voxel.
        voxel_cc: Volume of one voxel, cc.
        bin_width_gy: Spacing of the dose edges, Gy.
        max_dose_gy: Last edge is the first multiple of ``bin_width_gy`` >= this value. Default: one
            bin above the maximum dose in the mask, so the histogram ends at 0 cc. Voxels above a
            smaller ``max_dose_gy`` are still counted at every edge they exceed.

    Returns:
        :class:`DVH` with ``volume_cc[i]`` = volume receiving ``>= dose_edges_gy[i]``.

    Raises:
        GeometryError: mask and dose shapes differ.
        InputError: non-boolean mask, NaN / inf / negative dose, bad bin width.
    """
    voxel_cc = _check_voxel_cc(voxel_cc)
    bin_width_gy = float(bin_width_gy)
    if not (math.isfinite(bin_width_gy) and bin_width_gy > 0):
        raise InputError(f"bin width must be > 0 Gy, got {bin_width_gy}", field="bin_width_gy")
    values = _masked_values(dose_gy, mask)
    if max_dose_gy is None:
        top = float(values.max()) if values.size else 0.0
        n_bins = math.floor(top / bin_width_gy) + 1
    else:
        if not (math.isfinite(max_dose_gy) and max_dose_gy > 0):
            raise InputError(f"max_dose_gy must be > 0, got {max_dose_gy}", field="max_dose_gy")
        n_bins = max(1, math.ceil(max_dose_gy / bin_width_gy - _RANK_EPS))
    edges = _edges(n_bins, bin_width_gy)
    v = values.astype(np.float64, copy=False)
    # Bin index = number of edges <= dose, minus one; clipped so doses beyond the last edge land in an
    # overflow slot n_bins. The floor is corrected by one step either way to make it exact against
    # the edge array despite rounding in the division.
    idx = np.clip(np.floor(v / bin_width_gy).astype(np.int64), 0, n_bins)
    idx += (idx < n_bins) & (v >= edges[np.minimum(idx + 1, n_bins)])
    idx -= (idx > 0) & (v < edges[idx])
    counts = np.bincount(idx, minlength=n_bins + 1)
    cum = np.cumsum(counts[::-1])[::-1]
    return DVH(dose_edges_gy=edges, volume_cc=cum.astype(np.float64) * voxel_cc)


def dose_histogram(dose_gy, mask, bin_edges_gy) -> np.ndarray:
    """Fraction of the masked volume whose dose falls in each bin.

    Bins are ``[e_i, e_{i+1})``, the last one closed; doses below the first edge are counted in the
    first bin and doses above the last edge in the last bin, so the fractions always sum to 1 and can
    be used directly as sampling weights (e.g. per-organ dose rates in the blood-dose engine).

    Args:
        dose_gy: Dose array (numpy or anything ``np.asarray`` accepts, e.g. a CPU torch tensor), Gy.
        mask: Boolean array of the same shape, or ``None`` for every voxel.
        bin_edges_gy: Strictly increasing edges, shape ``(n_bins + 1,)``, Gy, ``n_bins >= 1``.

    Returns:
        float64 array of shape ``(n_bins,)`` summing to 1.

    Raises:
        InputError: bad edges, empty mask, NaN / negative dose. GeometryError: shape mismatch.
    """
    edges = np.asarray(bin_edges_gy, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) \
            or np.any(np.diff(edges) <= 0):
        raise InputError("bin edges must be a 1-D, finite, strictly increasing array of >= 2 "
                         "values", field="bin_edges_gy")
    mask_arr = None if mask is None else np.asarray(mask)
    values = _masked_values(np.asarray(dose_gy), mask_arr)
    if values.size == 0:
        raise InputError("mask is empty: no dose histogram", field="mask")
    idx = np.searchsorted(edges, values, side="right") - 1
    idx = np.clip(idx, 0, edges.size - 2)
    counts = np.bincount(idx, minlength=edges.size - 1)
    return counts / values.size


def _fmt(x: float) -> str:
    """Number for a column name: 95 -> '95', 2.0 -> '2', 99.5 -> '99p5'."""
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x).replace(".", "p")


def stat_names(
    d_percent: Iterable[float] = (95, 98, 50, 2),
    d_cc: Iterable[float] = (2.0,),
    v_gy: Iterable[float] = (5, 10, 20, 30),
) -> list[str]:
    """Keys of :func:`dvh_stats` (and columns of :func:`dvh_table` after ``structure``), in order."""
    return (
        ["n_voxels", "volume_cc", "mean_gy", "min_gy", "max_gy"]
        + [f"d{_fmt(x)}_gy" for x in d_percent]
        + [f"d{_fmt(x)}cc_gy" for x in d_cc]
        + [f"v{_fmt(x)}gy_cc" for x in v_gy]
        + [f"v{_fmt(x)}gy_pct" for x in v_gy]
        + ["integral_dose_gy_l"]
    )


def _stats_from_values(values: np.ndarray, voxel_cc: float, d_percent, d_cc, v_gy) -> dict:
    """Statistics of already-validated voxel doses (1-D)."""
    keys = stat_names(d_percent, d_cc, v_gy)
    n = int(values.size)
    if n == 0:
        out = dict.fromkeys(keys, float("nan"))
        out.update(n_voxels=0, volume_cc=0.0)
        return out
    desc = np.sort(values)[::-1]  # hottest first
    total = float(np.sum(values, dtype=np.float64))
    out: dict = {
        "n_voxels": n,
        "volume_cc": n * voxel_cc,
        "mean_gy": total / n,
        "min_gy": float(desc[-1]),
        "max_gy": float(desc[0]),
    }
    for x in d_percent:
        k = min(max(math.ceil(float(x) * n / 100.0 - _RANK_EPS), 1), n)
        out[f"d{_fmt(x)}_gy"] = float(desc[k - 1])
    for x in d_cc:
        k = max(math.ceil(float(x) / voxel_cc - _RANK_EPS), 1)
        out[f"d{_fmt(x)}cc_gy"] = float(desc[k - 1]) if k <= n else 0.0  # dicompyler-core rule
    asc = desc[::-1]
    thresholds = np.asarray([float(x) for x in v_gy], dtype=asc.dtype if asc.dtype.kind == "f"
                            else np.float64)
    n_above = n - np.searchsorted(asc, thresholds, side="left")  # voxels with dose >= x
    for x, m in zip(v_gy, n_above):
        out[f"v{_fmt(x)}gy_cc"] = float(m) * voxel_cc
        out[f"v{_fmt(x)}gy_pct"] = 100.0 * float(m) / n
    out["integral_dose_gy_l"] = total * voxel_cc / 1000.0
    return {k: out[k] for k in keys}


def dvh_stats(
    dose_gy: np.ndarray,
    mask: np.ndarray | None,
    voxel_cc: float,
    *,
    d_percent: Iterable[float] = (95, 98, 50, 2),
    d_cc: Iterable[float] = (2.0,),
    v_gy: Iterable[float] = (5, 10, 20, 30),
) -> dict:
    """DVH statistics of one structure (definitions in the module docstring).

    Args:
        dose_gy: Dose array, any shape, Gy (finite, >= 0).
        mask: Boolean array of the same shape, or ``None`` for every voxel.
        voxel_cc: Volume of one voxel, cc.
        d_percent: x values (percent of volume) for ``d{x}_gy``.
        d_cc: x values (cc) for ``d{x}cc_gy``.
        v_gy: x values (Gy) for ``v{x}gy_cc`` and ``v{x}gy_pct``.

    Returns:
        Dict with the keys of :func:`stat_names`: ``n_voxels`` (int), ``volume_cc``, ``mean_gy``,
        ``min_gy``, ``max_gy``, ``d{x}_gy``, ``d{x}cc_gy``, ``v{x}gy_cc``, ``v{x}gy_pct``,
        ``integral_dose_gy_l``. An empty mask gives 0 voxels, 0 cc and NaN everywhere else.
        Non-integer x are written with ``p`` for the point (``d99p5_gy``).

    Raises:
        GeometryError: mask and dose shapes differ.
        InputError: non-boolean mask, NaN / inf / negative dose, bad voxel volume.
    """
    voxel_cc = _check_voxel_cc(voxel_cc)
    values = _masked_values(dose_gy, mask)
    return _stats_from_values(values, voxel_cc, tuple(d_percent), tuple(d_cc), tuple(v_gy))


def require_structures_on_dose_grid(dose: Volume, structures: StructureSet,
                                    patient: str | None = None) -> None:
    """Raise :class:`GeometryError` naming the structure file unless the masks share the dose grid."""
    if not dose.same_grid(structures.grid):
        dose.require_same_grid(structures.grid, what="structure set", patient=patient,
                               file=structures.source, field="grid")


def _dose_source(dose: Volume) -> str | None:
    src = dose.metadata.get("source") if isinstance(dose.metadata, dict) else None
    return None if src is None else str(src)


def dvh_table(dose: Volume, structures: StructureSet, *, patient: str | None = None,
              **kw) -> pd.DataFrame:
    """DVH statistics of every structure, one row each.

    Args:
        dose: Dose volume, Gy.
        structures: Masks on the same grid as ``dose`` (shape, spacing, origin, direction).
        patient: Patient id for error messages.
        **kw: ``d_percent``, ``d_cc``, ``v_gy`` as in :func:`dvh_stats`.

    Returns:
        DataFrame with columns ``structure``, then :func:`stat_names`, then ``empty`` (bool). Structures
        listed in ``structures.empty`` or whose mask has no voxel are rows with ``n_voxels`` 0,
        ``volume_cc`` 0, NaN statistics and ``empty`` True.

    Raises:
        GeometryError: the structure set is on another grid (names its file).
        InputError: NaN / inf / negative dose (checked once over the whole grid), non-boolean mask.
    """
    import pandas as pd

    unknown = set(kw) - {"d_percent", "d_cc", "v_gy"}
    if unknown:
        raise TypeError(f"unexpected keyword(s) {sorted(unknown)}")
    d_percent = tuple(kw.get("d_percent", (95, 98, 50, 2)))
    d_cc = tuple(kw.get("d_cc", (2.0,)))
    v_gy = tuple(kw.get("v_gy", (5, 10, 20, 30)))
    require_structures_on_dose_grid(dose, structures, patient)
    arr = dose.array
    _check_values(arr, field="dose", patient=patient, file=_dose_source(dose))
    voxel_cc = dose.voxel_volume_cc
    rows = []
    for name, mask in structures.masks.items():
        mask = _check_mask(mask, arr.shape, name=name, patient=patient, file=structures.source)
        stats = _stats_from_values(arr[mask], voxel_cc, d_percent, d_cc, v_gy)
        rows.append({"structure": name, **stats, "empty": stats["n_voxels"] == 0})
    for name in structures.empty:
        if name not in structures.masks:
            stats = _stats_from_values(arr[:0, 0, 0], voxel_cc, d_percent, d_cc, v_gy)
            rows.append({"structure": name, **stats, "empty": True})
    columns = ["structure", *stat_names(d_percent, d_cc, v_gy), "empty"]
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({"n_voxels": "int64", "empty": "bool"})


def mean_body_dose_gy(dose: Volume, structures: StructureSet | None, body_name: str = "body", *,
                      allow_no_body: bool = False, patient: str | None = None) -> float:
    """Mean dose (Gy) over the body contour.

    Args:
        dose: Dose volume, Gy.
        structures: Masks on the dose grid; may be ``None`` only with ``allow_no_body``.
        body_name: Name of the body structure in ``structures`` (canonical ``"body"``).
        allow_no_body: When the body structure is missing or empty, use the **whole dose grid**
            instead of raising. The grid usually extends beyond the patient (air at 0 Gy lowers the
            mean) or covers only part of the body (raises it): use only when that is acceptable.
        patient: Patient id for error messages.

    Returns:
        Mean dose in Gy.

    Raises:
        InputError: no (or an empty) body structure and ``allow_no_body`` is False; bad dose values.
        GeometryError: structures on another grid.
    """
    context = {"patient": patient, "file": None if structures is None else structures.source}
    mask = None
    if structures is not None:
        require_structures_on_dose_grid(dose, structures, patient)
        if body_name in structures.masks:
            mask = _check_mask(structures.masks[body_name], dose.shape, name=body_name, **context)
            if not mask.any():
                mask = None
    if mask is None and not allow_no_body:
        raise InputError(f"no (or an empty) body structure {body_name!r}: mean body dose needs the "
                         "external contour (pass allow_no_body=True to average over the whole dose "
                         "grid instead)", field=body_name, **context)
    values = _masked_values(dose.array, mask, patient=patient, file=_dose_source(dose))
    return float(np.mean(values, dtype=np.float64))
