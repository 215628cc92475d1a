"""Engine inputs as flat arrays: alias tables, stay scales, dose rates per beam group, windows.

Shared by the CPU kernel (:mod:`lymphonet.dosimetry.walk_cpu`) and the array-device engine
(:mod:`lymphonet.dosimetry.walk_torch`), so both walk exactly the same model. Pure numpy.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from lymphonet.dosimetry.circulation import Circulation
from lymphonet.dosimetry.organ_dose import OrganDoseHistograms
from lymphonet.errors import InputError


def alias_tables(probs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """Walker/Vose alias tables of several categorical laws (rows), padded to a common width K.

    Returns:
        ``(q [N*K] float64, alias [N*K] int64, K)``: bin ``k`` of row ``c`` is kept with
        probability ``q[c*K + k]``, otherwise replaced by the flat index ``alias[c*K + k]``.
    """
    width = max(int(np.asarray(p).size) for p in probs)
    q = np.ones((len(probs), width))
    alias = np.tile(np.arange(width), (len(probs), 1)) + np.arange(len(probs))[:, None] * width
    for c, p in enumerate(probs):
        p = np.asarray(p, dtype=float)
        nonzero = np.flatnonzero(p)
        if nonzero.size == 1:  # one value (e.g. an unirradiated compartment): always that bin
            q[c], alias[c] = 0.0, c * width + nonzero[0]
            q[c, nonzero[0]] = 1.0
            continue
        scaled = np.zeros(width)
        scaled[:p.size] = p / p.sum() * width
        small = [i for i in range(width) if scaled[i] < 1.0]
        large = [i for i in range(width) if scaled[i] >= 1.0]
        while small and large:
            s_, l_ = small.pop(), large.pop()
            q[c, s_], alias[c, s_] = scaled[s_], c * width + l_
            scaled[l_] -= 1.0 - scaled[s_]
            (small if scaled[l_] < 1.0 else large).append(l_)
        for i in small + large:  # numerical leftovers: keep with certainty
            q[c, i] = 1.0
    return q.ravel(), alias.ravel().astype(np.int64), width


def beam_windows(beam_on_time_s: float | None = None,
                 beams=None) -> tuple[tuple[float, float], ...]:
    """Validated beam windows ``((start_s, duration_s), ...)`` of one fraction, in time order.

    Either ``beams`` (explicit windows, e.g. two arcs) or one window ``(0, beam_on_time_s)``.

    Raises:
        InputError: Negative or non-finite start, a duration that is not > 0, overlapping
            windows, or neither argument.
    """
    if beams is None:
        if beam_on_time_s is None:
            raise InputError("give beam_on_time_s or beams", field="beam_on_time_s")
        beams = [(0.0, float(beam_on_time_s))]
    out = [(float(s), float(d)) for s, d in beams]
    for s, d in out:
        if not (math.isfinite(s) and math.isfinite(d)) or s < 0 or d <= 0:
            raise InputError(f"beam window (start {s} s, duration {d} s) needs a finite start "
                             ">= 0 and a duration > 0 (a 0 s window would deliver its dose in no "
                             "time, which this model does not represent)", field="beams")
    ordered = sorted(out)
    for (s0, d0), (s1, _) in itertools.pairwise(ordered):
        if s1 < s0 + d0:
            raise InputError(f"beam windows overlap: ({s0}, {d0}) and ({s1}, ...)", field="beams")
    return tuple(out)


@dataclass(frozen=True, eq=False)
class WalkTables:
    """Everything the walk needs, as flat numpy arrays (float64 unless noted).

    Attributes:
        n: Compartments ``N``.
        shape: Weibull shape ``k`` of the stays.
        scale_s: ``[N]`` Weibull scales ``lambda_i = MTT_i / Gamma(1 + 1/k)`` (s).
        vol_q, vol_alias: Alias table (one row) of the volume fractions (equilibrium start).
        split_q, split_alias, split_k: Alias tables of the split matrix rows.
        dose_q, dose_alias, dose_k: Alias tables of the compartments' dose histograms.
        rate: ``[N*K, G]`` dose rate of each bin during beam group ``g``'s windows (Gy/s).
        mean_rate: ``[N, G]`` histogram-mean dose rate (Gy/s), the ``tau_c = 0`` limit.
        dosed: ``[N]`` bool, compartment has any dose.
        w_start, w_end: ``[W]`` window starts / ends (s); ``w_group`` ``[W]`` int64 beam group.
        t_begin, t_end: First window start and last window end (s).
    """

    n: int
    shape: float
    scale_s: np.ndarray
    vol_q: np.ndarray
    vol_alias: np.ndarray
    split_q: np.ndarray
    split_alias: np.ndarray
    split_k: int
    dose_q: np.ndarray
    dose_alias: np.ndarray
    dose_k: int
    rate: np.ndarray
    mean_rate: np.ndarray
    dosed: np.ndarray
    w_start: np.ndarray
    w_end: np.ndarray
    w_group: np.ndarray
    t_begin: float
    t_end: float

    @property
    def beam_on_s(self) -> float:
        return float(np.sum(self.w_end - self.w_start))


def walk_tables(circ: Circulation, hist: OrganDoseHistograms,
                windows: tuple[tuple[float, float], ...], shape: float) -> WalkTables:
    """Build the engine tables; windows are per beam group when the histograms have groups.

    Raises:
        InputError: Histograms of other compartments, a bad shape, or a window count that does not
            match the beam groups (with ``G > 1`` groups, window ``g`` delivers group ``g``).
    """
    if tuple(hist.compartments) != tuple(circ.names):
        raise InputError("dose histograms and circulation list different compartments",
                         field="compartments")
    if not (math.isfinite(shape) and shape > 0):
        raise InputError(f"weibull_shape must be > 0, got {shape}", field="weibull_shape")
    groups = hist.n_beams
    if groups > 1 and len(windows) != groups:
        raise InputError(f"{groups} beam dose maps need {groups} windows (one each), got "
                         f"{len(windows)}", field="beams")
    w_group = np.arange(len(windows)) if groups > 1 else np.zeros(len(windows), np.int64)
    on_s = np.zeros(groups)
    for (_, d), g in zip(windows, w_group):
        on_s[g] += d
    vol_q, vol_alias, _ = alias_tables([circ.volume_fraction])
    split_q, split_alias, split_k = alias_tables(list(circ.split))
    dose_q, dose_alias, dose_k = alias_tables(list(hist.prob))
    rate = np.zeros((circ.n, dose_k, groups))
    for c, beam_gy in enumerate(hist.per_beam_gy()):
        rate[c, :beam_gy.shape[0]] = np.divide(beam_gy, on_s, out=np.zeros_like(beam_gy),
                                               where=on_s > 0)
    rate = rate.reshape(circ.n * dose_k, groups)
    mean_rate = np.stack([p @ r[:p.size] for p, r in
                          zip(hist.prob, rate.reshape(circ.n, dose_k, groups))])
    order = np.argsort([s for s, _ in windows], kind="stable")
    start = np.array([windows[i][0] for i in order], dtype=float)
    end = np.array([windows[i][0] + windows[i][1] for i in order], dtype=float)
    return WalkTables(
        circ.n, float(shape), circ.mtt_s / math.gamma(1.0 + 1.0 / shape), vol_q, vol_alias,
        split_q, split_alias, split_k, dose_q, dose_alias, dose_k, rate, mean_rate,
        np.array([float(np.max(d)) > 0 for d in hist.dose_gy]), start, end,
        w_group[order].astype(np.int64), float(start.min()) if start.size else 0.0,
        float(end.max()) if end.size else 0.0)
