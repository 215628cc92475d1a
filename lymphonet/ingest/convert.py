"""Convert one plan (RTPLAN + RTDOSE(s) + RTSTRUCT) to NIfTI files and a manifest row.

Per plan ``<cohort>/plans/<plan_id>/`` receives ``dose.nii.gz`` (total course dose, Gy, float32)
and ``structures/`` (one binary mask per RTSTRUCT ROI, see :mod:`lymphonet.io.masks`, so
overlapping structures such as BODY and the organs inside it keep every voxel). Dose rules:

* PLAN dose: read as is.
* BEAM doses: summed voxel by voxel (each holds one beam's course dose). Doses on a grid other than
  the first are resampled onto it (trilinear) and the result says so. Beams of the plan without a
  dose make the row incomplete (the sum would under-state the dose).
* FRACTION dose: one fraction's dose times NumberOfFractionsPlanned.

Structures keep the names of the RTSTRUCT (the structure map is applied when the cohort is read,
``structure_map`` column); the map is applied here only to report unmatched names.

Incremental runs: each plan's *input hash* (SHA-256 over the plan id, the dose choice, the path,
size and modification time of every input file, the structure map and :data:`INGEST_VERSION`) is
kept in ``ingest_state.json`` in the cohort folder with the plan's row; a plan whose hash is
unchanged and whose files exist is not converted again.

:func:`convert_plan` never raises: failures come back as a result with status "error", so one bad
plan never stops a batch. Workers receive only pseudonymised jobs (no raw identifiers).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lymphonet.errors import InputError
from lymphonet.ingest.group import PlanJob

#: Bump when conversion output changes, so every plan is converted again.
INGEST_VERSION = "2"  # 2: dose plausibility and consistency checks
PLANS_DIR = "plans"
STATE_NAME = "ingest_state.json"


@dataclass
class PlanResult:
    """Outcome of converting one plan (picklable, pseudonymised).

    Attributes:
        plan_id / patient_id: Pseudonyms.
        status: "converted", "incomplete" (files written but a value is missing) or "error".
        row: Manifest values from the files (paths relative to the cohort folder).
        events: ``(level, code, message)`` findings for the report (messages may hold paths of
            the export: redact before writing).
        input_hash: See the module docstring.
        skipped: True when the plan was unchanged and taken from the state file.
    """

    plan_id: str
    patient_id: str
    status: str
    row: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    input_hash: str = ""
    skipped: bool = False


def file_digest(path: str | Path | None) -> str:
    """SHA-256 of a file's bytes ("" for None)."""
    return "" if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()


def input_hash(job: PlanJob, structure_map_digest: str = "") -> str:
    """Hash of everything a plan's conversion depends on (see the module docstring)."""
    payload = json.dumps([INGEST_VERSION, job.plan_id, job.dose_kind, list(job.dose_beams),
                          sorted(job.inputs), structure_map_digest])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def load_state(out_dir: str | Path) -> dict[str, dict]:
    """Plan id -> ``{"hash", "status", "row", "events"}`` from an earlier run ({} if none)."""
    path = Path(out_dir) / STATE_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read the ingestion state ({err}); delete it to convert "
                         "everything again", file=path, field="state") from None
    return dict(data.get("plans", {}))


def save_state(out_dir: str | Path, plans: dict[str, dict]) -> Path:
    """Write the state atomically (temporary file + rename)."""
    path = Path(out_dir) / STATE_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"version": INGEST_VERSION, "plans": plans}, indent=1,
                              sort_keys=True), encoding="utf-8")
    tmp.replace(path)
    return path


def state_entry(result: PlanResult) -> dict:
    """What the state file keeps of a result."""
    return {"hash": result.input_hash, "status": result.status, "row": result.row,
            "events": [list(e) for e in result.events]}


def from_state(job: PlanJob, entry: dict) -> PlanResult:
    """Rebuild an unchanged plan's result from its state entry."""
    return PlanResult(job.plan_id, job.patient_id, entry["status"], dict(entry["row"]),
                      [tuple(e) for e in entry.get("events", [])], entry["hash"], skipped=True)


def is_unchanged(job: PlanJob, entry: dict | None, digest: str, out_dir: Path) -> bool:
    """True when the plan was converted before from the same inputs and its files exist."""
    if not entry or entry.get("hash") != input_hash(job, digest) or entry.get("status") == "error":
        return False
    row = entry.get("row", {})
    paths = [row.get("dose_path"), row.get("structures_path")]
    return all((out_dir / p).is_file() for p in paths if p)


def convert_plan(job: PlanJob, out_dir: str | Path, structure_map: str | Path | None = None,
                 structure_map_digest: str = "") -> PlanResult:
    """Convert one plan; never raises (errors become status "error").

    Args:
        job: From :func:`~lymphonet.ingest.group.group_records`.
        out_dir: Cohort folder.
        structure_map: Structure map YAML (None = built-in default).
        structure_map_digest: :func:`file_digest` of the map (part of the input hash).

    Returns:
        :class:`PlanResult`.
    """
    result = PlanResult(job.plan_id, job.patient_id, "converted",
                        input_hash=input_hash(job, structure_map_digest))
    try:
        _convert(job, Path(out_dir), structure_map, result)
    except InputError as err:
        result.status = "error"
        result.events.append(("error", "conversion_error", str(err)))
    except Exception as err:  # noqa: BLE001 (never lose the batch to one plan; reported)
        result.status = "error"
        result.events.append(("error", "conversion_error", f"{type(err).__name__}: {err}"))
    return result


def _convert(job: PlanJob, out_dir: Path, structure_map, result: PlanResult) -> None:
    from lymphonet.io.dicom import read_rtplan

    plan = read_rtplan(job.plan_file, patient=job.plan_id)
    notes = list(job.notes) + list(plan.notes)
    if plan.beam_on_time_status != "estimated":
        notes.append(f"beam-on time unknown: {plan.beam_on_time_reason}")
    result.row = {
        "patient_id": job.patient_id, "plan_id": job.plan_id, "site": "",
        "modality": plan.modality, "n_fractions": plan.n_fractions,
        "dose_per_fraction_gy": _blank(plan.dose_per_fraction_gy),
        "prescription_gy": _blank(plan.prescription_gy),
        "beam_on_time_s": _blank(plan.beam_on_time_s),
        "beam_on_time_status": plan.beam_on_time_status,
        "age": "" if job.age_years is None else job.age_years, "sex": job.sex,
        "dose_path": "", "structures_path": "", "dose_kind": job.dose_kind,
        "n_dose_files": len(job.dose_files),
    }
    folder = Path(PLANS_DIR) / job.plan_id
    if not job.dose_files:
        result.status = "incomplete"
        notes.append("no dose")
        result.row["ingest_notes"] = "; ".join(notes)
        return
    from lymphonet.io.loaders import check_dose_plausible

    dose = check_dose_plausible(_course_dose(job, plan, result), patient=job.plan_id,
                                path=Path(job.dose_files[0]).name)
    from lymphonet.io.masks import write_mask_folder
    from lymphonet.io.nifti import write_volume

    write_volume(dose, out_dir / folder / "dose.nii.gz")
    result.row["dose_path"] = (folder / "dose.nii.gz").as_posix()
    if job.struct_file is not None:
        from lymphonet.io.dicom import read_rtstruct
        from lymphonet.io.structure_map import StructureMap

        structures = read_rtstruct(job.struct_file, dose, patient=job.plan_id)
        smap = StructureMap.from_yaml(structure_map) if structure_map else StructureMap.default()
        mapped, report = smap.apply(structures)
        if report.unmatched:
            message = ("structures not in the structure map (kept by name): "
                       + ", ".join(report.unmatched))
            result.events.append(("info", "unmatched_structures", message))
        _check_against_plan(dose, mapped, plan, job)
        write_mask_folder(structures, out_dir / folder / "structures")
        result.row["structures_path"] = (folder / "structures").as_posix()
        result.row["n_structures"] = len(structures.names)
    if job.dose_kind == "BEAM":
        planned = {b.number for b in plan.beams}
        missing = sorted(planned - set(job.dose_beams))
        if -1 in job.dose_beams:
            notes.append("beam doses without beam numbers: coverage of all beams not checked")
        elif missing:
            result.status = "incomplete"
            message = f"no dose for beam number(s) {missing}: the summed dose is incomplete"
            result.events.append(("warning", "incomplete_beam_doses", message))
            notes.append(f"beam doses missing for beams {missing}")
    result.row["ingest_notes"] = "; ".join(notes)


def _check_against_plan(dose, canonical, plan, job: PlanJob) -> None:
    """The dose against the plan's prescription and the canonically named structures (the checks
    of the one plan reader, :func:`lymphonet.io.plan.check_dose_consistency`), where a body is
    contoured."""
    from lymphonet.io.plan import check_dose_consistency

    if "body" not in canonical:
        return
    rx = plan.prescription_gy
    check_dose_consistency(dose, canonical, rx if rx and math.isfinite(rx) else None,
                           patient=job.plan_id, structures_file=Path(job.struct_file).name)


def _course_dose(job: PlanJob, plan, result: PlanResult):
    """Total course dose (Gy) from the job's dose files, per the rules of the module docstring."""
    from lymphonet.io.dicom import read_rtdose
    from lymphonet.io.nifti import resample_to

    def read(path):
        return read_rtdose(path, prescription_gy=plan.prescription_gy, patient=job.plan_id)

    dose = read(job.dose_files[0])
    if job.dose_kind == "FRACTION":
        message = f"fraction dose x {plan.n_fractions} fractions"
        result.events.append(("info", "fraction_dose_scaled", message))
        return dose.with_array(dose.array * plan.n_fractions)
    if job.dose_kind != "BEAM" or len(job.dose_files) == 1:
        return dose
    total = dose.array.astype("float32", copy=True)
    for path in job.dose_files[1:]:
        beam = read(path)
        if not beam.same_grid(dose):
            beam = resample_to(beam, dose, order=1)
            message = (f"beam dose {path} is on another grid; resampled (trilinear) onto the "
                       "first beam's grid")
            result.events.append(("warning", "resampled_dose", message))
        total += beam.array
    result.events.append(("info", "beam_dose_summed",
                          f"{len(job.dose_files)} beam doses summed"))
    return dose.with_array(total)


def _blank(value: float | None) -> Any:
    return "" if value is None or (isinstance(value, float) and not math.isfinite(value)) \
        else value


def result_dict(result: PlanResult) -> dict:
    """Plain dict of a result (for debugging and tests)."""
    return asdict(result)
