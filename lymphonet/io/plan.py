"""The one plan reader: a manifest row (or files named on the command line) -> :class:`Plan`.

Every job that needs a plan's dose and structures (training cache, scoring, the mechanistic
``simulate`` / ``fit-kinetics`` commands, the digital-twin calibration) reads it here, so every
job applies the same checks:

* the dose is read with the course prescription (``n_fractions x dose_per_fraction_gy``), so an
  RTDOSE in RELATIVE units is scaled the same way everywhere;
* the structures are mapped to canonical organs on the dose grid, extra target structures
  (manifest column ``targets_path``) are OR-ed in, and a body contour is required;
* the beam-on time follows one rule (:func:`resolve_beam_on_time_s`): the manifest's value, else
  the caller's explicitly configured default (reported as assumed), else an error naming the plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lymphonet.errors import InputError
from lymphonet.io.loaders import MAX_COURSE_DOSE_GY
from lymphonet.io.volume import StructureSet, Volume
from lymphonet.schema import PlanRecord, default_fraction_days

#: Consistency limits between the manifest's prescription and the dose file (docs/refusals.md).
#: The course maximum must lie within this multiple of the prescription (n_fractions x
#: dose_per_fraction_gy): below it the dose cannot have delivered the prescription; above it
#: the schedule or the dose units are wrong (stereotactic plans prescribed to a 50% isodose reach
#: 2.0).
DMAX_OVER_PRESCRIPTION = (0.9, 2.5)
#: D95 of the contoured target over the prescription (a union of simultaneous-boost levels
#: can sit well below 1).
TARGET_D95_OVER_PRESCRIPTION = (0.5, 1.3)
#: Share of the integral dose that must fall inside the body contour: structures of another
#: patient or on another grid leave the dose outside.
MIN_DOSE_SHARE_IN_BODY = 0.5

#: Volume-file suffixes whose label names may sit in a ``.json`` sidecar.
_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")


@dataclass(frozen=True)
class Plan:
    """One plan as read from disk.

    Attributes:
        patient: Patient (or plan) id used in error messages.
        dose: Course dose on its own grid (Gy; RBE-weighted Gy for particles).
        structures: Canonical organ masks on the dose grid (always holds ``body``).
        n_fractions: Fractions of the course.
        fraction_days: ``[K]`` day of each fraction (days from the first fraction).
        beam_on_time_s: Beam-on time per fraction (s).
        beam_on_assumed: True when ``beam_on_time_s`` is a configured default, not the plan's.
        sex: ``"F"``, ``"M"`` or None (unknown).
        notes: What could not be checked or was assumed for this plan (documented warnings).
    """

    patient: str | None
    dose: Volume
    structures: StructureSet
    n_fractions: int
    fraction_days: np.ndarray
    beam_on_time_s: float
    beam_on_assumed: bool = False
    sex: str | None = None
    notes: tuple[str, ...] = ()


def resolve_beam_on_time_s(value: float | None, default: float | None, *,
                           patient: str | None = None) -> tuple[float, bool]:
    """The one beam-on rule: the plan's value, else an explicit default, else an error.

    Args:
        value: The plan's beam-on time per fraction (s); None or NaN when unknown.
        default: The caller's configured default (s), or None to make a missing value an error.
        patient: For the error message.

    Returns:
        ``(beam_on_time_s, assumed)``: seconds > 0, and whether the default was used.

    Raises:
        InputError: Missing with no default, or not a positive finite number.
    """
    assumed = value is None or (isinstance(value, float) and math.isnan(value))
    if assumed:
        if default is None:
            raise InputError("beam-on time per fraction is missing and no default is configured "
                             "(set data.default_beam_on_time_s or --default-beam-on-time)",
                             patient=patient, field="beam_on_time_s")
        value = default
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InputError(f"beam-on time must be a positive number of seconds, got {value!r}",
                         patient=patient, field="beam_on_time_s")
    return float(value), assumed


def extra_path(record: PlanRecord, column: str, root: Path | None) -> Path | None:
    """A path from a manifest column the schema passes through (e.g. ``targets_path``)."""
    value = record.extras.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
        return None
    path = Path(str(value).strip()).expanduser()
    return path if path.is_absolute() or root is None else root / path


def plan_input_files(record: PlanRecord, root: Path | None) -> list[Path]:
    """Files :func:`read_plan` reads for a row (folders expanded, label-name sidecars included)."""
    paths = [record.dose_path, record.structures_path, record.structure_map,
             extra_path(record, "targets_path", root)]
    out: list[Path] = []
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file())
            continue
        out.append(p)
        for suffix in _VOLUME_SUFFIXES:
            if p.name.endswith(suffix):
                sidecar = p.with_name(p.name[: -len(suffix)] + ".json")
                if sidecar.is_file():
                    out.append(sidecar)
                break
    return out


def read_plan(record: PlanRecord, root: Path | None = None, *,
              default_beam_on_time_s: float | None = None,
              max_dose_gy: float = MAX_COURSE_DOSE_GY, check_prescription: bool = True) -> Plan:
    """Read a validated manifest row's dose and structures.

    Args:
        record: A validated manifest row.
        root: Manifest folder, for relative paths in pass-through columns (``targets_path``).
        default_beam_on_time_s: Beam-on time (s) for rows without one; None makes that an error.
        max_dose_gy: Plausibility limit of the course maximum (Gy).
        check_prescription: Check the dose against the prescription (off: said in the notes).

    Raises:
        InputError: Naming the patient, file and field of whatever is wrong.
    """
    pid = record.patient_id
    beam_on, assumed = resolve_beam_on_time_s(record.beam_on_time_s, default_beam_on_time_s,
                                              patient=pid)
    return read_plan_files(
        record.dose_path, record.structures_path, n_fractions=record.n_fractions,
        beam_on_time_s=beam_on, structure_map=record.structure_map,
        fraction_days=record.fraction_days, prescription_gy=record.total_dose_gy,
        sex=record.sex, patient=pid, targets_path=extra_path(record, "targets_path", root),
        beam_on_assumed=assumed, max_dose_gy=max_dose_gy, check_prescription=check_prescription)


def read_plan_files(dose_path: str | Path, structures_path: str | Path | None, *,
                    n_fractions: int, beam_on_time_s: float,
                    structure_map: str | Path | None = None,
                    fraction_days=None, prescription_gy: float | None = None,
                    sex: str | None = None, patient: str | None = None,
                    targets_path: str | Path | None = None,
                    beam_on_assumed: bool = False,
                    max_dose_gy: float = MAX_COURSE_DOSE_GY,
                    check_prescription: bool = True) -> Plan:
    """Read a plan from its files (the command-line route; :func:`read_plan` for manifest rows).

    Args:
        dose_path: Course dose (DICOM RTDOSE file or folder, NIfTI / NRRD / MHA in Gy).
        structures_path: RTSTRUCT, label map or mask folder (required: the body is needed).
        n_fractions: Fractions of the course (>= 1).
        beam_on_time_s: Beam-on time per fraction (s, > 0).
        structure_map: Clinic -> canonical structure-name map (YAML), or None for the default.
        fraction_days: Day of each fraction; None = weekdays from day 0.
        prescription_gy: Course prescription (Gy), used to scale RELATIVE RTDOSE units.
        sex: ``"F"``/``"M"`` or None.
        patient: Id for error messages.
        targets_path: Extra structures OR-ed into the canonical set (e.g. GTV/PTV label map).
        beam_on_assumed: Whether the beam-on time is a default rather than the plan's own.
        max_dose_gy: Plausibility limit of the course maximum (Gy).
        check_prescription: Check the dose against ``prescription_gy`` (off: said in the notes).

    Raises:
        InputError: Unreadable files, implausible dose, a prescription the dose does not bear
            out (:func:`check_dose_consistency`), structures that miss the dose.
    """
    from lymphonet.io.loaders import read_dose, read_structures

    if not isinstance(n_fractions, (int, np.integer)) or n_fractions < 1:
        raise InputError(f"n_fractions must be an integer >= 1, got {n_fractions!r}",
                         patient=patient, field="n_fractions")
    beam_on_time_s, _ = resolve_beam_on_time_s(beam_on_time_s, None, patient=patient)
    if structures_path is None:
        raise InputError("structures_path is needed (at least the body contour)", patient=patient,
                         field="structures_path")
    days = default_fraction_days(int(n_fractions)) if fraction_days is None else fraction_days
    days = np.asarray(days, float)
    if days.shape != (int(n_fractions),):
        raise InputError(f"{days.size} fraction days given for {n_fractions} fractions",
                         patient=patient, field="fraction_days")
    dose = read_dose(dose_path, patient=patient, prescription_gy=prescription_gy,
                     n_fractions=int(n_fractions), max_dose_gy=max_dose_gy)
    structures = read_structures(structures_path, dose, patient=patient,
                                 structure_map=structure_map)
    if targets_path is not None:
        extra = read_structures(targets_path, dose, patient=patient, structure_map=structure_map)
        masks = dict(structures.masks)
        for name, mask in extra.masks.items():
            masks[name] = masks[name] | mask if name in masks else mask
        structures = StructureSet(masks, dose, structures.empty + extra.empty, structures.source)
    if "body" not in structures:
        raise InputError("no body contour among the structures", patient=patient,
                         file=structures_path, field="body")
    notes = []
    if not check_prescription:
        notes.append("the dose was not checked against the prescription (switched off)")
        prescription_gy = None
    if dose.metadata.get("DoseUnits") == "RELATIVE":  # scaled by the prescription: circular
        notes.append("the schedule cannot be checked against a RELATIVE dose (it is scaled by "
                     "the prescription)")
        prescription_gy = None
    if dose.metadata.get("course_scaling"):
        notes.append(f"dose scaled to the course: {dose.metadata['course_scaling']}; the fraction "
                     "count cannot be checked against it")
    check_dose_consistency(dose, structures, prescription_gy, patient=patient,
                           structures_file=structures_path)
    return Plan(patient, dose, structures, int(n_fractions), days, float(beam_on_time_s),
                beam_on_assumed, sex, tuple(notes))


def check_dose_consistency(dose: Volume, structures: StructureSet,
                           prescription_gy: float | None, *, patient: str | None = None,
                           structures_file: str | Path | None = None) -> None:
    """Dose vs its neighbours: the structures and the prescription must describe the same plan.

    * The body holds at least :data:`MIN_DOSE_SHARE_IN_BODY` of the integral dose (catches
      structures of another patient, or shifted off the dose grid).
    * With a prescription: the course maximum over it lies within
      :data:`DMAX_OVER_PRESCRIPTION`, and a contoured target's D95 within
      :data:`TARGET_D95_OVER_PRESCRIPTION` (catches a wrong fraction count or dose per fraction).

    Raises:
        GeometryError: The structures miss the dose.
        InputError: The prescription and the dose disagree.
    """
    from lymphonet.errors import GeometryError

    total = float(dose.array.sum(dtype=np.float64))
    body = structures.masks.get("body")
    inside = float(dose.array[body].sum(dtype=np.float64)) if body is not None else 0.0
    if total > 0 and inside / total < MIN_DOSE_SHARE_IN_BODY:
        raise GeometryError(f"only {100 * inside / total:.0f}% of the dose lies inside the body "
                            "contour: the structures do not belong to this dose (another patient, "
                            "another frame of reference or grid)", patient=patient,
                            file=structures_file, field="structures_path")
    if prescription_gy is None or not prescription_gy > 0:
        return
    lo, hi = DMAX_OVER_PRESCRIPTION
    ratio = float(dose.array.max()) / prescription_gy
    if not lo <= ratio <= hi:
        raise InputError(f"the dose maximum is {ratio:.3g} x the prescription "
                         f"({prescription_gy:g} Gy = n_fractions x dose_per_fraction_gy), outside "
                         f"{lo:g}-{hi:g}: the schedule or the dose file is wrong", patient=patient,
                         field="n_fractions")
    target = structures.masks.get("target")
    if target is not None and target.any():
        lo, hi = TARGET_D95_OVER_PRESCRIPTION
        d95 = float(np.percentile(dose.array[target], 5)) / prescription_gy
        if not lo <= d95 <= hi:
            raise InputError(f"the target's D95 is {d95:.3g} x the prescription "
                             f"({prescription_gy:g} Gy), outside {lo:g}-{hi:g}: the schedule, "
                             "the dose or the target contour is wrong", patient=patient,
                             field="dose_per_fraction_gy")
