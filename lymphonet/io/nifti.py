"""Read and write volume files (NIfTI, NRRD, MetaImage) and label maps, via SimpleITK.

Geometry: SimpleITK reports spacing, origin and direction in ITK / DICOM patient (LPS) order, exactly
the convention of :class:`~lymphonet.io.volume.Volume`. ``Image.GetDirection()`` is the row-major
flattening of a 3x3 matrix whose *columns* are the i, j, k axes, so it is reshaped to ``(3, 3)``
without a transpose; ``GetArrayFromImage`` gives numpy order ``(nz, ny, nx)``. NIfTI voxel data is
read with nibabel instead (ITK's NIfTI reader turns NaN into 0, hiding corrupt dose files). NIfTI files store
RAS coordinates; ITK converts them to LPS on reading (x and y flip sign), so two readers of the same
file agree on patient positions in LPS.

Dose volumes (``units="Gy"`` or ``"cGy"``) are returned as float32 in Gy. They must be finite. Tiny
negative values from interpolation or compression noise (down to :data:`NEGATIVE_DOSE_TOLERANCE_GY`)
are set to 0; anything more negative is an error, since negative dose has no physical meaning.

Label maps: one integer per voxel, 0 = background, with a JSON file beside the volume
(``labels.nii.gz`` -> ``labels.json``) holding ``{"structure name": label}``. A label map cannot hold
overlapping structures: every voxel belongs to at most one. Label values found in the volume but
absent from the JSON are kept as structures named ``label_<value>`` and a warning is logged (never
dropped silently). Named labels with no voxel are listed in :attr:`StructureSet.empty`.

Nothing here resamples silently: :func:`read_label_map` with ``grid=`` insists on an identical grid,
and :func:`resample_to` must be called explicitly.
"""

from __future__ import annotations

import json
import logging
import zlib
from pathlib import Path

import numpy as np

from lymphonet.errors import InputError
from lymphonet.io.volume import StructureSet, Volume

logger = logging.getLogger(__name__)

#: File endings read and written through SimpleITK.
VOLUME_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

#: Negative dose down to this value (Gy) is treated as numerical noise and set to 0.
NEGATIVE_DOSE_TOLERANCE_GY: float = 1e-3

_DOSE_UNIT_FACTORS = {"gy": 1.0, "cgy": 0.01}


def _stem(path: Path) -> str:
    """File name without its volume suffix (``labels.nii.gz`` -> ``labels``)."""
    name = path.name
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def sidecar_json(path: str | Path) -> Path:
    """The JSON name file that belongs to a label map (``X.nii.gz`` -> ``X.json``)."""
    path = Path(path)
    return path.with_name(_stem(path) + ".json")


def to_sitk_image(volume: Volume):
    """Convert a :class:`Volume` to a ``SimpleITK.Image`` with the same geometry.

    Bool arrays are stored as uint8 (SimpleITK has no bool pixel type).
    """
    import SimpleITK as sitk

    array = volume.array.astype(np.uint8) if volume.array.dtype == bool else volume.array
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(float(s) for s in volume.spacing_mm))
    image.SetOrigin(tuple(float(o) for o in volume.origin_mm))
    image.SetDirection(tuple(float(d) for d in np.asarray(volume.direction).ravel()))
    return image


def from_sitk_image(image, *, units: str = "Gy", metadata: dict | None = None) -> Volume:
    """Convert a 3D scalar ``SimpleITK.Image`` to a :class:`Volume` (no unit conversion)."""
    import SimpleITK as sitk

    return Volume(
        sitk.GetArrayFromImage(image),
        spacing_mm=tuple(image.GetSpacing()),
        origin_mm=tuple(image.GetOrigin()),
        direction=np.asarray(image.GetDirection(), dtype=float).reshape(3, 3),
        units=units,
        metadata=dict(metadata or {}),
    )


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def _nifti_array(path: Path, patient, field) -> np.ndarray:
    """Voxel array of a NIfTI file via nibabel, in numpy order ``(nz, ny, nx)``.

    ITK's NIfTI reader (SimpleITK 2.5) silently turns NaN voxels into 0, which would hide corrupt
    dose files; nibabel keeps them, so NIfTI voxel data is read with nibabel (geometry still comes
    from SimpleITK, so both paths share one convention).
    """
    import nibabel as nib

    try:
        array = np.asanyarray(nib.load(str(path)).dataobj)
    except (OSError, ValueError, EOFError, zlib.error, nib.filebasedimages.ImageFileError) as err:
        raise InputError(f"cannot read NIfTI voxel data ({err})", patient=patient, file=path,
                         field=field) from None
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    return np.ascontiguousarray(array.T)


def _read_file(path: str | Path, units: str, patient: str | None, field: str | None) -> Volume:
    """Read a 3D scalar volume; refuse missing, unreadable, vector and 4D files."""
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", patient=patient, file=path, field=field)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        lines = str(err).strip().splitlines()
        raise InputError(f"cannot read volume file ({lines[-1] if lines else 'unknown reason'})",
                         patient=patient, file=path, field=field) from None
    size, dim = reader.GetSize(), reader.GetDimension()
    if reader.GetNumberOfComponents() != 1:
        raise InputError(f"expected one value per voxel, got {reader.GetNumberOfComponents()} "
                         "components (vector/RGB image)", patient=patient, file=path, field=field)
    if not (dim == 3 or (dim == 4 and size[3] == 1)):  # a singleton 4th axis is harmless
        raise InputError(f"expected a 3D volume, got {dim}D of size {size}", patient=patient,
                         file=path, field=field)
    direction = np.asarray(reader.GetDirection(), dtype=float).reshape(dim, dim)[:3, :3]
    if _is_nifti(path):
        array = _nifti_array(path, patient, field)
    else:
        try:
            image = reader.Execute()
        except RuntimeError as err:
            raise InputError(f"cannot read voxel data ({str(err).strip()[-200:]})",
                             patient=patient, file=path, field=field) from None
        array = sitk.GetArrayFromImage(image)
        if array.ndim == 4:
            array = array[0]
    return Volume(array, tuple(reader.GetSpacing())[:3], tuple(reader.GetOrigin())[:3], direction,
                  units, {"source": str(path)})


def _checked_dose(array: np.ndarray, factor: float, patient, path) -> np.ndarray:
    """Dose array in Gy as float32; NaN/inf and real negative dose are errors."""
    dose_gy = array.astype(np.float32) * np.float32(factor)
    bad = ~np.isfinite(dose_gy)
    if bad.any():
        raise InputError(f"{int(bad.sum())} voxels are NaN or infinite", patient=patient, file=path,
                         field="dose")
    min_gy = float(dose_gy.min()) if dose_gy.size else 0.0
    if min_gy < -NEGATIVE_DOSE_TOLERANCE_GY:
        raise InputError(f"negative dose (min {min_gy:.4g} Gy)", patient=patient, file=path,
                         field="dose")
    if min_gy < 0:
        np.maximum(dose_gy, 0.0, out=dose_gy)
    return dose_gy


def read_volume(path: str | Path, *, units: str = "Gy", patient: str | None = None) -> Volume:
    """Read a 3D volume (``.nii``, ``.nii.gz``, ``.nrrd``, ``.mha``, ``.mhd``).

    Args:
        path: Volume file.
        units: ``"Gy"`` or ``"cGy"`` for dose (converted to Gy, float32, checked finite and
            non-negative), anything else (e.g. ``"label"``, ``"HU"``) to read values unchanged.
        patient: Patient id for error messages.

    Returns:
        A :class:`Volume` with ``array`` of shape ``(nz, ny, nx)``; dose in Gy (``units="Gy"``).

    Raises:
        InputError: missing or unreadable file, not 3D, NaN/inf dose (field ``"dose"``) or dose
            below ``-NEGATIVE_DOSE_TOLERANCE_GY``.
    """
    path = Path(path)
    is_dose = units.lower() in _DOSE_UNIT_FACTORS
    volume = _read_file(path, units, patient, field="dose" if is_dose else None)
    factor = _DOSE_UNIT_FACTORS.get(units.lower())
    if factor is None:
        return volume
    return volume.with_array(_checked_dose(volume.array, factor, patient, path), units="Gy")


def _load_names(names, path: Path, patient) -> tuple[dict[str, int], Path | None]:
    """Name -> label dict from a dict, a JSON path, or the JSON beside ``path``."""
    names_file: Path | None = None
    if names is None or isinstance(names, (str, Path)):
        names_file = sidecar_json(path) if names is None else Path(names)
        if not names_file.is_file():
            raise InputError("label-name JSON file not found (expected {\"name\": label, ...})",
                             patient=patient, file=names_file, field="labels")
        try:
            names = json.loads(names_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"cannot parse label-name JSON ({err})", patient=patient,
                             file=names_file, field="labels") from None
    where = names_file if names_file is not None else path
    if not isinstance(names, dict):
        raise InputError("label names must be a JSON object {\"name\": label}", patient=patient,
                         file=where, field="labels")
    out: dict[str, int] = {}
    for name, label in names.items():
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label <= 0:
            raise InputError(f"label of {name!r} must be a positive integer (0 is background), "
                             f"got {label!r}", patient=patient, file=where, field=str(name))
        out[str(name)] = int(label)
    by_label: dict[int, list[str]] = {}
    for name, label in out.items():
        by_label.setdefault(label, []).append(name)
    clashes = {lab: ns for lab, ns in by_label.items() if len(ns) > 1}
    if clashes:
        raise InputError(f"several names share one label: {clashes}", patient=patient, file=where,
                         field="labels")
    return out, names_file


def read_label_map(
    path: str | Path,
    names: dict[str, int] | str | Path | None = None,
    *,
    grid: Volume | None = None,
    patient: str | None = None,
) -> StructureSet:
    """Read an integer label map into a :class:`StructureSet` (one bool mask per name).

    Args:
        path: Label-map volume; voxel value = label, 0 = background.
        names: ``{"name": label}``, or a JSON file holding it; default: the JSON beside ``path``
            (``X.nii.gz`` -> ``X.json``).
        grid: If given, the label map must lie on exactly this grid (the dose grid, normally);
            nothing is resampled.
        patient: Patient id for error messages.

    Returns:
        Masks of shape ``(nz, ny, nx)`` named as in the JSON; named labels without voxels are in
        ``.empty``; unnamed labels present in the volume come back as ``label_<value>`` (and are
        logged as a warning).

    Raises:
        InputError: missing/unreadable file or JSON, non-integer labels, bad JSON content.
        GeometryError: ``grid`` given and the label map is on another grid.
    """
    path = Path(path)
    label_names, _ = _load_names(names, path, patient)
    volume = _read_file(path, "label", patient, field="labels")
    labels = volume.array
    if not np.issubdtype(labels.dtype, np.integer):
        if not (np.all(np.isfinite(labels)) and np.array_equal(labels, np.round(labels))):
            raise InputError("label map holds non-integer values", patient=patient, file=path,
                             field="labels")
        labels = labels.astype(np.int64)
    if grid is not None:
        grid.require_same_grid(volume, what="label map", patient=patient, file=path,
                               field="labels")
    if labels.size and labels.min() >= 0 and labels.max() < 65536:
        counts = np.bincount(labels.ravel(), minlength=1)  # much faster than np.unique
        present = {int(v) for v in np.flatnonzero(counts)} - {0}
    else:
        present = {int(v) for v in np.unique(labels)} - {0}
    masks: dict[str, np.ndarray] = {}
    empty: list[str] = []
    for name, label in sorted(label_names.items(), key=lambda item: item[1]):
        if label in present:
            masks[name] = labels == label
        else:
            empty.append(name)
    unnamed = sorted(present - set(label_names.values()))
    if unnamed:
        logger.warning("%s: label values %s have no name in the JSON; kept as label_<value>",
                       path, unnamed)
        for label in unnamed:
            masks[f"label_{label}"] = labels == label
    return StructureSet(masks, grid if grid is not None else volume, tuple(empty), str(path))


def write_volume(volume: Volume, path: str | Path) -> Path:
    """Write a volume with its geometry; the format follows the file ending.

    Voxel values round-trip exactly (same dtype; bool is stored as uint8). NIfTI stores geometry in
    float32, so spacing/origin round-trip to about 1e-6 relative; NRRD/MHA store it as text.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.name.lower().endswith(VOLUME_SUFFIXES):
        raise InputError(f"unsupported volume file ending; use one of {VOLUME_SUFFIXES}", file=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(to_sitk_image(volume), str(path), useCompression=path.name.endswith(".gz"))
    return path


def write_label_map(structures: StructureSet, path: str | Path) -> tuple[Path, Path]:
    """Write masks as one label map ``X.nii.gz`` plus its name file ``X.json``.

    Labels are 1, 2, ... in the order of ``structures.names`` followed by ``structures.empty``
    (empty structures keep a label so they come back in ``.empty``). Where masks overlap, the
    *later* name wins the voxel and a warning says how many voxels each name lost.

    Returns:
        ``(label_map_path, json_path)``.
    """
    path = Path(path)
    names = list(structures.names) + [n for n in structures.empty if n not in structures.masks]
    dtype = np.uint8 if len(names) < 256 else np.uint16
    labels = np.zeros(structures.grid.shape, dtype=dtype)
    for label, name in enumerate(structures.names, start=1):
        mask = structures[name]
        overwritten = labels[mask]
        lost = np.bincount(overwritten[overwritten > 0], minlength=label)
        for old_label in np.flatnonzero(lost):
            logger.warning("%s: %d voxels of %r overlap %r; the later name %r keeps them",
                           path, int(lost[old_label]), names[old_label - 1], name, name)
        labels[mask] = label
    write_volume(structures.grid.with_array(labels, units="label"), path)
    json_path = sidecar_json(path)
    json_path.write_text(json.dumps({n: i for i, n in enumerate(names, start=1)}, indent=1),
                         encoding="utf-8")
    return path, json_path


def resample_to(volume: Volume, grid: Volume, *, order: int = 1) -> Volume:
    """Resample ``volume`` onto the geometry of ``grid`` (explicit, never automatic).

    Args:
        volume: Source volume (dose in Gy, a label map or a bool mask).
        grid: Target geometry (its array is not used).
        order: 1 = trilinear (dose), 0 = nearest neighbour (labels; always used for bool masks).

    Returns:
        A volume on ``grid``'s geometry, shape ``grid.shape``; points outside the source get 0.
        Dose stays in Gy (float32); masks stay bool; labels keep their dtype.
    """
    import SimpleITK as sitk

    if order not in (0, 1):
        raise InputError(f"order must be 0 (nearest) or 1 (linear), got {order}", field="order")
    is_mask = volume.array.dtype == bool
    interpolator = sitk.sitkNearestNeighbor if order == 0 or is_mask else sitk.sitkLinear
    source = to_sitk_image(volume)
    if interpolator == sitk.sitkLinear:
        source = sitk.Cast(source, sitk.sitkFloat32)
    reference = to_sitk_image(grid.with_array(np.zeros(grid.shape, dtype=np.uint8)))
    out = sitk.Resample(source, reference, sitk.Transform(), interpolator, 0.0,
                        source.GetPixelID())
    array = sitk.GetArrayFromImage(out)
    if is_mask:
        array = array.astype(bool)
    return Volume(array, grid.spacing_mm, grid.origin_mm, grid.direction, volume.units,
                  dict(volume.metadata))


def resample_structures(structures: StructureSet, grid: Volume) -> StructureSet:
    """Resample every mask onto ``grid`` by nearest neighbour (explicit, never automatic)."""
    if structures.grid.same_grid(grid):
        return structures
    masks = {name: resample_to(structures.grid.with_array(mask, units="mask"), grid, order=0).array
             for name, mask in structures.masks.items()}
    empty = tuple(structures.empty) + tuple(n for n, m in masks.items() if not m.any())
    masks = {n: m for n, m in masks.items() if m.any()}
    if len(empty) > len(structures.empty):
        logger.warning("%s: structures %s have no voxel after resampling", structures.source,
                       list(empty[len(structures.empty):]))
    return StructureSet(masks, grid, empty, structures.source)

