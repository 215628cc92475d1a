"""Per-compartment dose histograms: what a blood particle sees when it enters a compartment.

Two inputs give an :class:`OrganDoseHistograms`:

* a dose map (:class:`~lymphonet.io.volume.Volume`, total course dose in Gy), optionally one map
  per beam (time-resolved delivery), plus a :class:`~lymphonet.io.volume.StructureSet` with
  canonical organ names (:func:`lymphonet.dosimetry.dose_map_histograms.histograms_from_dose_map`);
* a table ``organ -> per-fraction dose`` (a number for a uniform dose, ``(dose_gy, volume_cc)``
  arrays, or a relative DVH) (:func:`histograms_from_organ_doses`).

Which compartments an organ reaches is the one table :data:`~lymphonet.dosimetry.organ_map.ORGAN_RULES`
(with its composite rule). The other rules (documented in ``docs/blood_dose.md``):

* Several organs on one compartment (stomach + oesophagus, lungs + lung_left): the compartment sees
  the blood-weighted union of their voxels (each voxel counted once).
* Paired organs (lung, kidneys): if only one side is contoured, half of the compartment's blood sees
  that side and half sees the body remainder (the other side lies, uncontoured, in the remainder).
* The remainder (body minus all mapped organs, plus the out-of-scan part of a reference body at
  0 Gy) is the histogram of every compartment no organ maps to (large vessels, muscle, fat, skin,
  bone...).
* Voxels are weighted by the blood they hold: uniform within an organ (voxel volume), or voxel volume
  x a blood-fraction (perfusion) map when one is given.
* A ``tumor`` compartment (present when the circulation has one, see
  :meth:`~lymphonet.dosimetry.circulation.Circulation.with_tumor`) sees the GTV voxels, which then
  leave their host organ and the remainder; other targets (ptv/ctv/itv/boost/target) overlap organs
  and are ignored.
* ``body`` defines the remainder; :data:`~lymphonet.dosimetry.organ_map.REMAINDER_ORGANS` stay in the
  remainder. Any other name raises :class:`InputError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from lymphonet.dosimetry.organ_map import (
    COMPOSITES,
    ORGAN_RULES,
    PAIRED_COMPARTMENTS,
    REMAINDER_ORGANS,
    canonical_organ,
    resolve_composites,
)
from lymphonet.errors import InputError
from lymphonet.io.dvh_table import RelativeDVH

REMAINDER = "remainder"
_TARGET_RE = re.compile(r"^(ptv|ctv|gtv|itv|boost|target)", re.IGNORECASE)

#: ICRP-89 reference body mass (kg) taken as body volume (L) at 1 kg/L, for the out-of-scan part.
REFERENCE_BODY_VOLUME_L: dict[str, float] = {"M": 73.0, "F": 60.0}


def is_ignored_structure(name: str) -> bool:
    """True for structures that never feed a compartment: ``body``, targets, remainder organs."""
    return name in ("body", "target") or name in REMAINDER_ORGANS or bool(_TARGET_RE.match(name))


@dataclass(frozen=True, eq=False)
class OrganDoseHistograms:
    """Per-fraction dose histogram of every circulation compartment.

    Attributes:
        compartments: Compartment ids, length ``N`` (the order of :class:`Circulation.names`).
        dose_gy: Per compartment, bin doses (per-fraction Gy, all beams), each shape ``[B_i]``.
        prob: Per compartment, bin probabilities (blood shares), each shape ``[B_i]``, sum 1.
        sources: Per compartment, where its histogram came from (organ names, ``"remainder"``,
            ``"none"``).
        beam_dose_gy: ``None`` (one dose map for the whole fraction) or, per compartment, the bins'
            dose from each of ``G`` beams, shape ``[B_i, G]``, summing to ``dose_gy``.
        notes: Warnings about the mapping (spread composites, one-sided paired organs...).
    """

    compartments: tuple[str, ...]
    dose_gy: tuple[np.ndarray, ...]
    prob: tuple[np.ndarray, ...]
    sources: tuple[str, ...]
    beam_dose_gy: tuple[np.ndarray, ...] | None = None
    notes: tuple[str, ...] = ()

    @property
    def n_beams(self) -> int:
        """Beam groups ``G`` (1 without per-beam maps)."""
        return 1 if self.beam_dose_gy is None else int(self.beam_dose_gy[0].shape[1])

    def per_beam_gy(self) -> tuple[np.ndarray, ...]:
        """Per compartment the ``[B_i, G]`` bin doses per beam (``G = 1``: ``dose_gy[:, None]``)."""
        if self.beam_dose_gy is None:
            return tuple(d[:, None] for d in self.dose_gy)
        return self.beam_dose_gy

    def mean_gy(self) -> np.ndarray:
        """Mean per-fraction dose of each compartment, Gy, shape ``[N]``."""
        return np.array([float(np.dot(d, p)) for d, p in zip(self.dose_gy, self.prob)])

    def expected_blood_mean_gy(self, volume_fraction: np.ndarray) -> float:
        """Closed-form mean blood dose per fraction ``sum_i V_i D_i`` (Gy), any delivery time."""
        return float(np.dot(np.asarray(volume_fraction), self.mean_gy()))

    def max_gy(self) -> float:
        """Largest per-fraction dose any compartment can deliver, Gy."""
        return max(float(d.max()) if d.size else 0.0 for d in self.dose_gy)


def _joint_bins(level: np.ndarray) -> tuple[int, np.ndarray]:
    """Number of distinct rows of ``level`` ``[n, G]`` (non-negative ints) and each row's index
    among them, in lexicographic row order (as ``np.unique(level, axis=0)``, which sorts a
    structured view and is ~20x slower on millions of voxels). One column: a counting pass; a
    few: one int64 key per row while it cannot overflow; else ``np.unique(axis=0)``."""
    n, groups = level.shape
    base = int(level.max()) + 1 if n else 1
    if groups == 1:
        counts = np.bincount(level[:, 0], minlength=1)
        used = np.flatnonzero(counts)
        lookup = np.zeros(counts.size, np.int64)
        lookup[used] = np.arange(used.size)
        return int(used.size), lookup[level[:, 0]]
    if groups * np.log2(max(base, 2)) < 62:
        key = np.zeros(n, np.int64)
        for g in range(groups):
            key = key * base + level[:, g]
        uniq, idx = np.unique(key, return_inverse=True)
        return int(uniq.size), idx.ravel()
    uniq, idx = np.unique(level, axis=0, return_inverse=True)  # joint bins, no key overflow
    return int(uniq.shape[0]), idx.ravel()


def _histogram(doses_gy: np.ndarray, weights: np.ndarray, n_bins: int):
    """Bin voxel doses into a histogram; each bin's value is the weighted mean of its voxels.

    Args:
        doses_gy: ``[n]`` voxel doses, or ``[n, G]`` per-beam voxel doses.
        weights: ``[n]`` blood held by each voxel (any unit).
        n_bins: Equal bins (one beam) or levels per beam (``max(8, n_bins^(2/G))``, several
            beams, binned jointly), plus an exact-zero bin.

    Returns:
        ``(dose_gy [B], beam_dose_gy [B, G] or None, weight [B])``; empty bins dropped. Weighted
        means are preserved exactly and a voxel with no dose never becomes a dosed bin.
    """
    d = np.asarray(doses_gy, dtype=np.float64)
    d = d[:, None] if d.ndim == 1 else d
    weights = np.asarray(weights, dtype=np.float64).ravel()
    groups = d.shape[1]
    top = d.max(axis=0) if d.shape[0] else np.zeros(groups)
    if not np.any(top > 0):
        beam = np.zeros((1, groups)) if groups > 1 else None
        return np.zeros(1), beam, np.array([weights.sum()])
    levels = n_bins if groups == 1 else max(8, round(n_bins ** (2.0 / groups)))
    level = np.minimum((d / np.where(top > 0, top, 1.0) * levels).astype(np.int64), levels - 1)
    level = np.where(d > 0, level + 1, 0)
    n_bins_used, idx = _joint_bins(level)
    w = np.bincount(idx, weights=weights, minlength=n_bins_used)
    beam = np.stack([np.bincount(idx, weights=weights * d[:, g], minlength=n_bins_used)
                     for g in range(groups)], axis=1)
    keep = w > 0
    beam = beam[keep] / w[keep, None]
    return beam.sum(1), (beam if groups > 1 else None), w[keep]


def _mix(parts: list[tuple]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Mixture of histograms ``(dose, beam, weight, share)``: each renormalised, scaled by share."""
    doses = np.concatenate([p[0] for p in parts])
    beams = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
    probs = np.concatenate([w / w.sum() * s for _, _, w, s in parts])
    return doses, beams, probs / probs.sum()


def _assemble(names: tuple[str, ...], groups: dict[str, dict[str, tuple]], union,
              remainder: tuple | None, notes: list[str]) -> OrganDoseHistograms:
    """Turn ``compartment -> {organ: histogram}`` into histograms with the documented rules."""
    entries = []  # (dose_gy, beam_gy, prob, source) per compartment
    rem = remainder if remainder is not None else (np.zeros(1), None, np.ones(1))
    rem_name = REMAINDER if remainder is not None else "none"
    for comp in names:
        organs = groups.get(comp, {})
        if comp in PAIRED_COMPARTMENTS and organs:
            combined, left, right = PAIRED_COMPARTMENTS[comp]
            sides = [o for o in (left, right) if o in organs]
            if combined in organs:
                if sides:
                    notes.append(f"{comp}: {combined} given, so {', '.join(sides)} not used")
                organs = {combined: organs[combined]}
            elif len(sides) == 1:
                d, b, p = _mix([(*organs[sides[0]], 0.5), (*rem, 0.5)])
                entries.append((d, b, p, f"{sides[0]} (1/2) + {rem_name} (1/2)"))
                notes.append(f"only {sides[0]} given: half of the {comp} blood sees the "
                             f"{rem_name}")
                continue
        if not organs:
            entries.append((rem[0], rem[1], rem[2] / rem[2].sum(), rem_name))
        else:
            d, b, w = union(comp, organs)
            if not w.sum() > 0:
                raise InputError(f"compartment {comp!r}: its organs {sorted(organs)} hold no blood "
                                 "(zero weight, e.g. a blood-fraction map of 0 there)",
                                 field=comp)
            entries.append((d, b, w / w.sum(), "+".join(sorted(organs))))
    doses, beams, probs, sources = zip(*entries)
    if any(b is not None for b in beams):
        groups_n = next(b.shape[1] for b in beams if b is not None)
        beams = tuple(b if b is not None else np.zeros((d.size, groups_n))
                      for b, d in zip(beams, doses))
    else:
        beams = None
    return OrganDoseHistograms(tuple(names), tuple(doses), tuple(probs), tuple(sources), beams,
                               tuple(notes))


def _check_names(names, *, unknown: str, patient=None, file=None) -> set[str]:
    """The structure names that feed compartments (after the ignore and unknown rules)."""
    out = set()
    for name in names:
        if name in ORGAN_RULES or name in COMPOSITES:
            out.add(name)
        elif not (is_ignored_structure(name) or unknown == "remainder"):
            raise InputError(
                f"structure {name!r} maps to no blood compartment; use a canonical organ name "
                f"({', '.join(sorted(ORGAN_RULES))}), a target name (ptv/ctv/gtv/itv...), or "
                "pass unknown='remainder' to count it as body remainder", patient=patient,
                file=file, field=name)
    return out - {"tumor"}


def _organ_entry(raw_name: str, value, patient) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(dose_gy [B], weight [B], has_volume)`` of one organ-dose table entry, checked."""
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
    return d, w, vol


def histograms_from_organ_doses(organ_doses: Mapping[str, object],
                                circulation_names: tuple[str, ...], *,
                                composites: str = "error",
                                patient: str | None = None) -> OrganDoseHistograms:
    """Per-compartment histograms from a table of per-fraction organ doses.

    Args:
        organ_doses: Organ (canonical name, alias, ``"tumor"`` or ``"remainder"``) -> per-fraction
            dose: a number (uniform dose, Gy), a pair ``(dose_gy [B], volume_cc [B])``
            (differential DVH), or a :class:`~lymphonet.io.dvh_table.RelativeDVH` (shares
            without volume). Compartments no organ maps to get the ``"remainder"`` entry, or 0 Gy.
        circulation_names: Compartment ids (``Circulation.names``; ``tumor`` needs a circulation
            made by ``Circulation.with_tumor``).
        composites: ``"error"`` or ``"spread"`` for a composite organ without its parts.
        patient: Patient id for error messages.

    Raises:
        InputError: Unknown organ, negative dose, a lone composite, ``tumor`` without a tumour
            compartment, or two non-paired organs on one compartment where either lacks volumes
            (a volume-weighted union needs volumes).
    """
    entries: dict[str, tuple[np.ndarray, np.ndarray, bool]] = {}
    remainder = None
    for raw_name, value in organ_doses.items():
        name = canonical_organ(raw_name)
        d, w, vol = _organ_entry(raw_name, value, patient)
        if name in (REMAINDER, "body"):
            remainder = (d, None, w)
        elif name in ORGAN_RULES or name in COMPOSITES:
            entries[name] = (d, w, vol)
        else:
            raise InputError(f"organ {raw_name!r} maps to no blood compartment; known organs: "
                             f"{', '.join(sorted(ORGAN_RULES))}, or 'remainder'",
                             patient=patient, field=raw_name)
    if "tumor" in entries and "tumor" not in circulation_names:
        raise InputError("a tumour dose needs a tumour compartment: give its host organ "
                         "(tumor_host, CLI --tumor-host)", patient=patient, field="tumor")
    mapping, notes = resolve_composites(set(entries), composites, patient=patient)
    groups: dict[str, dict[str, tuple]] = {}
    for name, comps in mapping.items():
        for comp in comps:
            groups.setdefault(comp, {})[name] = (entries[name][0], None, entries[name][1])

    def union(comp, organs):
        if len(organs) > 1 and not all(entries[o][2] for o in organs):
            raise InputError(f"organs {sorted(organs)} all map to compartment {comp!r}; combining "
                             "them is volume-weighted, so give each as (dose_gy, volume_cc)",
                             patient=patient, field=",".join(sorted(organs)))
        return (np.concatenate([d for d, _, _ in organs.values()]), None,
                np.concatenate([w for _, _, w in organs.values()]))

    return _assemble(tuple(circulation_names), groups, union, remainder, notes)


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
