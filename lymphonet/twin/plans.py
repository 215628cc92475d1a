"""Analytic dose plans for phantoms: photon (3D-CRT, IMRT, VMAT) and particle (proton, carbon).

No planner and no transport: each beam is a coplanar field shaped to the target's projection (plus
a margin) with a Gaussian penumbra, and a depth-dose curve along straight rays from the body
surface (geometric depth: tissue heterogeneity is ignored). The approximations, documented so nobody
mistakes the result for dosimetry:

* **Photons** (a 6 MV-like beam): surface dose about 20% rising to the maximum over ~1 cm, then
  ``exp(-mu d)`` with ``mu = 0.0047 /mm`` (a percentage depth dose of about 67% at 10 cm, which
  folds the inverse-square fall-off in); the beam exits the patient. Scatter is the summed primary
  blurred by a wide Gaussian (sigma 20 mm, weight 0.25): it makes the low-dose bath around the
  fields. 3D-CRT uses few fields with a 6 mm block margin; IMRT uses more fields (2 mm margin: modulation trims the edges);
  VMAT is an arc sampled every 15 degrees. More beams spread the same integral dose over a larger
  volume at a lower level (the "low-dose bath").
* **Particles**: an entrance plateau (relative dose rising with the modulation width, about
  0.4-0.85 for protons and 0.25-0.55 RBE-weighted for carbon) up to the target's proximal edge
  along each ray (minus 5 mm), a flat spread-out Bragg peak over the target, an error-function
  distal fall-off at the target's distal edge plus 3 mm (range straggling sigma 1.2% of the range
  + 1 mm for protons, half of that for carbon), no exit dose (carbon keeps a fragmentation tail of
  4% decaying over 3 cm). Lateral penumbra sigma 4 mm (protons) or 2.5 mm (carbon).
* Every plan is normalised so the mean dose of ``target`` equals the prescription (total course
  dose). With an ``elective`` dose level (simultaneous integrated boost), two beam sets (aimed at
  ``target`` and at ``target`` + ``target_elective``) are mixed so each region gets its own mean.
  Doses are RBE-weighted Gy for particles (proton RBE 1.1 implied by the prescription).
* Beam-on time per fraction (:func:`default_beam_on_time_s`) is a mid-range value for the technique at
  2 Gy per fraction, growing with the dose per fraction (flattening-filter-free dose rate assumed
  above 4 Gy per fraction for photons).

All of it is SIMULATED dose, fine for demos and method tests, never for clinical decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter
from scipy.special import erf

from lymphonet.errors import InputError
from lymphonet.io.volume import StructureSet, Volume

__all__ = [
    "BEAM_ON_TIME_S",
    "PARTICLES",
    "PHOTON_TECHNIQUES",
    "Plan",
    "arc_angles",
    "beam_dose",
    "default_beam_on_time_s",
    "make_plan",
]

PHOTON_TECHNIQUES = ("3dcrt", "imrt", "vmat")
PARTICLES = ("proton", "carbon")

#: Typical beam-on time per fraction (s) at 2 Gy per fraction, by technique (mid-range values for
#: simulation only: about 200-300 MU at 400-600 MU/min for 3D-CRT, 2-3 times more MU for IMRT,
#: two arcs for VMAT, pencil-beam scanning with energy-layer switching for particles).
BEAM_ON_TIME_S = {"3dcrt": 40.0, "imrt": 100.0, "vmat": 75.0, "proton": 120.0, "carbon": 150.0}

_MU_PER_MM = 0.0047
_SCATTER_SIGMA_MM, _SCATTER_WEIGHT = 20.0, 0.25
_ARC_STEP_DEG = 15.0


@dataclass(frozen=True)
class Plan:
    """A simulated treatment plan: total course dose on the phantom grid plus its schedule.

    Attributes:
        dose: Total course dose (Gy; RBE-weighted for particles), shape ``(nz, ny, nx)``.
        modality: ``photon``, ``proton`` or ``carbon``.
        technique: ``3dcrt``, ``imrt``, ``vmat`` (photons) or the particle name.
        n_fractions: Number of fractions.
        dose_per_fraction_gy: Prescription per fraction to ``target`` (Gy).
        beam_on_time_s: Beam-on time per fraction (s).
        beam_angles_deg: Gantry angles (0 = from anterior, 90 = from the patient's left).
        site: Treatment site name, if planned from the site table.
        schedule: Schedule name (e.g. ``"conventional"``, ``"sbrt"``), if known.
        concurrent_chemo: Whether chemotherapy is given concurrently.
        chemo_regimen: Regimen name or ``None``.
    """

    dose: Volume
    modality: str
    technique: str
    n_fractions: int
    dose_per_fraction_gy: float
    beam_on_time_s: float
    beam_angles_deg: tuple[float, ...]
    site: str | None = None
    schedule: str | None = None
    concurrent_chemo: bool = False
    chemo_regimen: str | None = None

    @property
    def prescription_gy(self) -> float:
        """Total prescribed dose to the target (Gy)."""
        return self.n_fractions * self.dose_per_fraction_gy


def default_beam_on_time_s(technique: str, dose_per_fraction_gy: float) -> float:
    """Simulated beam-on time per fraction (s) for a technique and dose per fraction.

    Scales linearly with the dose per fraction from :data:`BEAM_ON_TIME_S` (2 Gy); photon
    fractions above 4 Gy are assumed delivered flattening-filter-free at 2.3 times the dose rate;
    particle delivery is dominated by energy-layer switching, so it grows with the square root.
    """
    if technique not in BEAM_ON_TIME_S:
        raise InputError(f"unknown technique {technique!r}; expected one of "
                         f"{sorted(BEAM_ON_TIME_S)}", field="technique")
    ratio = float(dose_per_fraction_gy) / 2.0
    if technique in PARTICLES:
        return BEAM_ON_TIME_S[technique] * np.sqrt(ratio)
    fff = 2.3 if dose_per_fraction_gy > 4.0 else 1.0
    return BEAM_ON_TIME_S[technique] * ratio / fff


def arc_angles(start_deg: float, stop_deg: float, step_deg: float = _ARC_STEP_DEG
               ) -> tuple[float, ...]:
    """Control points of a clockwise arc from ``start_deg`` to ``stop_deg`` (inclusive), mod 360."""
    span = (stop_deg - start_deg) % 360.0 or 360.0
    n = max(1, round(span / step_deg))
    closed = np.isclose(span, 360.0)
    pts = start_deg + np.arange(n + (0 if closed else 1)) * (span / n)
    return tuple(float(a % 360.0) for a in pts)


class _Rays:
    """Coplanar ray geometry of one beam over the body voxels.

    Rays are indexed by (slice, lateral bin of width ``min(dx, dy)``); ``s`` is the coordinate
    along the beam (mm, growing in the direction of travel) and ``depth`` the distance from the
    body surface along the ray.
    """

    def __init__(self, grid: Volume, angle_deg: float, body_idx: tuple):
        nz, ny, nx = grid.shape
        dx, dy, dz = grid.spacing_mm
        k, plane = body_idx[0], body_idx[1] * nx + body_idx[2]
        x = grid.origin_mm[0] + dx * np.arange(nx)
        y = grid.origin_mm[1] + dy * np.arange(ny)
        a = np.deg2rad(angle_deg)
        ux, uy = -np.sin(a), np.cos(a)  # anterior is -y: a beam from anterior travels to +y
        s2d = y[:, None] * uy + x[None, :] * ux
        lat2d = y[:, None] * ux - x[None, :] * uy
        self.step = min(dx, dy)
        lat_bin = np.round((lat2d - lat2d.min()) / self.step).astype(np.int64)
        self.n_lat = int(lat_bin.max()) + 1
        self.nz, self.dz = nz, dz
        self.s = s2d.ravel().take(plane)
        self.ray = k * self.n_lat + lat_bin.ravel().take(plane)
        self.n_rays = nz * self.n_lat
        self.s_entry = self.per_ray(self.s, None, np.minimum, np.inf)
        self.depth = self.s - self.s_entry[self.ray]

    def per_ray(self, values, where, fn, fill) -> np.ndarray:
        """Reduce ``values`` (per body voxel, optionally only ``where``) per ray with ``fn``."""
        out = np.full(self.n_rays, fill, dtype=float)
        if where is None:
            fn.at(out, self.ray, values)
        else:
            fn.at(out, self.ray[where], values[where])
        return out

    def image(self, per_ray: np.ndarray) -> np.ndarray:
        return per_ray.reshape(self.nz, self.n_lat)

    def fluence(self, target: np.ndarray, margin_mm: float, penumbra_mm: float) -> np.ndarray:
        """Per-ray fluence: the target's projection widened by ``margin_mm``, error-function edge.

        A ray bin stands for a strip ``step`` wide, so the field edge lies ``margin + step / 2``
        from the centre of the outermost bin that sees the target; the fluence falls off across
        that edge with a Gaussian penumbra of sigma ``penumbra_mm``.
        """
        hit = np.zeros(self.n_rays, bool)
        hit[self.ray[target]] = True
        dist = distance_transform_edt(~self.image(hit), sampling=(self.dz, self.step))
        edge = margin_mm + 0.5 * self.step
        return (0.5 * (1.0 + erf((edge - dist) / (np.sqrt(2.0) * penumbra_mm)))).ravel()

    def fill_from_nearest(self, per_ray: np.ndarray) -> np.ndarray:
        """Replace non-finite ray values by the value of the nearest ray that has one."""
        img = self.image(per_ray)
        bad = ~np.isfinite(img)
        if not bad.any() or bad.all():
            return per_ray
        idx = distance_transform_edt(bad, sampling=(self.dz, self.step), return_distances=False,
                                     return_indices=True)
        return img[tuple(idx)].ravel()


def beam_dose(structures: StructureSet, angle_deg: float, modality: str, *,
              technique: str = "imrt", target: np.ndarray | None = None,
              body_idx: tuple | None = None) -> np.ndarray:
    """Relative dose of one beam over the body voxels (photons: primary only, no scatter).

    Args:
        structures: Phantom with ``body`` and ``target``.
        angle_deg: Gantry angle (0 = from anterior, 90 = from the patient's left).
        modality: ``photon``, ``proton`` or ``carbon``.
        technique: Photon technique (sets the aperture margin).
        target: Mask to aim at instead of ``structures["target"]``.
        body_idx: ``np.nonzero(structures["body"])``, if already computed.

    Returns:
        Dose (arbitrary scale) of each body voxel, shape ``(n_body,)``, in ``np.nonzero(body)`` order.
    """
    if body_idx is None:
        body_idx = np.nonzero(structures["body"])
    tgt = (structures["target"] if target is None else target)[body_idx]
    rays = _Rays(structures.grid, angle_deg, body_idx)
    depth = rays.depth
    if modality == "photon":
        fluence = rays.fluence(tgt, 6.0 if technique == "3dcrt" else 2.0, 3.0)
        buildup = 1.0 - 0.8 * np.exp(-depth / 5.0)
        return fluence[rays.ray] * buildup * np.exp(-_MU_PER_MM * depth)
    if modality not in PARTICLES:
        raise InputError(f"unknown modality {modality!r}; expected photon, proton or carbon",
                         field="modality")
    proton = modality == "proton"
    fluence = rays.fluence(tgt, 5.0, 4.0 if proton else 2.5)
    s_prox = rays.fill_from_nearest(rays.per_ray(rays.s, tgt, np.minimum, np.inf))[rays.ray]
    s_dist = rays.fill_from_nearest(rays.per_ray(rays.s, tgt, np.maximum, -np.inf))[rays.ray]
    rng_mm = np.maximum(s_dist - rays.s_entry[rays.ray], 1.0)
    width = np.clip((s_dist - s_prox + 10.0) / rng_mm, 0.0, 1.0)
    plateau = 0.4 + 0.45 * width if proton else 0.25 + 0.3 * width
    sigma_d = (0.012 * rng_mm + 1.0) * (1.0 if proton else 0.5)
    rise = 0.5 * (1.0 + erf((rays.s - (s_prox - 5.0)) / (np.sqrt(2.0) * 3.0)))
    fall = 0.5 * (1.0 - erf((rays.s - (s_dist + 3.0)) / (np.sqrt(2.0) * sigma_d)))
    dose = (plateau + (1.0 - plateau) * rise) * fall
    if not proton:
        beyond = np.clip(rays.s - s_dist - 3.0, 0.0, None)
        dose = dose + 0.04 * np.exp(-beyond / 30.0) * (beyond > 0)
    return fluence[rays.ray] * dose


def _beam_set(structures, angles, modality, technique, target) -> np.ndarray:
    """Summed dose of a set of equally weighted beams on the full grid (photons with scatter)."""
    body = structures["body"]
    body_idx = np.nonzero(body)
    total = np.zeros(body.shape, np.float64)
    for a in angles:
        total[body_idx] += beam_dose(structures, a, modality, technique=technique, target=target,
                                     body_idx=body_idx)
    if modality == "photon":
        sig = [_SCATTER_SIGMA_MM / d for d in structures.grid.spacing_mm[::-1]]
        total = (1.0 - _SCATTER_WEIGHT) * total + _SCATTER_WEIGHT * gaussian_filter(total, sig)
    return np.where(body, total, 0.0)


_DEFAULT_ANGLES = {"3dcrt": (0.0, 90.0, 180.0, 270.0),
                   "imrt": tuple(float(a) for a in np.linspace(0, 360, 7, endpoint=False)),
                   "vmat": arc_angles(180.0, 180.0), "proton": (180.0, 135.0),
                   "carbon": (180.0, 135.0)}


# size: keyword options mirror the Plan fields they set (site, schedule, chemo are only recorded)
def make_plan(
    structures: StructureSet,
    *,
    modality: str = "photon",
    technique: str | None = None,
    n_fractions: int = 28,
    dose_per_fraction_gy: float = 1.8,
    beam_angles_deg: tuple[float, ...] | None = None,
    beam_on_time_s: float | None = None,
    elective_dose_per_fraction_gy: float | None = None,
    site: str | None = None,
    schedule: str | None = None,
    concurrent_chemo: bool = False,
    chemo_regimen: str | None = None,
) -> Plan:
    """Plan a phantom: sum of beams, normalised to the prescription (mean target dose).

    Args:
        structures: Phantom masks with ``body`` and ``target`` (and ``target_elective`` for a
            simultaneous integrated boost).
        modality: ``photon``, ``proton`` or ``carbon``.
        technique: ``3dcrt``, ``imrt`` or ``vmat`` for photons (default ``imrt``); ignored for
            particles (the technique is the particle name).
        n_fractions: Number of fractions (>= 1).
        dose_per_fraction_gy: Prescription per fraction to ``target`` (Gy, RBE for particles).
        beam_angles_deg: Gantry angles (VMAT: the arc's control points, see :func:`arc_angles`);
            defaults depend on the technique.
        beam_on_time_s: Beam-on time per fraction; default :func:`default_beam_on_time_s`.
        elective_dose_per_fraction_gy: Dose per fraction to ``target_elective`` (mean); ``None``
            for a single dose level.
        site, schedule, concurrent_chemo, chemo_regimen: Recorded on the plan.

    Returns:
        The plan, total course dose in Gy on the phantom grid, zero outside ``body``.

    Raises:
        InputError: unknown modality or technique, missing or empty ``target``, bad fractionation.
    """
    technique = _checked_technique(structures, modality, technique, n_fractions,
                                   dose_per_fraction_gy)
    angles = tuple(float(a) for a in (beam_angles_deg or _DEFAULT_ANGLES[technique]))
    elective_gy = (None if elective_dose_per_fraction_gy is None
                   else n_fractions * elective_dose_per_fraction_gy)
    dose_gy = _prescribed_dose(structures, angles, modality, technique,
                               n_fractions * dose_per_fraction_gy, elective_gy)
    grid = structures.grid
    dose = Volume(dose_gy.astype(np.float32), grid.spacing_mm, grid.origin_mm, grid.direction,
                  "Gy", {"simulated": True, "modality": modality, "technique": technique})
    t_on = (beam_on_time_s if beam_on_time_s is not None
            else default_beam_on_time_s(technique, dose_per_fraction_gy))
    return Plan(dose, modality, technique, int(n_fractions), float(dose_per_fraction_gy),
                float(t_on), angles, site, schedule, bool(concurrent_chemo), chemo_regimen)


def _checked_technique(structures: StructureSet, modality: str, technique: str | None,
                       n_fractions: int, dose_per_fraction_gy: float) -> str:
    """The technique to plan with (photons: default ``imrt``; particles: the particle name),
    after checking modality, technique, fractionation and the ``body``/``target`` masks."""
    if modality not in ("photon",) + PARTICLES:
        raise InputError(f"unknown modality {modality!r}; expected photon, proton or carbon",
                         field="modality")
    technique = (technique or "imrt") if modality == "photon" else modality
    if technique not in _DEFAULT_ANGLES:
        raise InputError(f"unknown photon technique {technique!r}; expected one of "
                         f"{PHOTON_TECHNIQUES}", field="technique")
    if int(n_fractions) != n_fractions or n_fractions < 1 or not dose_per_fraction_gy > 0:
        raise InputError(f"need n_fractions >= 1 (whole) and dose per fraction > 0, got "
                         f"{n_fractions} x {dose_per_fraction_gy} Gy", field="schedule")
    for name in ("body", "target"):
        if name not in structures or not structures[name].any():
            raise InputError(f"the phantom has no (or an empty) {name!r} structure",
                             file=structures.source, field=name)
    return technique


def _prescribed_dose(structures: StructureSet, angles: tuple[float, ...], modality: str,
                     technique: str, rx_gy: float, elective_gy: float | None) -> np.ndarray:
    """Course dose (Gy) with mean ``rx_gy`` in ``target`` and, for a simultaneous integrated
    boost, mean ``elective_gy`` in ``target_elective`` (one level if that is unreachable)."""
    target = structures["target"]
    boost = _beam_set(structures, angles, modality, technique, target)
    if elective_gy is None or "target_elective" not in structures:
        return boost * (rx_gy / boost[target].mean())
    elective = structures["target_elective"] & ~target
    union = _beam_set(structures, angles, modality, technique, target | elective)
    m = np.array([[union[target].mean(), boost[target].mean()],
                  [union[elective].mean(), boost[elective].mean()]])
    a, b = np.linalg.solve(m, np.array([rx_gy, elective_gy]))
    if b < 0 or a < 0:  # the elective level is unreachable: fall back to one level
        a, b = 0.0, rx_gy / boost[target].mean()
    return a * union + b * boost
