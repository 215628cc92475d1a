"""Which blood compartments see an organ's dose: the one organ -> compartment table, with sources.

Every rule that sends an organ's dose to blood lives in :data:`ORGAN_RULES` (``docs/blood_dose.md``
prints the same table, and a test keeps the two equal). The compartments are those of the ICRP-89
reference circulation (:mod:`lymphonet.dosimetry.circulation`; ICRP Publication 89, 2002, as
tabulated for HEDOS by Shin et al., Phys Med Biol 66:045003, 2021).

The table is built so that a contour never doses blood it does not hold:

* ``heart`` reaches the two heart chambers only. The coronary circulation (myocardial blood, 1% of
  the blood volume against 9% in the chambers) is dosed only from a ``coronary`` structure (without
  one it sees the remainder): v0.1 sent the heart's dose there too, which adds up to a ninth of the
  heart's contribution; with the single ``vena_cava`` rule below it made v0.1 overstate the mean
  blood dose of HEDOS's example by 24%.
* The superior and inferior venae cavae are separate organs with separate compartments.
* A *composite* structure (``great_vessels``, ``vena_cava``, ``bowel``) holds parts that have their
  own compartments. Where any of its parts is given the composite is ignored (its parts are
  better); alone it is refused unless the caller accepts spreading its dose over all its parts'
  compartments (``composites="spread"``), which is recorded as a warning because it overstates when
  the dose sits in the part with the smaller blood share.
"""

from __future__ import annotations

from dataclasses import dataclass

from lymphonet.errors import InputError


@dataclass(frozen=True)
class OrganRule:
    """One organ's compartments and where the rule comes from."""

    compartments: tuple[str, ...]
    source: str


_ICRP = "ICRP 89 compartment of the same tissue"
ORGAN_RULES: dict[str, OrganRule] = {
    "lungs": OrganRule(("lung",), "ICRP 89 pulmonary circulation (10.5% of blood)"),
    "lung_left": OrganRule(("lung",), "one side of the paired lung compartment"),
    "lung_right": OrganRule(("lung",), "one side of the paired lung compartment"),
    "heart": OrganRule(("right_heart", "left_heart"),
                       "ICRP 89: 9% of blood sits in the chambers; myocardium is 'coronary'"),
    "coronary": OrganRule(("coronary",), "ICRP 89 coronary circulation (myocardial blood, 1%)"),
    "aorta": OrganRule(("aorta",), _ICRP),
    "pulmonary_artery": OrganRule(("pulmonary_artery",), _ICRP),
    "superior_vena_cava": OrganRule(("superior_vena_cava",), _ICRP),
    "inferior_vena_cava": OrganRule(("inferior_vena_cava",), _ICRP),
    "esophagus": OrganRule(("stomach_oesophagus",), "ICRP 89 groups stomach and oesophagus"),
    "stomach": OrganRule(("stomach_oesophagus",), "ICRP 89 groups stomach and oesophagus"),
    "small_bowel": OrganRule(("small_intestine",), _ICRP),
    "large_bowel": OrganRule(("large_intestine",), "ICRP 89 large intestine (colon + rectum)"),
    "liver": OrganRule(("liver",), _ICRP),
    "spleen": OrganRule(("spleen",), _ICRP),
    "pancreas": OrganRule(("pancreas",), _ICRP),
    "kidneys": OrganRule(("kidneys",), _ICRP),
    "kidney_left": OrganRule(("kidneys",), "one side of the paired kidney compartment"),
    "kidney_right": OrganRule(("kidneys",), "one side of the paired kidney compartment"),
    "bladder": OrganRule(("bladder",), _ICRP),
    "brain": OrganRule(("brain",), _ICRP),
    "brainstem": OrganRule(("brain",), "part of the brain's circulation"),
    "thyroid": OrganRule(("thyroid",), _ICRP),
    "bone_marrow": OrganRule(("red_marrow",), "ICRP 89 red (active) marrow"),
    "lymph_nodes": OrganRule(("lymph_nodes",), _ICRP),
    "skin": OrganRule(("skin",), _ICRP),
    "muscle": OrganRule(("skeletal_muscle",), _ICRP),
    "tumor": OrganRule(("tumor",), "tumour compartment in parallel to its host "
                                  "(Shin et al. 2021; Circulation.with_tumor)"),
}

#: Composite structure -> its parts (each part has its own rule above).
COMPOSITES: dict[str, tuple[str, ...]] = {
    "great_vessels": ("aorta", "pulmonary_artery", "superior_vena_cava", "inferior_vena_cava"),
    "vena_cava": ("superior_vena_cava", "inferior_vena_cava"),
    "bowel": ("small_bowel", "large_bowel"),
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
    "svc": "superior_vena_cava", "ivc": "inferior_vena_cava", "tumour": "tumor",
    "coronary_arteries": "coronary",
}


def canonical_organ(name: str) -> str:
    """Canonical organ for a canonical name or a simple alias (``"lung"`` -> ``"lungs"``)."""
    key = name.strip().lower()
    return ALIASES.get(key, key)


def compartments_of(organ: str) -> tuple[str, ...]:
    """Compartments an organ (or a composite, spread over its parts) reaches."""
    if organ in COMPOSITES:
        return tuple(c for part in COMPOSITES[organ] for c in ORGAN_RULES[part].compartments)
    return ORGAN_RULES[organ].compartments


def resolve_composites(organs: set[str] | list[str], composites: str = "error", *,
                       patient: str | None = None) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """Which compartments each given organ doses, after the composite rule.

    Args:
        organs: Canonical organ names present (composites included).
        composites: ``"error"`` refuses a composite given without any of its parts; ``"spread"``
            spreads it over its parts' compartments with a warning.
        patient: Patient id for messages.

    Returns:
        ``(organ -> compartments, warnings)``; an ignored composite maps to ``()``.

    Raises:
        InputError: A lone composite with ``composites="error"``, or a bad ``composites`` value.
    """
    if composites not in ("error", "spread"):
        raise InputError(f"composites must be 'error' or 'spread', got {composites!r}",
                         field="composites")
    present = set(organs)
    out: dict[str, tuple[str, ...]] = {}
    notes: list[str] = []
    for organ in sorted(present):
        if organ not in COMPOSITES:
            out[organ] = ORGAN_RULES[organ].compartments
            continue
        parts = COMPOSITES[organ]
        covered = [p for p in parts if p in present or any(
            p in COMPOSITES.get(o, ()) for o in present - {organ} if o in COMPOSITES
            and set(COMPOSITES[o]) < set(parts))]
        if covered:
            out[organ] = ()  # its parts (or a smaller composite) speak for it
            continue
        if composites == "error":
            raise InputError(
                f"structure {organ!r} combines {', '.join(parts)}, which have different blood "
                "compartments; contour the parts, or accept spreading its dose over all of them "
                "(composites='spread', CLI --composites spread), which can overstate blood dose",
                patient=patient, field=organ)
        out[organ] = compartments_of(organ)
        notes.append(f"{organ} spread over {', '.join(out[organ])} (no part contoured): the blood "
                     "dose may be overstated")
    return out, notes
