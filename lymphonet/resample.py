"""Dose and organ masks onto the model's input grid without torchio (the scoring fast path).

Reproduces :func:`lymphonet.dataset.image_from_plan` (torchio / SimpleITK ``Resample`` onto an
axis-aligned LPS grid centred on the target's bounding box; trilinear dose, nearest-neighbour
masks) with one ``scipy.ndimage.map_coordinates`` call and index gathers, about 50-100x faster
(no per-channel SimpleITK images). Agreement with the training path is tested.
"""

from __future__ import annotations

import numpy as np

from lymphonet.errors import InputError


def _channel_sources(names: list[str], organ: str) -> list[str]:
    """Structure names OR-ed into an organ channel (the rule of dataset.channel_masks)."""
    from lymphonet.dataset import ORGAN_PARTS

    parts = ORGAN_PARTS.get(organ, ())
    return [n for n in names if n == organ or n.startswith(organ + "_") or n in parts]


def _crop_centre_mm(structures, crop_center: str, patient: str | None) -> np.ndarray:
    """Same as :func:`lymphonet.dataset.crop_centre_mm` (bounding-box centre of the target, else
    the body), from per-axis projections instead of ``argwhere`` (about 10x faster)."""
    names = list(structures.masks)
    for organ in (("target", "body") if crop_center == "target" else ("body",)):
        sources = _channel_sources(names, organ)
        if not sources:
            continue
        mask = np.logical_or.reduce([structures.masks[n] for n in sources])
        lo, hi = [], []
        for axis in range(3):
            hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
            if hit.size == 0:
                break
            lo.append(hit[0])
            hi.append(hit[-1])
        if len(lo) == 3:
            return structures.grid.index_to_physical((np.array(lo) + np.array(hi)) / 2.0)
    raise InputError("no target and no body voxel to centre the crop on", patient=patient,
                     file=structures.source, field="body")


def resample_fast(dose, structures, config, patient: str | None = None) -> np.ndarray:
    """Dose (trilinear) and organ masks (nearest) on the model's input grid, without torchio.

    Same output grid as :func:`lymphonet.dataset.image_from_plan` (axis-aligned LPS, centred on
    the target's bounding box); SimpleITK's conventions are reproduced: a point is inside the
    input when its continuous index lies in ``[-0.5, n - 0.5]`` (edge voxels extend half a
    voxel), linear interpolation clamps at the border, nearest rounds half up; outside -> 0.

    Returns:
        ``[C, D, H, W]`` float32: channel 0 dose (Gy), then 0/1 masks.
    """
    from scipy.ndimage import map_coordinates

    from lymphonet.dataset import output_grid

    origin, _ = output_grid(_crop_centre_mm(structures, config.crop_center, patient), config)
    d, h, w = (int(n) for n in config.shape)
    sx, sy, sz = config.spacing_mm
    kk, jj, ii = np.meshgrid(np.arange(d), np.arange(h), np.arange(w), indexing="ij")
    xyz = np.asarray(origin) + np.stack([ii * sx, jj * sy, kk * sz], -1)
    kji = dose.physical_to_index(xyz.reshape(-1, 3)).T  # [3, N] (k, j, i)
    n = np.asarray(dose.array.shape, float)[:, None]
    inside = np.all((kji >= -0.5) & (kji <= n - 0.5), axis=0)
    image = np.zeros((1 + len(config.organ_channels), d * h * w), np.float32)
    image[0] = map_coordinates(np.asarray(dose.array, np.float32), kji, order=1, mode="nearest")
    image[0] = np.where(inside, np.maximum(image[0], 0.0), 0.0)
    idx = np.clip(np.floor(kji + 0.5).astype(np.int64), 0, n.astype(np.int64) - 1)
    flat = np.ravel_multi_index(tuple(idx), dose.array.shape)[inside]
    names = list(structures.masks)
    for c, organ in enumerate(config.organ_channels, 1):
        for name in _channel_sources(names, organ):
            image[c, inside] = np.maximum(image[c, inside],
                                          structures.masks[name].ravel()[flat])
    return image.reshape(-1, d, h, w)
