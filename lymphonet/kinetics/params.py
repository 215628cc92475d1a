"""Kinetic parameters: physical values, priors, bounds and the bounded reparameterisation.

Every learnable quantity of the lymphocyte model is described once, in :data:`PARAM_SPECS`, with
its unit, population prior value (with the source it rests on), and hard lower/upper bounds.
The hybrid model never outputs physical values directly: it outputs unconstrained adjustments
``theta`` (real numbers, shape ``[B, n_params]``) that are mapped into ``[lower, upper]`` with a
sigmoid centred on the prior (the bounded reparameterisation used by APHYNITY-style hybrid models,
Yin et al., ICLR 2021)::

    physical = lower + (upper - lower) * sigmoid(logit((prior - lower) / (upper - lower)) + theta)

so ``theta = 0`` gives the population prior value *exactly*, any finite ``theta`` stays strictly
inside the bounds, and the map is smooth and monotone (the delta method in
:func:`dphysical_dtheta` uses its derivative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from lymphonet.errors import InputError


@dataclass(frozen=True)
class ParamSpec:
    """One kinetic parameter.

    Attributes:
        name: Field name in :class:`KineticParams` (units are in the name).
        unit: Physical unit.
        prior: Population prior value (theta = 0 maps here); strictly inside (lower, upper).
        lower: Hard lower bound.
        upper: Hard upper bound.
        description: What the parameter means in the model.
        source: Where the prior value comes from (citation or "lymphonet assumption").
    """

    name: str
    unit: str
    prior: float
    lower: float
    upper: float
    description: str
    source: str

    def physical(self, theta: torch.Tensor) -> torch.Tensor:
        """The bounded map: ``lower + (upper - lower) sigmoid(centre_logit + theta)``."""
        return self.lower + (self.upper - self.lower) * torch.sigmoid(self.centre_logit + theta)

    @property
    def centre_logit(self) -> float:
        """logit((prior - lower) / (upper - lower)): the sigmoid offset that makes theta=0 -> prior."""
        u = (self.prior - self.lower) / (self.upper - self.lower)
        return math.log(u / (1.0 - u))


#: Source note of the parameters fitted by ``lymphonet calibrate`` on the shipped literature table.
_CAL = ("calibrated to published cohorts (lymphonet/resources/population_params.json, "
        "docs/kinetics.md section 7)")

#: The parameter table. Order defines the columns of ``theta`` ([B, n_params]).
#: Priors of the fitted parameters are the population calibration of ``lymphonet calibrate``
#: on the shipped literature table; see each source for the literature value it replaced.
PARAM_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "alpha_per_gy", "1/Gy", 0.8011, 0.05, 1.5,
        "linear radiosensitivity of lymphocytes: S = exp(-alpha d - G beta d^2)",
        _CAL + "; an effective value about twice the literature prior of 0.4/Gy (Jin et al., "
        "Radiother Oncol 2020: in vivo median of 51 patients 0.4/Gy; in vitro 0.41; up to "
        "0.65/Gy in liver patients), because it also absorbs the kill of tissue lymphocytes in "
        "the high-dose volume, which the model does not track",
    ),
    ParamSpec(
        "beta_per_gy2", "1/Gy^2", 0.01, 0.0, 0.1,
        "quadratic radiosensitivity (reduced by the Lea-Catcheside factor G for protracted beam-on)",
        "lymphonet assumption: small (alpha/beta ~ 40 Gy), no firm in-vivo estimate for lymphocytes",
    ),
    ParamSpec(
        "blood_share", "1", 0.6981, 0.005, 0.8,
        "fraction of the body's lymphocyte pool in the circulating (blood) compartment at "
        "equilibrium; only these cells receive the blood-dose distribution of a fraction",
        _CAL + "; an effective exposed share, far above the ~2% of lymphocytes in blood "
        "(Westermann & Pabst, Clin Investig 1992, the literature prior): it absorbs exposure of "
        "lymphocytes outside the modelled organs (upper bound widened from 0.5 to 0.8 for it)",
    ),
    ParamSpec(
        "blood_residence_days", "day", 0.02, 0.002, 1.0,
        "mean residence time of a lymphocyte in blood (1 / blood-to-tissue rate)",
        "Westermann & Pabst 1992: ~5e11 lymphocytes pass through the blood per day vs ~1e10 in it "
        "-> ~0.02 day (about 30 min)",
    ),
    ParamSpec(
        "fast_fraction", "1", 0.4154, 0.05, 0.95,
        "share of the lymphocyte pool belonging to the fast-recovering population",
        _CAL + " (prior before calibration 0.5, a lymphonet assumption; two populations as "
        "described qualitatively by Sandul, Durante, Friedrich, arXiv 2605.00144, 2026; their "
        "equations are not public)",
    ),
    ParamSpec(
        "fast_recovery_days", "day", 3.314, 2.0, 60.0,
        "homeostatic turnover time (1/rate) of the fast-recovering population",
        _CAL + " (prior before calibration 14 days, a lymphonet assumption); the fast part "
        "re-equilibrates within days",
    ),
    ParamSpec(
        "slow_recovery_days", "day", 352.2, 30.0, 1000.0,
        "homeostatic turnover time (1/rate) of the slow-recovering population",
        _CAL + " (prior before calibration 180 days, a lymphonet assumption: CD4 T-cell "
        "regeneration over months in adults, cf. Mackall et al., N Engl J Med 1995)",
    ),
    ParamSpec(
        "baseline_loss", "1", 0.3914, 0.0, 1.0,
        "fraction of killed cells whose production capacity is lost: set point = "
        "N0 (1 - h + h L), L = cumulative pool survival (h=0 full recovery, h=1 none)",
        _CAL + " (prior before calibration 0.3, a lymphonet assumption: ALC often stays below "
        "baseline a year after RT)",
    ),
    ParamSpec(
        "chemo_rate_per_day", "1/day", 0.03265, 0.0, 0.1,
        "extra lymphocyte death rate while chemotherapy is active",
        _CAL + " (prior before calibration 0.01/day, a lymphonet assumption); one rate for all "
        "regimens",
    ),
)

PARAM_NAMES: tuple[str, ...] = tuple(s.name for s in PARAM_SPECS)
N_PARAMS: int = len(PARAM_SPECS)
_SPEC_BY_NAME = {s.name: s for s in PARAM_SPECS}


def param_spec(name: str) -> ParamSpec:
    """Look up a :class:`ParamSpec` by name (InputError for unknown names)."""
    try:
        return _SPEC_BY_NAME[name]
    except KeyError:
        raise InputError(f"unknown kinetic parameter; known: {PARAM_NAMES}", field=name) from None


@dataclass
class KineticParams:
    """Physical kinetic parameters; each field a tensor broadcastable to ``[B]``.

    Field meanings, units and bounds are in :data:`PARAM_SPECS`.
    """

    alpha_per_gy: torch.Tensor
    beta_per_gy2: torch.Tensor
    blood_share: torch.Tensor
    blood_residence_days: torch.Tensor
    fast_fraction: torch.Tensor
    fast_recovery_days: torch.Tensor
    slow_recovery_days: torch.Tensor
    baseline_loss: torch.Tensor
    chemo_rate_per_day: torch.Tensor

    @classmethod
    def population(cls, dtype: torch.dtype = torch.float32, device=None, **overrides) -> KineticParams:
        """Population prior values as 0-d tensors; ``overrides`` replace named values."""
        vals = {}
        for spec in PARAM_SPECS:
            v = overrides.pop(spec.name, spec.prior)
            vals[spec.name] = torch.as_tensor(v, dtype=dtype, device=device)
        if overrides:
            raise InputError(f"unknown kinetic parameters {sorted(overrides)}", field="params")
        return cls(**vals)

    def as_tensor(self) -> torch.Tensor:
        """Stack into ``[B, n_params]`` (columns in :data:`PARAM_NAMES` order)."""
        vals = torch.broadcast_tensors(*[getattr(self, n) for n in PARAM_NAMES])
        return torch.stack([v.reshape(-1) if v.dim() else v.reshape(1) for v in vals], dim=-1)

    def to(self, device=None, dtype: torch.dtype | None = None) -> KineticParams:
        """Copy with every field moved/cast."""
        return KineticParams(**{f.name: getattr(self, f.name).to(device=device, dtype=dtype)
                                for f in fields(self)})


def _bounds(dtype, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lo = torch.tensor([s.lower for s in PARAM_SPECS], dtype=dtype, device=device)
    hi = torch.tensor([s.upper for s in PARAM_SPECS], dtype=dtype, device=device)
    c = torch.tensor([s.centre_logit for s in PARAM_SPECS], dtype=dtype, device=device)
    return lo, hi, c


def theta_to_tensor(theta: torch.Tensor) -> torch.Tensor:
    """Map unconstrained ``theta`` ``[..., n_params]`` to physical values ``[..., n_params]``."""
    if theta.shape[-1] != N_PARAMS:
        raise InputError(f"theta must have {N_PARAMS} columns {PARAM_NAMES}, got shape "
                         f"{tuple(theta.shape)}", field="theta")
    lo, hi, c = _bounds(theta.dtype, theta.device)
    return lo + (hi - lo) * torch.sigmoid(c + theta)


def theta_to_params(theta: torch.Tensor) -> KineticParams:
    """Unconstrained ``theta`` ``[B, n_params]`` (or ``[n_params]``) -> :class:`KineticParams`.

    ``theta = 0`` gives the population prior values exactly; physical values lie strictly inside
    the bounds for every finite theta (they may round onto a bound in float32 for |theta| >~ 17).
    """
    phys = theta_to_tensor(theta)
    return KineticParams(**{n: phys[..., i] for i, n in enumerate(PARAM_NAMES)})


def params_to_theta(params: KineticParams) -> torch.Tensor:
    """Inverse map: physical :class:`KineticParams` -> theta ``[B, n_params]``."""
    phys = params.as_tensor()
    lo, hi, c = _bounds(phys.dtype, phys.device)
    u = ((phys - lo) / (hi - lo)).clamp(1e-12, 1 - 1e-12)
    if ((phys < lo) | (phys > hi)).any():
        raise InputError("kinetic parameter outside its bounds", field="params")
    return torch.logit(u) - c


def dphysical_dtheta(theta: torch.Tensor) -> torch.Tensor:
    """Elementwise derivative d physical / d theta, ``[..., n_params]`` (for the delta method)."""
    lo, hi, c = _bounds(theta.dtype, theta.device)
    s = torch.sigmoid(c + theta)
    return (hi - lo) * s * (1 - s)


def place_columns(theta_sub: torch.Tensor, idx: list[int], n: int,
                  base: torch.Tensor | None = None) -> torch.Tensor:
    """Put the columns of ``theta_sub`` (``[..., len(idx)]``) at positions ``idx`` of a full
    ``[..., n]`` theta whose other columns are ``base`` (default zeros = prior); keeps the graph
    for ``theta_sub`` without in-place ops on a leaf."""
    shape = theta_sub.shape[:-1] + (n,)
    full = (torch.zeros(shape, dtype=theta_sub.dtype, device=theta_sub.device) if base is None
            else base.to(theta_sub.dtype).expand(shape).clone())
    pieces = list(full.unbind(-1))
    for j, i in enumerate(idx):
        pieces[i] = theta_sub[..., j]
    return torch.stack(pieces, dim=-1)


def expand_theta(theta_sub: torch.Tensor, names: tuple[str, ...] | list[str],
                 base: torch.Tensor | None = None) -> torch.Tensor:
    """Place a subset of theta columns (``[..., len(names)]``) into a full ``[..., n_params]``.

    Args:
        theta_sub: Values for ``names`` (last dim).
        names: Parameter names, each in :data:`PARAM_NAMES`.
        base: Full theta giving the values of the other columns (default zeros = prior).
    """
    idx = [PARAM_NAMES.index(param_spec(n).name) for n in names]
    return place_columns(theta_sub, idx, N_PARAMS, base)
