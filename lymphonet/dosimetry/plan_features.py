"""Plan features: what the mechanistic layer (and the hybrid model) needs from one plan.

A plan (course dose map + canonical structures + schedule) is reduced once to:

* the per-fraction dose distribution of circulating blood, as quantiles (blood-dose engine);
* per-fraction dose quantiles over each site of resident lymphocytes (spleen, lymph nodes, bone
  marrow, thymus, lungs, liver, bowel, the rest of the body), with the share of the site's lymphocytes the
  contoured volume represents (coverage);
* dose summaries: mean body dose, EDIC, mean dose of the main organs.

These are cheap to store (a few kB) and are what the kinetics layer consumes, so training and
scoring compute them once per plan (cached), never per step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from lymphonet.dosimetry.blood_dose import blood_dose_for_plan
from lymphonet.dosimetry.dose_map_histograms import REFERENCE_TISSUE_CC
from lymphonet.dosimetry.dvh import mean_body_dose_gy
from lymphonet.dosimetry.edic import edic_from_structures
from lymphonet.dosimetry.red_marrow import marrow_weights, touches_edge
from lymphonet.errors import InputError
from lymphonet.io.plan import Plan, resolve_beam_on_time_s
from lymphonet.io.volume import StructureSet, Volume
from lymphonet.organs import LYMPHOID_ORGANS

#: Reference volume (cc) of each resident site's lymphocyte-holding tissue in an adult, used for
#: coverage = contoured volume / reference volume (capped at 1). Red marrow follows the bone-site
#: rule of :mod:`lymphonet.dosimetry.red_marrow` instead; spleen, lungs and liver are whole
#: organs (:data:`WHOLE_ORGAN_CC`). Lymph nodes and thymus: lymphonet assumptions (total node
#: volume ~ 500 cc, adult thymus ~ 20 cc), to be calibrated; they only scale how much of the resident pool a contour holds.
#: Bowel: lymphonet assumption, the whole small and large bowel as contoured on CT (bowel-bag
#: contours of the abdomen and pelvis are typically 1,500-3,500 cc). Body: the ICRP-89 reference
#: body (73 kg male, 60 kg female) at 1.04 g/cc; the lymphocytes dispersed in other tissue are taken
#: as spread evenly by volume (lymphonet assumption), so a dose grid that holds part of the body
#: represents that part of them.
REFERENCE_LYMPHOID_VOLUME_CC = {"lymph_nodes": REFERENCE_TISSUE_CC["lymph_nodes"], "thymus": 20.0,
                                "bowel": 2500.0,
                                "body": {"M": 73_000 / 1.04, "F": 60_000 / 1.04}}
#: Canonical structures that make up each resident site (besides the site's own name and its
#: ``<site>_*`` parts, e.g. node stations).
_SITE_PARTS = {"bowel": ("small_bowel", "large_bowel"), "lungs": ("lung_left", "lung_right")}

#: Organs whose mean dose is reported as a feature (if contoured).
SUMMARY_ORGANS = ("lungs", "heart", "great_vessels", "liver", "spleen", "bone_marrow",
                  "lymph_nodes", "esophagus", "brain", "kidneys", "stomach", "bowel")


@dataclass(frozen=True)
class PlanFeatures:
    """Per-plan inputs of the mechanistic layer, all doses per fraction unless named ``course``.

    Attributes:
        blood_dose_q_gy: ``[Q]`` per-fraction blood-dose quantiles at ``(q + 0.5) / Q`` (Gy).
        lymphoid_dose_q_gy: ``[L, Q]`` per-fraction dose quantiles over each lymphoid organ
            (order :data:`~lymphonet.organs.LYMPHOID_ORGANS`; zeros where not contoured).
        lymphoid_coverage: ``[L]`` share of the organ's lymphocytes the contour represents.
        n_fractions: Fractions of the course.
        beam_on_time_s: Beam-on time per fraction (s).
        mean_body_dose_gy: Course mean body dose (Gy).
        edic_gy: Effective dose to immune cells (Gy), NaN if lungs or heart are not contoured.
        mean_blood_dose_gy: Per-fraction mean blood dose (Gy).
        fraction_blood_any_dose: Share of blood receiving any dose in one fraction.
        organ_mean_gy: Course mean dose of contoured :data:`SUMMARY_ORGANS`.
    """

    blood_dose_q_gy: np.ndarray
    lymphoid_dose_q_gy: np.ndarray
    lymphoid_coverage: np.ndarray
    n_fractions: int
    beam_on_time_s: float
    mean_body_dose_gy: float
    edic_gy: float
    mean_blood_dose_gy: float
    fraction_blood_any_dose: float
    organ_mean_gy: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        """Flat arrays for ``np.savez`` (organ means as two parallel arrays)."""
        out = {k: np.asarray(v) for k, v in asdict(self).items()
               if k not in ("organ_mean_gy", "notes")}
        out["notes"] = np.asarray(list(self.notes), dtype=str)
        out["organ_names"] = np.asarray(list(self.organ_mean_gy), dtype=str)
        out["organ_means"] = np.asarray(list(self.organ_mean_gy.values()), dtype=float)
        return out

    @classmethod
    def from_npz_dict(cls, data) -> PlanFeatures:
        scalars = {"n_fractions": int, "beam_on_time_s": float, "mean_body_dose_gy": float,
                   "edic_gy": float, "mean_blood_dose_gy": float, "fraction_blood_any_dose": float}
        kwargs = {k: conv(data[k]) for k, conv in scalars.items()}
        organs = dict(zip([str(n) for n in data["organ_names"]],
                          [float(v) for v in data["organ_means"]]))
        return cls(np.asarray(data["blood_dose_q_gy"], np.float32),
                   np.asarray(data["lymphoid_dose_q_gy"], np.float32),
                   np.asarray(data["lymphoid_coverage"], np.float32), organ_mean_gy=organs,
                   notes=tuple(str(n) for n in data.get("notes", ())), **kwargs)


def _quantiles(values: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Values at probability levels ``(q + 0.5) / n`` (the convention of the blood-dose engine),
    optionally with per-value weights (the lowest value whose cumulative weight reaches the level).
    """
    order = np.argsort(values.ravel(), kind="stable")
    v = values.ravel()[order]
    if weights is None:
        idx = np.minimum(((np.arange(n) + 0.5) / n * v.size).astype(np.int64), v.size - 1)
        return v[idx]
    cum = np.cumsum(np.asarray(weights, np.float64).ravel()[order])
    # side="right": with equal weights this is floor(p N), the unweighted rank above
    idx = np.searchsorted(cum / cum[-1], (np.arange(n) + 0.5) / n, side="right")
    return v[np.minimum(idx, v.size - 1)]


def lymphoid_masks(structures: StructureSet) -> dict[str, np.ndarray]:
    """Masks of the resident sites of :data:`~lymphonet.organs.LYMPHOID_ORGANS`.

    Parts are OR-ed (node stations ``lymph_nodes_*`` into lymph_nodes, small and large bowel into
    bowel); ``body`` is the body outside every other site, so no voxel counts twice.
    """
    out: dict[str, np.ndarray] = {}
    for organ in LYMPHOID_ORGANS:
        if organ == "body":
            continue
        parts = [m for n, m in structures.masks.items()
                 if n == organ or n.startswith(organ + "_") or n in _SITE_PARTS.get(organ, ())]
        if parts:
            mask = np.logical_or.reduce(parts)
            if mask.any():
                out[organ] = mask
    if "body" in structures.masks:
        body = structures.masks["body"].copy()
        for mask in out.values():
            body &= ~mask
        if body.any():
            out["body"] = body
    return out


#: Whole organs: a contour inside the dose grid holds all of the organ's lymphocytes (one lung of
#: two, half); one the grid cuts holds V / the whole organ's volume, here the lymphonet reference
#: phantom's (cc, male / female; its liver and spleen follow the ICRP-89 masses, liver 1800 / 1400 g).
WHOLE_ORGAN_CC = {"spleen": {"M": 200.0, "F": 176.0}, "lungs": {"M": 3370.0, "F": 2710.0},
                  "liver": {"M": 1630.0, "F": 1260.0}}


def site_coverage(organ: str, mask: np.ndarray, voxel_cc: float, sex: str = "M",
                  names=()) -> float:
    """Share of a resident site's lymphocytes its contour ``mask`` holds (0..1).

    Whole organs (:data:`WHOLE_ORGAN_CC`): 1 inside the grid (0.5 for one lung of two when
    ``names``, the structure names, hold one side only), else the cut part's volume share.
    Distributed tissues: contour volume over :data:`REFERENCE_LYMPHOID_VOLUME_CC` (capped at 1).
    """
    volume_cc = float(mask.sum()) * voxel_cc
    if organ in WHOLE_ORGAN_CC:
        whole = 1.0
        if organ == "lungs" and "lungs" not in names and not all(
                side in names for side in ("lung_left", "lung_right")):
            whole = 0.5  # one lung contoured
        if not touches_edge(mask):
            return whole
        ref_cc = WHOLE_ORGAN_CC[organ]
        return float(min(whole, volume_cc / ref_cc.get(sex, ref_cc["M"])))
    ref = REFERENCE_LYMPHOID_VOLUME_CC[organ]
    if isinstance(ref, dict):
        ref = ref.get(sex, ref["M"])
    return 1.0 if ref is None else float(min(1.0, volume_cc / ref))


def plan_features(
    dose: Volume,
    structures: StructureSet,
    *,
    n_fractions: int,
    beam_on_time_s: float,
    sex: str = "M",
    n_quantiles: int = 64,
    particles: int = 20_000,
    seed: int = 0,
    patient: str | None = None,
) -> PlanFeatures:
    """Reduce one plan to :class:`PlanFeatures`.

    Args:
        dose: Total course dose (Gy).
        structures: Canonical organ masks on the dose grid (must include ``body``).
        n_fractions: Fractions of the course.
        beam_on_time_s: Beam-on time per fraction (s); must be > 0.
        sex: Reference circulation (``"M"``/``"F"``).
        n_quantiles: Q, quantile levels for blood and organ doses.
        particles: Blood particles (20,000 give the mean blood dose to about 1%).
        seed: Seed of the blood-dose engine (features are reproducible).
        patient: Patient id for error messages.
    """
    beam_on_time_s, _ = resolve_beam_on_time_s(beam_on_time_s, None, patient=patient)
    result = blood_dose_for_plan(dose, structures, n_fractions=n_fractions,
                                 beam_on_time_s=float(beam_on_time_s), sex=sex,
                                 unknown="remainder", composites="spread", patient=patient,
                                 particles=particles, seed=seed)
    per_fx = np.asarray(dose.array, dtype=np.float32) / n_fractions
    masks = lymphoid_masks(structures)
    lymph_q = np.zeros((len(LYMPHOID_ORGANS), n_quantiles), np.float32)
    coverage = np.zeros(len(LYMPHOID_ORGANS), np.float32)
    notes = list(result.notes)
    meta = getattr(structures.grid, "metadata", None) or {}
    marrow = marrow_weights(structures.masks, dose.voxel_volume_cc,
                            meta.get("red_marrow_site_volume_cc"))
    if marrow is not None:  # red marrow by bone site (the bone_marrow mask is only its union)
        masks["bone_marrow"], marrow_w, marrow_cov, marrow_note = marrow
        notes.append(marrow_note)
    for i, organ in enumerate(LYMPHOID_ORGANS):
        if organ == "bone_marrow" and marrow is not None:
            lymph_q[i] = _quantiles(per_fx[masks[organ]], n_quantiles, marrow_w)
            coverage[i] = marrow_cov
        elif organ in masks:
            lymph_q[i] = _quantiles(per_fx[masks[organ]], n_quantiles)
            coverage[i] = site_coverage(organ, masks[organ], dose.voxel_volume_cc, sex,
                                        tuple(structures.masks))
    organ_means = {o: float(dose.array[structures[o]].mean()) for o in SUMMARY_ORGANS
                   if o in structures and structures[o].any()}
    for organ, mask in masks.items():
        if organ != "body":  # the body remainder is summarised by the mean body dose
            organ_means[organ] = float(dose.array[mask].mean())
    try:
        edic = float(edic_from_structures(dose, structures, n_fractions, patient=patient))
    except InputError:
        edic = float("nan")
    return PlanFeatures(
        blood_dose_q_gy=result.quantiles(n_quantiles).astype(np.float32),
        lymphoid_dose_q_gy=lymph_q,
        lymphoid_coverage=coverage,
        n_fractions=int(n_fractions),
        beam_on_time_s=float(beam_on_time_s),
        mean_body_dose_gy=float(mean_body_dose_gy(dose, structures, patient=patient)),
        edic_gy=edic,
        mean_blood_dose_gy=float(result.mean_gy),
        fraction_blood_any_dose=float(result.fraction_any_dose),
        organ_mean_gy=organ_means,
        notes=tuple(notes),
    )


def features_of_plan(plan: Plan, *, n_quantiles: int = 64, particles: int = 20_000,
                     seed: int = 0) -> PlanFeatures:
    """:func:`plan_features` of a plan read by :func:`lymphonet.io.plan.read_plan`."""
    return plan_features(plan.dose, plan.structures, n_fractions=plan.n_fractions,
                         beam_on_time_s=plan.beam_on_time_s, sex=plan.sex or "M",
                         n_quantiles=n_quantiles, particles=particles, seed=seed,
                         patient=plan.patient)
