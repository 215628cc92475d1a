"""Treatment sites for digital twins: anatomy region, target, schedules, beams (SIMULATED).

Each :class:`Site` says where the target is on the reference phantom (:mod:`.phantoms`), which
schedules are typical (with their relative frequency and the probability of concurrent
chemotherapy), and which beam arrangements each technique uses. :func:`site_phantom` builds a
patient's anatomy with the site's target; :func:`plan_for_site` plans it with any modality, so the
same patient can be planned with photons, protons and carbon ions.

The schedules are common published regimens (doses in Gy, RBE-weighted for particles):
oesophagus 50.4 Gy / 28 fx (definitive, with carboplatin-paclitaxel or cisplatin-5FU) or
41.4 Gy / 23 fx (neoadjuvant, CROSS: van Hagen et al., NEJM 2012); lung 60 Gy / 30 fx with
concurrent platinum doublet (RTOG 0617: Bradley et al., Lancet Oncol 2015) and SBRT 54 Gy / 3 fx,
50 Gy / 5 fx, 60 Gy / 8 fx; liver SBRT 50 Gy / 5 fx or 67.5 Gy / 15 fx (hypofractionated proton
HCC: Hong et al., JCO 2016); pancreas 50.4 Gy / 28 fx with capecitabine or gemcitabine, or SBRT
33 Gy / 5 fx; stomach 45 Gy / 25 fx with fluoropyrimidine (INT-0116: Macdonald et al., NEJM 2001);
glioblastoma 60 Gy / 30 fx with temozolomide (Stupp et al., NEJM 2005) or 40 Gy / 15 fx in the
elderly (Roa et al., JCO 2004); whole brain 30 Gy / 10 fx or 20 Gy / 5 fx; prostate 78 Gy / 39 fx,
60 Gy / 20 fx (CHHiP: Dearnaley et al., Lancet Oncol 2016), 36.25 Gy / 5 fx (PACE-B), with pelvic
nodes at a lower simultaneous level; cervix 45 Gy / 25 fx with weekly cisplatin (before the
brachytherapy boost, not modelled); breast 40 Gy / 15 fx (START-B), 26 Gy / 5 fx (FAST-Forward:
Murray Brunt et al., Lancet 2020) or 50 Gy / 25 fx; head and neck 70 Gy / 35 fx to the primary,
56 Gy to elective neck nodes, with cisplatin.

Beam angles follow the convention of :mod:`.plans` (0 = from anterior, 90 = from the patient's
left); targets on one side are put on the patient's right (left breast for breast).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lymphonet.errors import InputError
from lymphonet.io.volume import StructureSet
from lymphonet.twin.phantoms import Shape, TargetSpec, make_phantom
from lymphonet.twin.plans import PARTICLES, PHOTON_TECHNIQUES, Plan, arc_angles, make_plan

__all__ = ["SITES", "Schedule", "Site", "draw_schedule", "get_site", "plan_for_site",
           "site_phantom"]


@dataclass(frozen=True)
class Schedule:
    """A fractionation schedule.

    Attributes:
        name: Short name (``conventional``, ``hypo``, ``sbrt``, ...).
        n_fractions: Number of fractions.
        dose_per_fraction_gy: Dose per fraction to the (boost) target, Gy.
        weight: Relative frequency among the site's schedules (for random draws).
        chemo_probability: Probability of concurrent chemotherapy.
        chemo_regimen: Typical concurrent regimen, or ``None``.
        elective_dose_per_fraction_gy: Dose per fraction to the elective target, if any.
        photon_technique: Default photon technique for this schedule.
    """

    name: str
    n_fractions: int
    dose_per_fraction_gy: float
    weight: float = 1.0
    chemo_probability: float = 0.0
    chemo_regimen: str | None = None
    elective_dose_per_fraction_gy: float | None = None
    photon_technique: str = "imrt"

    @property
    def total_gy(self) -> float:
        """Total prescribed dose to the target, Gy."""
        return self.n_fractions * self.dose_per_fraction_gy


@dataclass(frozen=True)
class Site:
    """A treatment site: region, target, schedules and beam arrangements.

    Attributes:
        name: Site name (key of :data:`SITES`).
        region: Phantom region (see :data:`lymphonet.twin.phantoms.REGIONS`).
        target: Target definition on the reference phantom.
        schedules: Typical schedules, the first one is the default.
        photon_angles: Photon technique -> gantry angles (VMAT: arc control points).
        particle_angles: Field angles for protons and carbon ions.
        elective: Elective (lower-dose) target, e.g. lymph-node stations, or ``None``.
        sex: ``"M"``/``"F"`` when the site exists only for one sex, else ``None``.
        default_sex: Sex used when none is given.
    """

    name: str
    region: str
    target: TargetSpec
    schedules: tuple[Schedule, ...]
    photon_angles: dict[str, tuple[float, ...]]
    particle_angles: tuple[float, ...]
    elective: TargetSpec | None = None
    sex: str | None = None
    default_sex: str = "M"
    modalities: tuple[str, ...] = field(default=("photon", "proton", "carbon"))

    def schedule(self, name: str) -> Schedule:
        """The schedule called ``name``."""
        for s in self.schedules:
            if s.name == name:
                return s
        raise InputError(f"site {self.name!r} has no schedule {name!r}; expected one of "
                         f"{[s.name for s in self.schedules]}", field="schedule")


def _e(c, r):
    return Shape("ellipsoid", c, r)


def _equi(n: int) -> tuple[float, ...]:
    return tuple(float(a) for a in np.linspace(0.0, 360.0, n, endpoint=False))


_FULL_ARC = arc_angles(180.0, 180.0)
_BOX = (0.0, 90.0, 180.0, 270.0)


def _site(name, region, target, schedules, crt, imrt, vmat, particles, **kw) -> Site:
    return Site(name, region, target, tuple(schedules),
                {"3dcrt": crt, "imrt": imrt, "vmat": vmat}, particles, **kw)


_S = Schedule
SITES: dict[str, Site] = {s.name: s for s in (
    _site("esophagus", "thorax",
          TargetSpec((Shape("cylinder", (5, 27, -490), (22, 22, 75)),), margin_mm=7.0),
          [_S("definitive", 28, 1.8, 0.5, 0.9, "carboplatin/paclitaxel"),
           _S("neoadjuvant", 23, 1.8, 0.5, 1.0, "carboplatin/paclitaxel")],
          (0.0, 180.0, 120.0, 240.0), _equi(7), _FULL_ARC,
          (180.0, 135.0)),
    _site("lung", "thorax",
          TargetSpec((_e((-55, 0, -420), (30, 30, 35)),), ("lymph_nodes_mediastinal",), 8.0),
          [_S("conventional", 30, 2.0, 1.0, 0.85, "carboplatin/paclitaxel")],
          (0.0, 180.0, 215.0, 325.0), (0.0, 30.0, 180.0, 210.0, 240.0, 300.0, 330.0),
          arc_angles(180.0, 30.0), (180.0, 270.0, 330.0)),
    _site("lung_sbrt", "thorax", TargetSpec((_e((-95, 15, -450), (15, 15, 15)),), margin_mm=5.0),
          [_S("sbrt_3fx", 3, 18.0, 0.4, photon_technique="vmat"),
           _S("sbrt_5fx", 5, 10.0, 0.4, photon_technique="vmat"),
           _S("sbrt_8fx", 8, 7.5, 0.2, photon_technique="vmat")],
          (180.0, 210.0, 240.0, 270.0, 300.0, 330.0, 0.0), (180.0, 210.0, 240.0, 270.0, 300.0,
                                                             330.0, 0.0),
          arc_angles(180.0, 0.0), (270.0, 210.0, 330.0)),
    _site("liver", "abdomen", TargetSpec((_e((-75, 5, -600), (25, 25, 25)),), margin_mm=5.0),
          [_S("sbrt", 5, 10.0, 0.5, photon_technique="vmat"),
           _S("hypo", 15, 4.5, 0.5, photon_technique="vmat")],
          (0.0, 270.0, 210.0), (0.0, 30.0, 200.0, 240.0, 270.0, 300.0, 330.0),
          arc_angles(180.0, 30.0), (270.0, 200.0)),
    _site("pancreas", "abdomen", TargetSpec((_e((-5, 10, -645), (30, 25, 32)),), margin_mm=8.0),
          [_S("conventional", 28, 1.8, 0.6, 0.9, "capecitabine"),
           _S("sbrt", 5, 6.6, 0.4, photon_technique="vmat")],
          _BOX, _equi(7), _FULL_ARC, (180.0, 225.0)),
    _site("stomach", "abdomen", TargetSpec(organs=("stomach",), margin_mm=7.0),
          [_S("conventional", 25, 1.8, 1.0, 0.9, "capecitabine")],
          (0.0, 180.0), _equi(7), _FULL_ARC, (180.0, 120.0)),
    _site("glioblastoma", "brain", TargetSpec((_e((-35, 5, -75), (25, 28, 25)),), margin_mm=15.0),
          [_S("conventional", 30, 2.0, 0.8, 0.95, "temozolomide"),
           _S("hypo_elderly", 15, 2.67, 0.2, 0.8, "temozolomide")],
          (270.0, 330.0, 210.0), (0.0, 45.0, 180.0, 225.0, 270.0, 315.0),
          arc_angles(180.0, 0.0), (270.0, 330.0)),
    _site("whole_brain", "brain", TargetSpec(organs=("brain",), margin_mm=3.0),
          [_S("10fx", 10, 3.0, 0.7, photon_technique="3dcrt"),
           _S("5fx", 5, 4.0, 0.3, photon_technique="3dcrt")],
          (90.0, 270.0), _equi(7), _FULL_ARC, (90.0, 270.0)),
    _site("prostate", "pelvis",
          TargetSpec((_e((0, -2, -885), (22, 8, 10)),), ("prostate",), 8.0),
          [_S("conventional", 39, 2.0, 0.3), _S("moderate_hypo", 20, 3.0, 0.5),
           _S("sbrt", 5, 7.25, 0.2, photon_technique="vmat")],
          _BOX, _equi(7), _FULL_ARC, (90.0, 270.0), sex="M"),
    _site("prostate_nodes", "pelvis",
          TargetSpec((_e((0, -2, -885), (22, 8, 10)),), ("prostate",), 8.0),
          [_S("conventional", 39, 2.0, 0.6, elective_dose_per_fraction_gy=1.4),
           _S("moderate_hypo", 25, 2.72, 0.4, elective_dose_per_fraction_gy=2.0)],
          _BOX, _equi(7), _FULL_ARC, (90.0, 270.0),
          elective=TargetSpec(organs=("lymph_nodes_pelvic",), margin_mm=10.0), sex="M"),
    _site("cervix", "pelvis",
          TargetSpec(organs=("cervix", "uterus", "lymph_nodes_pelvic"), margin_mm=12.0),
          [_S("conventional", 25, 1.8, 1.0, 0.9, "cisplatin weekly")],
          _BOX, _equi(9), _FULL_ARC, (90.0, 270.0, 180.0), sex="F", default_sex="F"),
    _site("breast", "thorax", TargetSpec(organs=("breast_left",), margin_mm=10.0),
          [_S("hypo", 15, 2.67, 0.6, photon_technique="3dcrt"),
           _S("ultrahypo", 5, 5.2, 0.25, photon_technique="3dcrt"),
           _S("conventional", 25, 2.0, 0.15, photon_technique="3dcrt")],
          (300.0, 120.0), (300.0, 320.0, 100.0, 120.0), arc_angles(295.0, 135.0), (30.0,),
          default_sex="F"),
    _site("head_neck", "head_neck", TargetSpec((_e((10, 0, -215), (26, 26, 30)),), margin_mm=5.0),
          [_S("conventional", 35, 2.0, 1.0, 0.8, "cisplatin", elective_dose_per_fraction_gy=1.6)],
          (90.0, 270.0, 0.0), _equi(9), _FULL_ARC, (60.0, 300.0, 180.0),
          elective=TargetSpec(organs=("lymph_nodes_cervical",), margin_mm=8.0)),
)}


def get_site(site: str | Site) -> Site:
    """The :class:`Site` called ``site`` (or ``site`` itself)."""
    if isinstance(site, Site):
        return site
    if site not in SITES:
        raise InputError(f"unknown site {site!r}; expected one of {sorted(SITES)}", field="site")
    return SITES[site]


def site_phantom(site: str | Site, *, sex: str | None = None, height_cm: float | None = None,
                 bmi: float = 22.0, spacing_mm: tuple[float, float, float] = (5.0, 5.0, 5.0),
                 rng: np.random.Generator | None = None) -> StructureSet:
    """A phantom of the site's region with its ``target`` (and ``target_elective``).

    Args:
        site: Site name or :class:`Site`.
        sex: ``"M"``/``"F"``; default the site's ``default_sex``. Must match a sex-specific site.
        height_cm, bmi, spacing_mm, rng: As for :func:`~lymphonet.twin.phantoms.make_phantom`.

    Raises:
        InputError: unknown site, or a sex the site does not exist for (prostate in a woman).
    """
    s = get_site(site)
    sex = sex or s.default_sex
    if s.sex is not None and sex != s.sex:
        raise InputError(f"site {s.name!r} needs sex {s.sex!r}, got {sex!r}", field="sex")
    return make_phantom(s.region, sex=sex, height_cm=height_cm, bmi=bmi, spacing_mm=spacing_mm,
                        rng=rng, target=s.target, elective=s.elective)


def draw_schedule(site: str | Site, rng: np.random.Generator | None = None) -> Schedule:
    """A schedule of ``site``: drawn by frequency (``Schedule.weight``) with ``rng``, else the first."""
    s = get_site(site)
    if rng is None:
        return s.schedules[0]
    w = np.array([x.weight for x in s.schedules], float)
    return s.schedules[int(rng.choice(len(w), p=w / w.sum()))]


def plan_for_site(structures: StructureSet, site: str | Site, modality: str = "photon", *,
                  schedule: str | Schedule | None = None, technique: str | None = None,
                  rng: np.random.Generator | None = None) -> Plan:
    """Plan a site phantom with one modality, a typical schedule and the site's beams.

    Args:
        structures: A phantom from :func:`site_phantom` (needs ``body`` and ``target``).
        site: Site name or :class:`Site`.
        modality: ``photon``, ``proton`` or ``carbon``.
        schedule: Schedule name or object; default: drawn by frequency with ``rng``, else the
            site's first schedule.
        technique: Photon technique (``3dcrt``, ``imrt``, ``vmat``); default the schedule's.
        rng: Draws the schedule (if not given), concurrent chemotherapy (with the schedule's
            probability; without rng: given when the probability is >= 0.5) and a small common
            rotation of the beam angles (sd 3 degrees).

    Returns:
        The :class:`~lymphonet.twin.plans.Plan`, normalised to the schedule's prescription.
    """
    s = get_site(site)
    if modality not in s.modalities:
        raise InputError(f"site {s.name!r} is not planned with {modality!r}", field="modality")
    if isinstance(schedule, str):
        sched = s.schedule(schedule)
    else:
        sched = schedule if schedule is not None else draw_schedule(s, rng)
    if modality == "photon":
        technique = technique or sched.photon_technique
        if technique not in PHOTON_TECHNIQUES:
            raise InputError(f"unknown photon technique {technique!r}", field="technique")
        angles = s.photon_angles[technique]
    elif modality in PARTICLES:
        technique, angles = modality, s.particle_angles
    else:
        raise InputError(f"unknown modality {modality!r}", field="modality")
    if rng is not None:
        chemo = bool(rng.random() < sched.chemo_probability)
        angles = tuple(float(a) for a in (np.asarray(angles) + rng.normal(0.0, 3.0)) % 360.0)
    else:
        chemo = sched.chemo_probability >= 0.5
    return make_plan(structures, modality=modality, technique=technique,
                     n_fractions=sched.n_fractions, dose_per_fraction_gy=sched.dose_per_fraction_gy,
                     beam_angles_deg=angles,
                     elective_dose_per_fraction_gy=sched.elective_dose_per_fraction_gy,
                     site=s.name, schedule=sched.name, concurrent_chemo=chemo,
                     chemo_regimen=sched.chemo_regimen if chemo else None)
