"""Read and validate a cohort: the manifest (one row per plan) and the long lab table of ALC values.

Two modes, chosen with ``errors=``:

* ``"raise"`` (default): every row is checked, then *all* problems are raised together as one
  :class:`~lymphonet.schema.CohortValidationError` (or the single error when there is one).
* ``"collect"``: bad rows are left out and returned as a list of
  :class:`~lymphonet.errors.InputError` beside the good ones, so a batch run scores the rest and can
  report every failing row with ``status="error"``.

File-level problems (unreadable file, missing required column, ALC values that look like cells/uL
without a stated unit) make every row unusable and are raised in both modes.

Row numbers in messages count data rows from 1 (the header is not counted).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from lymphonet.errors import InputError, UnitError
from lymphonet.schema import (
    LABS_REQUIRED,
    REQUIRED_COLUMNS,
    PlanRecord,
    alc_factor,
    as_id,
    check_alc_unit_stated,
    is_missing,
    plan_from_row,
    raise_collected,
)

logger = logging.getLogger(__name__)

ErrorMode = Literal["raise", "collect"]
MANIFEST_NAMES = ("manifest.csv", "manifest.parquet")
LABS_NAMES = ("labs.csv", "labs.parquet")
LABS_COLUMNS = ("patient_id", "plan_id", "day", "alc")


@dataclass
class Cohort:
    """A validated cohort.

    Attributes:
        plans: One record per valid manifest row.
        labs: ALC series, columns ``patient_id`` (str), ``plan_id`` (str or None when the patient
            has several plans and the row named none), ``day`` (days from first fraction, float),
            ``alc`` (10^9/L, float); sorted by patient and day.
        root: Folder relative paths were resolved against.
        manifest_path: The manifest file.
        errors: Rows left out in ``errors="collect"`` mode (empty otherwise).
    """

    plans: list[PlanRecord]
    labs: pd.DataFrame
    root: Path
    manifest_path: Path
    errors: list[InputError] = field(default_factory=list)

    @property
    def patient_ids(self) -> list[str]:
        """Patient ids in manifest order, without repeats."""
        return list(dict.fromkeys(p.patient_id for p in self.plans))

    def plan(self, plan_id: str) -> PlanRecord:
        """The record of one plan (KeyError if absent)."""
        for record in self.plans:
            if record.plan_id == plan_id:
                return record
        raise KeyError(plan_id)

    def labs_for(self, patient_id: str) -> pd.DataFrame:
        """Lab rows of one patient, sorted by day."""
        return self.labs[self.labs["patient_id"] == patient_id]


def read_table(path: str | Path, *, field: str = "manifest") -> pd.DataFrame:
    """Read a CSV (every cell as text, so ids like "007" survive) or a Parquet file.

    Missing cells become None.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=path, field=field)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        elif path.suffix.lower() in (".csv", ".txt", ".tsv"):
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            _refuse_duplicate_columns(path, sep, field)
            table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True,
                                sep=sep)
        else:
            raise InputError("unsupported table format; use .csv or .parquet", file=path,
                             field=field)
    except InputError:
        raise
    except (OSError, ValueError, pd.errors.EmptyDataError) as err:  # pyarrow errors subclass these
        raise InputError(f"cannot read table ({type(err).__name__}: {err})", file=path,
                         field=field) from None
    table.columns = [str(c).strip() for c in table.columns]
    return table.astype(object).where(table.notna(), None)


def _refuse_duplicate_columns(path: Path, sep: str, field: str) -> None:
    """InputError when a header names a column twice (pandas would silently rename one)."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = [c.strip() for c in next(csv.reader(fh, delimiter=sep), [])]
    seen: set[str] = set()
    for name in header:
        if name in seen and name:
            raise InputError(f"column {name!r} appears more than once in the header; keep one",
                             file=path, field=name)
        seen.add(name)


def _require_columns(table: pd.DataFrame, required: Iterable[str], path: Path) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputError(f"required column(s) {missing} missing; found {list(table.columns)}",
                         file=path, field=missing[0])


def _unit_column(table: pd.DataFrame) -> str | None:
    return next((c for c in ("alc_unit", "baseline_alc_unit") if c in table.columns), None)


def _check_unstated_units(table: pd.DataFrame, value_column: str, alc_unit: str | None,
                          path: Path) -> None:
    """UnitError when rows without any stated unit hold values that look like cells/uL."""
    if alc_unit is not None:
        return
    unit_col = _unit_column(table)
    unstated = (table[unit_col].map(is_missing) if unit_col else
                pd.Series(True, index=table.index))
    values = pd.to_numeric(table.loc[unstated, value_column], errors="coerce")
    if values.notna().any():
        check_alc_unit_stated(float(values.median()), what=value_column, file=path)


def _check_unit_option(alc_unit: str | None, path: Path) -> None:
    """Refuse an ALC unit option lymphonet cannot convert (naming the file and field)."""
    if alc_unit is not None:
        try:
            alc_factor(alc_unit)
        except ValueError as err:
            raise UnitError(str(err), file=path, field="alc_unit") from None


def _load_manifest(path: Path, alc_unit: str | None, check_files: bool):
    """Records, errors, every patient id in the file, and plan ids per patient."""
    table = read_table(path, field="manifest")
    _require_columns(table, REQUIRED_COLUMNS, path)
    _check_unit_option(alc_unit, path)
    _check_unstated_units(table, "baseline_alc", alc_unit, path)
    root = path.parent
    records: list[tuple[int, PlanRecord]] = []
    errors: list[InputError] = []
    for i, row in enumerate(table.to_dict("records")):
        record, row_errors = plan_from_row(row, root=root, file=path.name, row_label=f"row {i + 1}",
                                           alc_unit=alc_unit)
        errors += row_errors
        if record is not None:
            records.append((i, record))
    all_ids = {as_id(v) for v in table["patient_id"] if not is_missing(v)}
    # plan ids must be unique across all rows (also rows that failed other checks)
    plan_ids = [as_id(p) if not is_missing(p) else (as_id(q) if not is_missing(q) else None)
                for p, q in zip(table.get("plan_id", [None] * len(table)), table["patient_id"])]
    rows_of: dict[str, list[int]] = {}
    for i, pid in enumerate(plan_ids):
        if pid is not None:
            rows_of.setdefault(pid, []).append(i + 1)
    duplicated = {pid: rows for pid, rows in rows_of.items() if len(rows) > 1}
    for pid, rows in duplicated.items():
        errors.append(InputError(
            f"plan id {pid!r} is used by rows {rows}; give each plan a unique plan_id (a patient "
            "with several plans needs a plan_id column)", patient=pid, file=path.name,
            field="plan_id"))
    good: list[PlanRecord] = []
    for i, record in records:
        if record.plan_id in duplicated:
            continue
        file_errors = _check_paths(record, f"{path.name} row {i + 1}") if check_files else []
        errors += file_errors
        if not file_errors:
            good.append(record)
    plans_of: dict[str, list[str]] = {}
    for record in good:
        plans_of.setdefault(record.patient_id, []).append(record.plan_id)
    return good, errors, all_ids, plans_of


def _check_paths(record: PlanRecord, where: str) -> list[InputError]:
    """Errors for referenced files or folders that do not exist."""
    errors = []
    for column in ("dose_path", "structures_path", "structure_map"):
        path = getattr(record, column)
        if path is not None and not path.exists():
            errors.append(InputError(f"{column} {str(path)!r} does not exist",
                                     patient=record.patient_id, file=where, field=column))
    return errors


def load_manifest(
    path: str | Path,
    *,
    alc_unit: str | None = None,
    check_files: bool = True,
    errors: ErrorMode = "raise",
) -> list[PlanRecord] | tuple[list[PlanRecord], list[InputError]]:
    """Read and validate a manifest (CSV or Parquet), one row per plan.

    Args:
        path: Manifest file; relative paths in it are resolved against its folder.
        alc_unit: Unit of ``baseline_alc`` for rows without an ``alc_unit`` column value
            ("10^9/L" or "cells/uL"); None = 10^9/L, refused if the values look like cells/uL.
        check_files: Check that ``dose_path``, ``structures_path`` and ``structure_map`` exist.
        errors: "raise" (all problems raised together) or "collect".

    Returns:
        The valid records; with ``errors="collect"`` a tuple ``(records, problems)``.

    Raises:
        InputError: unreadable file, missing column, or (mode "raise") any bad row.
        UnitError: ALC values look like cells/uL and no unit is stated.
    """
    path = Path(path)
    records, problems, _, _ = _load_manifest(path, alc_unit, check_files)
    if errors == "collect":
        return records, problems
    raise_collected(problems, file=path.name)
    return records


def _known_ids(manifest) -> tuple[set[str] | None, dict[str, list[str]]]:
    """Known patient ids and plans per patient from records, ids, or a manifest path."""
    if manifest is None:
        return None, {}
    if isinstance(manifest, (str, Path)):
        manifest = load_manifest(manifest, check_files=False)
    plans_of: dict[str, list[str]] = {}
    ids: set[str] = set()
    for item in manifest:
        if isinstance(item, PlanRecord):
            plans_of.setdefault(item.patient_id, []).append(item.plan_id)
            ids.add(item.patient_id)
        else:
            ids.add(as_id(item))
    return ids, plans_of


def _validate_labs(table: pd.DataFrame, path: Path, alc_unit: str | None, drop_missing: bool,
                   known: set[str] | None, plans_of: dict[str, list[str]]):
    """Clean lab frame, errors, and messages about dropped rows (vectorised over rows)."""
    n = len(table)
    rows = np.arange(1, n + 1)
    patient = table["patient_id"].map(lambda v: None if is_missing(v) else as_id(v))
    day = pd.to_numeric(table["day"], errors="coerce").astype(float)
    alc = pd.to_numeric(table["alc"], errors="coerce").astype(float)
    factor = pd.Series(1.0 if alc_unit is None else alc_factor(alc_unit), index=table.index)
    bad = pd.Series(False, index=table.index)
    errors: list[InputError] = []

    def flag(mask: pd.Series, column: str, message) -> None:
        for i in np.flatnonzero(mask.to_numpy() & ~bad.to_numpy()):
            errors.append(InputError(message(i), patient=patient.iloc[i],
                                     file=f"{path.name} row {rows[i]}", field=column))
        bad[mask] = True

    unit_col = _unit_column(table)
    if unit_col is not None:
        stated = ~table[unit_col].map(is_missing)
        for unit in table.loc[stated, unit_col].unique():
            try:
                factor[table[unit_col] == unit] = alc_factor(unit)
            except ValueError as err:
                flag(stated & (table[unit_col] == unit), "alc_unit", lambda i, e=err: str(e))
    flag(patient.isna(), "patient_id", lambda i: "patient_id is missing")
    flag(~np.isfinite(day), "day", lambda i: f"day must be a finite number, got "
                                             f"{table['day'].iloc[i]!r}")
    raw_missing = table["alc"].map(is_missing)
    dropped: list[str] = []
    if drop_missing:
        keep = ~(raw_missing & ~bad)
        dropped = [f"{path.name} row {rows[i]} (patient {patient.iloc[i]!r}): alc missing, dropped"
                   for i in np.flatnonzero(~keep.to_numpy())]
        bad |= ~keep
    flag(raw_missing, "alc", lambda i: "alc is missing (pass drop_missing=True to drop such rows)")
    flag(~np.isfinite(alc), "alc", lambda i: f"alc must be a number, got {table['alc'].iloc[i]!r}")
    flag(alc < 0, "alc", lambda i: f"alc must be >= 0, got {alc.iloc[i]:g}")
    plan = (table["plan_id"].map(lambda v: None if is_missing(v) else as_id(v))
            if "plan_id" in table.columns else pd.Series(None, index=table.index, dtype=object))
    if known is not None:
        unknown = patient.notna() & ~patient.isin(known) & ~bad
        for pid in dict.fromkeys(patient[unknown]):
            hit = np.flatnonzero((patient == pid).to_numpy() & unknown.to_numpy())
            errors.append(InputError(
                f"patient id not in the manifest ({len(hit)} lab rows, rows "
                f"{[int(r) for r in rows[hit[:10]]]}{' ...' if len(hit) > 10 else ''})",
                patient=pid, file=path.name, field="patient_id"))
        bad |= unknown
        if plans_of:
            wrong = plan.notna() & patient.isin(plans_of) & ~bad & ~pd.Series(
                [p in plans_of.get(q, ()) for p, q in zip(plan, patient)], index=table.index)
            flag(wrong, "plan_id", lambda i: f"plan {plan.iloc[i]!r} is not a plan of this "
                                             "patient in the manifest")
            single = {pid: plans[0] for pid, plans in plans_of.items() if len(plans) == 1}
            plan = plan.where(plan.notna(), patient.map(single))
    good = ~bad
    labs = pd.DataFrame({
        "patient_id": patient[good].astype(str),
        "plan_id": plan[good].astype(object).where(plan[good].notna(), None),
        "day": day[good],
        "alc": (alc * factor)[good],
    }).sort_values(["patient_id", "day"], kind="stable").reset_index(drop=True)
    return labs, errors, dropped


def load_labs(
    path: str | Path,
    *,
    manifest=None,
    alc_unit: str | None = None,
    drop_missing: bool = False,
    errors: ErrorMode = "raise",
) -> pd.DataFrame | tuple[pd.DataFrame, list[InputError]]:
    """Read and validate the long lab table ``patient_id, day, alc`` (+ ``plan_id``, ``alc_unit``).

    Args:
        path: CSV or Parquet file.
        manifest: Plan records, patient ids, or a manifest path: lab patients must be in it; a
            patient's only plan fills a missing ``plan_id``.
        alc_unit: Unit for rows without an ``alc_unit`` value; None = 10^9/L, refused when the
            values look like cells/uL.
        drop_missing: Drop rows whose ALC is missing (listed in ``labs.attrs["dropped"]`` and
            logged) instead of treating them as errors.
        errors: "raise" or "collect" (see the module docstring).

    Returns:
        Frame with columns ``patient_id, plan_id, day, alc`` (alc in 10^9/L); with
        ``errors="collect"`` a tuple ``(frame, problems)``.
    """
    path = Path(path)
    known, plans_of = _known_ids(manifest)
    labs, problems = _read_labs(path, alc_unit, drop_missing, known, plans_of)
    if errors == "collect":
        return labs, problems
    raise_collected(problems, file=path.name)
    return labs


def _find(folder: Path, names: tuple[str, ...], what: str, required: bool) -> Path | None:
    found = [folder / n for n in names if (folder / n).is_file()]
    if len(found) > 1:
        raise InputError(f"both {found[0].name} and {found[1].name} found; keep one", file=folder,
                         field=what)
    if not found and required:
        raise InputError(f"no {' or '.join(names)} in the folder", file=folder, field=what)
    return found[0] if found else None


def load_cohort(
    dir_or_manifest: str | Path,
    labs: str | Path | None = None,
    *,
    alc_unit: str | None = None,
    check_files: bool = True,
    drop_missing: bool = False,
    errors: ErrorMode = "raise",
) -> Cohort:
    """Load a cohort from a folder (``manifest.csv|parquet`` + optional ``labs.csv|parquet``) or a
    manifest file plus an optional lab file.

    Args:
        dir_or_manifest: Cohort folder or manifest file.
        labs: Lab table; default: ``labs.csv|parquet`` in the folder (none -> empty labs).
        alc_unit: Unit for ALC values without a unit column value, in manifest and labs.
        check_files: Check that referenced dose / structure files exist.
        drop_missing: Drop lab rows with missing ALC (reported) instead of failing.
        errors: "raise" or "collect"; collected problems are in :attr:`Cohort.errors`.
    """
    target = Path(dir_or_manifest)
    if target.is_dir():
        manifest_path = _find(target, MANIFEST_NAMES, "manifest", required=True)
        labs = labs if labs is not None else _find(target, LABS_NAMES, "labs", required=False)
    else:
        manifest_path = target
    assert manifest_path is not None
    plans, problems, all_ids, plans_of = _load_manifest(manifest_path, alc_unit, check_files)
    if labs is not None:
        # lab rows of patients whose manifest row failed are not "unknown": they are kept
        frame, lab_problems = _read_labs(Path(labs), alc_unit, drop_missing, all_ids, plans_of)
        problems += lab_problems
    else:
        frame = pd.DataFrame({c: pd.Series(dtype=float if c in ("day", "alc") else object)
                              for c in LABS_COLUMNS})
    if errors != "collect":
        raise_collected(problems, file=manifest_path.name)
    return Cohort(plans, frame, manifest_path.parent, manifest_path, problems)


def _read_labs(path: Path, alc_unit, drop_missing, known, plans_of):
    """Read, check units, validate; dropped-row messages go to ``attrs["dropped"]`` and the log."""
    table = read_table(path, field="labs")
    _require_columns(table, LABS_REQUIRED, path)
    _check_unit_option(alc_unit, path)
    _check_unstated_units(table, "alc", alc_unit, path)
    frame, problems, dropped = _validate_labs(table, path, alc_unit, drop_missing, known,
                                              plans_of)
    frame.attrs["dropped"] = dropped
    if dropped:
        logger.warning("%s: dropped %d rows with missing alc", path, len(dropped))
    return frame, problems
