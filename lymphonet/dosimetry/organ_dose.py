"""Per-compartment dose histograms: what a blood particle sees when it enters a compartment.

Two inputs give an :class:`OrganDoseHistograms`:

* a dose map (:class:`~lymphonet.io.volume.Volume`, total course dose in Gy) plus a
  :class:`~lymphonet.io.volume.StructureSet` with canonical organ names
  (:func:`histograms_from_dose_map`);
* a table ``organ -> per-fraction dose`` (a number for a uniform dose, or ``(dose_gy, volume_cc)``
  arrays for a histogram) (:func:`histograms_from_organ_doses`).

Organ -> compartment rules (documented in ``docs/blood_dose.md``):

* :data:`ORGAN_COMPARTMENTS` maps each canonical organ to one or more ICRP-89 compartments; an organ
  mapped to several compartments (heart -> both heart chambers and the coronary bed) gives each of
  them its histogram.
* Several organs on one compartment (stomach + oesophagus, lungs + lung_left): the compartment sees
  the volume-weighted union of their voxels (each voxel counted once).
* Paired organs (lung, kidneys): if only one side is contoured, half of the compartment's blood sees
  that side and half sees the body remainder (the other side lies, uncontoured, in the remainder).
* The remainder (body minus all mapped organs, plus the out-of-scan part of a reference body at
  0 Gy) is the histogram of every compartment no organ maps to (large vessels, muscle, fat, skin,
  bone...).
* ``body`` defines the remainder; targets (``target``, names starting with ptv/ctv/gtv/itv/boost)
  overlap organs and are ignored; :data:`REMAINDER_ORGANS` are small organs without an ICRP-89
  compartment and stay part of the remainder. Any other name raises :class:`InputError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from lymphonet.errors import InputError
from lymphonet.io.dvh_table import RelativeDVH

#: Canonical organ -> ICRP-89 compartments whose blood sees the organ's dose.
ORGAN_COMPARTMENTS: dict[str, tuple[str, ...]] = {
    "lungs": ("lung",), "lung_left": ("lung",), "lung_right": ("lung",),
    "heart": ("right_heart", "left_heart", "coronary"),
    "great_vessels": ("aorta", "pulmonary_artery", "superior_vena_cava", "inferior_vena_cava"),
    "aorta": ("aorta",),
    "vena_cava": ("superior_vena_cava", "inferior_vena_cava"),
    "pulmonary_artery": ("pulmonary_artery",),
    "esophagus": ("stomach_oesophagus",), "stomach": ("stomach_oesophagus",),
    "small_bowel": ("small_intestine",), "large_bowel": ("large_intestine",),
    "bowel": ("small_intestine", "large_intestine"),
    "liver": ("liver",), "spleen": ("spleen",), "pancreas": ("pancreas",),
    "kidneys": ("kidneys",), "kidney_left": ("kidneys",), "kidney_right": ("kidneys",),
    "bladder": ("bladder",), "brain": ("brain",), "brainstem": ("brain",),
    "thyroid": ("thyroid",), "bone_marrow": ("red_marrow",), "lymph_nodes": ("lymph_nodes",),
    "skin": ("skin",), "muscle": ("skeletal_muscle",),
}

#: Paired compartment -> (combined organ, left, right).
PAIRED_COMPARTMENTS: dict[str, tuple[str, str, str]] = {
    "lung": ("lungs", "lung_left", "lung_right"),
    "kidneys": ("kidneys", "kidney_left", "kidney_right"),
}

#: Canonical organs without their own ICRP-89 compartment: their voxels stay in the remainder.
REMAINDER_ORGANS: tuple[str, ...] = ("spinal_cord", "thymus", "parotids")

#: Simple aliases accepted in organ-dose tables and on the command line.
ALIASES: dict[str, str] = {
    "lung": "lungs", "kidney": "kidneys", "marrow": "bone_marrow", "red_marrow": "bone_marrow",
    "oesophagus": "esophagus", "nodes": "lymph_nodes", "vessels": "great_vessels",
    "colon": "large_bowel", "small_intestine": "small_bowel", "large_intestine": "large_bowel",
}

REMAINDER = "remainder"
_TARGET_RE = re.compile(r"^(ptv|ctv|gtv|itv|boost|target)", re.IGNORECASE)

#: ICRP-89 reference body mass (kg) taken as body volume (L) at 1 kg/L, for the out-of-scan part.
REFERENCE_BODY_VOLUME_L: dict[str, float] = {"M": 73.0, "F": 60.0}


def is_ignored_structure(name: str) -> bool:
    """True for structures that never feed a compartment: ``body``, targets, remainder organs."""
    return name in ("body", "target") or name in REMAINDER_ORGANS or bool(_TARGET_RE.match(name))


def canonical_organ(name: str) -> str:
    """Canonical organ for a canonical name or a simple alias (``"lung"`` -> ``"lungs"``)."""
    key = name.strip().lower()
    return ALIASES.get(key, key)


@dataclass(frozen=True, eq=False)
class OrganDoseHistograms:
    """Per-fraction dose histogram of every circulation compartment.

    Attributes:
        compartments: Compartment ids, length ``N`` (the order of :class:`Circulation.names`).
        dose_gy: Per compartment, bin doses (per-fraction Gy), each shape ``[B_i]``.
        prob: Per compartment, bin probabilities (volume fractions), each shape ``[B_i]``, sum 1.
        sources: Per compartment, where its histogram came from (organ names, ``"remainder"``,
            ``"none"``).
    """

    compartments: tuple[str, ...]
    dose_gy: tuple[np.ndarray, ...]
    prob: tuple[np.ndarray, ...]
    sources: tuple[str, ...]

    def mean_gy(self) -> np.ndarray:
        """Mean per-fraction dose of each compartment, Gy, shape ``[N]``."""
        return np.array([float(np.dot(d, p)) for d, p in zip(self.dose_gy, self.prob)])

    def expected_blood_mean_gy(self, volume_fraction: np.ndarray) -> float:
        """Closed-form mean blood dose per fraction ``sum_i V_i D_i`` (Gy), any delivery time."""
        return float(np.dot(np.asarray(volume_fraction), self.mean_gy()))

    def max_gy(self) -> float:
        """Largest per-fraction dose any compartment can deliver, Gy."""
        return max(float(d.max()) if d.size else 0.0 for d in self.dose_gy)


def _histogram(doses_gy: np.ndarray, weights: np.ndarray, n_bins: int) -> tuple[np.ndarray, ...]:
    """Bin ``doses_gy`` into ``n_bins`` equal bins plus an exact-zero bin; value = weighted mean.

    Returns ``(dose_gy [B], weight [B])`` with empty bins dropped. The weighted mean is preserved
    exactly and a voxel with no dose never becomes a dosed bin.
    """
    doses_gy = np.asarray(doses_gy, dtype=np.float64).ravel()
    weights = np.asarray(weights, dtype=np.float64).ravel()
    top = float(doses_gy.max()) if doses_gy.size else 0.0
    zero = doses_gy <= 0.0
    if top <= 0.0:
        return np.zeros(1), np.array([weights.sum()])
    idx = np.minimum((doses_gy / top * n_bins).astype(np.int64), n_bins - 1) + 1
    idx[zero] = 0
    w = np.bincount(idx, weights=weights, minlength=n_bins + 1)
    wd = np.bincount(idx, weights=weights * doses_gy, minlength=n_bins + 1)
    keep = w > 0
    return np.where(keep, wd / np.where(keep, w, 1.0), 0.0)[keep], w[keep]


def _mix(parts: list[tuple[np.ndarray, np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Mixture of histograms ``(dose, weight, share)``: each renormalised, scaled by share."""
    doses = np.concatenate([d for d, _, _ in parts])
    probs = np.concatenate([w / w.sum() * s for _, w, s in parts])
    return doses, probs / probs.sum()


def _assemble(names: tuple[str, ...], groups: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
              union, remainder: tuple[np.ndarray, np.ndarray] | None) -> OrganDoseHistograms:
    """Turn ``compartment -> {organ: (dose, weight)}`` into histograms with the documented rules."""
    entries = []  # (dose_gy, prob, source) per compartment
    rem = remainder if remainder is not None else (np.zeros(1), np.ones(1))
    rem_name = REMAINDER if remainder is not None else "none"
    for comp in names:
        organs = groups.get(comp, {})
        if comp in PAIRED_COMPARTMENTS and organs:
            combined, left, right = PAIRED_COMPARTMENTS[comp]
            sides = [o for o in (left, right) if o in organs]
            if combined in organs:
                organs = {combined: organs[combined]}
            elif len(sides) == 1:
                side = organs[sides[0]]
                d, p = _mix([(side[0], side[1], 0.5), (rem[0], rem[1], 0.5)])
                entries.append((d, p, f"{sides[0]} (1/2) + {rem_name} (1/2)"))
                continue
        if not organs:
            entries.append((rem[0], rem[1] / rem[1].sum(), rem_name))
        else:
            d, w = union(comp, organs)
            entries.append((d, w / w.sum(), "+".join(sorted(organs))))
    doses, probs, sources = zip(*entries)
    return OrganDoseHistograms(tuple(names), tuple(doses), tuple(probs), tuple(sources))


def _compartments_for(name: str, *, unknown: str, patient=None, file=None) -> tuple[str, ...]:
    if name in ORGAN_COMPARTMENTS:
        return ORGAN_COMPARTMENTS[name]
    if is_ignored_structure(name) or unknown == "remainder":
        return ()
    raise InputError(
        f"structure {name!r} maps to no blood compartment; use a canonical organ name "
        f"({', '.join(sorted(ORGAN_COMPARTMENTS))}), a target name (ptv/ctv/gtv/itv...), or pass "
        "unknown='remainder' to count it as body remainder", patient=patient, file=file, field=name)


def histograms_from_dose_map(dose, structures, circulation_names: tuple[str, ...], *,
                             n_fractions: int, n_bins: int = 256,
                             whole_body_volume_l: float | None = None, unknown: str = "error",
                             patient: str | None = None) -> OrganDoseHistograms:
    """Per-compartment per-fraction histograms from a course dose map and canonical structures.

    Args:
        dose: :class:`Volume` of total course dose, Gy, shape ``(nz, ny, nx)``.
        structures: :class:`StructureSet` on the dose grid with canonical organ names.
        circulation_names: Compartment ids (``Circulation.names``).
        n_fractions: Number of fractions; per-fraction dose = course dose / n_fractions.
        n_bins: Equal-width dose bins per organ (plus one exact-zero bin).
        whole_body_volume_l: Body volume of the whole patient, L; the part not covered by the
            ``body`` mask enters the remainder at 0 Gy. ``None``: no out-of-scan correction.
        unknown: ``"error"`` (default) or ``"remainder"`` for non-canonical, non-target names.
        patient: Patient id for error messages.

    Raises:
        InputError: Unmapped structure, negative / non-finite dose, bad ``n_fractions``, grid
            mismatch.
    """
    file = getattr(structures, "source", None)
    if int(n_fractions) < 1:
        raise InputError(f"n_fractions must be >= 1, got {n_fractions}", patient=patient,
                         field="n_fractions")
    if unknown not in ("error", "remainder"):
        raise InputError(f"unknown must be 'error' or 'remainder', got {unknown!r}",
                         field="unknown")
    dose.require_same_grid(structures.grid, "structures", patient=patient, file=file)
    per_fx = np.asarray(dose.array, dtype=np.float64) / int(n_fractions)
    if not np.all(np.isfinite(per_fx)) or per_fx.min() < 0:
        raise InputError("dose map has negative or non-finite values", patient=patient,
                         file=dose.metadata.get("source"), field="dose")
    voxel_cc = dose.voxel_volume_cc
    mapped = np.zeros(dose.shape, dtype=bool)
    comp_masks: dict[str, dict[str, np.ndarray]] = {}
    for name, mask in structures.masks.items():
        comps = _compartments_for(name, unknown=unknown, patient=patient, file=file)
        if not comps or not mask.any():
            continue
        mapped |= mask
        for comp in comps:
            comp_masks.setdefault(comp, {})[name] = mask
    body = structures.masks["body"] if "body" in structures else np.ones(dose.shape, bool)
    rem_mask = body & ~mapped
    rem_d, rem_w = _histogram(per_fx[rem_mask], np.full(int(rem_mask.sum()), voxel_cc), n_bins)
    if whole_body_volume_l is not None:
        outside_cc = max(0.0, 1000.0 * float(whole_body_volume_l) - body.sum() * voxel_cc)
        rem_d, rem_w = np.append(rem_d, 0.0), np.append(rem_w, outside_cc)
    keep = rem_w > 0
    remainder = (rem_d[keep], rem_w[keep]) if keep.any() else (np.zeros(1), np.ones(1))

    def union(comp, organs):
        m = np.logical_or.reduce([comp_masks[comp][o] for o in organs])
        return _histogram(per_fx[m], np.full(int(m.sum()), voxel_cc), n_bins)

    # Per-organ histograms are needed only for a paired organ contoured on one side.
    per_organ = {c: {o: (_histogram(per_fx[m], np.full(int(m.sum()), voxel_cc), n_bins)
                         if c in PAIRED_COMPARTMENTS else None)
                     for o, m in organs.items()} for c, organs in comp_masks.items()}
    return _assemble(tuple(circulation_names), per_organ, union, remainder)


def histograms_from_organ_doses(organ_doses: Mapping[str, object],
                                circulation_names: tuple[str, ...], *,
                                patient: str | None = None) -> OrganDoseHistograms:
    """Per-compartment histograms from a table of per-fraction organ doses.

    Args:
        organ_doses: Organ (canonical name, alias, or ``"remainder"``) -> per-fraction dose: a
            number (uniform dose, Gy), a pair ``(dose_gy [B], volume_cc [B])`` (differential
            DVH), or a :class:`~lymphonet.io.dvh_table.RelativeDVH` (shares without volume).
            Compartments no organ maps to get the ``"remainder"`` entry, or 0 Gy.
        circulation_names: Compartment ids (``Circulation.names``).
        patient: Patient id for error messages.

    Raises:
        InputError: Unknown organ, negative dose, or two non-paired organs on one compartment where
            either lacks volumes (a volume-weighted union needs volumes).
    """
    groups: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    has_volume: dict[str, bool] = {}
    remainder = None
    for raw_name, value in organ_doses.items():
        name = canonical_organ(raw_name)
        if isinstance(value, (int, float, np.floating, np.integer)):
            d, w, vol = np.array([float(value)]), np.ones(1), False
        elif isinstance(value, RelativeDVH):  # shares of the organ, no absolute volume
            d, w, vol = np.asarray(value.dose_gy, float), np.asarray(value.fraction, float), False
        else:
            try:
                d, w = (np.asarray(v, dtype=float).ravel() for v in value)  # type: ignore[misc]
            except (TypeError, ValueError):
                raise InputError(f"organ dose must be a number or (dose_gy, volume_cc) arrays, got "
                                 f"{value!r}", patient=patient, field=raw_name) from None
            vol = True
            if d.shape != w.shape or d.size == 0 or w.min() < 0 or w.sum() <= 0:
                raise InputError("histogram needs equal-length dose and non-negative volume arrays",
                                 patient=patient, field=raw_name)
        if not np.all(np.isfinite(d)) or d.min() < 0:
            raise InputError(f"organ dose must be finite and >= 0 Gy, got {value!r}",
                             patient=patient, field=raw_name)
        if name in (REMAINDER, "body"):
            remainder = (d, w)
            continue
        if name not in ORGAN_COMPARTMENTS:
            raise InputError(f"organ {raw_name!r} maps to no blood compartment; known organs: "
                             f"{', '.join(sorted(ORGAN_COMPARTMENTS))}, or 'remainder'",
                             patient=patient, field=raw_name)
        has_volume[name] = vol
        for comp in ORGAN_COMPARTMENTS[name]:
            groups.setdefault(comp, {})[name] = (d, w)

    def union(comp, organs):
        if len(organs) > 1 and not all(has_volume[o] for o in organs):
            raise InputError(f"organs {sorted(organs)} all map to compartment {comp!r}; combining "
                             "them is volume-weighted, so give each as (dose_gy, volume_cc)",
                             patient=patient, field=",".join(sorted(organs)))
        return (np.concatenate([d for d, _ in organs.values()]),
                np.concatenate([w for _, w in organs.values()]))

    return _assemble(tuple(circulation_names), groups, union, remainder)


def uniform_histograms(circulation_names: tuple[str, ...],
                       dose_by_compartment: Mapping[str, float]) -> OrganDoseHistograms:
    """Histograms with one uniform per-fraction dose per compartment (others 0 Gy); for tests."""
    unknown = set(dose_by_compartment) - set(circulation_names)
    if unknown:
        raise InputError(f"unknown compartments {sorted(unknown)}", field="compartment")
    return OrganDoseHistograms(
        tuple(circulation_names),
        tuple(np.array([float(dose_by_compartment.get(c, 0.0))]) for c in circulation_names),
        tuple(np.ones(1) for _ in circulation_names),
        tuple("uniform" if c in dose_by_compartment else "none" for c in circulation_names),
    )
