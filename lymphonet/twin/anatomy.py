"""The reference anatomy of the phantoms and its scaling to a person (SIMULATED anatomy).

One whole-body cartoon of a reference adult male (176 cm, BMI 22) is stored as a table of simple
shapes (:data:`ANATOMY`, in priority order); :class:`Person` scales it to a person.
:func:`lymphonet.twin.phantoms.make_phantom` rasterises it over one region.

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

Coordinates: patient LPS in mm; x to the patient's left, y posterior, z superior with z = 0 at the
vertex of the scaled person.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from lymphonet.errors import InputError

__all__ = ["ANATOMY", "COMPOSITES", "FEMALE_ONLY", "JITTERED", "MALE_ONLY", "REF_BMI",
           "REF_HEIGHT_CM", "TRUNK_KNOTS", "Person", "Shape"]

#: Reference heights (cm) of the ICRP-89 reference adults; the anatomy table is the male one.
REF_HEIGHT_CM = {"M": 176.0, "F": 163.0}
REF_BMI = 22.0


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
ANATOMY: tuple[tuple[str, Shape], ...] = (
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
    ("superior_vena_cava", _c((-25, -12, -400), (10, 10, 50))),
    ("inferior_vena_cava", _c((-22, 30, -650), (12, 12, 110))),
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
    # Skeleton (red-marrow-bearing bones, one name per ICRP-89 bone site), last: it carves
    # everything it overlaps. Not drawn: mandible, scapulae, clavicles, humeri (6.7% of adult red
    # marrow), which therefore never receive dose in a phantom plan.
    ("bone_marrow_cranium", Shape("shell", (0, 10, -80), (75, 90, 72), thickness_mm=7.0)),
    ("bone_marrow_cervical", _c((0, 20, -235), (11, 11, 70))),
    ("bone_marrow_thoracic", _c((0, 55, -450), (17, 16, 145))),
    ("bone_marrow_lumbar", _c((0, 48, -680), (22, 18, 85))),
    ("bone_marrow_sacrum", _e((0, 75, -820), (45, 17, 60))),
    ("bone_marrow_os_coxae", _e((-85, 40, -775), (38, 20, 55))),
    ("bone_marrow_os_coxae", _e((85, 40, -775), (38, 20, 55))),
    ("bone_marrow_os_coxae", _e((-72, 25, -900), (22, 35, 45))),
    ("bone_marrow_os_coxae", _e((72, 25, -900), (22, 35, 45))),
    ("bone_marrow_os_coxae", _e((-28, -55, -895), (25, 12, 18))),
    ("bone_marrow_os_coxae", _e((28, -55, -895), (25, 12, 18))),
    ("bone_marrow_femora", _c((-95, 15, -960), (22, 22, 50))),
    ("bone_marrow_femora", _c((95, 15, -960), (22, 22, 50))),
    ("bone_marrow_sternum", _c((0, -80, -420), (14, 6, 90))),
    ("bone_marrow_ribs", Shape("tube", (0, 0, -460), (134, 84, 140), thickness_mm=8.0,
                          period_mm=22.0)),
)

MALE_ONLY = {"prostate"}
FEMALE_ONLY = {"uterus", "cervix"}

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
JITTERED = ("heart", "liver", "spleen", "stomach", "kidney_left", "kidney_right", "pancreas",
            "bladder", "small_bowel", "prostate", "uterus", "lung_left", "lung_right")

#: Body outline knots (reference male): z (mm), lean-core radii rx, ry (mm), centre y (mm),
#: fat thickness at BMI 22 (mm) and fat gain per BMI unit (mm).
TRUNK_KNOTS = np.array([
    [-200, 48, 50, 10, 4, 0.6], [-295, 55, 55, 10, 5, 0.8], [-315, 150, 88, 5, 12, 2.5],
    [-360, 155, 92, 0, 15, 2.8], [-460, 150, 95, 0, 18, 3.0], [-570, 142, 93, 0, 20, 3.5],
    [-690, 138, 91, 0, 24, 4.5], [-790, 148, 92, 0, 24, 4.2], [-900, 160, 95, 0, 22, 4.0],
    [-1000, 162, 95, 0, 20, 3.5]], dtype=float)
_HEAD = (_e((0, 10, -80), (80, 96, 80)), _e((0, -5, -160), (65, 85, 75)))

#: Composite canonical structures: name -> parts.
COMPOSITES = {
    "lungs": ("lung_left", "lung_right"),
    "kidneys": ("kidney_left", "kidney_right"),
    "great_vessels": ("aorta", "superior_vena_cava", "inferior_vena_cava", "pulmonary_artery"),
    "vena_cava": ("superior_vena_cava", "inferior_vena_cava"),
    "bowel": ("small_bowel", "large_bowel"),
    "lymph_nodes": ("lymph_nodes_cervical", "lymph_nodes_mediastinal",
                    "lymph_nodes_para_aortic", "lymph_nodes_pelvic"),
    "bone_marrow": ("bone_marrow_cranium", "bone_marrow_cervical", "bone_marrow_thoracic",
                    "bone_marrow_lumbar", "bone_marrow_sacrum", "bone_marrow_os_coxae",
                    "bone_marrow_femora", "bone_marrow_sternum", "bone_marrow_ribs"),
}


@dataclass(frozen=True)
class Person:
    """A person's scale factors: ``s_z`` (lengths, height / 176 cm), ``s_pos`` (in-plane lean
    frame), ``s_head`` (the damped head scale), plus sex and BMI for the fat layer."""

    sex: str
    s_z: float
    s_pos: float
    bmi: float
    s_head: float

    @classmethod
    def of(cls, sex: str, height_cm: float, bmi: float) -> Person:
        """The scale factors of a person of this sex, standing height (cm) and BMI."""
        s_z = float(height_cm) / REF_HEIGHT_CM["M"]
        s_pos = np.sqrt(s_z) * (bmi / REF_BMI) ** 0.1 * (_FEMALE_LEAN if sex == "F" else 1.0)
        s_head = (height_cm / REF_HEIGHT_CM[sex]) ** 0.3 * _HEAD_SEX[sex]
        return cls(sex, s_z, float(s_pos), float(bmi), float(s_head))

    def in_trunk(self, z_mm: np.ndarray) -> np.ndarray:
        """Whether scaled heights ``z_mm`` lie within the trunk outline's knots."""
        return (z_mm <= TRUNK_KNOTS[0, 0] * self.s_z) & (z_mm >= TRUNK_KNOTS[-1, 0] * self.s_z)

    def place(self, name: str, shape: Shape) -> Shape:
        """Reference shape scaled to this person (head shapes with the damped head scale)."""
        if shape.centre_mm[2] > _HEAD_BELOW_MM:
            return shape.transformed(self.s_head, self.s_head, self.s_head)
        return shape.transformed(self.s_pos, self.s_rad(name), self.s_z)

    def volume_scale(self, name: str) -> float:
        """Factor from the reference male's volume of structure ``name`` to this person's (head
        shapes scale with ``s_head`` in all three axes, trunk shapes with ``s_rad^2 s_z``)."""
        centres = [s.centre_mm[2] for n, s in ANATOMY if n == name]
        if centres and min(centres) > _HEAD_BELOW_MM:
            return self.s_head ** 3
        return self.s_rad(name) ** 2 * self.s_z

    def s_rad(self, organ: str) -> float:
        """In-plane size factor of ``organ`` (female organs follow the ICRP-89 mass ratios)."""
        if self.sex == "M":
            return self.s_pos
        ref_sz = REF_HEIGHT_CM["F"] / REF_HEIGHT_CM["M"]
        ratio = _FEMALE_MASS_RATIO.get(organ, 0.85)
        return self.s_pos * np.sqrt(ratio / (ref_sz ** 2 * _FEMALE_LEAN ** 2))

    def trunk(self, z_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Body outline ``(rx, ry, cy)`` (mm) at scaled heights ``z_mm``."""
        k = TRUNK_KNOTS
        zk = k[:, 0] * self.s_z
        fat = np.maximum(3.0, k[:, 4] + k[:, 5] * (self.bmi - REF_BMI))
        fat = fat + (4.0 if self.sex == "F" else 0.0)
        hips = np.where((self.sex == "F") & (k[:, 0] < -750), 1.06, 1.0)
        rx = k[:, 1] * self.s_pos * hips + fat
        ry = k[:, 2] * self.s_pos + fat
        z = -np.asarray(z_mm, float)  # np.interp needs increasing knots
        return (np.interp(z, -zk, rx), np.interp(z, -zk, ry),
                np.interp(z, -zk, k[:, 3] * self.s_pos))

    def head(self) -> list[Shape]:
        """Cranium and face ellipsoids, sized like the brain plus a thin fat layer."""
        fat = max(1.0, 2.0 + 0.3 * (self.bmi - REF_BMI))
        out = []
        for part in _HEAD:
            h = self.place("head", part)
            out.append(replace(h, radii_mm=(h.radii_mm[0] + fat, h.radii_mm[1] + fat,
                                            h.radii_mm[2] + fat)))
        return out

    def breasts(self) -> list[tuple[str, Shape]]:
        """``breast_left`` and ``breast_right`` (small in men), sized with BMI."""
        z = -460.0 * self.s_z
        _, ry, cy = self.trunk(np.array([z]))
        size = (self.bmi / REF_BMI) ** 0.5 * (1.0 if self.sex == "F" else 0.45)
        r = (55.0 * size, 38.0 * size, 55.0 * size * self.s_z)
        y = float(cy[0] - ry[0]) + 0.25 * r[1]
        return [(f"breast_{side}", _e((sgn * 85.0 * self.s_pos, y, z - 20 * self.s_z), r))
                for side, sgn in (("left", 1.0), ("right", -1.0))]

