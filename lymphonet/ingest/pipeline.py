"""``ingest``: a clinic's DICOM export (+ lab export) -> a lymphonet cohort folder.

Steps: scan headers (:mod:`~lymphonet.ingest.scan`), group into plans
(:mod:`~lymphonet.ingest.group`), convert changed plans in parallel, one plan per task with results
streamed back (:mod:`~lymphonet.ingest.convert`; memory stays that of one plan per worker), turn the
lab export into the labs table (:mod:`~lymphonet.ingest.labs`), write the manifest and the report.

Cohort folder written:

* ``manifest.csv``: complete rows only (every required column of docs/contract.md section 2 filled), so
  ``load_cohort(out_dir)`` always loads it. Extra columns: ``prescription_gy``,
  ``beam_on_time_status``, ``baseline_day``, ``dose_kind``, ``n_dose_files``, ``n_structures``,
  ``ingest_status``, ``ingest_notes``.
* ``manifest_incomplete.csv``: same columns for plans that were found but lack a required value
  (no baseline ALC, no dose, unsupported modality, no prescription, conversion error);
  ``ingest_notes`` says what is missing. Fill the blanks and move rows over.
* ``labs.csv`` (patients of ``manifest.csv``) and ``labs_incomplete.csv`` (other lab patients):
  ``patient_id, plan_id, day, alc, alc_unit, source``.
* ``plans/<plan_id>/``: dose and structures (RTSTRUCT names; a ``--structure-map`` is copied to
  ``structure_map.yaml`` and named in the rows); ``ingest_report.csv``, ``ingest_summary.txt``,
  ``ingest_state.json``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lymphonet.errors import InputError
from lymphonet.ingest import convert as cv
from lymphonet.ingest.group import PlanJob, group_records
from lymphonet.ingest.labs import LabConfig, baseline_alc, convert_labs, read_start_dates
from lymphonet.ingest.pseudonym import Pseudonymizer, load_or_create_secret, write_mapping
from lymphonet.ingest.report import Issue, write_report
from lymphonet.ingest.scan import scan_tree

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = (
    "patient_id", "plan_id", "site", "modality", "n_fractions", "dose_per_fraction_gy",
    "fraction_days", "beam_on_time_s", "chemo", "age", "sex", "bmi", "baseline_alc", "alc_unit",
    "dose_path", "structures_path", "structure_map", "prescription_gy", "beam_on_time_status",
    "baseline_day", "dose_kind", "n_dose_files", "n_structures", "ingest_status", "ingest_notes",
)
LABS_OUT_COLUMNS = ("patient_id", "plan_id", "day", "alc", "alc_unit", "source")
ALC_UNIT = "10^9/L"


@dataclass
class IngestResult:
    """Paths written and counts of one run."""

    out_dir: Path
    manifest_path: Path
    incomplete_path: Path
    labs_path: Path | None
    report_path: Path
    summary: str
    counts: dict[str, int]
    issues: list[Issue]


def _convert_stream(jobs: list[PlanJob], out_dir: Path, structure_map, digest: str,
                    workers: int) -> Iterator[cv.PlanResult]:
    fn = functools.partial(cv.convert_plan, out_dir=out_dir, structure_map=structure_map,
                           structure_map_digest=digest)
    if workers <= 1 or len(jobs) <= 1:
        yield from map(fn, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(fn, jobs)


def ingest(dicom_root: str | Path, out_dir: str | Path, *, secret_file: str | Path,
           labs: str | Path | None = None, structure_map: str | Path | None = None,
           workers: int = 1, mapping_file: str | Path | None = None,
           lab_config: LabConfig | None = None, start_dates: str | Path | None = None,
           progress: bool = False) -> IngestResult:
    """Build (or update) a cohort folder from a DICOM export; see the module docstring.

    Args:
        dicom_root: Export folder (any layout).
        out_dir: Cohort folder (created; earlier results are reused where inputs are unchanged).
        secret_file: Pseudonym key file outside ``out_dir`` (created when absent).
        labs: Lab export (see :mod:`lymphonet.ingest.labs`), optional.
        structure_map: Structure-name map YAML (default: built-in).
        workers: Processes for scanning and conversion.
        mapping_file: Where to write raw id -> pseudonym (outside ``out_dir``); None = nowhere.
        lab_config: Lab recognition rules.
        start_dates: CSV ``patient_id, first_fraction_date`` (raw ids) for the lab day axis.
        progress: Show progress bars.

    Returns:
        :class:`IngestResult`.
    """
    root, out_dir = Path(dicom_root).resolve(), Path(out_dir).resolve()
    if not root.is_dir():
        raise InputError("DICOM export folder not found", file=dicom_root, field="dicom_root")
    out_dir.mkdir(parents=True, exist_ok=True)
    pseudo = Pseudonymizer(load_or_create_secret(secret_file, out_dir=out_dir))
    if mapping_file is not None:  # refuse a bad path before any work
        write_mapping(mapping_file, {}, out_dir=out_dir)
    map_name = _copy_structure_map(structure_map, out_dir)
    grouping = group_records(scan_tree(root, workers=workers, progress=progress,
                                       exclude=out_dir), pseudo)
    red = grouping.redactor

    def clean(text: str, keep: tuple[str, ...] = ()) -> str:
        return red(str(text).replace(str(root) + os.sep, ""), keep)

    issues, counts = list(grouping.issues), dict(grouping.counts)
    results = _run_conversions(grouping.jobs, out_dir, structure_map, workers, progress, clean,
                               issues)
    lab_result = None
    if labs is not None:
        dates = read_start_dates(start_dates) if start_dates is not None else None
        lab_result = convert_labs(labs, pseudo, config=lab_config, start_dates=dates)
        issues += lab_result.issues
        counts.update(lab_result.counts)
    window = (lab_config or LabConfig()).baseline_window_days
    complete, incomplete = _manifest_rows(results, lab_result, window, out_dir, issues, map_name)
    manifest_path = _write_table(out_dir / "manifest.csv", complete, MANIFEST_COLUMNS)
    incomplete_path = _write_table(out_dir / "manifest_incomplete.csv", incomplete,
                                   MANIFEST_COLUMNS)
    labs_path = None
    if lab_result is not None:
        labs_path = _write_labs(out_dir, lab_result.table, complete, results, issues)
    counts.update(plans=len(results), plans_converted=sum(not r.skipped and r.status != "error"
                                                          for r in results),
                  plans_unchanged=sum(r.skipped for r in results),
                  manifest_rows=len(complete), incomplete_rows=len(incomplete))
    if mapping_file is not None:
        ids = dict(grouping.patients)
        ids.update(lab_result.raw_ids if lab_result is not None else {})
        write_mapping(mapping_file, ids, out_dir=out_dir)
    report_path, _, summary = write_report(out_dir, counts, issues)
    logger.info("ingest: %d plans (%d in manifest, %d incomplete)", len(results), len(complete),
                len(incomplete))
    return IngestResult(out_dir, manifest_path, incomplete_path, labs_path, report_path, summary,
                        counts, issues)


def _structure_names(code: str, message: str) -> tuple[str, ...]:
    """The ROI names an ``unmatched_structures`` message lists (kept readable by redaction)."""
    if code != "unmatched_structures" or ": " not in message:
        return ()
    return tuple(n.strip() for n in message.split(": ", 1)[1].split(", "))


def _run_conversions(jobs: list[PlanJob], out_dir: Path, structure_map, workers: int,
                     progress: bool, clean, issues: list[Issue]) -> list[cv.PlanResult]:
    """Convert changed plans, reuse unchanged ones, keep the state file current."""
    from tqdm import tqdm

    state = cv.load_state(out_dir)
    digest = cv.file_digest(structure_map)
    reused = {j.plan_id: cv.from_state(j, state[j.plan_id]) for j in jobs
              if cv.is_unchanged(j, state.get(j.plan_id), digest, out_dir)}
    todo = [j for j in jobs if j.plan_id not in reused]
    results = list(reused.values())
    bar = tqdm(total=len(todo), desc="convert", unit="plan", disable=not progress)
    for i, result in enumerate(_convert_stream(todo, out_dir, structure_map, digest, workers)):
        result.events = [(lvl, code, clean(msg, _structure_names(code, msg)))
                         for lvl, code, msg in result.events]
        results.append(result)
        state[result.plan_id] = cv.state_entry(result)
        if result.status == "error":
            logger.warning("plan %s: %s", result.plan_id, result.events[-1][2])
        if i % 20 == 19:
            cv.save_state(out_dir, state)
        bar.update(1)
    bar.close()
    current = {j.plan_id for j in jobs}
    for plan_id in sorted(set(state) - current):
        issues.append(Issue("info", "stale_plan", "converted in an earlier run but not in this "
                            "export (files kept)", state[plan_id]["row"].get("patient_id", ""),
                            plan_id))
    cv.save_state(out_dir, state)
    for result in results:
        issues += [Issue(lvl, code, msg, result.patient_id, result.plan_id)
                   for lvl, code, msg in result.events]
    return sorted(results, key=lambda r: r.plan_id)


def _copy_structure_map(structure_map, out_dir: Path) -> str:
    """Copy a user structure map into the cohort (rows refer to it); "" for the default map."""
    if structure_map is None:
        return ""
    from lymphonet.io.structure_map import StructureMap

    StructureMap.from_yaml(structure_map)  # fail early on a bad map
    target = out_dir / "structure_map.yaml"
    if Path(structure_map).resolve() != target:
        target.write_bytes(Path(structure_map).read_bytes())
    return target.name


def _manifest_rows(results: Iterable[cv.PlanResult], lab_result, window: float, out_dir: Path,
                   issues: list[Issue], map_name: str = "") -> tuple[list[dict], list[dict]]:
    """Split rows into complete (valid per the schema) and incomplete, filling the baseline."""
    from lymphonet.schema import plan_from_row

    base = (baseline_alc(lab_result.table, window) if lab_result is not None
            else pd.DataFrame(columns=["baseline_alc", "baseline_day"]))
    complete, incomplete = [], []
    for result in results:
        row = {c: "" for c in MANIFEST_COLUMNS}
        row.update(result.row, patient_id=result.patient_id, plan_id=result.plan_id,
                   alc_unit=ALC_UNIT)
        if row.get("structures_path"):
            row["structure_map"] = map_name
        if result.patient_id in base.index:
            row["baseline_alc"] = round(float(base.at[result.patient_id, "baseline_alc"]), 4)
            row["baseline_day"] = round(float(base.at[result.patient_id, "baseline_day"]), 3)
        elif result.status != "error":
            issues.append(Issue("warning", "no_baseline", f"no lymphocyte count within "
                                f"{window:g} days before the first fraction",
                                result.patient_id, result.plan_id))
        _, errors = plan_from_row(row, root=out_dir, file="manifest.csv", row_label=result.plan_id)
        problems = [f"{e.field}: {e.message}" for e in errors]
        if result.status == "error":
            problems.append(result.events[-1][2] if result.events else "conversion failed")
        elif result.status == "incomplete":
            problems.append("dose or beam doses incomplete")
        row["ingest_status"] = "complete" if not problems else (
            "error" if result.status == "error" else "incomplete")
        notes = [n for n in [str(row.get("ingest_notes", "") or "")] if n] + problems
        row["ingest_notes"] = "; ".join(notes)
        if problems and result.status != "error":
            issues.append(Issue("warning", "incomplete_row", "; ".join(problems),
                                result.patient_id, result.plan_id))
        (incomplete if problems else complete).append(row)
    return complete, incomplete


def _write_table(path: Path, rows: list[dict], columns: Iterable[str]) -> Path:
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def _write_labs(out_dir: Path, table: pd.DataFrame, complete: list[dict],
                results: list[cv.PlanResult], issues: list[Issue]) -> Path:
    """labs.csv for manifest patients, labs_incomplete.csv for the rest (with a reason)."""
    in_manifest = {r["patient_id"] for r in complete}
    with_plan = {r.patient_id for r in results}
    frame = table.assign(plan_id="", alc_unit=ALC_UNIT)
    frame["day"] = frame["day"].round(4)
    good = frame["patient_id"].isin(in_manifest)
    frame.loc[good, list(LABS_OUT_COLUMNS)].to_csv(out_dir / "labs.csv", index=False)
    rest = frame[~good].assign(reason=lambda f: f["patient_id"].map(
        lambda p: "plan incomplete" if p in with_plan else "no plan in the DICOM export"))
    rest[[*LABS_OUT_COLUMNS, "reason"]].to_csv(out_dir / "labs_incomplete.csv", index=False)
    orphans = rest[rest["reason"] == "no plan in the DICOM export"]
    for pid, n in orphans["patient_id"].value_counts(sort=False).items():
        issues.append(Issue("warning", "labs_without_plan", "lab rows of a patient without a "
                            "plan in the DICOM export", pid, count=int(n)))
    return out_dir / "labs.csv"
