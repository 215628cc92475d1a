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
Between events the system is linear with constant coefficients, so each step of length dt is
integrated exactly: x' = g E x + b u with x = (C_p, R_p), E = exp(A dt) a closed-form 2x2 matrix
exponential, g = exp(-delta dt) and b = (I - g E) x* the affine source term: no step-size error,
stable for any rates.

:meth:`LymphocyteKinetics.forward` uses these symbols as names (``C``, ``R``, ``k_out``, ``k_in``,
``r``, ``f_b``, ``phi``, ``u``, ``L``, ``h``, ``delta``, ``S_blood``, ``S_res``, ``G``, ``A``,
``E``, ``g``, ``b``; N0_p = phi_p ALC0 / f_b is the pre-treatment C_p + R_p) in four steps:

1. :meth:`Rates.from_params`: per-patient, per-population constants (k_out, k_in, r_p, ...).
2. :func:`propagator`: the exact one-step map (E, b) with chemotherapy off and on.
3. :meth:`LymphocyteKinetics.fraction_grid` / :meth:`LymphocyteKinetics.chemo_grid` place the
   fractions and the chemotherapy window on the step grid; :func:`~lymphonet.kinetics.steps.fraction_event` applies one
   step's kill and updates L_p and u_p.
4. :func:`step_loop`: the loop over the steps, recording C_p each morning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lymphonet.errors import InputError
from lymphonet.kinetics import dose_rate
from lymphonet.kinetics.params import KineticParams, theta_to_params
from lymphonet.kinetics.schedule import (
    CHEMO_CONCURRENT,
    CHEMO_SEQUENTIAL,
    SEQUENTIAL_DURATION_DAYS,
    SEQUENTIAL_GAP_DAYS,
    KineticsInputs,
    protraction_g,
)
from lymphonet.kinetics.steps import (
    Rates,
    StepGrid,
    propagator,
    set_point,
    step_loop,
)
from lymphonet.organs import LYMPHOID_ORGANS

#: Share of the body's lymphocytes resident in each lymphoid organ, after Westermann & Pabst
#: (Clin Investig 1992, Fig. 2, drawn from Trepel 1974): of ~4.6e11 lymphocytes, lymph nodes
#: ~1.9e11 (~40%), spleen ~0.7e11 (~15%), bone marrow ~0.5e11 (~10%), blood ~1e10 (~2%); the
#: adult thymus share is set to 5% (lymphonet assumption: involution after adolescence). The rest
#: (gut, lung, skin, liver ...) is resident but receives no organ dose in this model (weight 0 for
#: ``lungs``, ``liver``, ``bowel`` and ``body``; the recirculation core doses them).
ORGAN_SHARE_OF_BODY: dict[str, float] = {
    "spleen": 0.15, "lymph_nodes": 0.40, "bone_marrow": 0.10, "thymus": 0.05, "lungs": 0.0,
    "liver": 0.0, "bowel": 0.0, "body": 0.0,
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


def chemo_window(inputs: KineticsInputs) -> tuple[torch.Tensor, torch.Tensor]:
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
        """Per-fraction survival (S_blood,k, S_res,k), each ``[B, K]`` (1)."""
        k = inputs.fraction_days.shape[1]
        G = protraction_g(inputs, self.repair_half_time_h)  # [B, K], [B, 1] or 1.0
        alpha, beta = p.alpha_per_gy.reshape(-1, 1), p.beta_per_gy2.reshape(-1, 1)
        d = inputs.blood_dose_q_gy
        if d.dim() == 2:
            d = d[:, None, :]
        S_blood = mean_survival(d, alpha, beta, G).expand(-1, k)
        if inputs.lymphoid_dose_q_gy is None:
            return S_blood, torch.ones_like(S_blood)
        G_l = G[..., None] if torch.is_tensor(G) else G
        S_l = mean_survival(inputs.lymphoid_dose_q_gy[:, None], alpha[..., None],
                            beta[..., None], G_l)  # [B, K or 1, L]
        c = 1.0 if inputs.lymphoid_coverage is None else inputs.lymphoid_coverage[:, None, :]
        w = self.organ_weight.to(S_l.dtype)
        S_res = 1.0 - (w * c * (1.0 - S_l)).sum(-1)
        return S_blood, S_res.expand(-1, k)

    def chemo_window(self, inputs: KineticsInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Chemotherapy window [start, end) in days, each ``[B]`` (see :func:`chemo_window`)."""
        return chemo_window(inputs)

    # ------------------------------------------------------------------ events on the step grid
    def fraction_grid(self, inputs: KineticsInputs, S_blood: torch.Tensor, S_res: torch.Tensor,
                      n_steps: int) -> tuple[torch.Tensor, torch.Tensor, set[int]]:
        """Fractions on the step grid: each applies at the start of the step containing it.

        Args:
            inputs: The batch (fraction days and mask).
            S_blood, S_res: ``[B, K]`` per-fraction survival (1).
            n_steps: Number of steps (fractions beyond the grid are dropped).

        Returns:
            ``[B, n_steps]`` per-step products of S_blood and of S_res (1 where no fraction),
            and the set of steps with a fraction for any patient.
        """
        step = torch.floor(inputs.fraction_days * self.steps_per_day + 1e-6).long()
        valid = inputs.fraction_mask & (step >= 0) & (step < n_steps)
        step = torch.where(valid, step, torch.zeros_like(step))
        zero = torch.zeros(inputs.batch_size, max(n_steps, 1), dtype=inputs.blood_dose_q_gy.dtype,
                           device=inputs.blood_dose_q_gy.device)
        log_S_blood = zero.scatter_add(1, step, torch.where(valid, torch.log(S_blood), 0.0))
        log_S_res = zero.scatter_add(1, step, torch.where(valid, torch.log(S_res), 0.0))
        event_steps = set(step[valid].unique().tolist())
        return torch.exp(log_S_blood), torch.exp(log_S_res), event_steps

    def chemo_grid(self, inputs: KineticsInputs, delta: torch.Tensor, n_steps: int
                   ) -> tuple[torch.Tensor, torch.Tensor, set[int]]:
        """Chemotherapy on the step grid: a step is on when its midpoint is in the window.

        Args:
            inputs: The batch (see :meth:`chemo_window`).
            delta: ``[B, 1]`` chemotherapy rate (1/day).
            n_steps: Number of steps.

        Returns:
            on ``[B, n_steps]`` (1.0 / 0.0), g = exp(-delta dt on) ``[B, n_steps]`` (1), and the
            set of steps with chemo for any patient.
        """
        dose = inputs.blood_dose_q_gy
        dt = 1.0 / self.steps_per_day
        start, end = self.chemo_window(inputs)
        mid = (torch.arange(n_steps, dtype=dose.dtype, device=dose.device) + 0.5) * dt
        on = ((mid >= start[:, None]) & (mid < end[:, None])).to(dose.dtype)
        g = torch.exp(-delta * dt * on)
        return on, g, set(on.any(0).nonzero().flatten().tolist())

    def with_dose_rate(self, grid: StepGrid, inputs: KineticsInputs, p: KineticParams,
                       n_steps: int) -> StepGrid:
        """Fold protracted dose-rate curves into the step grid's survival (kill hazard per step).

        Blood: ``exp(-log_kill)`` per step; organs: the resident survival
        ``1 - sum_l w_l (1 - S_l)`` per step, each curve being the rate of the whole organ.
        """
        blood, organs = inputs.dose_rate_blood_gy_h, inputs.dose_rate_organs_gy_h
        if blood is None and organs is None:
            return grid
        dt_h = float(inputs.dose_rate_step_h[0])
        mu = dose_rate.repair_rate_per_h(self.repair_half_time_h)
        alpha, beta = p.alpha_per_gy.reshape(-1), p.beta_per_gy2.reshape(-1)
        S_blood, S_res, steps = grid.S_blood, grid.S_res, set(grid.event_steps)

        def per_step(rate, a, b):
            kill = dose_rate.log_kill(rate, dt_h, a, b, mu)
            return dose_rate.on_step_grid(kill, dt_h, self.steps_per_day, n_steps)

        if blood is not None:
            kill = per_step(blood, alpha, beta)
            S_blood = S_blood * torch.exp(-kill)
            steps |= set((kill > 0).any(0).nonzero().flatten().tolist())
        if organs is not None:
            kill = per_step(organs.transpose(1, 2), alpha[:, None], beta[:, None])  # [B, L, n]
            # a dose-rate curve is the rate of the whole organ (systemic or brachytherapy
            # sources), not of a contoured part: no external-beam coverage here
            w = self.organ_weight.to(kill.dtype)[:, None]
            S_res = S_res * (1.0 - (w * (1.0 - torch.exp(-kill))).sum(1))
            steps |= set((kill > 0).any(1).any(0).nonzero().flatten().tolist())
        return StepGrid(S_blood, S_res, steps, grid.on, grid.g, grid.chemo_steps)

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
        n_steps = (n_days - 1) * self.steps_per_day
        rates = Rates.from_params(p, inputs)                        # 1. k_out, k_in, r_p, ...
        prop = propagator(rates, 1.0 / self.steps_per_day)          # 2. E, b
        S_blood, S_res = self.fraction_survival(inputs, p)          # S_blood,k, S_res,k [B, K]
        grid = StepGrid(*self.fraction_grid(inputs, S_blood, S_res, n_steps),
                        *self.chemo_grid(inputs, rates.delta, n_steps))
        grid = self.with_dose_rate(grid, inputs, p, n_steps)        # protracted delivery
        C, L = step_loop(rates, prop, grid, n_steps, self.steps_per_day)  # 3. + 4.
        days = torch.arange(n_days, dtype=C.dtype, device=C.device)
        return KineticsOutput(
            alc=C.sum(-1), days=days, alc_fast=C[..., 0], alc_slow=C[..., 1],
            blood_survival=S_blood, resident_survival=S_res,
            final_baseline_alc=(rates.phi * set_point(L, rates.h)).sum(-1) * rates.alc0[:, 0],
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
