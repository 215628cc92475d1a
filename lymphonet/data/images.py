"""Dose and organ masks on the model's input grid: the one module that touches torchio.

The output grid has ``DataConfig.shape`` voxels of ``DataConfig.spacing_mm``, axis-aligned in LPS
(W to the patient's left, H posterior, D superior) and centred on the bounding box of the target
(or the body). Resampling straight onto that grid does resample + crop + pad in one
interpolation and puts the target centre exactly at the grid centre, whatever the input
orientation.

* :func:`image_from_plan` (training cache): torchio ``Resample``, trilinear dose, nearest masks;
* :func:`resample_fast` (scoring): the same grid and conventions with one
  ``scipy.ndimage.map_coordinates`` call, 50-100x faster; agreement is tested;
* :func:`augment_image`: random rigid transforms and left-right flips (training only).
"""

from __future__ import annotations

import numpy as np
import torch

from lymphonet.data.config import DataConfig
from lymphonet.errors import InputError
from lymphonet.io.volume import StructureSet, Volume

#: Combined organs -> parts whose masks are OR-ed into the combined channel.
ORGAN_PARTS: dict[str, tuple[str, ...]] = {
    "lungs": ("lung_left", "lung_right"), "kidneys": ("kidney_left", "kidney_right"),
    "great_vessels": ("aorta", "vena_cava", "superior_vena_cava", "inferior_vena_cava",
                      "pulmonary_artery"),
    "bowel": ("small_bowel", "large_bowel"),
}
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def channel_sources(names: list[str], organ: str) -> list[str]:
    """Structure names OR-ed into an organ channel: the organ, ``organ_*`` and its parts."""
    parts = ORGAN_PARTS.get(organ, ())
    return [n for n in names if n == organ or n.startswith(organ + "_") or n in parts]


def channel_masks(structures: StructureSet, organs: tuple[str, ...]) -> np.ndarray:
    """``[C_m, nz, ny, nx]`` bool: per channel, the OR of its :func:`channel_sources`."""
    out = np.zeros((len(organs), *structures.grid.shape), bool)
    names = list(structures.masks)
    for c, organ in enumerate(organs):
        for name in channel_sources(names, organ):
            out[c] |= structures.masks[name]
    return out


def crop_centre_mm(structures: StructureSet, crop_center: str = "target",
                   patient: str | None = None) -> np.ndarray:
    """Bounding-box centre ``(x, y, z)`` (mm, LPS) of the target (else the body), from per-axis
    projections of the mask (about 10x faster than ``argwhere``)."""
    names = list(structures.masks)
    for organ in (("target", "body") if crop_center == "target" else ("body",)):
        sources = channel_sources(names, organ)
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


def output_grid(centre_mm: np.ndarray, config: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Origin ``(x, y, z)`` (mm, LPS) and torchio affine (RAS, ``[4, 4]``) of the output grid
    whose centre (index ``(n - 1) / 2`` on every axis) is ``centre_mm``."""
    spacing = np.asarray(config.spacing_mm, float)
    n_xyz = np.asarray(config.shape[::-1], float)
    origin = np.asarray(centre_mm, float) - spacing * (n_xyz - 1) / 2.0
    lps = np.eye(4)
    lps[:3, :3] = np.diag(spacing)
    lps[:3, 3] = origin
    return origin, _LPS_TO_RAS @ lps


def tio_affine(volume: Volume) -> np.ndarray:
    """torchio / NIfTI affine (voxel ``(i, j, k)`` -> RAS mm) of a Volume (LPS geometry)."""
    lps = np.eye(4)
    lps[:3, :3] = volume.direction @ np.diag(volume.spacing_mm)
    lps[:3, 3] = volume.origin_mm
    return _LPS_TO_RAS @ lps


def _to_tio(array: np.ndarray) -> torch.Tensor:
    """``[..., nz, ny, nx]`` numpy -> torchio ``[C, W, H, D]`` (= ``[C, i, j, k]``) tensor."""
    a = array if array.ndim == 4 else array[None]
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 2, 1)))


def image_from_plan(dose: Volume, structures: StructureSet, config: DataConfig,
                    patient: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Resample dose (trilinear) and organ masks (nearest) onto the output grid with torchio.

    Returns:
        ``(image, origin_mm)``: ``[C, D, H, W]`` float32 with channel 0 the dose in Gy (not yet
        scaled) and channels 1.. the masks (0/1); and the output grid origin ``(x, y, z)`` mm.
        Outside the input volume dose and masks are 0.
    """
    import torchio as tio

    origin, affine = output_grid(crop_centre_mm(structures, config.crop_center, patient), config)
    src_affine = tio_affine(dose)
    images = {"dose": tio.ScalarImage(tensor=_to_tio(dose.array.astype(np.float32)),
                                      affine=src_affine)}
    if config.organ_channels:
        masks = channel_masks(structures, config.organ_channels).astype(np.uint8)
        images["masks"] = tio.LabelMap(tensor=_to_tio(masks), affine=src_affine)
    spatial = tuple(int(n) for n in config.shape[::-1])
    out = tio.Resample(target=(spatial, affine), image_interpolation="linear",
                       label_interpolation="nearest", copy=False)(tio.Subject(**images))
    chans = [out["dose"].data.numpy()]
    if config.organ_channels:
        chans.append(out["masks"].data.numpy())
    image = np.concatenate(chans).transpose(0, 3, 2, 1).astype(np.float32)
    image[0] = np.maximum(image[0], 0.0)  # torchio pads with the image minimum; dose >= 0
    return image, origin


def resample_fast(dose, structures, config, patient: str | None = None) -> np.ndarray:
    """Dose (trilinear) and organ masks (nearest) on the model's input grid, without torchio.

    Same output grid as :func:`image_from_plan` (axis-aligned LPS, centred on
    the target's bounding box); SimpleITK's conventions are reproduced: a point is inside the
    input when its continuous index lies in ``[-0.5, n - 0.5]`` (edge voxels extend half a
    voxel), linear interpolation clamps at the border, nearest rounds half up; outside -> 0.

    Returns:
        ``[C, D, H, W]`` float32: channel 0 dose (Gy), then 0/1 masks.
    """
    from scipy.ndimage import map_coordinates

    origin, _ = output_grid(crop_centre_mm(structures, config.crop_center, patient), config)
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
        for name in channel_sources(names, organ):
            image[c, inside] = np.maximum(image[c, inside],
                                          structures.masks[name].ravel()[flat])
    return image.reshape(-1, d, h, w)


def lr_pairs(organs: tuple[str, ...]) -> list[tuple[int, int]]:
    """Image-channel index pairs (``*_left``, ``*_right``) that swap on a left-right flip."""
    pos = {o: 1 + c for c, o in enumerate(organs)}
    return [(pos[o], pos[o[:-5] + "_right"]) for o in organs
            if o.endswith("_left") and o[:-5] + "_right" in pos]


def augment_image(image: torch.Tensor, origin_mm: np.ndarray, config: DataConfig,
                  swap: list[tuple[int, int]]) -> torch.Tensor:
    """Random rigid transform (torchio RandomAffine, no scaling; dose trilinear, masks nearest)
    and, if ``config.flip_lr``, a left-right flip with probability 0.5 swapping ``swap`` channel
    pairs. Uses torch's RNG (seeded per DataLoader worker). ``image`` is ``[C, D, H, W]``."""
    import torchio as tio

    if config.max_rotation_deg > 0 or config.max_translation_mm > 0:
        _, affine = output_grid(np.asarray(origin_mm) + np.asarray(config.spacing_mm)
                                * (np.asarray(config.shape[::-1]) - 1) / 2.0, config)
        t = lambda x: x.permute(0, 3, 2, 1).contiguous()  # [C,D,H,W] <-> [C,W,H,D]
        subject = tio.Subject(dose=tio.ScalarImage(tensor=t(image[:1]), affine=affine),
                              masks=tio.LabelMap(tensor=t(image[1:]), affine=affine)
                              ) if image.shape[0] > 1 else tio.Subject(
            dose=tio.ScalarImage(tensor=t(image[:1]), affine=affine))
        out = tio.RandomAffine(scales=0, degrees=config.max_rotation_deg,
                               translation=config.max_translation_mm, default_pad_value=0.0,
                               image_interpolation="linear",
                               label_interpolation="nearest")(subject)
        parts = [out["dose"].data] + ([out["masks"].data] if image.shape[0] > 1 else [])
        image = t(torch.cat(parts).float())
    if config.flip_lr and bool(torch.rand(()) < 0.5):
        image = image.flip(-1)  # W runs along the patient's left-right axis
        for a, b in swap:
            image[[a, b]] = image[[b, a]]
    return image
