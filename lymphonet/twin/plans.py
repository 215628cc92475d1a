"""Analytic dose plans for phantoms: photon (3D-CRT, IMRT/VMAT-like) and particle (proton, carbon).

No planner and no transport: each beam is a field shaped to the target's projection with a Gaussian
penumbra, and a depth-dose curve along straight rays from the body surface. The approximations
(documented so nobody mistakes them for dosimetry):

* Photons: primary ``exp(-mu d)`` after a short build-up (mu = 0.045 /cm, about a 6 MV beam's
  effective attenuation), plus a scatter term (the primary blurred by a wide Gaussian) that makes the
  low-dose bath; exit dose is kept (photons pass through). More beams spread the bath wider.
* Particles: entrance plateau (relative dose ``plateau``) up to the target's proximal edge along each
  ray, a flat spread-out Bragg peak over the target's depth range, an error-function distal fall-off
  (sigma a few mm) and no exit dose (carbon adds a small fragmentation tail).
* Every plan is normalised so the mean target dose equals the prescription (total course dose);
  doses are RBE-weighted Gy for particles (proton RBE 1.1 is implied by the prescription).

All of it is SIMULATED dose, fine for demos and method tests, never for clinical decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import erf

from lymphonet.io.volume import StructureSet, Volume

#: Typical beam-on time per fraction (s) by technique; delivery times differ widely between
#: machines, these are mid-range values used only when simulating.
BEAM_ON_TIME_S = {"3dcrt": 60.0, "imrt": 120.0, "vmat": 90.0, "proton": 120.0, "carbon": 150.0,
                  "sbrt": 240.0}


@dataclass(frozen=True)
class Plan:
    """A simulated treatment plan: total course dose on the phantom grid plus its schedule."""

    dose: Volume
    modality: str
    technique: str
    n_fractions: int
    dose_per_fraction_gy: float
    beam_on_time_s: float
    beam_angles_deg: tuple[float, ...]


def _ray_coordinates(grid: Volume, angle_deg: float):
    """Per-voxel coordinate along the beam (s, mm) and ray index (lateral bin, z) for an axial beam.

    The beam comes from gantry angle ``angle_deg`` (0 = from anterior, 90 = from the patient's left)
    and travels through the patient; ``s`` grows in the direction of travel.
    """
    nz, ny, nx = grid.shape
    dx, dy, dz = grid.spacing_mm
    x = grid.origin_mm[0] + dx * np.arange(nx)
    y = grid.origin_mm[1] + dy * np.arange(ny)
    a = np.deg2rad(angle_deg)
    # Anterior is -y in LPS; a beam from anterior travels towards +y.
    ux, uy = -np.sin(a), np.cos(a)
    yy, xx = np.meshgrid(y, x, indexing="ij")
    s = xx * ux + yy * uy
    lat = -xx * uy + yy * ux
    step = min(dx, dy)
    lat_bin = np.round((lat - lat.min()) / step).astype(np.int64)
    n_lat = int(lat_bin.max()) + 1
    ray = (np.arange(nz)[:, None, None] * n_lat + lat_bin[None]).astype(np.int64)
    return np.broadcast_to(s, grid.shape), ray, nz * n_lat, step


def _per_ray(values: np.ndarray, ray: np.ndarray, where: np.ndarray, n_rays: int, fn, fill):
    out = np.full(n_rays, fill, dtype=float)
    fn.at(out, ray[where], values[where])
    return out


def _aperture(target: np.ndarray, ray: np.ndarray, n_rays: int, nz: int, margin_px: float,
              penumbra_px: float) -> np.ndarray:
    """Fluence per ray: the target's projection, widened by a margin and blurred by a penumbra."""
    hit = np.zeros(n_rays)
    hit[np.unique(ray[target])] = 1.0
    hit = hit.reshape(nz, -1)
    if margin_px > 0:
        hit = (gaussian_filter(hit, margin_px) > 0.05).astype(float)
    return gaussian_filter(hit, penumbra_px).ravel()


def beam_dose(structures: StructureSet, angle_deg: float, modality: str) -> np.ndarray:
    """Relative dose of one beam (arbitrary scale), zero outside the body."""
    grid = structures.grid
    body, target = structures["body"], structures["target"]
    s, ray, n_rays, step = _ray_coordinates(grid, angle_deg)
    s_entry = _per_ray(s, ray, body, n_rays, np.minimum, np.inf)
    depth = np.clip(s - s_entry[ray], 0.0, None)
    nz = grid.shape[0]
    if modality == "photon":
        fluence = _aperture(target, ray, n_rays, nz, margin_px=5.0 / step, penumbra_px=4.0 / step)
        mu_per_mm = 0.0045
        buildup = 1.0 - np.exp(-depth / 5.0)
        primary = fluence[ray] * np.exp(-mu_per_mm * depth) * buildup
        scatter = gaussian_filter(primary, sigma=[30.0 / d for d in grid.spacing_mm[::-1]])
        dose = primary + 0.35 * scatter
    elif modality in ("proton", "carbon"):
        fluence = _aperture(target, ray, n_rays, nz, margin_px=3.0 / step, penumbra_px=2.5 / step)
        s_prox = _per_ray(s, ray, target, n_rays, np.minimum, np.inf)[ray]
        s_dist = _per_ray(s, ray, target, n_rays, np.maximum, -np.inf)[ray]
        has = np.isfinite(s_prox)
        # Rays that miss the target still carry penumbra fluence: give them the nearest range.
        s_dist = np.where(has, s_dist, s_entry[ray] + np.nanmedian(np.where(has, s_dist - s_entry[ray], np.nan)))
        s_prox = np.where(has, s_prox, s_dist)
        plateau, sigma_mm = (0.55, 3.0) if modality == "proton" else (0.35, 1.5)
        rel = np.where(s < s_prox - 5.0, plateau, 1.0)
        distal = 0.5 * (1.0 - erf((s - s_dist - 3.0) / (np.sqrt(2) * sigma_mm)))
        dose = fluence[ray] * rel * distal
        if modality == "carbon":
            tail = 0.04 * np.exp(-np.clip(s - s_dist, 0, None) / 30.0) * (s > s_dist)
            dose = dose + fluence[ray] * tail
    else:
        raise ValueError(f"unknown modality {modality!r}")
    return np.where(body, dose, 0.0)


def make_plan(
    structures: StructureSet,
    *,
    modality: str = "photon",
    technique: str | None = None,
    n_fractions: int = 28,
    dose_per_fraction_gy: float = 1.8,
    beam_angles_deg: tuple[float, ...] | None = None,
    beam_on_time_s: float | None = None,
) -> Plan:
    """Plan a phantom: sum of beams, normalised to the prescription (mean target dose).

    Args:
        structures: Phantom masks with ``body`` and ``target``.
        modality: ``photon``, ``proton`` or ``carbon``.
        technique: ``3dcrt``, ``imrt`` or ``vmat`` for photons (default ``imrt``); ignored for
            particles.
        n_fractions: Number of fractions.
        dose_per_fraction_gy: Prescription per fraction (Gy, RBE-weighted for particles).
        beam_angles_deg: Gantry angles; defaults depend on the technique.
        beam_on_time_s: Beam-on time per fraction; default :data:`BEAM_ON_TIME_S`.

    Returns:
        The plan, total course dose in Gy on the phantom grid.
    """
    if modality == "photon":
        technique = technique or "imrt"
        defaults = {"3dcrt": (0.0, 90.0, 180.0, 270.0),
                    "imrt": tuple(np.linspace(0, 360, 7, endpoint=False)),
                    "vmat": tuple(np.linspace(0, 360, 18, endpoint=False))}
    else:
        technique = modality
        defaults = {modality: (180.0, 135.0)}
    angles = tuple(float(a) for a in (beam_angles_deg or defaults[technique]))
    total = sum(beam_dose(structures, a, modality) for a in angles)
    target_mean = total[structures["target"]].mean()
    dose_gy = (total * (n_fractions * dose_per_fraction_gy / target_mean)).astype(np.float32)
    grid = structures.grid
    dose = Volume(dose_gy, grid.spacing_mm, grid.origin_mm, grid.direction, "Gy",
                  {"simulated": True, "modality": modality, "technique": technique})
    return Plan(dose, modality, technique, n_fractions, dose_per_fraction_gy,
                beam_on_time_s if beam_on_time_s is not None else BEAM_ON_TIME_S[technique], angles)
