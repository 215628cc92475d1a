"""Parametric adult phantoms built from ellipsoids, cylinders and shells (SIMULATED anatomy).

One whole-body cartoon of a reference adult male (176 cm, BMI 22) is stored as a table of simple
shapes; a phantom is that table scaled to a person (sex, height, BMI), optionally jittered by a
random generator, and rasterised on a grid that covers one *region* (``brain``, ``head_neck``,
``thorax``, ``abdomen``, ``pelvis``), like a CT scan of that region. The shapes are cartoons, not
anatomy: sizes and positions are chosen so that organ volumes and the dose an organ receives from a
typical plan fall in realistic ranges.

The person's scaling (height, BMI, sex) is documented in :mod:`.anatomy`.

Overlaps are resolved by a fixed priority (skeleton and vessels over soft organs, lungs over the
liver dome), so organ masks never overlap each other; the target and the lymph-node station masks
(``lymph_nodes_<station>``) are separate structures that overlap organs, as clinical contours do.

Coordinates: patient LPS in mm; x to the patient's left, y posterior, z superior with z = 0 at the
vertex of the scaled person. Arrays follow :class:`~lymphonet.io.volume.Volume` (``(nz, ny, nx)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt

from lymphonet.dosimetry.red_marrow import REFERENCE_SITE_VOLUME_CC
from lymphonet.errors import InputError
from lymphonet.io.volume import StructureSet, Volume
from lymphonet.twin.anatomy import (
    ANATOMY,
    COMPOSITES,
    FEMALE_ONLY,
    JITTERED,
    MALE_ONLY,
    REF_BMI,
    REF_HEIGHT_CM,
    Person,
    Shape,
)

__all__ = ["REF_HEIGHT_CM", "REGIONS", "Shape", "TargetSpec", "make_phantom", "organ_volumes_cc",
           "thorax_phantom"]

#: Region -> (top, bottom) z of the scan in reference-male mm (vertex = 0, negative downwards).
REGIONS: dict[str, tuple[float, float]] = {
    "brain": (15.0, -245.0),
    "head_neck": (-110.0, -390.0),
    "thorax": (-250.0, -730.0),
    "abdomen": (-500.0, -800.0),
    "pelvis": (-720.0, -990.0),
}


@dataclass(frozen=True)
class TargetSpec:
    """How to build the ``target`` structure of a phantom.

    Attributes:
        shapes: Solids in reference-male coordinates (scaled with the person like the organs and
            jittered together when an rng is given).
        organs: Phantom structures whose union joins the target (e.g. ``"brain"``,
            ``"lymph_nodes_pelvic"``, ``"breast_left"``).
        margin_mm: Isotropic margin added to the union (CTV -> PTV), mm.
    """

    shapes: tuple[Shape, ...] = ()
    organs: tuple[str, ...] = ()
    margin_mm: float = 0.0


def _check_person(sex: str, height_cm: float, bmi: float) -> None:
    if sex not in ("M", "F"):
        raise InputError(f"sex must be 'M' or 'F', got {sex!r}", field="sex")
    if not 130.0 <= float(height_cm) <= 210.0:
        raise InputError(f"height must be 130-210 cm for a phantom, got {height_cm}",
                         field="height_cm")
    if not 15.0 <= float(bmi) <= 45.0:
        raise InputError(f"BMI must be 15-45 kg/m^2 for a phantom, got {bmi}", field="bmi")


def _grid(person: Person, region: str, spacing_mm) -> tuple[Volume, tuple[np.ndarray, ...]]:
    """Grid covering ``region`` of the person's body; returns it and 1D axes (x, y, z) in mm."""
    top, bottom = (v * person.s_z for v in REGIONS[region])
    dx, dy, dz = spacing_mm
    zs = np.linspace(top, bottom, 200)
    trunk_z = zs[person.in_trunk(zs)]
    half_x, y_lo, y_hi = 0.0, 0.0, 0.0
    if trunk_z.size:
        rx, ry, cy = person.trunk(trunk_z)
        half_x, y_lo, y_hi = rx.max(), (cy - ry).min(), (cy + ry).max()
    for head in person.head():
        if top >= head.centre_mm[2] - head.radii_mm[2]:
            half_x = max(half_x, head.radii_mm[0])
            y_lo = min(y_lo, head.centre_mm[1] - head.radii_mm[1])
            y_hi = max(y_hi, head.centre_mm[1] + head.radii_mm[1])
    if region in ("thorax", "abdomen"):
        for _, b in person.breasts():
            y_lo = min(y_lo, b.centre_mm[1] - b.radii_mm[1])
    nx = int(np.ceil((2 * half_x + 20) / dx)) + 1
    ny = int(np.ceil((y_hi - y_lo + 20) / dy)) + 1
    nz = int(np.ceil((top - bottom) / dz)) + 1
    origin = (-(nx - 1) * dx / 2, (y_lo + y_hi) / 2 - (ny - 1) * dy / 2, bottom)
    axes = tuple(origin[a] + spacing_mm[a] * np.arange(n) for a, n in enumerate((nx, ny, nz)))
    return Volume(np.zeros((nz, ny, nx), np.float32), spacing_mm, origin, units="label"), axes


def _paint(label: np.ndarray, value: int, shape: Shape, axes) -> None:
    """Set ``label`` to ``value`` inside ``shape``, evaluating only its bounding box."""
    x, y, z = axes
    idx = []
    for ax, c, r in zip((x, y, z), shape.centre_mm, shape.radii_mm):
        lo, hi = np.searchsorted(ax, [c - r, c + r])
        idx.append(slice(int(lo), int(hi)))
    sx, sy, sz = idx
    if sx.start >= sx.stop or sy.start >= sy.stop or sz.start >= sz.stop:
        return
    inside = shape.mask(x[None, None, sx], y[None, sy, None], z[sz, None, None])
    label[sz, sy, sx][inside] = value


def _jitter(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Random shift (mm, sd 3, within +-5) and size factor (sd 4%, within 0.92-1.08)."""
    return (np.clip(rng.normal(0.0, 3.0, 3), -5.0, 5.0),
            float(np.clip(rng.normal(1.0, 0.04), 0.92, 1.08)))


def _dilate(mask: np.ndarray, margin_mm: float, spacing_mm) -> np.ndarray:
    if margin_mm <= 0 or not mask.any():
        return mask
    dist = distance_transform_edt(~mask, sampling=tuple(spacing_mm[::-1]))
    return dist <= margin_mm


def make_phantom(region: str, *, sex: str = "M", height_cm: float | None = None,
                 bmi: float = REF_BMI, spacing_mm: tuple[float, float, float] = (5.0, 5.0, 5.0),
                 rng: np.random.Generator | None = None,
                 target: TargetSpec | None = None,
                 elective: TargetSpec | None = None) -> StructureSet:
    """A parametric adult phantom of one body region (SIMULATED anatomy).

    Args:
        region: One of :data:`REGIONS` (``brain``, ``head_neck``, ``thorax``, ``abdomen``,
            ``pelvis``).
        sex: ``"M"`` or ``"F"``.
        height_cm: Standing height, cm (130-210); default the ICRP-89 reference (176 / 163 cm).
        bmi: Body-mass index, kg/m^2 (15-45); sets the fat layer, hence the girth.
        spacing_mm: Voxel size ``(dx, dy, dz)``, mm.
        rng: If given, soft-organ positions (sd 3 mm) and sizes (sd 4%) and the target are
            jittered (the skeleton, brain and vessels stay put).
        target: How to build the ``"target"`` structure; ``None`` for no target.
        elective: How to build ``"target_elective"`` (an elective, lower-dose target such as
            lymph-node stations; the ``target`` voxels are removed from it); ``None`` for none.

    Returns:
        Masks ``(nz, ny, nx)`` for every organ with at least one voxel in the region: canonical
        organs (``body``, ``lungs``/``lung_left``/``lung_right``, ``heart``, ``great_vessels`` and its
        parts, ``esophagus``, ``liver``, ``spleen``, ``kidneys``, ``stomach``, ``pancreas``, ``bowel``,
        ``bladder``, ``brain``, ``bone_marrow``, ``lymph_nodes``, ``thyroid``, ...), the lymph-node
        stations ``lymph_nodes_<cervical|mediastinal|para_aortic|pelvic>``, sex-specific organs
        (``prostate``; ``uterus``, ``cervix``), ``breast_left``/``breast_right`` where present, and
        ``target`` (and ``target_elective``). The grid's metadata records the person and ``simulated: True``.

    Raises:
        InputError: unknown region, sex out of ``M``/``F``, height or BMI out of range, target
            organ not in the phantom.
    """
    if region not in REGIONS:
        raise InputError(f"unknown region {region!r}; expected one of {sorted(REGIONS)}",
                         field="region")
    height_cm = REF_HEIGHT_CM.get(sex, 176.0) if height_cm is None else height_cm
    _check_person(sex, height_cm, bmi)
    spacing_mm = tuple(float(s) for s in spacing_mm)
    person = Person.of(sex, height_cm, bmi)
    grid, axes = _grid(person, region, spacing_mm)
    masks = _organ_masks(person, axes, grid.shape, rng)
    if target is not None:
        masks["target"] = _target_mask(target, masks, person, grid, axes, rng)
    if elective is not None:
        el = _target_mask(elective, masks, person, grid, axes, rng)
        masks["target_elective"] = el & ~masks["target"] if "target" in masks else el
    meta = {"simulated": True, "region": region, "sex": sex, "height_cm": float(height_cm),
            "bmi": float(bmi),
            # whole bone sites of this person, for the red-marrow share of a cut site
            "red_marrow_site_volume_cc": {
                site: round(v * person.volume_scale(f"bone_marrow_{site}"), 1)
                for site, v in REFERENCE_SITE_VOLUME_CC.items()}}
    grid = Volume(grid.array, grid.spacing_mm, grid.origin_mm, units="label", metadata=meta)
    return StructureSet(masks, grid, source=f"simulated:{region}_phantom")


def _organ_masks(person: Person, axes, shape: tuple[int, int, int],
                 rng: np.random.Generator | None) -> dict[str, np.ndarray]:
    """``body``, the organs (exclusive, by table priority), breasts and composites."""
    breasts = person.breasts()
    masks: dict[str, np.ndarray] = {"body": _body_mask(person, axes, shape, breasts)}
    entries = _placed_anatomy(person, rng)
    names = ["breast_left", "breast_right"] + list(dict.fromkeys(n for n, _ in entries))
    codes = {n: i + 1 for i, n in enumerate(names)}
    label = np.zeros(shape, np.int16)
    for name, s in breasts + entries:
        _paint(label, codes[name], s, axes)
    for name in names:
        m = label == codes[name]
        if m.any():
            masks[name] = m
    for name, parts in COMPOSITES.items():
        have = [masks[p] for p in parts if p in masks]
        if have:
            masks[name] = np.logical_or.reduce(have)
    return masks


def _body_mask(person: Person, axes, shape: tuple[int, int, int],
               breasts: list[tuple[str, Shape]]) -> np.ndarray:
    """External contour: trunk loft + head + breasts."""
    x, y, z = axes
    rx, ry, cy = person.trunk(z)
    body = ((x[None, None, :] / rx[:, None, None]) ** 2
            + ((y[None, :, None] - cy[:, None, None]) / ry[:, None, None]) ** 2 <= 1.0)
    body &= person.in_trunk(z)[:, None, None]
    label = np.zeros(shape, np.int16)
    for s in person.head() + [b for _, b in breasts]:
        _paint(label, 1, s, axes)
    body |= label == 1
    return body


def _placed_anatomy(person: Person, rng: np.random.Generator | None) -> list[tuple[str, Shape]]:
    """The anatomy table scaled to the person (organs of the other sex left out), jittered if
    ``rng`` is given."""
    sex = person.sex
    entries = [(n, person.place(n, s)) for n, s in ANATOMY
               if not (sex == "M" and n in FEMALE_ONLY or sex == "F" and n in MALE_ONLY)]
    if rng is None:
        return entries
    jitter = {n: _jitter(rng) for n in JITTERED}
    return [(n, s.transformed(1.0, 1.0, 1.0, *jitter[n]) if n in jitter else s)
            for n, s in entries]


def _target_mask(spec: TargetSpec, masks: dict[str, np.ndarray], person: Person, grid: Volume,
                 axes, rng: np.random.Generator | None) -> np.ndarray:
    """Mask of a target spec: its shapes (scaled, jittered together) and organs, plus margin,
    within the body."""
    label = np.zeros(grid.shape, np.int16)
    shift, size = _jitter(rng) if rng is not None else (np.zeros(3), 1.0)
    for s in spec.shapes:
        _paint(label, 1, s.transformed(person.s_pos, person.s_pos, person.s_z, shift, size), axes)
    tgt = label == 1
    for organ in spec.organs:
        if organ not in masks:
            raise InputError(f"target organ {organ!r} is not in this phantom", field="target")
        tgt |= masks[organ]
    return _dilate(tgt, spec.margin_mm, grid.spacing_mm) & masks["body"]


#: Reactive lymph nodes: a cluster of enlarged nodes beside the tumour, a per-patient variant.
#: Its centre lies ``REACTIVE_OFFSET_MM`` (uniform, cranial or caudal at random) from the target's
#: centre along z, with sd ``REACTIVE_SD_MM`` (x, y) in-plane; radii ``REACTIVE_RADII_MM``
#: (x, y, z; about 12 cc). Lymphonet assumptions: where it lands, hence its dose, varies from
#: patient to patient in every site, and only the image shows it (it is a small part of the
#: ``lymph_nodes`` composite, which a DVH summary averages).
REACTIVE_OFFSET_MM = (30.0, 110.0)
REACTIVE_SD_MM = (20.0, 10.0)
REACTIVE_RADII_MM = (12.0, 12.0, 20.0)


def add_reactive_nodes(structures: StructureSet, rng: np.random.Generator) -> StructureSet:
    """The phantom with a patient's reactive node cluster ``lymph_nodes_reactive`` (within the
    body, outside the target), also added to the ``lymph_nodes`` composite.

    Args:
        structures: A phantom with ``body`` and ``target``.
        rng: Draws the cluster's position.
    """
    masks = dict(structures.masks)
    dx, dy, dz = structures.grid.spacing_mm
    idx = np.argwhere(masks["target"])  # (z, y, x)
    cz, cy, cx = idx.mean(0)
    lo, hi = REACTIVE_OFFSET_MM
    off_z = rng.choice((-1.0, 1.0)) * rng.uniform(lo, hi)
    off_x, off_y = rng.normal(0.0, REACTIVE_SD_MM[0]), rng.normal(0.0, REACTIVE_SD_MM[1])
    z, y, x = np.ogrid[: structures.grid.shape[0], : structures.grid.shape[1],
                       : structures.grid.shape[2]]
    rx, ry, rz = REACTIVE_RADII_MM
    inside = (((x - cx) * dx - off_x) / rx) ** 2 + (((y - cy) * dy - off_y) / ry) ** 2 \
        + (((z - cz) * dz - off_z) / rz) ** 2 <= 1.0
    node = inside & masks["body"] & ~masks["target"]
    masks["lymph_nodes_reactive"] = node
    masks["lymph_nodes"] = masks.get("lymph_nodes", np.zeros_like(node)) | node
    return StructureSet(masks, structures.grid, structures.empty, structures.source)


def organ_volumes_cc(structures: StructureSet) -> dict[str, float]:
    """Volume of every structure, cm^3."""
    cc = structures.grid.voxel_volume_cc
    return {n: float(structures[n].sum() * cc) for n in structures.names}


#: Distal-oesophagus target used by :func:`thorax_phantom` (PTV about 250-350 cc).
ESOPHAGUS_TARGET = TargetSpec(shapes=(Shape("cylinder", (8, 25, -505), (24, 24, 65)),),
                              margin_mm=0.0)


def thorax_phantom(*, spacing_mm: tuple[float, float, float] = (5.0, 5.0, 5.0), sex: str = "M",
                   height_cm: float | None = None, bmi: float = REF_BMI,
                   rng: np.random.Generator | None = None) -> StructureSet:
    """A thorax phantom with a distal-oesophagus target (shortcut for :func:`make_phantom`)."""
    return make_phantom("thorax", sex=sex, height_cm=height_cm, bmi=bmi, spacing_mm=spacing_mm,
                        rng=rng, target=ESOPHAGUS_TARGET)
