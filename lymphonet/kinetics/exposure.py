"""How much of the body's lymphocytes a plan reaches: summaries of the recirculation core's inputs.

The pool at its equilibrium shares (blood ``f_B``, tissue ``c`` ``(1 - f_B) w_c``) against the doses
of :class:`~lymphonet.kinetics.recirculation.RecirculationKinetics`: the dose-weighted share of the
pool in the field, compartment by compartment, and the share of the pool that survives each
fraction. They say what a field can do to the pool by direct killing (issue 14's MacLennan
estimate, :mod:`lymphonet.twin.literature_checks`); the kinetics themselves do not use them.
"""

from __future__ import annotations

import torch

from lymphonet.kinetics.recirculation import RecirculationKinetics
from lymphonet.kinetics.schedule import KineticsInputs


def _pool_weights(core: RecirculationKinetics, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each compartment's share of the whole pool at equilibrium, ``[B, 1 + C]``: blood ``f_B``,
    then tissue ``c`` ``(1 - f_B) w_c`` (the core's own equilibrium pools, per unit of pool)."""
    f_b = p["blood_share"]
    return torch.cat([f_b[:, None], core.tissue_pools(p, f_b)], 1)


def pool_dose_parts_gy(core: RecirculationKinetics, inputs: KineticsInputs,
                       p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each compartment's part of the mean dose per fraction to the body's lymphocytes.

    Blood ``f_B mean_q D_B,q`` and tissue ``c`` ``(1 - f_B) w_c cov_c mean_q D_c,q`` (``w_c``
    the tissue shares, ``cov_c`` the coverage); they add up to :func:`pool_mean_dose_gy`.

    Args:
        core: The recirculation core (its tissue table and survival).
        inputs: The batch (``fraction_mask`` marks real fractions).
        p: Physical parameters (``recirculation_params``); only ``blood_share`` is used.

    Returns:
        ``[B, K, 1 + C]`` Gy per fraction (blood, then ``core.tissues`` in order); 0 at padded
        fractions.
    """
    k = inputs.fraction_days.shape[1]
    dose = inputs.blood_dose_q_gy
    blood = (dose.mean(-1) if dose.dim() == 3 else dose.mean(-1, keepdim=True)).expand(-1, k)
    tissues = torch.zeros(*blood.shape, len(core.tissues), dtype=blood.dtype,
                          device=blood.device)
    organs = inputs.lymphoid_dose_q_gy
    if organs is not None:
        cov = (torch.ones_like(organs[..., 0]) if inputs.lymphoid_coverage is None
               else inputs.lymphoid_coverage)
        for j, t in enumerate(core.tissues):
            col = core.organ_index[t.name]
            if col is not None:
                tissues[..., j] = (cov[:, col] * organs[:, col].mean(-1))[:, None]
    parts = _pool_weights(core, p)[:, None, :] * torch.cat([blood[..., None], tissues], -1)
    return parts * inputs.fraction_mask[..., None]


def pool_mean_dose_gy(core: RecirculationKinetics, inputs: KineticsInputs,
                      p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean dose per fraction to the body's lymphocytes at their equilibrium shares.

    ``f_B mean_q D_B,q + (1 - f_B) sum_c w_c cov_c mean_q D_c,q``: the share of the pool in
    the field weighted by the dose it gets there; divided by the fraction dose, the
    dose-weighted share of the pool in the field.

    Args:
        core: The recirculation core (its tissue table and survival).
        inputs: The batch.
        p: Physical parameters; only ``blood_share`` is used.

    Returns:
        ``[B, K]`` Gy per fraction; 0 at padded fractions.
    """
    return pool_dose_parts_gy(core, inputs, p).sum(-1)


def pool_fraction_survival(core: RecirculationKinetics, inputs: KineticsInputs,
                           p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Share of the whole pool, at its equilibrium shares, that survives each fraction.

    ``f_B S_B + (1 - f_B) sum_c w_c S_c`` with the per-fraction survivals of
    :meth:`RecirculationKinetics.fraction_survival` (coverage, beta and the Lea-Catcheside
    factor included). Its product over a course is the pool's survival if every fraction found the pool back at its
    equilibrium shares (complete refill) and nothing recovered in between.

    Args:
        core: The recirculation core (its tissue table and survival).
        inputs: The batch.
        p: Physical parameters (``recirculation_params``).

    Returns:
        ``[B, K]`` (1 at padded fractions).
    """
    s_blood, s_tis, _ = core.fraction_survival(inputs, p)
    s_pool = (_pool_weights(core, p)[:, None, :] * torch.cat([s_blood[..., None], s_tis], -1)).sum(-1)
    return torch.where(inputs.fraction_mask, s_pool, torch.ones_like(s_pool))
