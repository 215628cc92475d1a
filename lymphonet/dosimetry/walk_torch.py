"""The blood-dose walk on an array device (CUDA), vectorised over particles with torch.

The same model and tables as the CPU kernel (:mod:`lymphonet.dosimetry.walk_cpu`); the random
numbers come from a ``torch.Generator``, so doses agree with the CPU walk in distribution, not
particle by particle. The loop runs over *segments* (a stay, or the part of a stay between two
voxel redraws), vectorised over the particles still inside the beam span; finished particles are
compacted away, so memory is O(particles).
"""

from __future__ import annotations

import math

import torch

from lymphonet.dosimetry.walk_tables import WalkTables


class _DeviceTables:
    """Device tensors of :class:`WalkTables`."""

    def __init__(self, tab: WalkTables, device: torch.device) -> None:
        def f32(a):
            return torch.as_tensor(a, dtype=torch.float32, device=device)

        def i64(a):
            return torch.as_tensor(a, dtype=torch.int64, device=device)

        self.tab, self.device = tab, device
        self.scale = f32(tab.scale_s)
        self.vol_q, self.vol_alias = f32(tab.vol_q), i64(tab.vol_alias)
        self.split_q, self.split_alias = f32(tab.split_q), i64(tab.split_alias)
        self.dose_q, self.dose_alias = f32(tab.dose_q), i64(tab.dose_alias)
        self.rate, self.mean_rate = f32(tab.rate), f32(tab.mean_rate)
        self.w_start, self.w_end, self.w_group = f32(tab.w_start), f32(tab.w_end), \
            i64(tab.w_group)

    def alias(self, q, alias, width, row, u):
        x = u * width
        k = x.long().clamp_(max=width - 1)
        flat = row * width + k
        return torch.where(x.sub_(k) < q.index_select(0, flat), flat,
                           alias.index_select(0, flat))

    def stay(self, comp, u):
        e = torch.log1p(-u).neg_()
        k = self.tab.shape
        e = e.sqrt_() if k == 2.0 else (e if k == 1.0 else e.pow_(1 / k))
        return e.mul_(self.scale.index_select(0, comp))

    def exposure(self, rates, row, s, e):
        """Sum over windows of ``rates[row, group] x overlap([s, e), window)``, Gy ``[n]``."""
        over = (torch.minimum(e[:, None], self.w_end) - torch.maximum(s[:, None], self.w_start))
        per_group = rates.index_select(0, row).index_select(1, self.w_group)
        return (over.clamp_(min=0) * per_group).sum(1)


def _fraction(dt: _DeviceTables, n: int, tau_c: float, gen: torch.Generator):
    """One fraction of ``n`` particles: dose [n] float32 (Gy), dose per compartment [N]."""
    tab, dev = dt.tab, dt.device
    out = torch.zeros(n, dtype=torch.float32, device=dev)
    contrib = torch.zeros(tab.n, dtype=torch.float64, device=dev)
    if tab.beam_on_s <= 0 or n == 0:
        return out, contrib
    u = torch.rand(3, n, generator=gen, device=dev)
    zero = torch.zeros(n, dtype=torch.int64, device=dev)
    comp = dt.alias(dt.vol_q, dt.vol_alias, tab.vol_q.size, zero, u[0])
    shape = tab.shape
    g = torch._standard_gamma(torch.full((n,), 1.0 + 1.0 / shape, device=dev), generator=gen)
    t0 = torch.full((n,), tab.t_begin, dtype=torch.float32, device=dev)
    t1 = t0 + g.pow_(1.0 / shape).mul_(dt.scale.index_select(0, comp)).mul_(u[1])
    mean_field = tau_c == 0.0
    rates = dt.mean_rate if mean_field else dt.rate
    row = comp if mean_field else dt.alias(dt.dose_q, dt.dose_alias, tab.dose_k, comp, u[2])
    ids = torch.arange(n, device=dev)
    dose = torch.zeros(n, dtype=torch.float32, device=dev)
    while True:
        u = torch.rand(4, ids.numel(), generator=gen, device=dev)
        seg_end = t1
        if math.isfinite(tau_c) and not mean_field:
            seg_end = torch.minimum(t1, t0 - tau_c * torch.log1p(-u[0]))
        d = dt.exposure(rates, row, t0, seg_end.clamp(max=tab.t_end))
        dose += d
        contrib.index_add_(0, comp, d.double())
        active = seg_end < tab.t_end
        if not bool(active.any()):
            out[ids] = dose
            return out, contrib
        if int(active.sum()) < 0.75 * ids.numel():  # compact
            out[ids[~active]] = dose[~active]
            ids, comp, t1, seg_end, dose, row, u = (ids[active], comp[active], t1[active],
                                                    seg_end[active], dose[active], row[active],
                                                    u[:, active])
        moved = seg_end >= t1
        nxt = dt.alias(dt.split_q, dt.split_alias, tab.split_k, comp, u[1]) % tab.split_k
        comp = torch.where(moved, nxt, comp)
        t1 = torch.where(moved, t1 + dt.stay(comp, u[2]), t1)
        row = comp if mean_field else dt.alias(dt.dose_q, dt.dose_alias, tab.dose_k, comp, u[3])
        t0 = seg_end


def walk(tab: WalkTables, particles: int, *, seed: int, n_fractions: int, tau_c: float,
         device: torch.device, chunk: int = 1 << 20):
    """Per-fraction dose [P], course dose [P] or None (float32 numpy) and contributions [N]."""
    gen = torch.Generator(device=device).manual_seed(int(seed))
    dt = _DeviceTables(tab, device)
    fx = torch.empty(particles, dtype=torch.float32, device=device)
    contrib = torch.zeros(tab.n, dtype=torch.float64, device=device)
    for lo in range(0, particles, chunk):
        d, c = _fraction(dt, min(chunk, particles - lo), tau_c, gen)
        fx[lo:lo + d.numel()] = d
        contrib += c
    course = None
    if n_fractions > 1:
        course = fx.clone()
        todo = particles * (n_fractions - 1)
        for lo in range(0, todo, chunk):
            d, _ = _fraction(dt, min(chunk, todo - lo), tau_c, gen)
            course.index_add_(0, torch.arange(lo, lo + d.numel(), device=device) % particles, d)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (fx.cpu().numpy(), None if course is None else course.cpu().numpy(),
            (contrib / max(particles, 1)).cpu().numpy())
