"""Effects of *where* the dose falls on a simulated patient's kinetics (SIMULATED truth).

``theta_dose`` is one of the three parts of a simulated patient's theta (:mod:`.truth`): effects
beyond what any kinetics core computes from organ dose. :func:`dose_drivers` summarises where the
course dose falls (thresholded marrow V20, the posterior-midline (vertebral) marrow, the central
node stations, the spleen, the low-dose bath, the reactive nodes); :class:`DoseEffects` turns
the summaries into theta shifts. Some drivers need the dose map and the label map (vertebral
marrow, per-station node dose); the **reactive nodes** driver is the one only the dose image
carries: where the patient's cluster of enlarged nodes lies
(:func:`~lymphonet.twin.phantoms.add_reactive_nodes`) varies from patient to patient in every
site, it is a small part of the ``lymph_nodes`` mask, and no DVH summary of the canonical organs
records its dose (``tests/twin/test_image_only_effect.py`` measures how little of it a DVH model
recovers).

Every coefficient is a lymphonet assumption; :func:`describe_dose_effects` writes them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lymphonet.io.volume import StructureSet
from lymphonet.kinetics.params import PARAM_NAMES
from lymphonet.twin.covariates import effect_vector

__all__ = ["DRIVER_NAMES", "NODE_STATION_WEIGHT", "DoseEffects", "describe_dose_effects",
           "dose_drivers", "dose_shift"]

#: Node stations whose high-dose volume counts fully (central stations, where most of the
#: recirculating pool passes); the others count half. Lymphonet assumption.
NODE_STATION_WEIGHT = {"lymph_nodes_mediastinal": 1.0, "lymph_nodes_para_aortic": 1.0,
                       "lymph_nodes_cervical": 0.5, "lymph_nodes_pelvic": 0.5}
DRIVER_NAMES = ("marrow_v20", "vertebral_marrow_v30", "node_station_v40", "spleen_mean_gy",
                "body_v5", "reactive_nodes_mean_gy")


def _posterior_midline(marrow: np.ndarray, body: np.ndarray, grid) -> np.ndarray:
    """Marrow voxels within 25 mm of the body's left-right midline and >= 20 mm posterior of the
    body's centre on their slice (vertebral bodies, sacrum, posterior skull)."""
    _nz, ny, nx = marrow.shape
    dx, dy, _ = grid.spacing_mm
    sx, sy = np.sign(np.diag(grid.direction)[:2])
    x = sx * dx * np.arange(nx)
    y = sy * dy * np.arange(ny)
    count = body.sum((1, 2)).astype(float)
    safe = np.maximum(count, 1.0)
    xc = (body.sum(1) * x).sum(1) / safe  # [nz]
    yc = (body.sum(2) * y).sum(1) / safe
    near_x = np.abs(x[None, :] - xc[:, None]) <= 25.0  # [nz, nx]
    post_y = (y[None, :] - yc[:, None]) >= 20.0  # [nz, ny] (LPS: +y is posterior)
    return marrow & near_x[:, None, :] & post_y[:, :, None] & (count > 0)[:, None, None]


def _mean_in(dose_gy: np.ndarray, mask) -> float:
    return float(dose_gy[mask].mean()) if mask is not None and mask.any() else 0.0


def dose_drivers(dose_gy: np.ndarray, structures: StructureSet) -> dict[str, float]:
    """Summaries of where the course dose falls that drive ``theta_dose``.

    Args:
        dose_gy: ``(nz, ny, nx)`` total course dose (Gy) on the structures' grid.
        structures: The phantom (needs ``body``; other organs optional).

    Returns:
        ``marrow_v20`` (share of bone marrow >= 20 Gy), ``vertebral_marrow_v30`` (share of the
        posterior-midline marrow >= 30 Gy), ``node_station_v40`` (station-weighted share of node
        volume >= 40 Gy), ``spleen_mean_gy`` (course mean spleen dose), ``body_v5`` (share of
        the body >= 5 Gy) and ``reactive_nodes_mean_gy`` (course mean dose of the reactive nodes);
        0 where the structure is absent.
    """
    def share_above(mask, level):
        return float((dose_gy[mask] >= level).mean()) if mask is not None and mask.any() else 0.0

    masks = structures.masks
    marrow, body = masks.get("bone_marrow"), masks["body"]
    vert = _posterior_midline(marrow, body, structures.grid) if marrow is not None else None
    num = den = 0.0
    for name, w in NODE_STATION_WEIGHT.items():
        m = masks.get(name)
        if m is not None and m.any():
            num += w * float((dose_gy[m] >= 40.0).sum())
            den += float(m.sum())
    return {
        "marrow_v20": share_above(marrow, 20.0),
        "vertebral_marrow_v30": share_above(vert, 30.0),
        "node_station_v40": num / den if den else 0.0,
        "spleen_mean_gy": _mean_in(dose_gy, masks.get("spleen")),
        "body_v5": share_above(body, 5.0),
        "reactive_nodes_mean_gy": _mean_in(dose_gy, masks.get("lymph_nodes_reactive")),
    }


@dataclass(frozen=True)
class DoseEffects:
    """Dose-location effects on theta (additive, theta units; lymphonet assumptions).

    * marrow V20 above ~10%: ``s = sigmoid((V20 - marrow_v20_threshold) / marrow_v20_width)``
      scales ``marrow`` (a threshold response: irradiated marrow regenerates lymphopoiesis
      slowly);
    * vertebral marrow V30: ``min(V30 / 0.3, 1)`` scales ``vertebral``;
    * central node stations: station-weighted V40 ``min(V / 0.3, 1)`` scales ``nodes``;
    * spleen: ``(min(mean spleen dose, 15 Gy) - spleen_reference_gy) / 10 Gy`` scales ``spleen``;
    * low-dose bath: body V5 above ``bath_reference_v5`` scales ``bath``;
    * reactive nodes: ``min(mean dose / reactive_reference_gy, 1.5)`` scales ``reactive``
      (enlarged nodes beside a tumour hold many more lymphocytes than their share of the node
      volume; no kinetics core knows which nodes are enlarged).

    The class defaults act on the two-population core's parameters; :meth:`for_core` gives the
    defaults of another truth core. The spleen and bath terms are centred so that they spread
    patients around the population rather than shift the whole cohort.
    """

    marrow_v20_threshold: float = 0.10
    marrow_v20_width: float = 0.02
    marrow: dict[str, float] = field(default_factory=lambda: {
        "slow_recovery_days": 0.3, "baseline_loss": 0.2})
    vertebral: dict[str, float] = field(default_factory=lambda: {"slow_recovery_days": 0.3})
    nodes: dict[str, float] = field(default_factory=lambda: {"baseline_loss": 0.3})
    spleen: dict[str, float] = field(default_factory=lambda: {"alpha_per_gy": 0.2})
    bath: dict[str, float] = field(default_factory=lambda: {"blood_share": 1.0})
    reactive: dict[str, float] = field(default_factory=lambda: {"alpha_per_gy": 0.8})
    spleen_reference_gy: float = 3.0
    bath_reference_v5: float = 0.4
    reactive_reference_gy: float = 30.0

    @classmethod
    def for_core(cls, core: str) -> DoseEffects:
        """Default effects on a truth core's parameters (recirculation: marrow dose slows marrow
        recovery and its production capacity, dosed central nodes slow reconstitution, the
        spleen, the bath and the reactive nodes raise the effective radiosensitivity)."""
        if core == "two_population":
            return cls()
        return cls(marrow={"marrow_recovery_days": 0.3, "stem_alpha_per_gy": 0.3},
                   vertebral={"marrow_recovery_days": 0.3},
                   nodes={"turnover_per_day": -0.3}, spleen={"alpha_per_gy": 0.2},
                   bath={"alpha_per_gy": 1.0}, reactive={"alpha_per_gy": 0.8})


def dose_shift(drivers: dict[str, float], effects: DoseEffects | None = None,
               names: tuple[str, ...] = PARAM_NAMES) -> np.ndarray:
    """``theta_dose`` ``[len(names)]`` from :func:`dose_drivers` output (``names``: the truth
    core's parameter names, default the two-population core's)."""
    e = effects or DoseEffects()
    s = 1.0 / (1.0 + np.exp(-(drivers["marrow_v20"] - e.marrow_v20_threshold)
                            / e.marrow_v20_width))
    out = effect_vector(e.marrow, float(s), names)
    out += effect_vector(e.vertebral, min(drivers["vertebral_marrow_v30"] / 0.3, 1.0), names)
    out += effect_vector(e.nodes, min(drivers["node_station_v40"] / 0.3, 1.0), names)
    out += effect_vector(e.spleen, (min(drivers["spleen_mean_gy"], 15.0)
                                    - e.spleen_reference_gy) / 10.0, names)
    out += effect_vector(e.bath, drivers["body_v5"] - e.bath_reference_v5, names)
    out += effect_vector(e.reactive, min(drivers.get("reactive_nodes_mean_gy", 0.0)
                                         / e.reactive_reference_gy, 1.5), names)
    return out


def describe_dose_effects(dose: DoseEffects) -> str:
    """Markdown lines of the dose-location effects."""
    def fmt(d):
        return ", ".join(f"`{k}` {v:+g}" for k, v in d.items())

    return "\n".join([
        ("**Where the dose falls** `theta_dose` (lymphonet assumptions; the kinetics core "
         "already kills lymphocytes in blood and in the resident sites by their own dose, these "
         "are *extra* effects):"),
        (f"- marrow V20 (share of `bone_marrow` >= 20 Gy) above a threshold: "
         f"s = sigmoid((V20 - {dose.marrow_v20_threshold:g}) / {dose.marrow_v20_width:g}); "
         f"s x ({fmt(dose.marrow)})"),
        ("- vertebral marrow V30: share >= 30 Gy of the `bone_marrow` voxels within 25 mm of "
         "the body's left-right midline and >= 20 mm posterior of the body centre on their "
         f"slice (vertebrae, sacrum, occiput); min(V30 / 0.3, 1) x ({fmt(dose.vertebral)})"),
        "- central node stations: V40 of the node stations weighted "
        + ", ".join(f"`{k}` {v:g}" for k, v in NODE_STATION_WEIGHT.items())
        + f" (sum of weighted voxels >= 40 Gy / all station voxels); min(V / 0.3, 1) x "
          f"({fmt(dose.nodes)})",
        (f"- spleen: (min(mean spleen dose, 15 Gy) - {dose.spleen_reference_gy:g} Gy) / 10 Gy x "
         f"({fmt(dose.spleen)})"),
        (f"- low-dose bath: (body V5 - {dose.bath_reference_v5:g}) x ({fmt(dose.bath)})"),
        (f"- reactive nodes `lymph_nodes_reactive` (image only: a cluster of enlarged nodes "
         f"whose place beside the target varies by patient, a small part of `lymph_nodes`): "
         f"min(mean dose / {dose.reactive_reference_gy:g} Gy, 1.5) x ({fmt(dose.reactive)})"),
    ])
