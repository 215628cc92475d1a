"""The exact step of the kinetics layer, in the symbols of :mod:`lymphonet.kinetics.model`.

Between fraction events the blood / resident system of each population is linear with constant
coefficients, so one step of length dt is ``x' = g E x + b u`` with E the closed-form 2x2 matrix
exponential and b the affine source term (:func:`propagator`); at a fraction the pools are killed
multiplicatively and the lost-production memory L_p and set point u_p are updated
(:func:`fraction_event`); :func:`step_loop` walks the step grid. See ``docs/kinetics.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lymphonet.errors import InputError
from lymphonet.kinetics.params import KineticParams
from lymphonet.kinetics.schedule import KineticsInputs


def _per_patient(x, bsz: int, dtype: torch.dtype, device) -> torch.Tensor:
    """A kinetic parameter (scalar, ``[1]`` or ``[B]``) as a ``[B, 1]`` column."""
    x = torch.as_tensor(x, dtype=dtype, device=device).reshape(-1)
    if x.numel() not in (1, bsz):
        raise InputError(f"kinetic parameters have batch {x.numel()}, inputs {bsz}",
                         field="params_or_theta")
    return x.expand(bsz).reshape(bsz, 1)


@dataclass
class Rates:
    """Step 1: the constant coefficients of the ODE for B patients.

    Columns ``[B, 1]`` are shared by both populations; ``[B, 2]`` are per population
    (fast, slow).

    Attributes:
        f_b: ``[B, 1]`` blood share at equilibrium (1).
        k_out: ``[B, 1]`` blood -> tissue rate 1 / blood_residence_days (1/day).
        k_in: ``[B, 1]`` tissue -> blood rate k_out f_b / (1 - f_b) (1/day).
        r: ``[B, 2]`` homeostatic turnover r_p = 1 / recovery_days_p (1/day).
        phi: ``[B, 2]`` population shares (phi, 1 - phi) (1).
        h: ``[B, 1]`` baseline_loss: share of killed cells whose production is lost (1).
        delta: ``[B, 1]`` chemotherapy kill rate inside the window (1/day).
        alc0: ``[B, 1]`` pre-treatment ALC (10^9/L).
    """

    f_b: torch.Tensor
    k_out: torch.Tensor
    k_in: torch.Tensor
    r: torch.Tensor
    phi: torch.Tensor
    h: torch.Tensor
    delta: torch.Tensor
    alc0: torch.Tensor

    @classmethod
    def from_params(cls, p: KineticParams, inputs: KineticsInputs) -> Rates:
        """Rates of ``p`` (fields scalar or ``[B]``) in the dtype / device of the blood doses."""
        dose = inputs.blood_dose_q_gy
        bsz = inputs.batch_size

        def col(x):
            return _per_patient(x, bsz, dose.dtype, dose.device)

        f_b = col(p.blood_share)
        k_out = 1.0 / col(p.blood_residence_days)
        return cls(
            f_b=f_b, k_out=k_out, k_in=k_out * f_b / (1 - f_b),
            r=1.0 / torch.cat([col(p.fast_recovery_days), col(p.slow_recovery_days)], 1),
            phi=torch.cat([col(p.fast_fraction), 1 - col(p.fast_fraction)], 1),
            h=col(p.baseline_loss), delta=col(p.chemo_rate_per_day),
            alc0=inputs.baseline_alc.to(dose.dtype).reshape(bsz, 1),
        )

    def initial_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-treatment equilibrium (C_p, R_p) = (phi_p ALC0, phi_p ALC0 (1 - f_b) / f_b),
        each ``[B, 2]`` (10^9/L); C_p + R_p = N0_p."""
        return self.phi * self.alc0, self.phi * self.alc0 * (1 - self.f_b) / self.f_b

    def source(self) -> torch.Tensor:
        """Resident production at u_p = 1: r_p (1 - f_b) N0_p, ``[B, 2]`` (10^9/L per day)."""
        return self.r * (1 - self.f_b) * self.phi * self.alc0 / self.f_b


def set_point(L: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Relative set point u_p = 1 - h + h L_p (1), ``L`` ``[B, 2]``, ``h`` ``[B, 1]``."""
    return 1 - h + h * L


def _expm2(a, b, c, d, t):
    """exp(t [[a, b], [c, d]]) entrywise for real-eigenvalue 2x2 blocks with b c > 0 (Sylvester).

    Args:
        a, b, c, d: Matrix entries (1/day), broadcastable tensors (here ``[B, 2]``).
        t: Step length (day).

    Returns:
        The four entries (E11, E12, E21, E22) of the matrix exponential (1).
    """
    m = 0.5 * (a + d)
    disc = torch.sqrt(0.25 * (a - d) ** 2 + b * c)
    l1, l2 = m + disc, m - disc
    e1, e2 = torch.exp(l1 * t), torch.exp(l2 * t)
    k = 1.0 / (l1 - l2)
    return ((e1 * (a - l2) - e2 * (a - l1)) * k, (e1 - e2) * b * k, (e1 - e2) * c * k,
            (e1 * (d - l2) - e2 * (d - l1)) * k)


@dataclass
class Propagator:
    """Step 2: the exact map of x = (C_p, R_p) over one step of length dt::

        x' = g E x + (b_off + on (b_on - b_off)) u_p,    g = exp(-delta dt on)

    with ``on`` = 1 inside the chemotherapy window, else 0.

    Attributes:
        E11, E12, E21, E22: ``[B, 2]`` entries of E = exp(A dt),
            A = [[-k_out, k_in], [k_out, -k_in - r_p]] (1).
        b_off: (b_C, b_R), each ``[B, 2]``: affine source term per unit set point with chemo off,
            (I - E) x*_0 (10^9/L).
        db: (db_C, db_R), each ``[B, 2]``: b_on - b_off, with b_on = (I - g E) x*_delta (10^9/L).
    """

    E11: torch.Tensor
    E12: torch.Tensor
    E21: torch.Tensor
    E22: torch.Tensor
    b_off: tuple[torch.Tensor, torch.Tensor]
    db: tuple[torch.Tensor, torch.Tensor]


def _affine_term(A, E, source, delta, dt: float):
    """b = (I - g E) x*, x* = -(A - delta I)^-1 [0, source], g = exp(-delta dt).

    Args:
        A, E: Entries (A11, A12, A21, A22) / (E11, E12, E21, E22), ``[B, 2]`` (1/day / 1).
        source: ``[B, 2]`` resident production r_p (1 - f_b) N0_p at u_p = 1 (10^9/L per day).
        delta: ``[B, 1]`` chemotherapy rate (1/day); zeros for chemo off.
        dt: Step length (day).

    Returns:
        (b_C, b_R), each ``[B, 2]`` (10^9/L).
    """
    A11, A12, A21, A22 = A
    E11, E12, E21, E22 = E
    g = torch.exp(-delta * dt)
    B11, B22 = A11 - delta, A22 - delta  # A - delta I
    det = B11 * B22 - A12 * A21
    C_star, R_star = A12 * source / det, -B11 * source / det
    return (C_star - g * (E11 * C_star + E12 * R_star), R_star - g * (E21 * C_star + E22 * R_star))


def propagator(rates: Rates, dt: float) -> Propagator:
    """Exact one-step propagator of ``rates`` over dt (day), chemo off and on."""
    A11, A12, A21, A22 = -rates.k_out, rates.k_in, rates.k_out, -rates.k_in - rates.r
    A11, A12, A21 = (x.expand(-1, 2) for x in (A11, A12, A21))
    A = (A11, A12, A21, A22)
    E = _expm2(A11, A12, A21, A22, dt)
    source = rates.source()
    b_C_off, b_R_off = _affine_term(A, E, source, torch.zeros_like(rates.delta), dt)
    b_C_on, b_R_on = _affine_term(A, E, source, rates.delta, dt)
    return Propagator(*E, b_off=(b_C_off, b_R_off), db=(b_C_on - b_C_off, b_R_on - b_R_off))


@dataclass
class StepGrid:
    """What happens on each of the n_steps steps (step i covers [i dt, (i + 1) dt), days).

    Attributes:
        S_blood, S_res: ``[B, n_steps]`` product of S_blood,k / S_res,k over the fractions at the
            start of the step (1 where none).
        on: ``[B, n_steps]`` 1.0 where the step midpoint is inside the chemo window, else 0.0.
        g: ``[B, n_steps]`` chemotherapy gain exp(-delta dt on) (1).
        event_steps, chemo_steps: Steps with a fraction / with chemo for any patient.
    """

    S_blood: torch.Tensor
    S_res: torch.Tensor
    event_steps: set[int]
    on: torch.Tensor
    g: torch.Tensor
    chemo_steps: set[int]


def fraction_event(C, R, L, S_blood, S_res, h):
    """Step 3: the instantaneous kill of one step's fractions.

    C_p <- C_p S_blood, R_p <- R_p S_res, L_p <- L_p (C_p + R_p)_after / (C_p + R_p)_before.

    Args:
        C, R: ``[B, 2]`` blood and resident pools (10^9/L).
        L: ``[B, 2]`` cumulative pool survival L_p (1).
        S_blood, S_res: ``[B, 1]`` survival of the step's fractions (1).
        h: ``[B, 1]`` baseline_loss (1).

    Returns:
        (C, R, L, u), each ``[B, 2]``; u = 1 - h + h L is the new set point.
    """
    before = C + R
    C, R = C * S_blood, R * S_res
    L = L * (C + R) / before
    return C, R, L, set_point(L, h)


def _columns(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``[B, n]`` -> n columns ``[B, 1]``."""
    return x.T.unsqueeze(-1).unbind(0)


def step_loop(rates: Rates, prop: Propagator, grid: StepGrid, n_steps: int, steps_per_day: int):
    """Step 4: propagate (C_p, R_p) over the steps, recording C_p at the start of each day.

    Per step: the fractions (:func:`fraction_event`), then x' = g E x + b u (:class:`Propagator`).

    Returns:
        (C ``[B, T, 2]`` blood pools at days 0..T-1 (10^9/L), final L ``[B, 2]`` (1)).
    """
    E11, E12, E21, E22 = prop.E11, prop.E12, prop.E21, prop.E22
    C, R = rates.initial_state()
    L = torch.ones_like(C)
    S_blood, S_res = _columns(grid.S_blood), _columns(grid.S_res)
    g, on = _columns(grid.g), _columns(grid.on)
    (bu_C, bu_R), (dbu_C, dbu_R) = prop.b_off, prop.db  # b terms times u (u = 1 before RT)
    record = []
    for i in range(n_steps):
        if i % steps_per_day == 0:
            record.append(C)
        if i in grid.event_steps:
            C, R, L, u = fraction_event(C, R, L, S_blood[i], S_res[i], rates.h)
            bu_C, bu_R = prop.b_off[0] * u, prop.b_off[1] * u
            dbu_C, dbu_R = prop.db[0] * u, prop.db[1] * u
        if i in grid.chemo_steps:  # x' = g E x + (b_off + on (b_on - b_off)) u
            EC, ER = torch.addcmul(E11 * C, E12, R), torch.addcmul(E21 * C, E22, R)
            C = torch.addcmul(torch.addcmul(bu_C, on[i], dbu_C), g[i], EC)
            R = torch.addcmul(torch.addcmul(bu_R, on[i], dbu_R), g[i], ER)
        else:  # x' = E x + b_off u
            C, R = (torch.addcmul(torch.addcmul(bu_C, E11, C), E12, R),
                    torch.addcmul(torch.addcmul(bu_R, E21, C), E22, R))
    record.append(C)
    return torch.stack(record, 1), L
