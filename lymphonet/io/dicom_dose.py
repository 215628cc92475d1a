"""DICOM RTDOSE reader: stored pixels -> dose in Gy on a :class:`~lymphonet.io.volume.Volume`.

Conversions done here and nowhere else:

* value = stored pixel x ``DoseGridScaling`` (pydicom's ``pixel_array`` decodes every transfer
  syntax pydicom supports, big-endian and RLE included; SimpleITK would drop the scaling).
* ``DoseUnits``: ``GY`` as is; ``CGY`` (not a DICOM defined term, but some systems write it) / 100;
  ``RELATIVE`` is refused unless the caller states a prescription, see :func:`read_rtdose`.
* Geometry (DICOM PS3.3 C.7.6.2 and C.8.8.3.2): ``ImagePositionPatient`` is the centre of the first
  voxel of the first frame; ``ImageOrientationPatient`` gives the row direction (increasing column
  index i) then the column direction (increasing row index j); frame k lies at
  ``origin + GridFrameOffsetVector[k] x normal`` (relative form, first element 0) or at
  ``z = GridFrameOffsetVector[k]`` (absolute form, first element = ImagePositionPatient z, only
  for axial grids). ``PixelSpacing`` is (row spacing, column spacing) = (dy, dx).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lymphonet.errors import GeometryError, InputError, UnitError
from lymphonet.io.dicom_common import (
    get_required,
    read_dataset,
    require_modality,
    to_floats,
    uid_str,
)
from lymphonet.io.volume import Volume

#: Absolute tolerance (mm) when comparing frame offsets and positions.
_TOL_MM = 1e-3
#: Relative tolerance on the spread of frame spacings before a grid counts as non-uniform.
_UNIFORM_REL_TOL = 1e-3


def read_rtdose(path: str | Path, *, prescription_gy: float | None = None,
                patient: str | None = None) -> Volume:
    """Read a DICOM RTDOSE file as a dose volume in Gy.

    Args:
        path: RTDOSE file (with or without the 128-byte preamble).
        prescription_gy: Only for ``DoseUnits == "RELATIVE"``: the reference dose in Gy. The rule is
            dose_gy = stored pixel x DoseGridScaling x ``prescription_gy``, i.e. relative values are
            read as *fractions* (1.0 = reference), as DICOM stores them; a file whose relative
            values are percent needs ``prescription_gy / 100``. Ignored for absolute units.
        patient: Patient id used in error messages only.

    Returns:
        :class:`Volume` with ``array`` float32 Gy of shape ``(n_frames, Rows, Columns)``, spacing
        ``(PixelSpacing[1], PixelSpacing[0], |frame spacing|)`` mm, origin = ImagePositionPatient,
        direction columns = (row cosine, column cosine, +/- plane normal; the sign follows the
        frame order, so decreasing z gives a negative third column). ``metadata`` holds Modality,
        DoseUnits (as stored), DoseType, DoseSummationType, FrameOfReferenceUID, SOPInstanceUID,
        ReferencedRTPlanSOPInstanceUIDs, ReferencedStructureSetSOPInstanceUIDs,
        ReferencedBeamNumbers (of a BEAM dose), TransferSyntaxUID,
        DoseGridScaling and path; never patient identifiers. DoseSummationType ``FRACTION`` means
        the values are one fraction's dose: the caller decides what to do with it.

    Raises:
        InputError: Unreadable/truncated file, wrong Modality, missing geometry, non-uniform frame
            spacing, NaN/inf values (field ``PixelData``), DoseType ``ERROR``.
        UnitError: ``RELATIVE`` without ``prescription_gy``, or unknown ``DoseUnits``.
    """
    ds = read_dataset(path, patient=patient)
    require_modality(ds, "RTDOSE", path, patient)
    ctx = {"patient": patient, "file": path}

    dose_type = str(ds.get("DoseType", "") or "").strip().upper()
    if dose_type == "ERROR":
        raise InputError("DoseType ERROR is a dose-difference map, not a dose distribution",
                         field="DoseType", **ctx)
    factor = _unit_factor(ds, prescription_gy, path, patient)

    stored = _pixels(ds, path, patient)
    if ds.get("DoseGridScaling", None) in (None, ""):
        raise InputError("DoseGridScaling is missing: the stored pixel values cannot be converted "
                         "to dose (DICOM requires it for RTDOSE)", field="DoseGridScaling", **ctx)
    scaling = float(to_floats(ds.get("DoseGridScaling"), "DoseGridScaling", path, patient,
                              n=1)[0])
    if not np.isfinite(scaling) or scaling <= 0:
        raise InputError(f"DoseGridScaling must be a positive number, got {scaling}",
                         field="DoseGridScaling", **ctx)
    dose_gy = (stored.astype(np.float64) * (scaling * factor)).astype(np.float32)
    if not np.all(np.isfinite(dose_gy)):
        bad = int(np.count_nonzero(~np.isfinite(dose_gy)))
        raise InputError(f"{bad} dose voxels are NaN or infinite", field="PixelData", **ctx)

    spacing, origin, direction = _geometry(ds, dose_gy.shape[0], path, patient)
    metadata = {
        "Modality": "RTDOSE",
        "DoseUnits": str(ds.get("DoseUnits", "")).strip().upper(),
        "DoseType": dose_type or None,
        "DoseSummationType": str(ds.get("DoseSummationType", "") or "").strip().upper() or None,
        "DoseGridScaling": scaling,
        "FrameOfReferenceUID": uid_str(ds.get("FrameOfReferenceUID")),
        "SOPInstanceUID": uid_str(ds.get("SOPInstanceUID")),
        "ReferencedRTPlanSOPInstanceUIDs": _referenced_uids(ds, "ReferencedRTPlanSequence"),
        "ReferencedStructureSetSOPInstanceUIDs": _referenced_uids(
            ds, "ReferencedStructureSetSequence"),
        "ReferencedBeamNumbers": _referenced_beams(ds),
        "TransferSyntaxUID": _transfer_syntax(ds),
        "path": str(path),
    }
    if prescription_gy is not None and metadata["DoseUnits"] == "RELATIVE":
        metadata["prescription_gy"] = float(prescription_gy)
    return Volume(dose_gy, spacing, origin, direction, units="Gy", metadata=metadata)


def _unit_factor(ds: Any, prescription_gy: float | None, path: str | Path,
                 patient: str | None) -> float:
    """Gy per (stored pixel x DoseGridScaling) for this file's DoseUnits."""
    units = str(get_required(ds, "DoseUnits", path, patient)).strip().upper()
    if units == "GY":
        return 1.0
    if units == "CGY":
        return 0.01
    if units == "RELATIVE":
        if prescription_gy is None:
            raise UnitError("DoseUnits is RELATIVE: pass prescription_gy (the dose in Gy that a "
                            "relative value of 1.0 stands for) to convert to Gy",
                            patient=patient, file=path, field="DoseUnits")
        if not (np.isfinite(prescription_gy) and prescription_gy > 0):
            raise UnitError(f"prescription_gy must be positive, got {prescription_gy}",
                            patient=patient, file=path, field="DoseUnits")
        return float(prescription_gy)
    raise UnitError(f"unknown DoseUnits {units!r} (expected GY, CGY or RELATIVE)",
                    patient=patient, file=path, field="DoseUnits")


def _pixels(ds: Any, path: str | Path, patient: str | None) -> np.ndarray:
    """Decode the stored pixel values to an array of shape (frames, rows, cols)."""
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise InputError("the file holds no pixel data", patient=patient, file=path,
                         field="PixelData")
    try:
        arr = np.asarray(ds.pixel_array)
    except Exception as exc:  # truncated data, unsupported compression, inconsistent header
        raise InputError(f"cannot decode the pixel data ({type(exc).__name__}: {exc})",
                         patient=patient, file=path, field="PixelData") from exc
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] != n_frames:
        raise InputError(f"pixel array shape {arr.shape} does not match NumberOfFrames "
                         f"{n_frames}", patient=patient, file=path, field="PixelData")
    return arr


def _geometry(ds: Any, n_frames: int, path: str | Path, patient: str | None
              ) -> tuple[tuple[float, float, float], tuple[float, float, float], np.ndarray]:
    """Spacing (dx, dy, dz) mm, origin (x, y, z) mm and 3x3 direction of the dose grid."""
    ctx = {"patient": patient, "file": path}
    ipp = np.array(to_floats(get_required(ds, "ImagePositionPatient", path, patient),
                             "ImagePositionPatient", path, patient, n=3))
    iop = np.array(to_floats(get_required(ds, "ImageOrientationPatient", path, patient),
                             "ImageOrientationPatient", path, patient, n=6))
    row_dir, col_dir = iop[:3], iop[3:]
    if not (np.isclose(np.linalg.norm(row_dir), 1, atol=1e-3)
            and np.isclose(np.linalg.norm(col_dir), 1, atol=1e-3)
            and abs(row_dir @ col_dir) < 1e-3):
        raise GeometryError(f"ImageOrientationPatient {iop.tolist()} is not two orthonormal "
                            "vectors", field="ImageOrientationPatient", **ctx)
    normal = np.cross(row_dir, col_dir)
    pixel_spacing = to_floats(get_required(ds, "PixelSpacing", path, patient), "PixelSpacing",
                              path, patient, n=2)
    dz_signed = _frame_spacing(ds, n_frames, ipp, iop, path, patient)
    direction = np.column_stack([row_dir, col_dir, np.sign(dz_signed) * normal])
    spacing = (pixel_spacing[1], pixel_spacing[0], abs(dz_signed))
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        raise GeometryError(f"voxel spacing {spacing} must be positive",
                            field="PixelSpacing", **ctx)
    return spacing, tuple(ipp.tolist()), direction


def _frame_spacing(ds: Any, n_frames: int, ipp: np.ndarray, iop: np.ndarray,
                   path: str | Path, patient: str | None) -> float:
    """Signed distance (mm) between consecutive frames along the plane normal."""
    ctx = {"patient": patient, "file": path}
    gfov = ds.get("GridFrameOffsetVector", None)
    offsets = None if gfov is None else np.array(
        to_floats(gfov, "GridFrameOffsetVector", path, patient))
    if n_frames == 1:
        # A single plane: its thickness comes from SliceThickness, else from the offset vector.
        thickness = ds.get("SliceThickness", None)
        if thickness not in (None, ""):
            return float(thickness)
        if offsets is not None and len(offsets) >= 2 and offsets[1] != offsets[0]:
            return float(offsets[1] - offsets[0])
        raise InputError("single-frame RTDOSE without SliceThickness or GridFrameOffsetVector: "
                         "the plane thickness is unknown", field="SliceThickness", **ctx)
    if offsets is None or len(offsets) != n_frames:
        got = "missing" if offsets is None else f"{len(offsets)} values"
        raise InputError(f"GridFrameOffsetVector must list {n_frames} frame offsets, got {got}",
                         field="GridFrameOffsetVector", **ctx)
    if abs(offsets[0]) <= _TOL_MM:
        relative = offsets
    elif abs(offsets[0] - ipp[2]) <= _TOL_MM:
        if not np.allclose(iop, [1, 0, 0, 0, 1, 0], atol=1e-4):
            raise InputError("absolute GridFrameOffsetVector (first value = ImagePositionPatient "
                             "z) is only defined for axial grids", field="GridFrameOffsetVector",
                             **ctx)
        relative = offsets - offsets[0]
    else:
        raise InputError(f"GridFrameOffsetVector starts at {offsets[0]}: neither 0 (relative) "
                         f"nor ImagePositionPatient z {ipp[2]} (absolute)",
                         field="GridFrameOffsetVector", **ctx)
    steps = np.diff(relative)
    step = float(steps.mean())
    if abs(step) <= _TOL_MM or np.max(np.abs(steps - step)) > max(_TOL_MM,
                                                                    _UNIFORM_REL_TOL * abs(step)):
        raise InputError(f"frame spacing is not uniform (steps {np.unique(steps.round(4))} mm); "
                         "resample the dose onto a regular grid first",
                         field="GridFrameOffsetVector", **ctx)
    return step


def _referenced_uids(ds: Any, sequence: str) -> tuple[str, ...]:
    """ReferencedSOPInstanceUID of every item of ``sequence`` (empty tuple if none)."""
    items = ds.get(sequence, None) or []
    return tuple(u for u in (uid_str(it.get("ReferencedSOPInstanceUID")) for it in items) if u)


def _referenced_beams(ds: Any) -> tuple[int, ...]:
    """ReferencedBeamNumber of a BEAM dose (plan > fraction group > beam), empty if none."""
    out = []
    for plan in ds.get("ReferencedRTPlanSequence", None) or []:
        for group in plan.get("ReferencedFractionGroupSequence", None) or []:
            for beam in group.get("ReferencedBeamSequence", None) or []:
                number = beam.get("ReferencedBeamNumber", None)
                if number not in (None, ""):
                    out.append(int(number))
    return tuple(out)


def _transfer_syntax(ds: Any) -> str | None:
    meta = getattr(ds, "file_meta", None)
    return uid_str(meta.get("TransferSyntaxUID")) if meta is not None else None
