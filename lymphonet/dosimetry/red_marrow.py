"""Active (red) marrow by bone site: how much of the body's red marrow a bone contour holds.

A bone contour is not all red marrow: cortical bone, trabecular bone and fatty (yellow) marrow take
most of its volume, and red marrow is spread unevenly over the skeleton. Treating every contoured
bone voxel as red marrow overstates both the marrow's dose and its share (a thorax scan holds more
bone than the whole body's ~1.2 L of red marrow). The rule used everywhere in lymphonet:

* Bone contours named by site (``bone_marrow_<site>``, sites of :data:`RED_MARROW_SHARE`) carry the
  site's share ``s_i`` of the adult active marrow (ICRP Publication 89, after Cristy 1981) spread
  evenly over the site's bone. A contour that lies inside the dose grid is the whole site and holds
  ``s_i``; one the grid cuts (it touches the grid's edge) holds ``s_i min(1, v_i / V_i)``, with
  ``V_i`` the whole site's volume (the patient's where known, as for the phantoms, else the
  reference adult male's, :data:`REFERENCE_SITE_VOLUME_CC`). Its voxels share that evenly.
* A ``bone_marrow`` contour without sites keeps the volume rule ``min(1, v / 1170 cc)`` (ICRP-89
  reference red-marrow mass 1170 g at ~1 g/cc), which is an upper bound when the contour is whole
  bone; :func:`marrow_weights` says so in its note.

Adult distribution only: children keep more red marrow in the skull (27.8% in the newborn, Cristy,
Phys Med Biol 26:389, 1981) and in the limbs. The by-age table (ICRP 89, after Cristy 1981) was not
available to us, so it is not applied; :func:`age_note` says so for every patient under
:data:`ADULT_MARROW_AGE` instead of scoring a child silently with an adult skeleton.
"""

from __future__ import annotations

import numpy as np

#: Share of the adult active (red) marrow in each bone site, ICRP Publication 89 (2002), after
#: Cristy (Phys Med Biol 26:389, 1981). Mandible 0.8, scapulae 2.8, clavicles 0.8 and humeri 2.3%
#: are not listed: lymphonet's phantoms do not draw them and no canonical name exists for them yet.
RED_MARROW_SHARE: dict[str, float] = {
    "cranium": 0.076, "cervical": 0.039, "thoracic": 0.161, "lumbar": 0.123, "sacrum": 0.099,
    "os_coxae": 0.175, "femora": 0.067, "sternum": 0.031, "ribs": 0.161,
}
#: Bone volume (cc) of each site in lymphonet's reference adult male phantom (176 cm, BMI 22;
#: :mod:`lymphonet.twin.anatomy`, checked by a test). Used as the whole site's volume: a contour of
#: the whole site holds all of that site's share.
REFERENCE_SITE_VOLUME_CC: dict[str, float] = {
    "cranium": 499.0, "cervical": 54.0, "thoracic": 251.0, "lumbar": 209.0, "sacrum": 192.0,
    "os_coxae": 659.0, "femora": 307.0, "sternum": 26.0, "ribs": 801.0,
}
#: ICRP-89 reference red-marrow mass (g) of an adult male, at ~1 g/cc.
RED_MARROW_REFERENCE_CC = 1170.0
SITE_PREFIX = "bone_marrow_"
#: Youngest age (years) the adult distribution is used for without a note. ICRP 89 tabulates the
#: skeleton apart at birth, 1, 5, 10 and 15 years; from 18 lymphonet takes the adult one.
ADULT_MARROW_AGE = 18.0


def age_note(age_years: float | None, by_site: bool = True) -> str | None:
    """A warning when a child's red marrow is taken with the adult reference.

    Args:
        age_years: Age (years); None or NaN (unknown: the manifest's to report) gives no note.
        by_site: True for bone contours named by site (the adult ICRP-89 distribution over sites),
            False for generic bone (the volume rule against the adult red-marrow mass).

    Returns:
        The warning, or None for an adult or an unknown age.
    """
    if age_years is None or not np.isfinite(age_years) or age_years >= ADULT_MARROW_AGE:
        return None
    if not by_site:
        return (f"age {age_years:g}: bone without named sites counted against the adult "
                f"red-marrow mass ({RED_MARROW_REFERENCE_CC:g} g, ICRP 89); a child has less "
                "red marrow in all, so the share of it in the field is underestimated")
    return (f"age {age_years:g}: red marrow shared over the bone sites as in the adult (ICRP 89); "
            "a child holds more of it in the skull and limbs (27.8% in the skull at birth against "
            "7.6% in the adult, Cristy 1981) and less in the trunk, so a cranial field's marrow "
            "share is underestimated and a pelvic or spinal one's overestimated")


def touches_edge(mask: np.ndarray) -> bool:
    """Whether a 3-D mask reaches the first or last slice of its grid along any axis (the grid
    cuts the structure, so its volume is only part of the organ's)."""
    return any(np.take(mask, i, axis=a).any() for a in range(mask.ndim) for i in (0, -1))


def site_masks(masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ``bone_marrow_<site>`` masks of a structure dict, keyed by site (known, non-empty)."""
    return {n[len(SITE_PREFIX):]: m for n, m in masks.items()
            if n.startswith(SITE_PREFIX) and n[len(SITE_PREFIX):] in RED_MARROW_SHARE and m.any()}


def _generic_bone(masks: dict[str, np.ndarray]) -> np.ndarray | None:
    """Bone without a known site: ``bone_marrow`` and ``bone_marrow_<unknown>`` contours (None if
    there is none)."""
    parts = [m for n, m in masks.items() if (n == "bone_marrow" or n.startswith(SITE_PREFIX)
             and n[len(SITE_PREFIX):] not in RED_MARROW_SHARE) and m.any()]
    return np.logical_or.reduce(parts) if parts else None


def with_marrow_union(masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``masks`` with every bone contour (sites, unknown sites, ``bone_marrow``) folded into one
    ``bone_marrow`` mask, for the code that needs the marrow as one organ."""
    bones = [n for n in masks if n == "bone_marrow" or n.startswith(SITE_PREFIX)]
    if bones == ["bone_marrow"] or not bones:
        return dict(masks)
    out = {n: m for n, m in masks.items() if n not in bones}
    out["bone_marrow"] = np.logical_or.reduce([masks[n] for n in bones])
    return out


def marrow_weights(masks: dict[str, np.ndarray], voxel_cc: float,
                   site_volume_cc: dict[str, float] | None = None
                   ) -> tuple[np.ndarray, np.ndarray, float, str] | None:
    """Red-marrow voxels, their weights and the share of the body's red marrow they hold.

    Args:
        masks: Structure masks (``bone_marrow`` and/or ``bone_marrow_<site>``), one grid.
        voxel_cc: Voxel volume (cc).
        site_volume_cc: This patient's whole-site bone volumes (a phantom knows them); default
            :data:`REFERENCE_SITE_VOLUME_CC`, the reference adult male's.

    Returns:
        ``(mask, weight, coverage, note)``: the marrow voxels (bool, grid shape), a per-voxel weight
        over ``mask`` (red-marrow share per voxel, 1-D, summing to ``coverage``), the share of the
        body's red marrow they hold (0..1) and a note on the rule used; None without marrow.
        Bone without a known site keeps the volume rule (``voxel / 1170 cc`` each, an upper
        bound, noted); overlapping contours add their shares; coverage is capped at 1.
    """
    ref = dict(REFERENCE_SITE_VOLUME_CC, **(site_volume_cc or {}))
    sites = site_masks(masks)
    generic = _generic_bone(masks)
    if not sites and generic is None:
        return None
    shape = next(iter(masks.values())).shape
    share = np.zeros(shape, np.float64)  # share of the body's red marrow per voxel
    notes = []
    for site, m in sites.items():
        n = int(m.sum())
        # a contour inside the grid is the whole site; one cut by the grid's edge holds its part
        part = min(1.0, n * voxel_cc / ref[site]) if touches_edge(m) else 1.0
        share[m] += RED_MARROW_SHARE[site] * part / n
    if sites:
        notes.append(f"red marrow by bone site ({', '.join(sorted(sites))}"
                     + ("" if site_volume_cc else "; reference adult male site volumes") + ")")
    if generic is not None:
        rest = generic & (share == 0)
        if rest.any():
            share[rest] += voxel_cc / RED_MARROW_REFERENCE_CC
            notes.append(f"{rest.sum() * voxel_cc:.0f} cc of bone without a known site taken as "
                         f"red marrow (reference {RED_MARROW_REFERENCE_CC:g} cc): an upper bound if "
                         "it is whole bone; name bone sites (bone_marrow_<site>) for the red-marrow "
                         "rule")
    mask = share > 0
    w = share[mask]
    if w.sum() > 1.0:
        w = w / w.sum()
    coverage = float(w.sum())
    return mask, w, coverage, "; ".join(notes) + f": {100 * coverage:.0f}% of the body's red marrow"
