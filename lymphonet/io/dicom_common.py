"""Shared helpers of the DICOM RT readers: robust file reading and attribute access.

Every helper turns pydicom failures into :class:`~lymphonet.errors.InputError` naming the patient
(as given by the caller, never read from the file), the file and the DICOM attribute at fault.
Patient identifiers in the file (PatientName, PatientID, PatientBirthDate) are never copied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lymphonet.errors import InputError

#: Fields that identify a person; readers must never copy them into outputs.
IDENTIFYING_FIELDS = ("PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs",
                      "PatientAddress", "PatientTelephoneNumbers")


def read_dataset(path: str | Path, *, patient: str | None = None,
                 stop_before_pixels: bool = False) -> Any:
    """Read a DICOM file with pydicom, tolerating a missing 128-byte preamble.

    A file without the preamble / ``DICM`` prefix (allowed in older exports) is re-read with
    ``force=True``. Anything pydicom cannot parse becomes an :class:`InputError`.

    Args:
        path: File to read.
        patient: Patient id for error messages (not read from the file).
        stop_before_pixels: Skip the pixel data (fast header-only read).

    Returns:
        The ``pydicom.Dataset``.

    Raises:
        InputError: The file is missing, truncated or not DICOM.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if path.is_dir():
        raise InputError("is a folder, not a DICOM file", patient=patient, file=path)
    if not path.is_file():
        raise InputError("file does not exist", patient=patient, file=path)
    if path.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)", patient=patient, file=path)
    try:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
        except InvalidDicomError:
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
        _check_complete(ds)
    except InputError as err:
        raise err.with_context(patient=patient, file=path) from None
    except Exception as exc:  # pydicom raises many types (EOFError, ValueError, struct.error...)
        raise InputError(f"cannot read DICOM file ({type(exc).__name__}: {exc}); it may be "
                         "truncated or not DICOM", patient=patient, file=path) from exc
    return ds


def _check_complete(ds: Any) -> None:
    """Raise :class:`InputError` when an element holds fewer bytes than its header declares.

    pydicom reads a truncated file without complaint and keeps the short value; walking the raw
    (not yet converted) elements finds the cut without converting any value.
    """
    for tag in ds.keys():  # noqa: SIM118 (iterating ds would convert every value)
        elem = ds.get_item(tag)
        value = getattr(elem, "value", None)
        length = getattr(elem, "length", None)
        if isinstance(value, (bytes, bytearray)) and length not in (None, 0xFFFFFFFF):
            if len(value) < length:
                raise InputError(f"element {elem.tag} holds {len(value)} of its {length} bytes: "
                                 "the file is truncated", field=_keyword(elem.tag))
        elif getattr(elem, "VR", None) == "SQ" and not isinstance(value, (bytes, bytearray)):
            for item in value or []:
                _check_complete(item)


def _keyword(tag: Any) -> str:
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag) or str(tag)


def require_modality(ds: Any, expected: str, path: str | Path, patient: str | None) -> None:
    """Raise :class:`InputError` (field ``Modality``) unless ``ds.Modality == expected``."""
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality != expected:
        shown = modality or "missing"
        raise InputError(f"expected a DICOM {expected} file, got Modality {shown!r}",
                         patient=patient, file=path, field="Modality")


def get_required(ds: Any, keyword: str, path: str | Path, patient: str | None) -> Any:
    """Return attribute ``keyword`` of ``ds``; :class:`InputError` naming it when absent/empty."""
    value = ds.get(keyword, None)
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        raise InputError(f"required DICOM attribute {keyword} is missing or empty",
                         patient=patient, file=path, field=keyword)
    return value


def to_floats(value: Any, keyword: str, path: str | Path, patient: str | None,
              n: int | None = None) -> list[float]:
    """Convert a DICOM DS/IS value (single or multi-valued) to floats, checking the count."""
    items = list(value) if hasattr(value, "__iter__") and not isinstance(value, str) else [value]
    try:
        out = [float(v) for v in items]
    except (TypeError, ValueError) as exc:
        raise InputError(f"{keyword} holds non-numeric values {items!r}", patient=patient,
                         file=path, field=keyword) from exc
    if n is not None and len(out) != n:
        raise InputError(f"{keyword} must have {n} values, got {len(out)}", patient=patient,
                         file=path, field=keyword)
    return out


def uid_str(value: Any) -> str | None:
    """Return a UID as a stripped string, or None when empty."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None
