"""Protracted irradiation: a dose-rate curve as a continuous LQ kill hazard with repair.

For a dose rate ``R(t)`` (Gy/h) the linear-quadratic log-kill with first-order repair of
sublethal damage at rate ``mu`` (1/h) is (Lea & Catcheside 1942; Dale, Br J Radiol 58:515, 1985;
Sachs, Hahnfeldt & Brenner, Int J Radiat Biol 72:351, 1997)::

    -ln S(t) = alpha D(t) + 2 beta Q(t),   D(t) = int_0^t R(s) ds,
    Q(t) = int_0^t R(s) Phi(s) ds,         Phi(s) = int_0^s exp(-mu (s - u)) R(u) du,

and the generalised Lea-Catcheside factor of the whole curve is ``G = 2 Q(T) / D(T)^2`` (1 for an
acute dose, ``2 (x - 1 + e^-x) / x^2`` with ``x = mu T`` for a constant rate over ``T``). This module
integrates it exactly for a piecewise-constant rate on a grid of step ``dt_h``: within a step of
rate ``r`` that starts with ``Phi_0``, ``Phi`` relaxes to ``r / mu`` and

    int_step r Phi = r [Phi_0 (1 - e^{-mu h}) / mu + (r / mu) (h - (1 - e^{-mu h}) / mu)].

The kinetics layer (:class:`~lymphonet.kinetics.model.LymphocyteKinetics`) takes such curves for
blood and for the lymphoid organs (``KineticsInputs.dose_rate_*``), so therapies other than
fractionated beams (radiopharmaceuticals, LDR/HDR brachytherapy) follow the same cell dynamics:
each kinetics step multiplies the compartments by ``exp(-(log-kill of its rate intervals))``.
Blood is taken as well mixed over the curve's time scale (minutes to days, against a circulation
time of about a minute), so one rate per patient represents it.
"""

from __future__ import annotations

import math

import torch

from lymphonet.errors import InputError


def repair_rate_per_h(repair_half_time_h: float) -> float:
    """``mu = ln 2 / T_rep`` (1/h)."""
    if not repair_half_time_h > 0:
        raise InputError("repair half-time must be > 0 h", field="repair_half_time_h")
    return math.log(2.0) / float(repair_half_time_h)


def quadratic_increments(rate_gy_h: torch.Tensor, dt_h: float, mu_per_h: float) -> torch.Tensor:
    """``Q`` gained in each step (Gy^2): ``int_step R Phi`` for a piecewise-constant rate.

    Args:
        rate_gy_h: ``[..., T]`` dose rate of each step (Gy/h), >= 0.
        dt_h: Step length (h).
        mu_per_h: Repair rate (1/h), > 0.

    Returns:
        ``[..., T]`` increments; their sum is ``Q(T)`` (differentiable in the rates).
    """
    h, mu = float(dt_h), float(mu_per_h)
    decay = math.exp(-mu * h)
    relax = (1.0 - decay) / mu  # int_0^h exp(-mu s) ds
    phi = torch.zeros_like(rate_gy_h[..., 0])
    out = []
    for j in range(rate_gy_h.shape[-1]):
        r = rate_gy_h[..., j]
        out.append(r * (phi * relax + r / mu * (h - relax)))
        phi = phi * decay + r * relax
    return torch.stack(out, dim=-1)


def log_kill(rate_gy_h: torch.Tensor, dt_h: float, alpha_per_gy, beta_per_gy2,
             mu_per_h: float) -> torch.Tensor:
    """Per-step LQ log-kill ``alpha R dt + 2 beta dQ`` (1), ``[..., T]``.

    ``alpha_per_gy`` and ``beta_per_gy2`` broadcast against ``rate_gy_h[..., 0]``.
    """
    a = alpha_per_gy[..., None] if torch.is_tensor(alpha_per_gy) else alpha_per_gy
    b = beta_per_gy2[..., None] if torch.is_tensor(beta_per_gy2) else beta_per_gy2
    return a * rate_gy_h * float(dt_h) + 2.0 * b * quadratic_increments(rate_gy_h, dt_h, mu_per_h)


def generalised_lea_catcheside(rate_gy_h: torch.Tensor, dt_h: float,
                               mu_per_h: float) -> torch.Tensor:
    """``G = 2 Q(T) / D(T)^2`` of a whole curve, ``[...]`` (1; 1 = acute, < 1 = protracted)."""
    dose = rate_gy_h.sum(-1) * float(dt_h)
    q = quadratic_increments(rate_gy_h, dt_h, mu_per_h).sum(-1)
    return torch.where(dose > 0, 2.0 * q / dose.clamp(min=1e-300) ** 2, torch.ones_like(dose))


def biexponential_rate_gy_h(t_h: torch.Tensor, peak_rate_gy_h: float, uptake_half_life_h: float,
                            clearance_half_life_h: float) -> torch.Tensor:
    """Radiopharmaceutical dose rate with uptake and clearance (Gy/h) at times ``t_h``.

    ``R(t) = A (exp(-k_c t) - exp(-k_u t))``: it rises from 0 with the uptake rate
    ``k_u = ln 2 / T_u``, falls with the effective clearance ``k_c = ln 2 / T_c``, and ``A`` makes
    the peak equal ``peak_rate_gy_h`` (the usual bi-exponential time-activity curve, as in MIRD
    Pamphlet No. 16, Siegel et al., J Nucl Med 40:37S, 1999).

    Raises:
        InputError: Non-positive half-lives, equal half-lives, or a negative rate.
    """
    tu, tc = float(uptake_half_life_h), float(clearance_half_life_h)
    if not (tu > 0 and tc > 0) or tu == tc or peak_rate_gy_h < 0:
        raise InputError("half-lives must be > 0 and differ; rate >= 0", field="dose_rate")
    ku, kc = math.log(2) / tu, math.log(2) / tc
    t_peak = math.log(ku / kc) / (ku - kc)
    amplitude = float(peak_rate_gy_h) / (math.exp(-kc * t_peak) - math.exp(-ku * t_peak))
    t = torch.as_tensor(t_h, dtype=torch.float64)
    return amplitude * (torch.exp(-kc * t) - torch.exp(-ku * t)).clamp(min=0)


def on_step_grid(step_log_kill: torch.Tensor, dt_h: float, steps_per_day: int,
                 n_steps: int) -> torch.Tensor:
    """Sum per-interval log-kills into the kinetics steps: ``[..., T]`` -> ``[..., n_steps]``.

    The rate grid must tile the kinetics step (``24 / steps_per_day`` h a whole multiple of
    ``dt_h``); intervals beyond the last step are dropped, missing ones count as zero.

    Raises:
        InputError: A rate step that does not tile the kinetics step.
    """
    step_h = 24.0 / int(steps_per_day)
    per = step_h / float(dt_h)
    if per < 1 - 1e-9 or abs(per - round(per)) > 1e-6:
        raise InputError(f"the dose-rate step ({dt_h} h) must divide the kinetics step "
                         f"({step_h:g} h)", field="dose_rate_step_h")
    per = round(per)
    t = step_log_kill.shape[-1]
    need = n_steps * per
    x = step_log_kill[..., :need]
    if t < need:
        x = torch.cat([x, x.new_zeros((*x.shape[:-1], need - t))], dim=-1)
    return x.reshape(*x.shape[:-1], n_steps, per).sum(-1)
