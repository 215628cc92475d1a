"""DICOM RT readers: RTDOSE -> :class:`Volume`, RTSTRUCT -> :class:`StructureSet`, RTPLAN -> facts.

The readers live in :mod:`~lymphonet.io.dicom_dose`, :mod:`~lymphonet.io.dicom_struct` and
:mod:`~lymphonet.io.dicom_plan`; this module re-exports them and adds :func:`inspect_dicom`, a quick
header summary for the ``lymphonet inspect`` command. No reader ever copies a patient identifier
(PatientName, PatientID, PatientBirthDate) into its output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lymphonet.errors import InputError
from lymphonet.io.dicom_common import read_dataset, to_floats, uid_str
from lymphonet.io.dicom_dose import read_rtdose
from lymphonet.io.dicom_plan import BeamInfo, RTPlanInfo, plan_summary, read_rtplan
from lymphonet.io.dicom_struct import rasterise_contours, read_rtstruct

__all__ = [
    "BeamInfo",
    "RTPlanInfo",
    "inspect_dicom",
    "rasterise_contours",
    "read_rtdose",
    "read_rtplan",
    "read_rtstruct",
]


def inspect_dicom(path: str | Path, *, patient: str | None = None) -> dict[str, Any]:
    """Summarise a DICOM file without patient identifiers (header only, pixels not decoded).

    Args:
        path: Any DICOM file.
        patient: Patient id used in error messages only.

    Returns:
        Dict with ``path``, ``modality``, ``sop_class`` (name) and ``frame_of_reference_uid``, plus:
        RTDOSE: ``shape`` (nz, ny, nx), ``spacing_mm`` (dx, dy, dz), ``origin_mm``, ``dose_units``,
        ``dose_type``, ``dose_summation_type``, ``dose_grid_scaling``; RTSTRUCT: ``roi_names`` and
        ``n_contours`` (per ROI); RTPLAN: the fields of
        :func:`~lymphonet.io.dicom_plan.plan_summary`; images: ``rows``, ``columns``.

    Raises:
        InputError: Unreadable or truncated file.
    """
    ds = read_dataset(path, patient=patient, stop_before_pixels=True)
    modality = str(ds.get("Modality", "") or "").strip().upper() or None
    sop_class = ds.get("SOPClassUID", None)
    out: dict[str, Any] = {
        "path": str(path),
        "modality": modality,
        "sop_class": getattr(sop_class, "name", None) if sop_class is not None else None,
        "frame_of_reference_uid": uid_str(ds.get("FrameOfReferenceUID")),
    }
    if modality == "RTDOSE":
        out.update(_dose_header(ds, path, patient))
    elif modality == "RTSTRUCT":
        names = {int(r.get("ROINumber", -1)): str(r.get("ROIName", "") or "").strip()
                 for r in ds.get("StructureSetROISequence", None) or []}
        counts = {int(c.get("ReferencedROINumber", -1)): len(c.get("ContourSequence", None) or [])
                  for c in ds.get("ROIContourSequence", None) or []}
        out["roi_names"] = list(names.values())
        out["n_contours"] = {name: counts.get(num, 0) for num, name in names.items()}
        refs = ds.get("ReferencedFrameOfReferenceSequence", None) or []
        if refs and out["frame_of_reference_uid"] is None:
            out["frame_of_reference_uid"] = uid_str(refs[0].get("FrameOfReferenceUID"))
    elif modality == "RTPLAN":
        out.update(plan_summary(read_rtplan(path, patient=patient)))
    elif "Rows" in ds:
        out.update(rows=int(ds.Rows), columns=int(ds.get("Columns", 0)))
    return out


def _dose_header(ds: Any, path: str | Path, patient: str | None) -> dict[str, Any]:
    """Grid facts of an RTDOSE header (no pixel decoding)."""
    ctx = {"patient": patient, "file": path}
    try:
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        shape = (n_frames, int(ds.Rows), int(ds.Columns))
        row_mm, col_mm = to_floats(ds.PixelSpacing, "PixelSpacing", path, patient, n=2)
    except AttributeError as exc:
        raise InputError(f"RTDOSE header incomplete ({exc})", **ctx) from exc
    offsets = ds.get("GridFrameOffsetVector", None)
    dz = None
    if offsets is not None and len(offsets) >= 2:
        dz = abs(float(offsets[1]) - float(offsets[0]))
    ipp = ds.get("ImagePositionPatient", None)
    return {
        "shape": shape,
        "spacing_mm": (col_mm, row_mm, dz),
        "origin_mm": None if ipp is None else tuple(
            to_floats(ipp, "ImagePositionPatient", path, patient, n=3)),
        "dose_units": str(ds.get("DoseUnits", "") or "").strip().upper() or None,
        "dose_type": str(ds.get("DoseType", "") or "").strip().upper() or None,
        "dose_summation_type": str(ds.get("DoseSummationType", "") or "").strip().upper() or None,
        "dose_grid_scaling": float(ds.get("DoseGridScaling", 1.0)),
    }
