"""Compartment dose histograms from a dose map and its structures (the plan route).

The rules shared with organ-dose tables (the one organ -> compartment table, composites, paired
organs, the remainder) live in :mod:`lymphonet.dosimetry.organ_dose` and
:mod:`lymphonet.dosimetry.organ_map`; this module adds what only voxels allow:

* **Blood weighting.** Each voxel counts by the blood it holds: its volume, times a blood-fraction
  (perfusion) map when one is given. The map is normalised to mean 1 inside the body, so only its
  relative values matter (percent, fractions or a perfusion index give the same answer) and the
  out-of-scan remainder, weighted by volume, stays consistent with it.
* **Partial contours of body-wide tissues.** A ``bone_marrow``, ``lymph_nodes``, ``skin`` or
  ``muscle`` contour holds only part of that tissue (:data:`REFERENCE_TISSUE_CC`). Its compartment
  sees the contour's histogram for the contoured share ``min(1, V_contour / V_ref)`` and the
  remainder for the rest (as for a one-sided paired organ), with a note. A contour larger than the
  reference is capped at the whole tissue. Bone contours (``bone_marrow``, ``bone_marrow_<site>``)
  follow the red-marrow rule of :mod:`lymphonet.dosimetry.red_marrow`: by site where named (each
  voxel weighs by its site's red-marrow density, the contours hold their sites' share), else by
  volume over the reference red marrow (an upper bound, noted).
* **Tumour.** With a tumour compartment in parallel to a host (see
  :meth:`~lymphonet.dosimetry.circulation.Circulation.with_tumor`), the GTV voxels *inside the host
  organ* feed the tumour and leave the host; GTV voxels outside the host stay where they are (noted).
  :func:`tumour_share` measures the tumour's share of the host's blood from the same masks.
"""

from __future__ import annotations

import re

import numpy as np

from lymphonet.dosimetry.organ_dose import (
    REMAINDER,
    OrganDoseHistograms,
    _assemble,
    _check_names,
    _histogram,
    _mix,
)
from lymphonet.dosimetry.organ_map import ORGAN_RULES, PAIRED_COMPARTMENTS, resolve_composites
from lymphonet.dosimetry.red_marrow import (
    RED_MARROW_REFERENCE_CC,
    marrow_weights,
    with_marrow_union,
)
from lymphonet.errors import InputError

#: Structures whose voxels feed a tumour compartment (names starting with "gtv").
_GTV_RE = re.compile(r"^gtv", re.IGNORECASE)

#: Whole-body volume (cc) of tissues that a contour usually covers only in part (ICRP 89 reference
#: male masses at about 1 g/cc: red marrow 1,170 g, skin 3,300 g, skeletal muscle 29,000 g; lymph
#: nodes 500 cc is a lymphonet assumption of the order of the nodal mass).
REFERENCE_TISSUE_CC: dict[str, float] = {"bone_marrow": RED_MARROW_REFERENCE_CC,
                                         "lymph_nodes": 500.0, "skin": 3300.0, "muscle": 29000.0}


def _per_fraction_voxels(dose, beam_doses, n_fractions: int, patient) -> np.ndarray:
    """``[nz, ny, nx]`` or ``[nz, ny, nx, G]`` per-fraction voxel doses (Gy), checked."""
    maps = [dose] if not beam_doses else list(beam_doses)
    for m in maps:
        dose.require_same_grid(m, "beam dose", patient=patient)
    per_fx = np.stack([np.asarray(m.array, np.float64) for m in maps], axis=-1) / n_fractions
    if not np.all(np.isfinite(per_fx)) or per_fx.min() < 0:
        raise InputError("dose map has negative or non-finite values", patient=patient,
                         file=dose.metadata.get("source"), field="dose")
    return per_fx if beam_doses else per_fx[..., 0]


def _blood_weight(dose, body: np.ndarray, blood_fraction, patient) -> tuple[np.ndarray, list]:
    """Blood held by each voxel (cc-equivalent): volume x the map normalised to mean 1 in body."""
    weight = np.full(dose.shape, dose.voxel_volume_cc)
    if blood_fraction is None:
        return weight, []
    dose.require_same_grid(blood_fraction, "blood fraction", patient=patient)
    bf = np.asarray(blood_fraction.array, np.float64)
    if not np.all(np.isfinite(bf)) or bf.min() < 0 or not bf[body].mean() > 0:
        raise InputError("blood-fraction map must be finite, >= 0 and not all zero in the body",
                         patient=patient, field="blood_fraction")
    return weight * bf / bf[body].mean(), ["blood-fraction map normalised to mean 1 in the body"]


def _host_masks(structures, host: str) -> list[np.ndarray]:
    return [m for n, m in structures.masks.items()
            if n in ORGAN_RULES and n != "tumor" and host in ORGAN_RULES[n].compartments]


def _tumour_mask(structures, host: str | None, patient) -> tuple[np.ndarray, list[str]]:
    """GTV voxels inside the host organ (the tumour compartment's voxels), and notes."""
    gtv = [m for n, m in structures.masks.items() if _GTV_RE.match(n) and m.any()]
    if not gtv:
        raise InputError("the circulation has a tumour compartment but no GTV structure (name "
                         "starting with 'gtv') is given", patient=patient, field="tumor")
    hosts = _host_masks(structures, host) if host else []
    if not hosts:
        raise InputError(f"the tumour host {host!r} is not contoured: the GTV's host organ is "
                         "needed to place the tumour", patient=patient, field="tumor_host")
    gtv_all, host_all = np.logical_or.reduce(gtv), np.logical_or.reduce(hosts)
    inside = gtv_all & host_all
    if not inside.any():
        raise InputError(f"the GTV does not overlap its tumour host {host!r}", patient=patient,
                         field="tumor_host")
    outside = float((gtv_all & ~host_all).sum() / gtv_all.sum())
    note = (f"{100 * outside:.0f}% of the GTV lies outside {host}: left in its organs or the "
            "remainder")
    notes = [note] if outside > 0 else []
    return inside, notes


def tumour_share(structures, host: str, blood_fraction=None, *, patient=None) -> float:
    """The tumour's share of its host compartment's blood, measured on the masks.

    Blood-weighted volume of GTV ∩ host over the host; halved when only one side of a paired host
    is contoured (the compartment's other half sees the remainder).

    Raises:
        InputError: No GTV, host not contoured, no overlap.
    """
    inside, _ = _tumour_mask(structures, host, patient)
    host_all = np.logical_or.reduce(_host_masks(structures, host))
    body = structures.masks["body"] if "body" in structures else np.ones(inside.shape, bool)
    w = np.ones(inside.shape) if blood_fraction is None else np.asarray(
        blood_fraction.array, np.float64) / max(float(np.asarray(blood_fraction.array)[body]
                                                      .mean()), 1e-12)
    share = float(w[inside].sum() / max(w[host_all].sum(), 1e-12))
    if host in PAIRED_COMPARTMENTS:
        combined, left, right = PAIRED_COMPARTMENTS[host]
        names = set(structures.masks)
        if combined not in names and len({left, right} & names) == 1:
            share /= 2.0
    if not 0.0 < share < 1.0:
        raise InputError(f"the GTV holds {share:.3f} of its host {host!r}; expected a share in "
                         "(0, 1)", patient=patient, field="tumor_host")
    return share


def histograms_from_dose_map(dose, structures, circulation_names: tuple[str, ...], *,
                             n_fractions: int, n_bins: int = 256,
                             whole_body_volume_l: float | None = None, unknown: str = "error",
                             composites: str = "error", blood_fraction=None, beam_doses=None,
                             tumor_host: str | None = None,
                             patient: str | None = None) -> OrganDoseHistograms:
    """Per-compartment per-fraction histograms from a course dose map and canonical structures.

    Args:
        dose: :class:`Volume` of total course dose, Gy, shape ``(nz, ny, nx)``.
        structures: :class:`StructureSet` on the dose grid with canonical organ names.
        circulation_names: Compartment ids (``Circulation.names``).
        n_fractions: Number of fractions; per-fraction dose = course dose / n_fractions.
        n_bins: Dose bins per organ (plus one exact-zero bin).
        whole_body_volume_l: Body volume of the whole patient, L; the part not covered by the
            ``body`` mask enters the remainder at 0 Gy. ``None``: no out-of-scan correction.
        unknown: ``"error"`` (default) or ``"remainder"`` for non-canonical, non-target names.
        composites: ``"error"`` or ``"spread"`` for a composite structure without its parts.
        blood_fraction: Optional :class:`Volume` of relative blood content per voxel (normalised
            to mean 1 in the body).
        beam_doses: Optional course dose maps of the ``G`` beams (same grid, summing to ``dose``).
        tumor_host: Host compartment of the ``tumor`` compartment (needed when the circulation has
            one): GTV voxels inside the host organ feed the tumour.
        patient: Patient id for error messages.

    Raises:
        InputError: Unmapped structure, lone composite, negative / non-finite dose or blood
            fraction, bad ``n_fractions``, grid mismatch, tumour without GTV or host overlap.
    """
    file = getattr(structures, "source", None)
    if int(n_fractions) < 1:
        raise InputError(f"n_fractions must be >= 1, got {n_fractions}", patient=patient,
                         field="n_fractions")
    if unknown not in ("error", "remainder"):
        raise InputError(f"unknown must be 'error' or 'remainder', got {unknown!r}",
                         field="unknown")
    dose.require_same_grid(structures.grid, "structures", patient=patient, file=file)
    per_fx = _per_fraction_voxels(dose, beam_doses, int(n_fractions), patient)
    body = structures.masks["body"] if "body" in structures else np.ones(dose.shape, bool)
    weight, notes = _blood_weight(dose, body, blood_fraction, patient)
    masks = with_marrow_union(structures.masks)
    organs = _check_names(masks, unknown=unknown, patient=patient, file=file)
    organs = {o for o in organs if masks[o].any()}
    mapping, composite_notes = resolve_composites(organs, composites, patient=patient)
    notes += composite_notes
    tumour = np.zeros(dose.shape, bool)
    if "tumor" in circulation_names:
        tumour, tumour_notes = _tumour_mask(structures, tumor_host, patient)
        notes += tumour_notes
    comp_masks: dict[str, dict[str, np.ndarray]] = {}
    mapped = tumour.copy()
    for name, comps in mapping.items():
        mask = masks[name] & ~tumour
        if comps:
            mapped |= mask
        for comp in comps:
            comp_masks.setdefault(comp, {})[name] = mask
    if tumour.any():
        comp_masks["tumor"] = {"tumor": tumour}
    remainder = _remainder(per_fx, weight, body & ~mapped, body, dose, whole_body_volume_l, n_bins)

    def hist(m):
        return _histogram(per_fx[m], weight[m], n_bins)

    def union(comp, organs_of_comp):
        m = np.logical_or.reduce([comp_masks[comp][o] for o in organs_of_comp])
        partial = [o for o in organs_of_comp if o in REFERENCE_TISSUE_CC]
        if not partial:
            return hist(m)
        if partial[0] == "bone_marrow":  # the red-marrow rule, with or without bone sites
            h, share, note = _red_marrow(m, structures, dose.voxel_volume_cc, per_fx, weight,
                                         n_bins)
            notes.append(f"{comp}: {note}; the rest of {comp} sees the {REMAINDER}")
        else:
            h = hist(m)
            share = min(1.0, m.sum() * dose.voxel_volume_cc / REFERENCE_TISSUE_CC[partial[0]])
            notes.append(f"{'+'.join(sorted(organs_of_comp))}: the contour holds "
                         f"{100 * share:.0f}% of the body's {partial[0]} (reference "
                         f"{REFERENCE_TISSUE_CC[partial[0]]:g} cc); the rest of {comp} sees the "
                         f"{REMAINDER}")
        return h if share >= 1.0 else _mix([(*h, share), (*remainder, 1.0 - share)])

    # Per-organ histograms are needed only for a paired organ contoured on one side.
    per_organ = {c: {o: (hist(m) if c in PAIRED_COMPARTMENTS else None) for o, m in orgs.items()}
                 for c, orgs in comp_masks.items()}
    return _assemble(tuple(circulation_names), per_organ, union, remainder, notes)


def _red_marrow(m, structures, voxel_cc, per_fx, weight, n_bins):
    """Marrow histogram from bone sites (:mod:`lymphonet.dosimetry.red_marrow`): blood in red
    marrow follows the red marrow, so each voxel of ``m`` weighs by its site's red-marrow density.
    Returns ``(histogram, share of the body's red marrow held, note)``."""
    meta = getattr(structures.grid, "metadata", None) or {}
    red_mask, red_w, share, note = marrow_weights(structures.masks, voxel_cc,
                                                  meta.get("red_marrow_site_volume_cc"))
    density = np.zeros(red_mask.shape, np.float64)
    density[red_mask] = red_w
    m = m & red_mask
    return _histogram(per_fx[m], weight[m] * density[m], n_bins), share, note


def _remainder(per_fx, weight, rem_mask, body, dose, whole_body_volume_l, n_bins):
    """Remainder histogram: body minus mapped organs, plus the out-of-scan body at 0 Gy."""
    rem = _histogram(per_fx[rem_mask], weight[rem_mask], n_bins)
    if whole_body_volume_l is not None:
        outside_cc = max(0.0, 1000.0 * float(whole_body_volume_l) - body.sum()
                         * dose.voxel_volume_cc)
        zero_beam = None if rem[1] is None else np.vstack([rem[1], np.zeros((1, rem[1].shape[1]))])
        rem = (np.append(rem[0], 0.0), zero_beam, np.append(rem[2], outside_cc))
    keep = rem[2] > 0
    if not keep.any():
        return np.zeros(1), None if rem[1] is None else np.zeros((1, rem[1].shape[1])), np.ones(1)
    return rem[0][keep], None if rem[1] is None else rem[1][keep], rem[2][keep]
