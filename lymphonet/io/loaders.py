"""Format-independent entry points: read a dose or a structure set from whatever the user has.

``read_dose`` takes DICOM RTDOSE or a NIfTI / NRRD / MHA volume in Gy; ``read_structures`` takes a
DICOM RTSTRUCT (rasterised onto the dose grid), a label map with its JSON names, or a folder of
binary masks (one file per structure), and returns masks under canonical organ names (clinic names
that match nothing are kept as they are and reported).

Label maps hold one label per voxel, so an organ's voxels are not also "body" voxels there (the
OpenKBP files are written that way). Every structure lies inside the patient, so after reading a
label map the canonical ``body`` is the union of its own label and every other structure.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from lymphonet.errors import InputError
from lymphonet.io.volume import StructureSet, Volume

log = logging.getLogger(__name__)

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def _kind(path: Path) -> str:
    name = path.name.lower()
    if any(name.endswith(s) for s in VOLUME_SUFFIXES):
        return "volume"
    if name.endswith(".dcm") or path.is_file() and _looks_like_dicom(path):
        return "dicom"
    return "unknown"


def _looks_like_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


#: Largest plausible maximum of a course dose (Gy) for external-beam plans. A higher maximum is
#: refused (most often a dose in cGy read as Gy); brachytherapy users raise it explicitly
#: (``max_dose_gy`` / ``--max-dose-gy`` / ``data.max_dose_gy``).
MAX_COURSE_DOSE_GY = 150.0


def read_dose(path: str | Path, *, patient: str | None = None,
              prescription_gy: float | None = None, n_fractions: int | None = None,
              max_dose_gy: float = MAX_COURSE_DOSE_GY, beam: bool = False) -> Volume:
    """Read a total-course dose in Gy from DICOM RTDOSE or a NIfTI / NRRD / MHA volume.

    The one place a dose enters lymphonet, so the unit and plausibility checks live here:

    * RTDOSE ``DoseSummationType`` ``FRACTION`` (one fraction's dose) is scaled to the course with
      ``n_fractions`` (refused without it) and the volume's metadata says so; ``BEAM`` (one beam
      of several) is refused: sum the beams first (``lymphonet ingest`` does). With ``beam=True``
      (time-resolved blood dose, which checks the beams' sum against the plan dose) only BEAM
      (the beam's course dose) and BEAM_SESSION (x ``n_fractions``) are accepted.
    * A dose whose maximum exceeds ``max_dose_gy`` is refused (a cGy file read as Gy), and so is
      an all-zero dose.

    Args:
        path: Dose file (or DICOM RTDOSE).
        patient: Patient id for error messages.
        prescription_gy: Course prescription (Gy); scales RELATIVE RTDOSE units.
        n_fractions: Fractions of the course, to scale a FRACTION dose.
        max_dose_gy: Plausibility limit of the course maximum (Gy).
        beam: Read one beam's dose (BEAM or BEAM_SESSION RTDOSE, or a volume) as its course dose.

    Raises:
        InputError: Unknown format, unreadable file, wrong units, non-finite, implausible or
            all-zero dose, a summation type that is not the course.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError("is a folder, not a dose file (give the RTDOSE file or the volume)",
                         patient=patient, file=path, field="dose_path")
    if not path.exists():
        raise InputError("file not found", patient=patient, file=path, field="dose_path")
    if path.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)", patient=patient, file=path, field="dose_path")
    kind = _kind(path)
    if kind == "volume":
        from lymphonet.io.nifti import read_volume

        dose = read_volume(path, units="Gy", patient=patient)
    elif kind == "dicom":
        from lymphonet.io.dicom import read_rtdose

        dose = read_rtdose(path, prescription_gy=prescription_gy, patient=patient)
        dose = (_beam_course_dose(dose, n_fractions, patient=patient, path=path) if beam
                else _course_dose(dose, n_fractions, patient=patient, path=path))
    else:
        raise InputError(f"unknown dose format (expected DICOM RTDOSE or one of "
                         f"{VOLUME_SUFFIXES})", patient=patient, file=path, field="dose_path")
    return check_dose_plausible(dose, max_dose_gy=max_dose_gy, patient=patient, path=path)


def _beam_course_dose(dose: Volume, n_fractions: int | None, *, patient, path) -> Volume:
    """One beam's course dose: BEAM as is (the beam over the fraction group, DICOM PS3.3
    C.8.8.3), BEAM_SESSION x n_fractions (one session); any other summation type refused."""
    kind = dose.metadata.get("DoseSummationType")
    if kind == "BEAM":
        return dose
    if kind != "BEAM_SESSION":
        raise InputError(f"DoseSummationType is {kind}: a per-beam dose must be BEAM or "
                         "BEAM_SESSION", patient=patient, file=path, field="DoseSummationType")
    if n_fractions is None or int(n_fractions) < 1:
        raise InputError("BEAM_SESSION (one session's beam dose) needs the number of fractions",
                         patient=patient, file=path, field="DoseSummationType")
    meta = dict(dose.metadata, course_scaling=f"BEAM_SESSION dose x {int(n_fractions)} fractions")
    return Volume(dose.array * np.float32(n_fractions), dose.spacing_mm, dose.origin_mm,
                  dose.direction, units="Gy", metadata=meta)


def _course_dose(dose: Volume, n_fractions: int | None, *, patient, path) -> Volume:
    """An RTDOSE as the whole course: FRACTION x n_fractions; BEAM refused."""
    kind = dose.metadata.get("DoseSummationType")
    if kind == "BEAM":
        raise InputError("DoseSummationType is BEAM: this is one beam's dose, not the course; "
                         "sum the beam doses (lymphonet ingest does) or export the PLAN dose",
                         patient=patient, file=path, field="DoseSummationType")
    if kind != "FRACTION":
        return dose
    if n_fractions is None or int(n_fractions) < 1:
        raise InputError("DoseSummationType is FRACTION (one fraction's dose) and the number of "
                         "fractions is not known here, so the course dose cannot be formed",
                         patient=patient, file=path, field="DoseSummationType")
    log.warning("%s: FRACTION dose scaled to the course (x %d fractions)", patient or "dose",
                int(n_fractions))
    meta = dict(dose.metadata, course_scaling=f"FRACTION dose x {int(n_fractions)} fractions")
    return Volume(dose.array * np.float32(n_fractions), dose.spacing_mm, dose.origin_mm,
                  dose.direction, units="Gy", metadata=meta)


def check_dose_plausible(dose: Volume, *, max_dose_gy: float = MAX_COURSE_DOSE_GY,
                         patient: str | None = None, path: str | Path | None = None) -> Volume:
    """Refuse an all-zero dose and a course maximum above ``max_dose_gy`` (returns ``dose``)."""
    peak = float(dose.array.max()) if dose.array.size else 0.0
    if peak <= 0.0:
        raise InputError("the dose is zero everywhere", patient=patient, file=path,
                         field="dose_path")
    if peak > max_dose_gy:
        raise InputError(f"maximum dose {peak:.1f} Gy is above the plausibility limit of "
                         f"{max_dose_gy:g} Gy for a course: is the file in cGy? (raise the limit "
                         "with --max-dose-gy / data.max_dose_gy only for brachytherapy-like "
                         "doses)", patient=patient, file=path, field="dose_path")
    return dose


def read_structures(path: str | Path, grid: Volume, *, structure_map=None,
                    patient: str | None = None, canonical: bool = True) -> StructureSet:
    """Read structures onto ``grid`` and (by default) rename them to canonical organs.

    Args:
        path: DICOM RTSTRUCT, a label map (``X.nii.gz`` with names in ``X.json``), or a folder of
            binary masks (``<name>.nii.gz``).
        grid: The dose volume; masks are produced on its grid (RTSTRUCT is rasterised; a label map
            must already be on it).
        structure_map: A :class:`~lymphonet.io.structure_map.StructureMap`, a path to a YAML map, or
            None for the built-in map.
        patient: Patient id for error messages.
        canonical: If False, return the names as they are in the file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", patient=patient, file=path, field="structures_path")
    kind = "folder" if path.is_dir() else _kind(path)
    if kind == "folder":
        from lymphonet.io.masks import read_mask_folder

        structures = read_mask_folder(path, grid, patient=patient)
    elif kind == "volume":
        from lymphonet.io.nifti import read_label_map

        structures = read_label_map(path, grid=grid, patient=patient)
    elif kind == "dicom":
        from lymphonet.io.dicom import read_rtstruct

        structures = read_rtstruct(path, grid, patient=patient)
    else:
        raise InputError("unknown structure format (expected DICOM RTSTRUCT, a label map or a "
                         "folder of masks)",
                         patient=patient, file=path, field="structures_path")
    if not canonical:
        return structures
    return canonicalise(structures, structure_map, patient=patient)


def canonicalise(structures: StructureSet, structure_map=None, *,
                 patient: str | None = None) -> StructureSet:
    """Rename structures to canonical organs (unmatched names kept and reported in the log).

    Args:
        structures: Masks as read from a file (``structures.source`` tells whether that file was a
            label map, whose ``body`` then becomes the union of every structure).
        structure_map: A :class:`~lymphonet.io.structure_map.StructureMap`, a path to a YAML map, or
            None for the built-in map.
        patient: Patient id for the log.
    """
    from lymphonet.io.structure_map import StructureMap

    if structure_map is None:
        smap = StructureMap.default()
    elif isinstance(structure_map, (str, Path)):
        smap = StructureMap.from_yaml(structure_map)
    else:
        smap = structure_map
    mapped, report = smap.apply(structures)
    source = Path(structures.source) if structures.source else None
    log.debug("structure mapping for %s: %s", patient or (source.name if source else "?"), report)
    if source is not None and _kind(source) == "volume" and "body" in mapped:
        mapped = _body_contains_everything(mapped)
    return mapped


def _body_contains_everything(structures: StructureSet) -> StructureSet:
    """``body`` |= every other mask (label maps store overlapping voxels under one label only)."""
    body = structures.masks["body"].copy()
    for mask in structures.masks.values():
        np.logical_or(body, mask, out=body)
    masks = dict(structures.masks)
    masks["body"] = body
    return StructureSet(masks, structures.grid, structures.empty, structures.source)
