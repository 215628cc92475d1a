"""The lymphocyte kinetics layer: one differentiable, batched ``nn.Module``.

Formulation (lymphonet's own; full derivation, units and priors in ``docs/kinetics.md``).
Two populations p in {fast, slow} (shares phi, 1 - phi of the pool), each split between blood
C_p and resident tissue R_p (both in 10^9/L blood-equivalent units: cells / blood volume)::

    dC_p/dt = -k_out C_p + k_in R_p                     - delta(t) C_p
    dR_p/dt = +k_out C_p - k_in R_p - r_p R_p + r_p (1 - f_b) N0_p u_p  - delta(t) R_p
    ALC(t)  = C_fast(t) + C_slow(t)

with k_out = 1 / blood_residence_days (blood -> tissue), k_in = k_out f_b / (1 - f_b) (so the
blood holds the share f_b = ``blood_share`` at equilibrium), r_p = 1 / recovery_days_p
(homeostatic turnover), N0_p = phi_p ALC0 / f_b the pre-treatment pool, u_p the relative set
point, and delta(t) = ``chemo_rate_per_day`` inside the chemotherapy window, else 0.

At each fraction k (instantaneous, multiplicative)::

    C_p <- C_p S_blood,k,   S_blood,k = mean_q exp(-alpha d_kq - G_k beta d_kq^2)
    R_p <- R_p S_res,k,     S_res,k   = 1 - sum_l w_l c_l (1 - mean_q exp(-alpha D_lq - ...))
    L_p <- L_p (C_p + R_p)_after / (C_p + R_p)_before,   u_p = 1 - h + h L_p

(d: blood-dose quantiles; D_l: lymphoid-organ dose quantiles; w_l: organ share of the resident
pool; c_l: coverage; h = ``baseline_loss``; G: Lea-Catcheside factor for the beam-on time).
Between events the system is linear with constant coefficients, so each step is integrated
exactly with a closed-form 2x2 matrix exponential: no step-size error, stable for any rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lymphonet.errors import InputError
from lymphonet.kinetics.params import KineticParams, theta_to_params
from lymphonet.kinetics.schedule import (
    CHEMO_CONCURRENT,
    CHEMO_SEQUENTIAL,
    SEQUENTIAL_DURATION_DAYS,
    SEQUENTIAL_GAP_DAYS,
    KineticsInputs,
    lea_catcheside_g,
)
from lymphonet.organs import LYMPHOID_ORGANS

#: Share of the body's lymphocytes resident in each lymphoid organ, after Westermann & Pabst
#: (Clin Investig 1992, Fig. 2, drawn from Trepel 1974): of ~4.6e11 lymphocytes, lymph nodes
#: ~1.9e11 (~40%), spleen ~0.7e11 (~15%), bone marrow ~0.5e11 (~10%), blood ~1e10 (~2%); the
#: adult thymus share is set to 5% (lymphonet assumption: involution after adolescence). The rest
#: (gut, lung, skin, liver ...) is resident but receives no organ dose in this model.
ORGAN_SHARE_OF_BODY: dict[str, float] = {
    "spleen": 0.15, "lymph_nodes": 0.40, "bone_marrow": 0.10, "thymus": 0.05,
}
_REFERENCE_BLOOD_SHARE = 0.02


@dataclass
class KineticsOutput:
    """Result of :class:`LymphocyteKinetics` for B patients on T days.

    Attributes:
        alc: ``[B, T]`` blood ALC (10^9/L) at each grid day, taken just before that day's
            fractions (a morning lab draw).
        days: ``[T]`` grid days.
        alc_fast, alc_slow: ``[B, T]`` contributions of the two populations (sum = alc).
        blood_survival: ``[B, K]`` circulating-cell survival of each fraction.
        resident_survival: ``[B, K]`` resident-pool survival of each fraction.
        final_baseline_alc: ``[B]`` lowered set point the ALC recovers toward (10^9/L).
    """

    alc: torch.Tensor
    days: torch.Tensor
    alc_fast: torch.Tensor
    alc_slow: torch.Tensor
    blood_survival: torch.Tensor
    resident_survival: torch.Tensor
    final_baseline_alc: torch.Tensor


def mean_survival(dose_q_gy: torch.Tensor, alpha_per_gy: torch.Tensor, beta_per_gy2: torch.Tensor,
                  g_factor: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Mean LQ survival over dose quantiles: mean_q exp(-alpha d_q - G beta d_q^2).

    Averaging survival over the distribution (not exp(-alpha * mean d)) matters: a small share of
    cells at high dose (FLASH, short beam-on) kills far fewer cells than the same mean dose spread.

    Args:
        dose_q_gy: ``[..., Q]`` dose quantiles (Gy).
        alpha_per_gy, beta_per_gy2, g_factor: broadcastable to ``[...]``.

    Returns:
        ``[...]`` mean surviving fraction.
    """
    a = alpha_per_gy[..., None] if torch.is_tensor(alpha_per_gy) else alpha_per_gy
    bg = beta_per_gy2 * g_factor
    bg = bg[..., None] if torch.is_tensor(bg) else bg
    return torch.exp(-a * dose_q_gy - bg * dose_q_gy**2).mean(-1)


def _expm2(a, b, c, d, t):
    """exp(t [[a, b], [c, d]]) entrywise for real-eigenvalue 2x2 blocks with b c > 0 (Sylvester)."""
    m = 0.5 * (a + d)
    disc = torch.sqrt(0.25 * (a - d) ** 2 + b * c)
    l1, l2 = m + disc, m - disc
    e1, e2 = torch.exp(l1 * t), torch.exp(l2 * t)
    k = 1.0 / (l1 - l2)
    return ((e1 * (a - l2) - e2 * (a - l1)) * k, (e1 - e2) * b * k, (e1 - e2) * c * k,
            (e1 * (d - l2) - e2 * (d - l1)) * k)


class LymphocyteKinetics(nn.Module):
    """Two-population, two-compartment lymphocyte model with per-fraction kills.

    Args:
        n_days: Length T of the daily output grid (days 0..T-1).
        steps_per_day: Exact-propagation sub-steps per day (1 suffices for once-daily fractions;
            use e.g. 4-24 for several fractions a day so blood refills between them). Fractions
            are applied at the start of the sub-step containing them.
        repair_half_time_h: Sublethal-damage repair half-time for the Lea-Catcheside factor
            (lymphonet assumption 1 h, the order of magnitude typical of mammalian cells).
        organ_share: Share of the body's lymphocytes in each lymphoid organ (see
            :data:`ORGAN_SHARE_OF_BODY`); order LYMPHOID_ORGANS.
    """

    def __init__(self, n_days: int = 365, steps_per_day: int = 1, repair_half_time_h: float = 1.0,
                 organ_share: dict[str, float] | None = None) -> None:
        super().__init__()
        if n_days < 2 or steps_per_day < 1:
            raise InputError("n_days must be >= 2 and steps_per_day >= 1", field="n_days")
        self.n_days = int(n_days)
        self.steps_per_day = int(steps_per_day)
        self.repair_half_time_h = float(repair_half_time_h)
        share = dict(ORGAN_SHARE_OF_BODY, **(organ_share or {}))
        w = torch.tensor([share[o] for o in LYMPHOID_ORGANS], dtype=torch.float64)
        self.register_buffer("organ_weight", w / (1.0 - _REFERENCE_BLOOD_SHARE), persistent=False)

    # ------------------------------------------------------------------ per-fraction survival
    def fraction_survival(self, inputs: KineticsInputs, p: KineticParams):
        """Per-fraction circulating and resident survival, each ``[B, K]``."""
        k = inputs.fraction_days.shape[1]
        g = 1.0
        if inputs.beam_on_s is not None:
            mu_per_s = math.log(2.0) / (self.repair_half_time_h * 3600.0)
            beam = inputs.beam_on_s
            same = torch.where(inputs.fraction_mask, beam == beam[:, :1], True).all()
            if bool(same):  # one beam-on time per patient: avoid [B, K, (L,) Q] work
                beam = beam[:, :1]
            g = lea_catcheside_g(beam * mu_per_s)  # [B, K] or [B, 1]
        alpha, beta = p.alpha_per_gy.reshape(-1, 1), p.beta_per_gy2.reshape(-1, 1)
        bq = inputs.blood_dose_q_gy
        if bq.dim() == 2:
            bq = bq[:, None, :]
        s_blood = mean_survival(bq, alpha, beta, g).expand(-1, k)
        if inputs.lymphoid_dose_q_gy is None:
            return s_blood, torch.ones_like(s_blood)
        gl = g[..., None] if torch.is_tensor(g) else g
        s_org = mean_survival(inputs.lymphoid_dose_q_gy[:, None], alpha[..., None], beta[..., None],
                              gl)  # [B, K or 1, L]
        cov = 1.0 if inputs.lymphoid_coverage is None else inputs.lymphoid_coverage[:, None, :]
        w = self.organ_weight.to(s_org.dtype)
        s_res = 1.0 - (w * cov * (1.0 - s_org)).sum(-1)
        return s_blood, s_res.expand(-1, k)

    def chemo_window(self, inputs: KineticsInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Chemotherapy window [start, end) in days, each ``[B]`` (inf/inf when none)."""
        days, mask = inputs.fraction_days, inputs.fraction_mask
        inf = torch.full_like(days[:, 0], math.inf)
        first = torch.where(mask, days, inf[:, None]).min(1).values
        last = torch.where(mask, days, -inf[:, None]).max(1).values
        start, end = inf.clone(), inf.clone()
        if inputs.chemo is not None:
            conc, seq = inputs.chemo == CHEMO_CONCURRENT, inputs.chemo == CHEMO_SEQUENTIAL
            start = torch.where(conc, first, torch.where(seq, last + 1 + SEQUENTIAL_GAP_DAYS, start))
            end = torch.where(conc, last + 1, torch.where(
                seq, last + 1 + SEQUENTIAL_GAP_DAYS + SEQUENTIAL_DURATION_DAYS, end))
        if inputs.chemo_start_day is not None:
            start = inputs.chemo_start_day.to(days.dtype)
        if inputs.chemo_end_day is not None:
            end = inputs.chemo_end_day.to(days.dtype)
        return start, end

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: KineticsInputs, params_or_theta, n_days: int | None = None
                ) -> KineticsOutput:
        """Simulate ALC on days 0..T-1.

        Args:
            inputs: Batch of B patients (:class:`KineticsInputs`).
            params_or_theta: :class:`KineticParams` (fields broadcastable to [B]) or unconstrained
                theta ``[B, n_params]`` / ``[n_params]`` (0 = population prior).
            n_days: Override of the module's T.

        Returns:
            :class:`KineticsOutput`.
        """
        p = params_or_theta if isinstance(params_or_theta, KineticParams) else \
            theta_to_params(params_or_theta)
        n_days = self.n_days if n_days is None else int(n_days)
        bsz = inputs.batch_size
        dtype = inputs.blood_dose_q_gy.dtype
        dev = inputs.blood_dose_q_gy.device
        spd = self.steps_per_day
        n_steps = (n_days - 1) * spd
        dt = 1.0 / spd

        def vec(x):  # parameter as [B, 1] (per-population broadcasting)
            x = torch.as_tensor(x, dtype=dtype, device=dev).reshape(-1)
            if x.numel() not in (1, bsz):
                raise InputError(f"kinetic parameters have batch {x.numel()}, inputs {bsz}",
                                 field="params_or_theta")
            return x.expand(bsz).reshape(bsz, 1)

        fb, res_d = vec(p.blood_share), vec(p.blood_residence_days)
        phi = torch.cat([vec(p.fast_fraction), 1 - vec(p.fast_fraction)], 1)  # [B, 2]
        rate = 1.0 / torch.cat([vec(p.fast_recovery_days), vec(p.slow_recovery_days)], 1)
        h, delta = vec(p.baseline_loss), vec(p.chemo_rate_per_day)
        alc0 = inputs.baseline_alc.to(dtype).reshape(bsz, 1)

        # exact one-step propagator E and affine term b (per unit set point), chemo off / on
        k_out = 1.0 / res_d
        k_in = k_out * fb / (1 - fb)
        a11, a12, a21, a22 = -k_out, k_in, k_out, -k_in - rate  # [B, 1|2]
        a11, a12, a21 = (x.expand(-1, 2) for x in (a11, a12, a21))
        e11, e12, e21, e22 = _expm2(a11, a12, a21, a22, dt)
        src = rate * (1 - fb) * phi * alc0 / fb  # resident production at u = 1, [B, 2]

        def affine(dl):  # b = (I - E_dl) x*, x* = -(A - dl I)^-1 [0, src]
            g = torch.exp(-dl * dt)
            b11, b22 = a11 - dl, a22 - dl
            det = b11 * b22 - a12 * a21
            xc, xr = a12 * src / det, -b11 * src / det  # -(A-dl)^-1 [0, src]
            return (xc - g * (e11 * xc + e12 * xr), xr - g * (e21 * xc + e22 * xr))

        bc_off, br_off = affine(torch.zeros_like(delta))
        bc_on, br_on = affine(delta)

        # events on the step grid
        s_blood, s_res = self.fraction_survival(inputs, p)
        step = torch.floor(inputs.fraction_days * spd + 1e-6).long()
        valid = inputs.fraction_mask & (step >= 0) & (step < n_steps)
        step = torch.where(valid, step, torch.zeros_like(step))
        zero = torch.zeros(bsz, max(n_steps, 1), dtype=dtype, device=dev)
        log_sb = zero.scatter_add(1, step, torch.where(valid, torch.log(s_blood), 0.0))
        log_sr = zero.scatter_add(1, step, torch.where(valid, torch.log(s_res), 0.0))
        event_steps = set(step[valid].unique().tolist())
        start, end = self.chemo_window(inputs)
        mid = (torch.arange(n_steps, dtype=dtype, device=dev) + 0.5) * dt
        on = ((mid >= start[:, None]) & (mid < end[:, None])).to(dtype)  # [B, n_steps]
        gain = torch.exp(-delta * dt * on)  # [B, n_steps]
        chemo_steps = set(on.any(0).nonzero().flatten().tolist())

        c = phi * alc0                      # blood, [B, 2]
        r = phi * alc0 * (1 - fb) / fb      # resident
        big_l = torch.ones_like(c)
        cols = lambda t: t.T.unsqueeze(-1).unbind(0)
        sb_i, sr_i = cols(torch.exp(log_sb)), cols(torch.exp(log_sr))
        gain_i, on_i = cols(gain), cols(on)
        dbc, dbr = bc_on - bc_off, br_on - br_off
        bcu, bru, dbcu, dbru = bc_off, br_off, dbc, dbr  # affine terms times set point u (u = 1)
        record = []
        for i in range(n_steps):
            if i % spd == 0:
                record.append(c)
            if i in event_steps:
                tot = c + r
                c, r = c * sb_i[i], r * sr_i[i]
                big_l = big_l * (c + r) / tot
                u = 1 - h + h * big_l
                bcu, bru, dbcu, dbru = bc_off * u, br_off * u, dbc * u, dbr * u
            if i in chemo_steps:  # x' = g E x + (b_off + on (b_on - b_off)) u
                tc, tr = torch.addcmul(e11 * c, e12, r), torch.addcmul(e21 * c, e22, r)
                c = torch.addcmul(torch.addcmul(bcu, on_i[i], dbcu), gain_i[i], tc)
                r = torch.addcmul(torch.addcmul(bru, on_i[i], dbru), gain_i[i], tr)
            else:  # x' = E x + b_off u
                c, r = (torch.addcmul(torch.addcmul(bcu, e11, c), e12, r),
                        torch.addcmul(torch.addcmul(bru, e21, c), e22, r))
        record.append(c)
        comp = torch.stack(record, 1)  # [B, T, 2]
        days = torch.arange(n_days, dtype=dtype, device=dev)
        return KineticsOutput(
            alc=comp.sum(-1), days=days, alc_fast=comp[..., 0], alc_slow=comp[..., 1],
            blood_survival=s_blood, resident_survival=s_res,
            final_baseline_alc=(phi * (1 - h + h * big_l)).sum(-1) * alc0[:, 0],
        )


def interpolate_days(alc: torch.Tensor, days: torch.Tensor, t_query: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of a trajectory on a uniform grid at (possibly non-integer) days.

    Args:
        alc: ``[B, T]`` values on ``days``.
        days: ``[T]`` uniform grid (days).
        t_query: ``[B, M]`` query days (clamped to the grid range).

    Returns:
        ``[B, M]`` interpolated values (differentiable in ``alc``).
    """
    step = days[1] - days[0]
    pos = ((t_query - days[0]) / step).clamp(0, alc.shape[1] - 1)
    i0 = pos.floor().long().clamp(max=alc.shape[1] - 2)
    w = (pos - i0.to(pos.dtype)).to(alc.dtype)
    v0, v1 = alc.gather(1, i0), alc.gather(1, i0 + 1)
    return v0 + w * (v1 - v0)


def nadir(alc: torch.Tensor, days: torch.Tensor, temperature: float | None = None):
    """Nadir value and day of each trajectory.

    Args:
        alc: ``[B, T]`` ALC (10^9/L).
        days: ``[T]`` grid days.
        temperature: None for the exact minimum/argmin; a positive value (10^9/L) for a smooth
            soft-min: value = -tau logsumexp(-alc / tau), day = sum softmax(-alc / tau) days
            (differentiable; tends to the exact values as tau -> 0).

    Returns:
        (value ``[B]``, day ``[B]``).
    """
    if temperature is None:
        val, idx = alc.min(1)
        return val, days[idx]
    z = -alc / temperature
    val = -temperature * torch.logsumexp(z, 1)
    return val, (torch.softmax(z, 1) * days).sum(1)
