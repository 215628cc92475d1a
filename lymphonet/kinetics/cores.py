"""The kinetics cores behind one face, so the hybrid, bundles and tools can run on either.

* ``two_population``: :class:`~lymphonet.kinetics.model.LymphocyteKinetics` (the default; its
  calibration needs an effective blood share far above physiology, ``docs/kinetics.md`` §7);
* ``recirculation``: :class:`~lymphonet.kinetics.recirculation.RecirculationKinetics` (physiological
  compartments, ``docs/kinetics.md`` §8; being calibrated, issue 14).

Both take ``(KineticsInputs, theta [B, P])`` and return an output with ``alc`` ``[B, T]`` and
``days`` ``[T]``; theta = 0 is each core's priors.
"""

from __future__ import annotations

import torch
from torch import nn

from lymphonet.errors import InputError
from lymphonet.kinetics.params import place_columns

CORES: tuple[str, ...] = ("two_population", "recirculation")

#: Parameters a network adjusts per patient by default, per core.
DEFAULT_ADJUSTED: dict[str, tuple[str, ...]] = {
    "two_population": ("alpha_per_gy", "blood_share", "fast_fraction", "fast_recovery_days",
                       "slow_recovery_days", "baseline_loss", "chemo_rate_per_day"),
    "recirculation": ("alpha_per_gy", "blood_share", "turnover_per_day", "marrow_recovery_days",
                      "stem_alpha_per_gy", "chemo_rate_per_day"),
}


def _check(core: str) -> None:
    if core not in CORES:
        raise InputError(f"unknown kinetics core {core!r}; choose from {CORES}",
                         field="model.kinetics_core")


def param_names(core: str) -> tuple[str, ...]:
    """Names of the core's theta columns, in order."""
    _check(core)
    if core == "two_population":
        from lymphonet.kinetics.params import PARAM_NAMES

        return PARAM_NAMES
    from lymphonet.kinetics.recirculation import RECIRCULATION_NAMES

    return RECIRCULATION_NAMES


def build(core: str, n_days: int, steps_per_day: int = 1) -> nn.Module:
    """The core as an ``nn.Module`` simulating days ``0..n_days-1``."""
    _check(core)
    if core == "two_population":
        from lymphonet.kinetics.model import LymphocyteKinetics

        return LymphocyteKinetics(n_days, steps_per_day)
    from lymphonet.kinetics.recirculation import RecirculationKinetics

    return RecirculationKinetics(n_days, steps_per_day)


def expand(core: str, theta_sub: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
    """Place the columns of ``names`` (``[..., len(names)]``) into the core's full theta (the
    other columns 0 = prior), keeping the graph."""
    all_names = param_names(core)
    unknown = [n for n in names if n not in all_names]
    if unknown:
        raise InputError(f"unknown {core} parameters {unknown}; known {list(all_names)}",
                         field="model.adjusted_params")
    return place_columns(theta_sub, [all_names.index(n) for n in names], len(all_names))


def specs(core: str) -> tuple:
    """The core's :class:`~lymphonet.kinetics.params.ParamSpec` per theta column, in order."""
    _check(core)
    if core == "two_population":
        from lymphonet.kinetics.params import PARAM_SPECS

        return PARAM_SPECS
    from lymphonet.kinetics.recirculation import RECIRCULATION_SPECS

    return RECIRCULATION_SPECS


def constants(core: str) -> dict:
    """The core's fixed constants that predictions depend on but weights do not hold: each
    parameter's (prior, lower, upper) and the resident-pool shares (recorded in bundles)."""
    if core == "two_population":
        from lymphonet.kinetics.model import ORGAN_SHARE_OF_BODY

        shares = dict(ORGAN_SHARE_OF_BODY)
    else:
        from lymphonet.kinetics.recirculation import TISSUES

        shares = {t.name: t.share for t in TISSUES}
    specs_ = specs(core)
    return {"core": core,
            "params": {p.name: [float(p.prior), float(p.lower), float(p.upper)] for p in specs_},
            "organ_share": {k: float(v) for k, v in shares.items()}}
