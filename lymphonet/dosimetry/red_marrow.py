"""Active (red) marrow by bone site: how much of the body's red marrow a bone contour holds.

A bone contour is not all red marrow: cortical bone, trabecular bone and fatty (yellow) marrow take
most of its volume, and red marrow is spread unevenly over the skeleton. Treating every contoured
bone voxel as red marrow overstates both the marrow's dose and its share (a thorax scan holds more
bone than the whole body's ~1.2 L of red marrow). The rule used everywhere in lymphonet:

* Bone contours named by site (``bone_marrow_<site>``, sites of :data:`RED_MARROW_SHARE`) carry the
  site's share ``s_i`` of the adult active marrow (ICRP Publication 89, after Cristy 1981) spread
  evenly over the site's reference bone volume ``V_i`` (:data:`REFERENCE_SITE_VOLUME_CC`). A contour
  of volume ``v_i`` holds ``s_i min(1, v_i / V_i)`` of the red marrow, and each of its voxels
  weighs ``s_i / V_i`` per cc in the marrow's dose distribution.
* A ``bone_marrow`` contour without sites keeps the volume rule ``min(1, v / 1170 cc)`` (ICRP-89
  reference red-marrow mass 1170 g at ~1 g/cc), which is an upper bound when the contour is whole
  bone; :func:`marrow_weights` says so in its note.

Adult distribution only: children keep more red marrow in the skull (27.8% in the newborn, Cristy,
Phys Med Biol 26:389, 1981) and in the limbs; the by-age table is not applied yet.
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


def site_masks(masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ``bone_marrow_<site>`` masks of a structure dict, keyed by site (non-empty only)."""
    return {n[len(SITE_PREFIX):]: m for n, m in masks.items()
            if n.startswith(SITE_PREFIX) and n[len(SITE_PREFIX):] in RED_MARROW_SHARE and m.any()}


def with_marrow_union(masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``masks`` with the bone-site contours folded into one ``bone_marrow`` mask (their union with
    any ``bone_marrow`` contour), for the code that needs the marrow as one organ."""
    sites = site_masks(masks)
    if not sites:
        return dict(masks)
    out = {n: m for n, m in masks.items()
           if not (n.startswith(SITE_PREFIX) and n[len(SITE_PREFIX):] in sites)}
    parts = list(sites.values()) + ([masks["bone_marrow"]] if "bone_marrow" in masks else [])
    out["bone_marrow"] = np.logical_or.reduce(parts)
    return out


def marrow_weights(masks: dict[str, np.ndarray], voxel_cc: float
                   ) -> tuple[np.ndarray, np.ndarray, float, str] | None:
    """Red-marrow voxels, their weights and the share of the body's red marrow they hold.

    Args:
        masks: Structure masks (``bone_marrow`` and/or ``bone_marrow_<site>``), one grid.
        voxel_cc: Voxel volume (cc).

    Returns:
        ``(mask, weight, coverage, note)``: the marrow voxels (bool, grid shape), a per-voxel weight
        over ``mask`` (red-marrow share per voxel, 1-D, summing to ``coverage``), the share of the
        body's red marrow they hold (0..1) and a note on the rule used; None without marrow.
    """
    sites = site_masks(masks)
    if sites:
        shape = next(iter(sites.values())).shape
        share = np.zeros(shape, np.float64)  # share of the body's red marrow per voxel
        for site, m in sites.items():
            n = int(m.sum())
            held = RED_MARROW_SHARE[site] * min(1.0, n * voxel_cc / REFERENCE_SITE_VOLUME_CC[site])
            share[m] = held / n  # a contour larger than its site holds the site, not more
        mask = share > 0
        w = share[mask]
        coverage = float(w.sum())
        note = (f"red marrow by bone site ({', '.join(sorted(sites))}): "
                f"{100 * coverage:.0f}% of the body's red marrow")
        return mask, w, coverage, note
    bone = masks.get("bone_marrow")
    if bone is None or not bone.any():
        return None
    vol = bone.sum() * voxel_cc
    coverage = min(1.0, vol / RED_MARROW_REFERENCE_CC)
    w = np.full(int(bone.sum()), coverage / bone.sum())
    note = (f"bone_marrow without bone sites taken as red marrow ({vol:.0f} cc of the reference "
            f"{RED_MARROW_REFERENCE_CC:g} cc): an upper bound if the contour is whole bone; name "
            "bone sites (bone_marrow_<site>) for the red-marrow rule")
    return bone, w, float(coverage), note
