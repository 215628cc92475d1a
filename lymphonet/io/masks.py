"""Structures as a folder of binary masks: one file per structure, named after it.

A label map holds one label per voxel, so it cannot say that the heart is also inside the body or
that a target overlaps the oesophagus. A folder of masks can: ``masks/heart.nii.gz``,
``masks/body.nii.gz``, ... (the layout segmentation tools such as TotalSegmentator write). Any
NIfTI / NRRD / MHA file in the folder is one structure; voxels > 0 are inside. Empty masks are
reported in ``StructureSet.empty``. All masks must lie on the dose grid (nothing is resampled).

Structure names that are not safe file names ("PTV 70/35") are written under a sanitised file
name, and ``names.json`` in the folder maps file names back to the structure names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from lymphonet.errors import InputError
from lymphonet.io.volume import StructureSet, Volume

MASK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
NAMES_FILE = "names.json"


def _safe_file_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._ +-]", "_", name).strip(" .") or "structure"
    return stem


def _structure_name(path: Path) -> str | None:
    name = path.name
    for suffix in MASK_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return None


def read_mask_folder(folder: str | Path, grid: Volume, *, patient: str | None = None
                     ) -> StructureSet:
    """Read every mask file in ``folder`` onto ``grid``.

    Raises:
        InputError: Folder without mask files, two files for one name, unreadable files.
        GeometryError: A mask not on ``grid`` (naming the file).
    """
    from lymphonet.io.nifti import _read_file

    folder = Path(folder)
    names_map: dict[str, str] = {}
    if (folder / NAMES_FILE).exists():
        try:
            names_map = json.loads((folder / NAMES_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"unreadable names file: {err}", patient=patient,
                             file=folder / NAMES_FILE, field="structures_path") from None
    files = sorted(p for p in folder.iterdir() if p.is_file() and _structure_name(p))
    if not files:
        raise InputError(f"no mask files ({', '.join(MASK_SUFFIXES)}) in folder", patient=patient,
                         file=folder, field="structures_path")
    masks: dict[str, np.ndarray] = {}
    empty: list[str] = []
    for path in files:
        name = names_map.get(path.name, _structure_name(path))
        if name in masks or name in empty:
            raise InputError(f"two mask files for structure {name!r}", patient=patient, file=path,
                             field="structures_path")
        volume = _read_file(path, "mask", patient, field=name)
        grid.require_same_grid(volume, what=f"mask {name!r}", patient=patient, file=path,
                               field=name)
        mask = np.asarray(volume.array) > 0
        if mask.any():
            masks[name] = mask
        else:
            empty.append(name)
    return StructureSet(masks, grid, tuple(empty), str(folder))


def write_mask_folder(structures: StructureSet, folder: str | Path) -> Path:
    """Write each structure as ``folder/<name>.nii.gz`` (uint8, 1 inside); overlaps are kept."""
    from lymphonet.io.nifti import write_volume

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    renamed: dict[str, str] = {}
    used: set[str] = set()
    for name in list(structures.names) + list(structures.empty):
        stem = _safe_file_stem(name)
        while stem.lower() in used:  # keep file names unique on case-insensitive file systems
            stem += "_"
        used.add(stem.lower())
        file_name = f"{stem}.nii.gz"
        if stem != name:
            renamed[file_name] = name
        mask = structures.masks.get(name)
        array = np.zeros(structures.grid.shape, np.uint8) if mask is None else mask.astype(np.uint8)
        write_volume(structures.grid.with_array(array, units="mask"), folder / file_name)
    if renamed:
        (folder / NAMES_FILE).write_text(json.dumps(renamed, indent=1), encoding="utf-8")
    return folder
