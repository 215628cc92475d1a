"""REFERENCE ONLY: the blood walk in fixed time steps with a voxel drawn every step (HEDOS's rule).

Written independently of the engine to verify and benchmark it: plain numpy, its own sampling
(inverse-CDF searches instead of alias tables, Weibull stays from ``Generator.weibull``), and its
own way to reach equilibrium (a burn-in of many circulation times from fresh stays, instead of the
engine's length-biased start). Every time step of length ``dt_s`` every particle draws a fresh
voxel from its compartment's histogram and gains that voxel's rate times the beam-on time within
the step; a particle whose stay has run out moves at the end of the step (stays end on the step
grid). It shares only its inputs (circulation and histograms) with the engine. Slow by design.
"""

from __future__ import annotations

import math

import numpy as np

from lymphonet.dosimetry.circulation import Circulation
from lymphonet.dosimetry.organ_dose import OrganDoseHistograms


def _categorical(cum: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Index drawn from each particle's row of cumulative probabilities ``cum`` ``[R, K]``."""
    u = rng.random(rows.size)[:, None]
    return np.minimum((u >= cum[rows]).sum(axis=1), cum.shape[1] - 1)


def per_step_walk(histograms: OrganDoseHistograms, circulation: Circulation,
                  windows: list[tuple[float, float]], *, particles: int = 10_000,
                  dt_s: float = 0.05, weibull_shape: float = 2.0, burn_in_s: float = 600.0,
                  tau_c_s: float = 0.0, seed: int = 0) -> np.ndarray:
    """Per-fraction dose of each particle (Gy, ``[particles]``), HEDOS-style per-step draws.

    Args:
        histograms: Per-fraction histograms (with per-beam doses when ``G > 1``).
        circulation: The compartment model.
        windows: ``[(start_s, duration_s), ...]``; with ``G > 1`` beams window ``g`` is beam ``g``.
        particles: Particles.
        dt_s: Time step, s (HEDOS: 0.05 s).
        weibull_shape: Stay shape ``k``.
        burn_in_s: Walking time before the first window, from a start by volume with fresh stays.
        tau_c_s: 0 (HEDOS: a fresh voxel every step), or a correlation time: each step a particle
            keeps its voxel with probability ``exp(-dt / tau_c)`` (a fresh voxel on entering a
            compartment), the per-step form of the engine's Poisson redraws.
        seed: numpy seed.
    """
    rng = np.random.default_rng(seed)
    k = float(weibull_shape)
    scale = circulation.mtt_s / math.gamma(1.0 + 1.0 / k)
    cum_split = np.cumsum(circulation.split, axis=1)
    beams = histograms.per_beam_gy()
    groups = beams[0].shape[1]
    on_s = np.zeros(groups)
    starts = np.array([s for s, _ in windows], float)
    ends = np.array([s + d for s, d in windows], float)
    group_of = np.arange(len(windows)) if groups > 1 else np.zeros(len(windows), int)
    for g, (_, d) in zip(group_of, windows):
        on_s[g] += d
    width = max(p.size for p in histograms.prob)
    cum_dose = np.ones((circulation.n, width))
    rate = np.zeros((circulation.n, width, groups))
    for c, (p, b) in enumerate(zip(histograms.prob, beams)):
        cum_dose[c, :p.size] = np.cumsum(p) / p.sum()
        rate[c, :p.size] = b / np.where(on_s > 0, on_s, 1.0)
    t = starts.min() - burn_in_s
    comp = np.minimum(np.searchsorted(np.cumsum(circulation.volume_fraction),
                                      rng.random(particles), side="right"), circulation.n - 1)
    stay_end = t + scale[comp] * rng.weibull(k, particles)
    t = starts.min()
    while True:  # burn-in, event by event, until every stay reaches the first window
        moving = stay_end < t
        if not moving.any():
            break
        comp[moving] = _categorical(cum_split, comp[moving], rng)
        stay_end[moving] += scale[comp[moving]] * rng.weibull(k, int(moving.sum()))
    dose = np.zeros(particles)
    voxel = _categorical(cum_dose, comp, rng)
    keep = math.exp(-dt_s / tau_c_s) if tau_c_s > 0 else 0.0
    n_steps = int(np.ceil((ends.max() - t) / dt_s))
    for step in range(n_steps):
        a, b = t + step * dt_s, t + (step + 1) * dt_s
        on = np.clip(np.minimum(b, ends) - np.maximum(a, starts), 0.0, None)
        if on.any():
            fresh = rng.random(particles) >= keep
            voxel[fresh] = _categorical(cum_dose, comp[fresh], rng)
            for w in np.flatnonzero(on):
                dose += rate[comp, voxel, group_of[w]] * on[w]
        moved = stay_end <= b
        if moved.any():
            comp[moved] = _categorical(cum_split, comp[moved], rng)
            stay_end[moved] = b + scale[comp[moved]] * rng.weibull(k, int(moved.sum()))
            voxel[moved] = _categorical(cum_dose, comp[moved], rng)
    return dose.astype(np.float32)

