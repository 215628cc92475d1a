"""Parametric adult phantoms built from ellipsoids, cylinders and shells (SIMULATED anatomy).

One whole-body cartoon of a reference adult male (176 cm, BMI 22) is stored as a table of simple
shapes; a phantom is that table scaled to a person (sex, height, BMI), optionally jittered by a
random generator, and rasterised on a grid that covers one *region* (``brain``, ``head_neck``,
``thorax``, ``abdomen``, ``pelvis``), like a CT scan of that region. The shapes are cartoons, not
anatomy: sizes and positions are chosen so that organ volumes and the dose an organ receives from a
typical plan fall in realistic ranges.

Scaling (documented approximations):

* Cranio-caudal lengths and positions scale with height / 176 cm (z is measured from the vertex);
  the head (brain, skull, parotids) scales only with ``(height / reference height) ** 0.3`` and, for
  women, the cube root of the ICRP-89 brain mass ratio (brain volume hardly follows body size).
* In-plane organ sizes and positions scale with ``sqrt(height / 176) * (BMI / 22) ** 0.1`` (lean
  frame); for women a further factor 0.96, and per-organ factors chosen so that a reference woman
  (163 cm) gets the female / male organ mass ratios of ICRP Publication 89 (ICRP 2002, Table 2.8:
  e.g. lungs 950 / 1200 g, heart 250 / 330 g, liver 1400 / 1800 g, brain 1300 / 1450 g).
* The body outline is a lean core (scaled like the organs) plus a subcutaneous fat layer whose
  thickness grows linearly with BMI (about 3-4.5 mm per BMI unit on the trunk, at least 3 mm), so
  girth follows BMI while the organs barely move. Women get breasts (sized with BMI).

Overlaps are resolved by a fixed priority (skeleton and vessels over soft organs, lungs over the
liver dome), so organ masks never overlap each other; the target and the lymph-node station masks
(``lymph_nodes_<station>``) are separate structures that overlap organs, as clinical contours do.

Coordinates: patient LPS in mm; x to the patient's left, y posterior, z superior with z = 0 at the
vertex of the scaled person. Arrays follow :class:`~lymphonet.io.volume.Volume` (``(nz, ny, nx)``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import distance_transform_edt

from lymphonet.errors import InputError
from lymphonet.io.volume import StructureSet, Volume

__all__ = ["REGIONS", "Shape", "TargetSpec", "make_phantom", "organ_volumes_cc", "thorax_phantom"]

#: Reference heights (cm) of the ICRP-89 reference adults; the anatomy table is the male one.
REF_HEIGHT_CM = {"M": 176.0, "F": 163.0}
_REF_BMI = 22.0

#: Region -> (top, bottom) z of the scan in reference-male mm (vertex = 0, negative downwards).
REGIONS: dict[str, tuple[float, float]] = {
    "brain": (15.0, -245.0),
    "head_neck": (-110.0, -390.0),
    "thorax": (-250.0, -730.0),
    "abdomen": (-500.0, -800.0),
    "pelvis": (-720.0, -990.0),
}


@dataclass(frozen=True)
class Shape:
    """A simple solid, axis-aligned, in mm.

    Kinds: ``ellipsoid`` (radii ``(rx, ry, rz)``); ``cylinder`` (elliptic z-cylinder, ``rz`` is the
    half length); ``shell`` (ellipsoid minus the ellipsoid ``thickness_mm`` smaller); ``tube``
    (elliptic-cylinder wall ``thickness_mm`` thick, optionally cut into z-stripes of period
    ``period_mm``, half solid: ribs).
    """

    kind: str
    centre_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    thickness_mm: float = 0.0
    period_mm: float = 0.0

    def transformed(self, s_pos: float, s_rad: float, s_z: float,
                    shift_mm=(0.0, 0.0, 0.0), size: float = 1.0) -> Shape:
        """Scaled (positions by ``s_pos``/``s_z``, radii by ``s_rad``/``s_z``), shifted, resized."""
        cx, cy, cz = self.centre_mm
        rx, ry, rz = self.radii_mm
        return replace(self,
                       centre_mm=(cx * s_pos + shift_mm[0], cy * s_pos + shift_mm[1],
                                  cz * s_z + shift_mm[2]),
                       radii_mm=(rx * s_rad * size, ry * s_rad * size, rz * s_z * size),
                       thickness_mm=self.thickness_mm * s_rad, period_mm=self.period_mm * s_z)

    def mask(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Inside test on broadcastable coordinate arrays (mm); returns a bool array."""
        cx, cy, cz = self.centre_mm
        rx, ry, rz = self.radii_mm
        u2 = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
        if self.kind in ("ellipsoid", "shell"):
            inside = u2 + ((z - cz) / rz) ** 2 <= 1.0
            if self.kind == "shell":
                t = self.thickness_mm
                inner = (((x - cx) / (rx - t)) ** 2 + ((y - cy) / (ry - t)) ** 2
                         + ((z - cz) / (rz - t)) ** 2 <= 1.0)
                inside &= ~inner
            return inside
        if self.kind in ("cylinder", "tube"):
            inside = (u2 <= 1.0) & (np.abs(z - cz) <= rz)
            if self.kind == "tube":
                t = self.thickness_mm
                inside &= ((x - cx) / (rx - t)) ** 2 + ((y - cy) / (ry - t)) ** 2 > 1.0
                if self.period_mm > 0:
                    inside &= np.mod(z - cz, self.period_mm) < self.period_mm / 2
            return inside
        raise InputError(f"unknown shape kind {self.kind!r}", field="kind")


def _e(c, r):
    return Shape("ellipsoid", c, r)


def _c(c, r):
    return Shape("cylinder", c, r)


# Reference-male anatomy, in priority order (a later entry wins where shapes overlap).
# Positions follow common adult landmarks: sternal notch ~ -320 mm from the vertex, carina ~ -400,
# diaphragm dome ~ -520, L4 / aortic bifurcation ~ -730, pubic symphysis ~ -890.
_ANATOMY: tuple[tuple[str, Shape], ...] = (
    ("small_bowel", _e((0, -15, -735), (95, 50, 85))),
    ("large_bowel", _c((-100, 15, -700), (22, 22, 80))),
    ("large_bowel", _c((100, 25, -690), (20, 20, 90))),
    ("large_bowel", _e((0, -55, -630), (100, 22, 22))),
    ("large_bowel", _e((25, 20, -805), (40, 22, 25))),
    ("large_bowel", _c((0, 60, -875), (17, 16, 55))),
    ("lung_right", _e((-72, 8, -445), (58, 70, 128))),
    ("lung_left", _e((74, 8, -450), (54, 70, 122))),
    ("liver", _e((-52, -2, -595), (81, 73, 73))),
    ("liver", _e((10, -35, -575), (50, 30, 35))),
    ("stomach", _e((55, -25, -590), (45, 35, 55))),
    ("spleen", _e((76, 34, -570), (27, 39, 48))),
    ("kidney_left", _e((68, 47, -655), (28, 25, 52))),
    ("kidney_right", _e((-68, 48, -670), (28, 25, 52))),
    ("pancreas", _e((20, 10, -640), (68, 15, 20))),
    ("bladder", _e((0, -40, -855), (42, 35, 33))),
    ("prostate", _e((0, -22, -905), (22, 18, 20))),
    ("uterus", _e((0, -10, -815), (35, 25, 45))),
    ("cervix", _e((0, 5, -870), (17, 17, 20))),
    ("heart", _e((22, -22, -475), (62, 50, 58))),
    ("aorta", _c((8, -15, -435), (13, 13, 45))),
    ("aorta", _e((10, 10, -385), (16, 38, 14))),
    ("aorta", _c((24, 36, -480), (12, 12, 95))),
    ("aorta", _c((18, 25, -655), (12, 12, 80))),
    ("vena_cava", _c((-25, -12, -400), (10, 10, 50))),
    ("vena_cava", _c((-22, 30, -650), (12, 12, 110))),
    ("pulmonary_artery", _e((5, -5, -420), (32, 13, 13))),
    ("esophagus", _c((3, 28, -400), (9, 9, 160))),
    ("thyroid", _e((-20, -22, -285), (10, 10, 22))),
    ("thyroid", _e((20, -22, -285), (10, 10, 22))),
    ("thymus", _e((0, -65, -375), (20, 8, 25))),
    ("lymph_nodes_cervical", _e((-32, 0, -255), (8, 13, 45))),
    ("lymph_nodes_cervical", _e((32, 0, -255), (8, 13, 45))),
    ("lymph_nodes_cervical", _e((-25, -20, -230), (8, 8, 10))),
    ("lymph_nodes_cervical", _e((25, -20, -230), (8, 8, 10))),
    ("lymph_nodes_mediastinal", _e((-15, -2, -365), (9, 9, 28))),
    ("lymph_nodes_mediastinal", _e((14, -2, -370), (8, 8, 22))),
    ("lymph_nodes_mediastinal", _e((0, 14, -425), (14, 9, 14))),
    ("lymph_nodes_mediastinal", _e((-48, 8, -425), (9, 12, 16))),
    ("lymph_nodes_mediastinal", _e((48, 8, -425), (9, 12, 16))),
    ("lymph_nodes_para_aortic", _c((38, 28, -660), (10, 10, 75))),
    ("lymph_nodes_para_aortic", _c((0, 18, -660), (7, 7, 70))),
    ("lymph_nodes_para_aortic", _c((-42, 30, -660), (8, 8, 60))),
    ("lymph_nodes_pelvic", _e((-30, 30, -760), (10, 10, 30))),
    ("lymph_nodes_pelvic", _e((30, 30, -760), (10, 10, 30))),
    ("lymph_nodes_pelvic", _e((-62, 10, -830), (11, 13, 38))),
    ("lymph_nodes_pelvic", _e((62, 10, -830), (11, 13, 38))),
    ("lymph_nodes_pelvic", _e((-50, 42, -820), (10, 12, 35))),
    ("lymph_nodes_pelvic", _e((50, 42, -820), (10, 12, 35))),
    ("lymph_nodes_pelvic", _e((-55, 5, -880), (9, 12, 18))),
    ("lymph_nodes_pelvic", _e((55, 5, -880), (9, 12, 18))),
    ("lymph_nodes_pelvic", _e((0, 52, -800), (16, 8, 30))),
    ("brain", _e((0, 10, -80), (66, 81, 61))),
    ("brainstem", _e((0, 20, -140), (13, 13, 28))),
    ("parotids", _e((-42, 15, -185), (12, 18, 22))),
    ("parotids", _e((42, 15, -185), (12, 18, 22))),
    ("spinal_cord", _c((0, 38, -230), (6, 6, 85))),
    ("spinal_cord", _c((0, 80, -500), (6, 6, 190))),
    # Skeleton (red-marrow-bearing bones), last: it carves everything it overlaps.
    ("bone_marrow", Shape("shell", (0, 10, -80), (75, 90, 72), thickness_mm=7.0)),
    ("bone_marrow", _c((0, 20, -235), (11, 11, 70))),
    ("bone_marrow", _c((0, 55, -450), (17, 16, 145))),
    ("bone_marrow", _c((0, 48, -680), (22, 18, 85))),
    ("bone_marrow", _e((0, 75, -820), (45, 17, 60))),
    ("bone_marrow", _e((-85, 40, -775), (38, 20, 55))),
    ("bone_marrow", _e((85, 40, -775), (38, 20, 55))),
    ("bone_marrow", _e((-72, 25, -900), (22, 35, 45))),
    ("bone_marrow", _e((72, 25, -900), (22, 35, 45))),
    ("bone_marrow", _e((-28, -55, -895), (25, 12, 18))),
    ("bone_marrow", _e((28, -55, -895), (25, 12, 18))),
    ("bone_marrow", _c((-95, 15, -960), (22, 22, 50))),
    ("bone_marrow", _c((95, 15, -960), (22, 22, 50))),
    ("bone_marrow", _c((0, -80, -420), (14, 6, 90))),
    ("bone_marrow", Shape("tube", (0, 0, -460), (134, 84, 140), thickness_mm=8.0,
                          period_mm=22.0)),
)

_MALE_ONLY = {"prostate"}
_FEMALE_ONLY = {"uterus", "cervix"}

#: ICRP-89 (Table 2.8) female / male mass ratios; organs not listed use 0.85.
_FEMALE_MASS_RATIO = {"brain": 1300 / 1450, "brainstem": 1300 / 1450, "lung_left": 950 / 1200,
                      "lung_right": 950 / 1200, "heart": 250 / 330, "liver": 1400 / 1800,
                      "spleen": 130 / 150, "kidney_left": 275 / 310, "kidney_right": 275 / 310,
                      "pancreas": 120 / 140, "stomach": 140 / 150, "thyroid": 17 / 20,
                      "bladder": 40 / 50, "esophagus": 35 / 40, "thymus": 20 / 25}
_FEMALE_LEAN = 0.96
#: Shapes centred above this z (reference mm) belong to the head, which scales only weakly with
#: height (exponent 0.3, not with BMI) and by the cube root of the ICRP-89 brain mass ratio by sex.
_HEAD_BELOW_MM = -200.0
_HEAD_SEX = {"M": 1.0, "F": (1300 / 1450) ** (1 / 3)}

#: Soft organs whose position (sd 3 mm) and size (sd 4%) are jittered when an rng is given.
_JITTERED = ("heart", "liver", "spleen", "stomach", "kidney_left", "kidney_right", "pancreas",
             "bladder", "small_bowel", "prostate", "uterus", "lung_left", "lung_right")

#: Body outline knots (reference male): z (mm), lean-core radii rx, ry (mm), centre y (mm),
#: fat thickness at BMI 22 (mm) and fat gain per BMI unit (mm).
_TRUNK_KNOTS = np.array([
    [-200, 48, 50, 10, 4, 0.6], [-295, 55, 55, 10, 5, 0.8], [-315, 150, 88, 5, 12, 2.5],
    [-360, 155, 92, 0, 15, 2.8], [-460, 150, 95, 0, 18, 3.0], [-570, 142, 93, 0, 20, 3.5],
    [-690, 138, 91, 0, 24, 4.5], [-790, 148, 92, 0, 24, 4.2], [-900, 160, 95, 0, 22, 4.0],
    [-1000, 162, 95, 0, 20, 3.5]], dtype=float)
_HEAD = (_e((0, 10, -80), (80, 96, 80)), _e((0, -5, -160), (65, 85, 75)))

#: Composite canonical structures: name -> parts.
_COMPOSITES = {
    "lungs": ("lung_left", "lung_right"),
    "kidneys": ("kidney_left", "kidney_right"),
    "great_vessels": ("aorta", "vena_cava", "pulmonary_artery"),
    "bowel": ("small_bowel", "large_bowel"),
    "lymph_nodes": ("lymph_nodes_cervical", "lymph_nodes_mediastinal",
                    "lymph_nodes_para_aortic", "lymph_nodes_pelvic"),
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


@dataclass(frozen=True)
class _Person:
    sex: str
    s_z: float
    s_pos: float
    bmi: float
    s_head: float

    def place(self, name: str, shape: Shape) -> Shape:
        """Reference shape scaled to this person (head shapes with the damped head scale)."""
        if shape.centre_mm[2] > _HEAD_BELOW_MM:
            return shape.transformed(self.s_head, self.s_head, self.s_head)
        return shape.transformed(self.s_pos, self.s_rad(name), self.s_z)

    def s_rad(self, organ: str) -> float:
        if self.sex == "M":
            return self.s_pos
        ref_sz = REF_HEIGHT_CM["F"] / REF_HEIGHT_CM["M"]
        ratio = _FEMALE_MASS_RATIO.get(organ, 0.85)
        return self.s_pos * np.sqrt(ratio / (ref_sz ** 2 * _FEMALE_LEAN ** 2))

    def trunk(self, z_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Body outline ``(rx, ry, cy)`` (mm) at scaled heights ``z_mm``."""
        k = _TRUNK_KNOTS
        zk = k[:, 0] * self.s_z
        fat = np.maximum(3.0, k[:, 4] + k[:, 5] * (self.bmi - _REF_BMI))
        fat = fat + (4.0 if self.sex == "F" else 0.0)
        hips = np.where((self.sex == "F") & (k[:, 0] < -750), 1.06, 1.0)
        rx = k[:, 1] * self.s_pos * hips + fat
        ry = k[:, 2] * self.s_pos + fat
        z = -np.asarray(z_mm, float)  # np.interp needs increasing knots
        return (np.interp(z, -zk, rx), np.interp(z, -zk, ry),
                np.interp(z, -zk, k[:, 3] * self.s_pos))

    def head(self) -> list[Shape]:
        """Cranium and face ellipsoids, sized like the brain plus a thin fat layer."""
        fat = max(1.0, 2.0 + 0.3 * (self.bmi - _REF_BMI))
        out = []
        for part in _HEAD:
            h = self.place("head", part)
            out.append(replace(h, radii_mm=(h.radii_mm[0] + fat, h.radii_mm[1] + fat,
                                            h.radii_mm[2] + fat)))
        return out

    def breasts(self) -> list[tuple[str, Shape]]:
        z = -460.0 * self.s_z
        _, ry, cy = self.trunk(np.array([z]))
        size = (self.bmi / _REF_BMI) ** 0.5 * (1.0 if self.sex == "F" else 0.45)
        r = (55.0 * size, 38.0 * size, 55.0 * size * self.s_z)
        y = float(cy[0] - ry[0]) + 0.25 * r[1]
        return [(f"breast_{side}", _e((sgn * 85.0 * self.s_pos, y, z - 20 * self.s_z), r))
                for side, sgn in (("left", 1.0), ("right", -1.0))]


def _check_person(sex: str, height_cm: float, bmi: float) -> None:
    if sex not in ("M", "F"):
        raise InputError(f"sex must be 'M' or 'F', got {sex!r}", field="sex")
    if not 130.0 <= float(height_cm) <= 210.0:
        raise InputError(f"height must be 130-210 cm for a phantom, got {height_cm}",
                         field="height_cm")
    if not 15.0 <= float(bmi) <= 45.0:
        raise InputError(f"BMI must be 15-45 kg/m^2 for a phantom, got {bmi}", field="bmi")


def _grid(person: _Person, region: str, spacing_mm) -> tuple[Volume, tuple[np.ndarray, ...]]:
    """Grid covering ``region`` of the person's body; returns it and 1D axes (x, y, z) in mm."""
    top, bottom = (v * person.s_z for v in REGIONS[region])
    dx, dy, dz = spacing_mm
    zs = np.linspace(top, bottom, 200)
    trunk_z = zs[(zs <= _TRUNK_KNOTS[0, 0] * person.s_z) & (zs >= _TRUNK_KNOTS[-1, 0] * person.s_z)]
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
                 bmi: float = _REF_BMI, spacing_mm: tuple[float, float, float] = (5.0, 5.0, 5.0),
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
    s_z = float(height_cm) / REF_HEIGHT_CM["M"]
    s_pos = np.sqrt(s_z) * (bmi / _REF_BMI) ** 0.1 * (_FEMALE_LEAN if sex == "F" else 1.0)
    s_head = (height_cm / REF_HEIGHT_CM[sex]) ** 0.3 * _HEAD_SEX[sex]
    person = _Person(sex, s_z, float(s_pos), float(bmi), float(s_head))
    grid, axes = _grid(person, region, spacing_mm)
    x, y, z = axes

    # Body: trunk loft + head + breasts.
    rx, ry, cy = person.trunk(z)
    in_trunk = (z <= _TRUNK_KNOTS[0, 0] * s_z) & (z >= _TRUNK_KNOTS[-1, 0] * s_z)
    body = ((x[None, None, :] / rx[:, None, None]) ** 2
            + ((y[None, :, None] - cy[:, None, None]) / ry[:, None, None]) ** 2 <= 1.0)
    body &= in_trunk[:, None, None]
    entries = [(n, person.place(n, s)) for n, s in _ANATOMY
               if not (sex == "M" and n in _FEMALE_ONLY or sex == "F" and n in _MALE_ONLY)]
    extra = [("head", h) for h in person.head()] + person.breasts()
    label = np.zeros(grid.shape, np.int16)
    for _, shape in extra:
        _paint(label, 1, shape, axes)
    body |= label == 1
    label[:] = 0

    if rng is not None:
        jitter = {n: _jitter(rng) for n in _JITTERED}
        entries = [(n, s.transformed(1.0, 1.0, 1.0, *jitter[n]) if n in jitter else s)
                   for n, s in entries]
    names = ["breast_left", "breast_right"] + list(dict.fromkeys(n for n, _ in entries))
    codes = {n: i + 1 for i, n in enumerate(names)}
    for name, shape in extra[2:] + entries:
        _paint(label, codes[name], shape, axes)
    masks: dict[str, np.ndarray] = {"body": body}
    for name in names:
        m = label == codes[name]
        if m.any():
            masks[name] = m
    for name, parts in _COMPOSITES.items():
        have = [masks[p] for p in parts if p in masks]
        if have:
            masks[name] = np.logical_or.reduce(have)
    if target is not None:
        masks["target"] = _target_mask(target, masks, person, axes, grid.shape, spacing_mm, rng)
    if elective is not None:
        el = _target_mask(elective, masks, person, axes, grid.shape, spacing_mm, rng)
        masks["target_elective"] = el & ~masks["target"] if "target" in masks else el
    meta = {"simulated": True, "region": region, "sex": sex, "height_cm": float(height_cm),
            "bmi": float(bmi)}
    grid = Volume(grid.array, grid.spacing_mm, grid.origin_mm, units="label", metadata=meta)
    return StructureSet(masks, grid, source=f"simulated:{region}_phantom")


def _target_mask(spec: TargetSpec, masks, person: _Person, axes, shape, spacing_mm,
                 rng) -> np.ndarray:
    label = np.zeros(shape, np.int16)
    shift, size = _jitter(rng) if rng is not None else (np.zeros(3), 1.0)
    for s in spec.shapes:
        _paint(label, 1, s.transformed(person.s_pos, person.s_pos, person.s_z, shift, size), axes)
    tgt = label == 1
    for organ in spec.organs:
        if organ not in masks:
            raise InputError(f"target organ {organ!r} is not in this phantom", field="target")
        tgt |= masks[organ]
    return _dilate(tgt, spec.margin_mm, spacing_mm) & masks["body"]


def organ_volumes_cc(structures: StructureSet) -> dict[str, float]:
    """Volume of every structure, cm^3."""
    cc = structures.grid.voxel_volume_cc
    return {n: float(structures[n].sum() * cc) for n in structures.names}


#: Distal-oesophagus target used by :func:`thorax_phantom` (PTV about 250-350 cc).
ESOPHAGUS_TARGET = TargetSpec(shapes=(_c((8, 25, -505), (24, 24, 65)),), margin_mm=0.0)


def thorax_phantom(*, spacing_mm: tuple[float, float, float] = (5.0, 5.0, 5.0), sex: str = "M",
                   height_cm: float | None = None, bmi: float = _REF_BMI,
                   rng: np.random.Generator | None = None) -> StructureSet:
    """A thorax phantom with a distal-oesophagus target (shortcut for :func:`make_phantom`)."""
    return make_phantom("thorax", sex=sex, height_cm=height_cm, bmi=bmi, spacing_mm=spacing_mm,
                        rng=rng, target=ESOPHAGUS_TARGET)
