"""Walk an export folder and read the few DICOM header fields that grouping needs.

Any layout and any file names: every regular file under the root is tried (hidden files and
``DICOMDIR`` indexes excepted). Headers are read with ``pydicom.dcmread(stop_before_pixels=True,
specific_tags=...)``, so a 10 MB dose file costs a few kB of reading. Files without the 128-byte
preamble are re-read with ``force=True`` and accepted only if they carry a SOPClassUID.

A :class:`ScanRecord` holds the raw patient identifiers (for grouping, pseudonymising and
redaction); records live only in memory and are never written anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

#: Header fields read from every file (pixel data and contours are never read here).
SCAN_TAGS: tuple[str, ...] = (
    "Modality", "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
    "FrameOfReferenceUID", "PatientID", "PatientName", "PatientBirthDate", "PatientSex",
    "PatientAge", "StudyDate", "DoseSummationType", "ReferencedRTPlanSequence",
    "ReferencedStructureSetSequence", "ReferencedFrameOfReferenceSequence", "PlanIntent",
    "RTPlanDate", "RTPlanTime", "StructureSetDate", "StructureSetTime", "InstanceCreationDate",
    "InstanceCreationTime", "ContentDate", "ContentTime", "DoseGridScaling",
)
#: Modalities whose files are grouped into plans.
RT_MODALITIES = ("RTPLAN", "RTDOSE", "RTSTRUCT")
#: Image modalities: counted per series, otherwise not used.
IMAGE_MODALITIES = ("CT", "MR", "PT", "CBCT")


@dataclass(frozen=True)
class ScanRecord:
    """Header facts of one file (in memory only: it holds raw identifiers).

    Attributes:
        path: Absolute path.
        rel: Path relative to the export root.
        size: File size in bytes.
        mtime_ns: Modification time (ns since the epoch).
        status: "dicom", "not_dicom", "unreadable" or "ignored".
        message: Why a file is not "dicom".
        modality: DICOM Modality (upper case) or "".
        sop_uid / study_uid / series_uid / for_uid: UIDs ("" when absent); ``for_uid`` falls
            back to the first ReferencedFrameOfReferenceSequence item (RTSTRUCT).
        patient_key: Raw PatientID ("" when absent).
        name_parts: Components of PatientName (for redaction only).
        birth_date: PatientBirthDate (for redaction only).
        sex: "F", "M" or "".
        age_years: Age in whole years from PatientAge, or birth date and StudyDate; None if unknown.
        dose_summation: RTDOSE DoseSummationType (upper case) or "".
        ref_plan_uids: Referenced RT plan UIDs (RTDOSE).
        ref_struct_uids: Referenced structure set UIDs (RTPLAN, RTDOSE).
        ref_beam_numbers: Beam numbers an RTDOSE of type BEAM refers to.
        plan_intent: RTPLAN PlanIntent (upper case) or "".
        created: Sortable creation stamp (date + time of plan / structure set / instance).
        unusable: Why an RTDOSE cannot be converted, seen in its header ("" when usable).
    """

    path: str
    rel: str
    size: int
    mtime_ns: int
    status: str
    message: str = ""
    modality: str = ""
    sop_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    for_uid: str = ""
    patient_key: str = ""
    name_parts: tuple[str, ...] = ()
    birth_date: str = ""
    sex: str = ""
    age_years: int | None = None
    dose_summation: str = ""
    ref_plan_uids: tuple[str, ...] = ()
    ref_struct_uids: tuple[str, ...] = ()
    ref_beam_numbers: tuple[int, ...] = ()
    plan_intent: str = ""
    created: str = ""
    unusable: str = ""


def iter_files(root: str | Path, exclude: str | Path | None = None) -> Iterator[Path]:
    """Every regular file under ``root`` in a stable (sorted) order.

    Hidden entries and the folder ``exclude`` (e.g. a cohort written inside the export) are
    skipped.
    """
    skip = None if exclude is None else Path(exclude).resolve()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (skip is None or (Path(folder) / d).resolve() != skip))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword, None)
    return "" if value is None else str(value).strip()


def _refs(ds, keyword: str) -> tuple[str, ...]:
    items = ds.get(keyword, None) or []
    return tuple(u for u in (str(it.get("ReferencedSOPInstanceUID", "") or "").strip()
                             for it in items) if u)


def _beam_numbers(ds) -> tuple[int, ...]:
    numbers = []
    for plan in ds.get("ReferencedRTPlanSequence", None) or []:
        for group in plan.get("ReferencedFractionGroupSequence", None) or []:
            for beam in group.get("ReferencedBeamSequence", None) or []:
                value = beam.get("ReferencedBeamNumber", None)
                if value is not None:
                    numbers.append(int(value))
    return tuple(numbers)


def age_in_years(patient_age: str, birth_date: str, study_date: str) -> int | None:
    """Whole years from DICOM PatientAge ("065Y", "030M"), else birth date to study date.

    Ages above 89 are reported as 90 (the HIPAA Safe Harbor rule groups them, 45 CFR 164.514(b)).
    """
    age: float | None = None
    text = patient_age.strip().upper()
    if len(text) == 4 and text[:3].isdigit() and text[3] in "DWMY":
        age = int(text[:3]) / {"D": 365.25, "W": 52.18, "M": 12.0, "Y": 1.0}[text[3]]
    elif len(birth_date) >= 8 and len(study_date) >= 8 and (birth_date[:8] + study_date[:8]).isdigit():
        b, s = birth_date[:8], study_date[:8]
        age = int(s[:4]) - int(b[:4]) - (1 if s[4:8] < b[4:8] else 0)
    if age is None or age < 0:
        return None
    return min(int(age), 90)


def scan_file(path: str | Path, root: str | Path) -> ScanRecord:
    """Read the header of one file; never raises (problems go into ``status``/``message``)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        stat = path.stat()
    except OSError as err:
        return ScanRecord(str(path), os.path.relpath(path, root), 0, 0, "unreadable",
                          f"cannot stat ({err.strerror})")
    base = {"path": str(path), "rel": os.path.relpath(path, root), "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns}
    if path.name.upper() == "DICOMDIR":
        return ScanRecord(**base, status="ignored", message="DICOMDIR index")
    try:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(SCAN_TAGS))
        except InvalidDicomError:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(SCAN_TAGS),
                                 force=True)
            if "SOPClassUID" not in ds:
                return ScanRecord(**base, status="not_dicom", message="not a DICOM file")
        modality = _text(ds, "Modality").upper()
        sop = _text(ds, "SOPInstanceUID")
    except Exception as exc:  # noqa: BLE001 (pydicom raises many types on broken files)
        return ScanRecord(**base, status="unreadable",
                          message=f"cannot read DICOM header ({type(exc).__name__})")
    if not sop:
        return ScanRecord(**base, status="unreadable", message="no SOPInstanceUID")
    for_uid = _text(ds, "FrameOfReferenceUID")
    if not for_uid:
        refs = ds.get("ReferencedFrameOfReferenceSequence", None) or []
        for_uid = str(refs[0].get("FrameOfReferenceUID", "") or "").strip() if refs else ""
    name = ds.get("PatientName", None)
    parts = tuple(p.strip() for p in str(name or "").replace("=", "^").split("^") if p.strip())
    date_time = {"RTPLAN": ("RTPlanDate", "RTPlanTime"),
                 "RTSTRUCT": ("StructureSetDate", "StructureSetTime")}.get(
        modality, ("ContentDate", "ContentTime"))
    created = " ".join(_text(ds, k) for k in (*date_time, "InstanceCreationDate",
                                              "InstanceCreationTime"))
    sex = _text(ds, "PatientSex").upper()
    return ScanRecord(
        **base, status="dicom", modality=modality, sop_uid=sop,
        study_uid=_text(ds, "StudyInstanceUID"), series_uid=_text(ds, "SeriesInstanceUID"),
        for_uid=for_uid, patient_key=_text(ds, "PatientID"), name_parts=parts,
        birth_date=_text(ds, "PatientBirthDate"), sex=sex if sex in ("F", "M") else "",
        age_years=age_in_years(_text(ds, "PatientAge"), _text(ds, "PatientBirthDate"),
                               _text(ds, "StudyDate")),
        dose_summation=_text(ds, "DoseSummationType").upper(),
        ref_plan_uids=_refs(ds, "ReferencedRTPlanSequence"),
        ref_struct_uids=_refs(ds, "ReferencedStructureSetSequence"),
        ref_beam_numbers=_beam_numbers(ds) if modality == "RTDOSE" else (),
        plan_intent=_text(ds, "PlanIntent").upper(), created=created,
        unusable=("no DoseGridScaling" if modality == "RTDOSE" and not _text(ds, "DoseGridScaling")
                  else ""),
    )


def _scan_chunk(args: tuple[list[str], str]) -> list[ScanRecord]:
    paths, root = args
    return [scan_file(p, root) for p in paths]


def scan_tree(root: str | Path, *, workers: int = 1, progress: bool = False,
              chunk: int = 64, exclude: str | Path | None = None) -> list[ScanRecord]:
    """Scan every file under ``root``.

    Args:
        root: Export folder.
        workers: Processes reading headers (1 = in this process).
        progress: Show a tqdm progress bar (files).
        chunk: Files per task sent to a worker.
        exclude: A folder under ``root`` not to scan (the cohort being written).

    Returns:
        One :class:`ScanRecord` per file, in walk order.
    """
    from tqdm import tqdm

    root = str(Path(root).resolve())
    paths = [str(p) for p in iter_files(root, exclude)]
    chunks = [(paths[i:i + chunk], root) for i in range(0, len(paths), chunk)]
    records: list[ScanRecord] = []
    bar = tqdm(total=len(paths), desc="scan", unit="file", disable=not progress)
    if workers <= 1:
        results = map(_scan_chunk, chunks)
        for batch in results:
            records += batch
            bar.update(len(batch))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for batch in pool.map(_scan_chunk, chunks):
                records += batch
                bar.update(len(batch))
    bar.close()
    return records
