"""The CPU blood-dose walk: one compiled loop per particle, counter-based random numbers, threads.

Each particle walks its own stays (the model is in :mod:`lymphonet.dosimetry.blood_dose`). Its
random numbers come from a SplitMix64 stream keyed by ``(seed, fraction, particle index)``, so a
particle's dose does not depend on how particles are split into chunks or on the number of
threads. Chunks of particles are handed to a small thread pool as they free up (the compiled loop
releases the GIL): a thread on a busy core simply takes fewer chunks, so a busy second core cannot
make the run slower than one thread alone. Compiled with numba (cached on disk after the first use).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from lymphonet.dosimetry.walk_tables import WalkTables

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)
_LOW24 = np.uint64(0xFFFFFF)
_U24 = 1.0 / 16777216.0  # 2^-24
_U32 = 1.0 / 4294967296.0  # 2^-32
#: Knots of the tabulated inverse CDFs (Exp(1) and the unit Weibull); the last bin is exact.
TABLE_SIZE = 1024
#: fastmath without the no-NaN / no-inf assumptions (infinite values stay well defined).
_JIT = {"cache": True, "fastmath": {"nsz", "arcp", "contract", "afn", "reassoc"},
        "error_model": "numpy"}


def quantile_tables(shape: float) -> tuple[np.ndarray, np.ndarray]:
    """``Exp(1)`` and unit-Weibull(``shape``) quantiles at ``j / TABLE_SIZE``, ``[TABLE_SIZE + 1]``.

    Linear interpolation between knots replaces a logarithm per draw (measured over all 2^24
    uniforms: mean bias 1e-5 of a Weibull stay's mean and 8e-5 of an exponential's, largest single
    error 0.01 and 0.06 of a mean); the top bin, where the quantile function is steep, is computed
    exactly.
    """
    u = np.arange(TABLE_SIZE + 1, dtype=np.float64) / TABLE_SIZE
    u[-1] = 1.0 - _U24 / 2  # the top knot is never interpolated to; keep it finite
    e = -np.log1p(-u)
    return e, e ** (1.0 / shape)


@numba.njit(**_JIT)
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@numba.njit(**_JIT)
def _two_uniforms(s):
    """Advance a SplitMix64 stream: ``(state, u1, u2)``: a 32-bit uniform (alias draws, whose
    keep probabilities need the resolution) and an independent 24-bit one, both in [0, 1)."""
    s = s + _GOLDEN
    z = _mix(s)
    return s, float(z >> _S32) * _U32, float(z & _LOW24) * _U24


@numba.njit(**_JIT)
def _exact_quantile(u, shape):
    """``Exp(1)^(1/shape)`` quantile at ``u`` (used in the steep top bin of the tables)."""
    return (-math.log1p(-min(u, 1.0 - _U24 / 2))) ** (1.0 / shape)


@numba.njit(**_JIT)
def _gamma(a, s):
    """``(state, Gamma(a, 1))`` for a >= 1 (Marsaglia and Tsang, ACM TOMS 26:363, 2000)."""
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        s, u1, u2 = _two_uniforms(s)
        x = math.sqrt(-2.0 * math.log1p(-u1)) * math.cos(2.0 * math.pi * u2)
        v = (1.0 + c * x) ** 3
        s, u3, _ = _two_uniforms(s)
        if v > 0.0 and math.log1p(-u3) < 0.5 * x * x + d - d * v + d * math.log(v):
            return s, d * v


# The hot loop below is one function on purpose: numba passes arrays to another compiled function
# with reference counting (measured ~12 ns a call), which would double the cost of a stay.
@numba.njit(**_JIT, nogil=True)
def walk_chunk(lo, hi, seed, n_fractions, tau_c, shape, scale_s, vol_q, vol_alias, split,
               split_k, dose, dose_k, dosed, w_start, w_end, w_group, t_begin, t_end, exp_table,
               stay_table, out_fraction, out_course, contrib):
    """Walk particles ``lo..hi-1`` for ``n_fractions`` independent fractions.

    ``tau_c`` is the correlation time (s): 0 for the histogram mean, negative for one voxel per
    stay (infinity; the kernel sees finite values only). Alias slots are fused so that one draw reads one cache line: ``split`` ``[N*N, 2]`` holds
    (keep probability, alias compartment); ``dose`` ``[N*K + N, 1 + 2G]`` holds (keep probability,
    the slot's rates per beam group, its alias's rates), then one row per compartment with the
    mean rates (the ``tau_c = 0`` limit). Writes the first fraction's dose to ``out_fraction[i]``,
    the sum over fractions to ``out_course[i]`` (when ``n_fractions > 1``) and adds
    first-fraction stay doses per compartment to ``contrib`` ``[N]``.
    """
    # tau_c: 0 = histogram mean, > 0 = Poisson redraws, < 0 = one voxel per stay (infinity)
    redraw = tau_c > 0.0
    mean_rows = scale_s.size * dose_k
    groups = (dose.shape[1] - 1) // 2
    top = TABLE_SIZE - 1
    n_windows = w_start.size
    for i in range(lo, hi):
        course = 0.0
        for f in range(n_fractions):
            s = _mix(np.uint64(seed) * _M1 ^ np.uint64(f) * _M2 ^ np.uint64(i) * _GOLDEN)
            s, u1, u2 = _two_uniforms(s)
            x = u1 * vol_q.size
            k = min(int(x), vol_q.size - 1)
            comp = k if x - k < vol_q[k] else vol_alias[k]
            # equilibrium start: the current stay is length biased, (T/lambda)^k ~
            # Gamma(1 + 1/k, 1), and the particle sits at a uniform point of it
            s, g = _gamma(1.0 + 1.0 / shape, s)
            t0 = t_begin
            t1 = t0 + scale_s[comp] * g ** (1.0 / shape) * u2
            total = 0.0
            while True:
                e = min(t_end, t1)
                on = 0.0
                if dosed[comp]:
                    for w in range(n_windows):
                        on += max(0.0, min(e, w_end[w]) - max(t0, w_start[w]))
                if on > 0.0:  # segments [a, b) between voxel redraws
                    d, a = 0.0, t0
                    # fast path: the stay lies inside one window (most stays of a long beam)
                    inside = n_windows == 1 and w_start[0] <= t0 and e <= w_end[0]
                    g0 = w_group[0]
                    while True:
                        s, u1, u2 = _two_uniforms(s)
                        if tau_c == 0.0:  # infinitely many redraws: the histogram-mean rate
                            row, col = mean_rows + comp, 1
                        else:
                            x = u1 * dose_k
                            k = min(int(x), dose_k - 1)
                            row = comp * dose_k + k
                            col = 1 if x - k < dose[row, 0] else 1 + groups
                        b = e
                        if redraw:
                            y = u2 * TABLE_SIZE
                            j = int(y)
                            q = (exp_table[j] + (y - j) * (exp_table[j + 1] - exp_table[j])
                                 if j < top else _exact_quantile(u2, 1.0))
                            b = min(e, a + tau_c * q)
                        if inside:
                            d += dose[row, col + g0] * (b - a)
                        else:
                            for w in range(n_windows):
                                d += dose[row, col + w_group[w]] * max(0.0, min(b, w_end[w])
                                                                       - max(a, w_start[w]))
                        if b >= e:
                            break
                        a = b
                    total += d
                    if f == 0:
                        contrib[comp] += d
                if t1 >= t_end:
                    break
                s, u1, u2 = _two_uniforms(s)
                x = u1 * split_k
                k = min(int(x), split_k - 1)
                flat = comp * split_k + k
                comp = k if x - k < split[flat, 0] else int(split[flat, 1])
                y = u2 * TABLE_SIZE
                j = int(y)
                q = (stay_table[j] + (y - j) * (stay_table[j + 1] - stay_table[j]) if j < top
                     else _exact_quantile(u2, shape))
                t0, t1 = t1, t1 + scale_s[comp] * q
            if f == 0:
                out_fraction[i] = total
            course += total
        if n_fractions > 1:
            out_course[i] = course


def default_threads() -> int:
    """Threads for the walk: the cores this process may use (chunks balance a busy core)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def warm(tab: WalkTables) -> None:
    """Load (or compile, the first time) the kernel, so that timings exclude it."""
    walk(tab, 1, seed=0, n_fractions=1, tau_c=1.0, threads=1)


def walk(tab: WalkTables, particles: int, *, seed: int, n_fractions: int, tau_c: float,
         threads: int | None = None, chunk: int = 16_384):
    """Per-fraction dose [P] float32, course dose [P] or None, mean contribution [N] (Gy).

    Args:
        tab: Engine tables.
        particles: ``P``.
        seed: Stream key; equal seeds give equal doses whatever ``threads`` and ``chunk``.
        n_fractions: Independent fractions to sum into the course dose (1: no course).
        tau_c: Voxel-redraw correlation time, s (0, positive, or ``inf``).
        threads: Worker threads (default :func:`default_threads`).
        chunk: Particles per task.
    """
    fx = np.zeros(particles, np.float32)
    course = np.zeros(particles if n_fractions > 1 else 1, np.float32)
    bounds = list(range(0, particles, chunk)) + [particles]
    contrib = np.zeros((len(bounds) - 1, tab.n))
    exp_table, stay_table = quantile_tables(tab.shape)
    split = np.stack([tab.split_q, tab.split_alias % tab.split_k], axis=1)
    groups = tab.rate.shape[1]
    mean_rows = np.hstack([np.ones((tab.n, 1)), tab.mean_rate, tab.mean_rate])
    dose = np.vstack([np.hstack([tab.dose_q[:, None], tab.rate, tab.rate[tab.dose_alias]]),
                      mean_rows])
    assert dose.shape[1] == 1 + 2 * groups
    tau = -1.0 if math.isinf(tau_c) else float(tau_c)  # the kernel sees finite values only
    args = (int(seed) & 0x7FFFFFFFFFFFFFFF, int(n_fractions), tau, tab.shape,
            tab.scale_s, tab.vol_q, tab.vol_alias, split, tab.split_k, dose, tab.dose_k,
            tab.dosed,
            tab.w_start, tab.w_end, tab.w_group, tab.t_begin, tab.t_end, exp_table,
            stay_table, fx, course)

    def task(j: int) -> None:
        walk_chunk(bounds[j], bounds[j + 1], *args, contrib[j])

    n_threads = min(threads or default_threads(), len(bounds) - 1)
    if n_threads <= 1:
        for j in range(len(bounds) - 1):
            task(j)
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(task, range(len(bounds) - 1)))
    return fx, (course if n_fractions > 1 else None), contrib.sum(0) / max(particles, 1)
