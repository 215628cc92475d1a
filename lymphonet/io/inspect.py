"""Summaries of files for ``lymphonet inspect``: no pixel data loaded where headers suffice, no
patient identifiers in the output."""

from __future__ import annotations

import json
from pathlib import Path

from lymphonet.errors import InputError, redact, safe_path
from lymphonet.io.loaders import VOLUME_SUFFIXES, _kind


def inspect_volume_file(path: Path) -> dict:
    """Header-only summary of a NIfTI / NRRD / MHA file (grid, pixel type, label names if any)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise InputError(f"unreadable volume: {str(err).strip().splitlines()[-1]}",
                         file=path) from None
    size = reader.GetSize()
    out = {
        "file": str(path),
        "format": next(s for s in VOLUME_SUFFIXES if path.name.lower().endswith(s)).lstrip("."),
        "shape_xyz": list(size),
        "spacing_mm": [round(s, 4) for s in reader.GetSpacing()],
        "pixel_type": sitk.GetPixelIDValueAsString(reader.GetPixelID()),
    }
    stem = path.name
    for suffix in VOLUME_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    names_file = path.with_name(stem + ".json")
    if names_file.exists():
        try:
            out["labels"] = json.loads(names_file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            out["labels_error"] = f"{names_file.name}: {err}"
    return out


def inspect_file(path: Path) -> dict:
    """Summary of one file; unreadable files give ``{"file", "error"}`` instead of raising."""
    try:
        kind = _kind(path)
        if kind == "volume":
            return inspect_volume_file(path)
        if kind == "dicom":
            from lymphonet.io.dicom import inspect_dicom

            info = inspect_dicom(path)
            info.pop("path", None)
            return {"file": str(path), **info}
        return {"file": str(path), "skipped": "not DICOM or a volume file"}
    except InputError as err:
        return {"file": str(path), "error": err.message}


def inspect_path(path: str | Path) -> list[dict]:
    """Summaries of a file or of every file under a folder (sorted, recursive)."""
    path = Path(path)
    if not path.exists():
        raise InputError("path not found", file=path)
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    root = path.parent if path.is_file() else path
    return [_shareable(inspect_file(p), root) for p in files if not p.name.endswith(".json")]


def _shareable(info, root: Path):
    """The summary without DICOM UIDs or absolute paths (file names relative to ``root``)."""
    if isinstance(info, dict):
        return {k: (safe_path(v, root) if k == "file" else _shareable(v, root))
                for k, v in info.items()}
    if isinstance(info, list):
        return [_shareable(v, root) for v in info]
    return redact(info, root) if isinstance(info, str) else info
