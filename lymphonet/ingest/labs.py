"""A laboratory export (long table) -> the lymphonet labs table ``patient_id, day, alc``.

Input: one row per result with a patient id, a collection date/time (or a ``day`` column already
relative to the first fraction), a test name and/or code, a value and a unit. Columns are found by
name (case-insensitive; candidates in :class:`LabConfig`).

Recognition (configurable, :meth:`LabConfig.from_yaml`): a row is a lymphocyte count, a lymphocyte
percentage or a white-cell count by its LOINC code (https://loinc.org), else by its normalised test
name. Default codes: absolute lymphocytes 731-0 (automated), 732-8 (manual), 26474-7; lymphocytes
per 100 leukocytes 736-9 (automated), 737-7 (manual), 26478-8; leukocytes 6690-2 (automated), 804-5
(manual), 26464-8. A generic name ("Lymphocytes") with unit ``%`` is a percentage.

Units (docs/contract.md section 1: ALC in 10^9/L = cells/nL = 1000 cells/uL): counts in cells/uL (or
/mm3) are divided by 1000; 10^3/uL, K/uL, 10^9/L, G/L are taken as they are. A missing or unknown
unit is never guessed: the row is reported. A percentage becomes ALC = % / 100 x WBC (10^9/L) with
the WBC of the same patient and the same collection time; an absolute count at that time wins.
Values written "<0.1" / ">10" are read as the bound and counted in the report.

Day 0 is the first-fraction date of the patient: a ``first_fraction_date`` column of the export,
or ``start_dates`` given by the caller; dates are floored to midnight so ``day`` in [0, 1) is the
first fraction's calendar day. Absolute dates never leave this module.

Baseline ALC (:func:`baseline_alc`): the last count with ``-window <= day < 1`` (window 14 days by
default), i.e. drawn no later than the first fraction's calendar day.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from lymphonet.errors import InputError
from lymphonet.ingest.pseudonym import Pseudonymizer, normalise_id
from lymphonet.ingest.report import Issue

_NAME_SEP = re.compile(r"[\s_\-./(),:]+")

#: Normalised count unit -> factor to 10^9/L.
COUNT_UNITS: dict[str, float] = {
    **dict.fromkeys(("10^9/l", "x10^9/l", "10e9/l", "x10e9/l", "g/l", "giga/l", "/nl",
                     "cells/nl", "k/ul", "k/mm3", "10^3/ul", "x10^3/ul", "10^3/mm3", "thou/ul",
                     "1000/ul", "10e3/ul"), 1.0),
    **dict.fromkeys(("cells/ul", "/ul", "#/ul", "cells/mm3", "/mm3", "/cumm", "cells/cumm",
                     "10^6/l"), 1e-3),
}
PERCENT_UNITS = ("%", "percent", "%ofwbc", "/100wbc", "/100leukocytes")


def normalise_name(name: object) -> str:
    """Test name lower-cased without spaces and punctuation (``%`` and ``#`` kept)."""
    return _NAME_SEP.sub("", str(name).strip().lower())


def normalise_unit(unit: object) -> str:
    """Unit lower-cased, without spaces, with ``*`` (UCUM) read as ``^`` and micro as ``u``."""
    text = str(unit).strip().lower().replace(" ", "")
    return text.replace("*", "^").replace("µ", "u").replace("μ", "u").replace("×", "x")


@dataclass(frozen=True)
class LabConfig:
    """Column names, test recognition and the baseline window (all overridable from YAML)."""

    patient_columns: tuple[str, ...] = ("patient_id", "patientid", "patient", "mrn", "pid")
    datetime_columns: tuple[str, ...] = ("datetime", "date_time", "collection_datetime",
                                         "collected", "timestamp", "date")
    time_columns: tuple[str, ...] = ("time", "collection_time")
    day_columns: tuple[str, ...] = ("day",)
    day0_columns: tuple[str, ...] = ("first_fraction_date", "rt_start_date", "start_date")
    test_columns: tuple[str, ...] = ("test", "test_name", "name", "analyte", "component")
    code_columns: tuple[str, ...] = ("code", "loinc", "loinc_code", "test_code")
    value_columns: tuple[str, ...] = ("value", "result", "result_value")
    unit_columns: tuple[str, ...] = ("unit", "units", "result_unit")
    lymphocyte_codes: tuple[str, ...] = ("731-0", "732-8", "26474-7")
    percent_codes: tuple[str, ...] = ("736-9", "737-7", "26478-8")
    wbc_codes: tuple[str, ...] = ("6690-2", "804-5", "26464-8")
    lymphocyte_names: tuple[str, ...] = (
        "lymphocytes", "lymphocyte", "lymphs", "lymph", "lym", "alc", "absolutelymphocytes",
        "absolutelymphocytecount", "lymphocytesabsolute", "lymphocytecount", "lymphocytesabs",
        "abslymphocytes", "lymph#", "lym#", "lymphs#", "lymphocytes#")
    percent_names: tuple[str, ...] = ("lymph%", "lym%", "lymphs%", "lymphocytes%",
                                      "lymphocyte%", "lymphocytepercent", "lymphocytespercent")
    wbc_names: tuple[str, ...] = ("wbc", "wbccount", "whitebloodcells", "whitebloodcellcount",
                                  "whitecellcount", "leukocytes", "leucocytes", "leukocytecount")
    baseline_window_days: float = 14.0
    dayfirst: bool = False

    @classmethod
    def from_yaml(cls, path: str | Path) -> LabConfig:
        """Read overrides from YAML (keys = field names; lists for tuples; unknown keys error)."""
        import yaml

        path = Path(path)
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise InputError(f"cannot read lab config ({err})", file=path) from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise InputError(f"unknown keys {unknown}; known: {sorted(known)}", file=path,
                             field=unknown[0])
        values = {k: tuple(str(x) for x in v) if isinstance(v, list) else v
                  for k, v in spec.items()}
        return cls(**values)


@dataclass
class LabResult:
    """Output of :func:`convert_labs`.

    Attributes:
        table: ``patient_id`` (pseudonym), ``day`` (days from first fraction), ``alc`` (10^9/L),
            ``source`` ("absolute" or "percent_x_wbc"); sorted by patient and day.
        issues: Findings (rows not used, with counts).
        counts: Row counts for the summary.
        raw_ids: Raw patient id -> pseudonym of every lab patient (memory only).
    """

    table: pd.DataFrame
    issues: list[Issue] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    raw_ids: dict[str, str] = field(default_factory=dict)


def _column(table: pd.DataFrame, candidates: tuple[str, ...], required: str | None,
            path: Path) -> str | None:
    lower = {c.lower(): c for c in table.columns}
    for name in candidates:
        if name.lower() in lower:
            return lower[name.lower()]
    if required:
        raise InputError(f"no {required} column (tried {list(candidates)}); found "
                         f"{list(table.columns)}", file=path, field=required)
    return None


def _values(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numbers from text ("1,2" -> 1.2; "<0.1" -> 0.1) and a mask of censored values."""
    text = raw.astype("string").str.strip()
    censored = text.str.match(r"^[<>]=?").fillna(False).astype(bool)
    text = text.str.replace(r"^[<>]=?\s*", "", regex=True)
    text = text.where(text.str.contains(r"\."), text.str.replace(",", ".", regex=False))
    return pd.to_numeric(text, errors="coerce").astype(float), censored


def _classify(table: pd.DataFrame, test: str | None, code: str | None, unit: pd.Series,
              cfg: LabConfig) -> pd.Series:
    """Per row "abs", "pct", "wbc" or None."""
    kind = pd.Series(None, index=table.index, dtype=object)
    if test is not None:
        names = table[test].map(lambda v: normalise_name(v) if v is not None else "")
        kind[names.isin({normalise_name(n) for n in cfg.wbc_names})] = "wbc"
        generic = names.isin({normalise_name(n) for n in cfg.lymphocyte_names})
        kind[generic] = np.where(unit[generic].isin(PERCENT_UNITS), "pct", "abs")
        kind[names.isin({normalise_name(n) for n in cfg.percent_names})] = "pct"
    if code is not None:
        codes = table[code].map(lambda v: str(v).strip() if v is not None else "")
        for kind_name, listed in (("abs", cfg.lymphocyte_codes), ("pct", cfg.percent_codes),
                                  ("wbc", cfg.wbc_codes)):
            kind[codes.isin(set(listed))] = kind_name
    return kind


def convert_labs(path: str | Path, pseudo: Pseudonymizer, *, config: LabConfig | None = None,
                 start_dates: Mapping[str, object] | None = None) -> LabResult:
    """Read a lab export and return lymphocyte counts in 10^9/L on the day axis.

    Args:
        path: CSV/TSV/Parquet export.
        pseudo: Pseudonymizer (the same secret as the DICOM ingestion, so ids match).
        config: Columns and recognition rules (default :class:`LabConfig`).
        start_dates: Raw patient id -> first-fraction date (anything ``pd.Timestamp`` reads);
            used where the export has no ``first_fraction_date`` column value.

    Returns:
        :class:`LabResult`.

    Raises:
        InputError: unreadable file or a missing patient / value / test column.
    """
    from lymphonet.io.cohort import read_table

    cfg, path = config or LabConfig(), Path(path)
    table = read_table(path, field="labs")
    pid_col = _column(table, cfg.patient_columns, "patient id", path)
    value_col = _column(table, cfg.value_columns, "value", path)
    test_col = _column(table, cfg.test_columns, None, path)
    code_col = _column(table, cfg.code_columns, None, path)
    if test_col is None and code_col is None:
        raise InputError("no test name or code column", file=path, field="test")
    unit_col = _column(table, cfg.unit_columns, None, path)
    unit = (table[unit_col].map(lambda v: normalise_unit(v) if v is not None else "")
            if unit_col else pd.Series("", index=table.index))
    counts = {"lab_rows": len(table)}
    issues: list[Issue] = []
    raw = table[pid_col].map(lambda v: normalise_id(v) if v is not None else "")
    raw_ids = {r: pseudo.patient(r) for r in raw.unique() if r}
    pid = raw.map(lambda r: raw_ids.get(r, ""))
    kind = _classify(table, test_col, code_col, unit, cfg)
    counts["lab_rows_other_tests"] = int(kind.isna().sum())
    value, censored = _values(table[value_col])
    factor = unit.map(COUNT_UNITS).astype(float)
    factor[kind == "pct"] = np.where(unit[kind == "pct"].isin(PERCENT_UNITS + ("",)), 0.01, np.nan)
    relevant = kind.notna()

    def report(mask: pd.Series, code: str, message: str) -> None:
        for p, n in pid[mask].value_counts(sort=False).items():
            issues.append(Issue("warning", code, message, p, count=int(n)))

    bad_unit = relevant & factor.isna()
    for u in sorted(unit[bad_unit].unique()):
        report(bad_unit & (unit == u), "lab_rows_unusable",
               f"unit {u or '(missing)'!r} not converted (never guessed); rows not used")
    report(relevant & value.isna(), "lab_rows_unusable", "value is not a number; rows not used")
    negative = relevant & value.notna() & (value < 0)
    report(negative, "lab_rows_unusable", "negative count; rows not used")
    value = value.where(~negative)
    report(relevant & (pid == ""), "lab_rows_unusable", "patient id missing; rows not used")
    counts["lab_values_censored"] = int((relevant & censored & value.notna()).sum())
    day = _days(table, raw, cfg, start_dates, path)
    report(relevant & day.isna() & value.notna() & factor.notna(), "no_day0",
           "no first-fraction date (or no collection time) for these lab rows; not used")
    ok = relevant & value.notna() & factor.notna() & (pid != "") & day.notna()
    rows = pd.DataFrame({"patient_id": pid[ok], "day": day[ok], "kind": kind[ok],
                         "x": (value * factor)[ok]})
    table_out = _combine(rows, issues)
    counts["lab_alc_rows"] = len(table_out)
    return LabResult(table_out, issues, counts, raw_ids)


def _days(table: pd.DataFrame, raw: pd.Series, cfg: LabConfig,
          start_dates: Mapping[str, object] | None, path: Path) -> pd.Series:
    """Days from the first fraction per row (NaN where unknown)."""
    day_col = _column(table, cfg.day_columns, None, path)
    if day_col is not None:
        return pd.to_numeric(table[day_col], errors="coerce").astype(float)
    dt_col = _column(table, cfg.datetime_columns, "collection date/time", path)
    text = table[dt_col].astype("string")
    time_col = _column(table, cfg.time_columns, None, path)
    if time_col is not None and time_col != dt_col:
        text = text + " " + table[time_col].astype("string").fillna("")
    when = pd.to_datetime(text, errors="coerce", format="mixed", dayfirst=cfg.dayfirst)
    day0 = pd.Series(pd.NaT, index=table.index, dtype=when.dtype)
    d0_col = _column(table, cfg.day0_columns, None, path)
    if d0_col is not None:
        day0 = pd.to_datetime(table[d0_col].astype("string"), errors="coerce", format="mixed",
                              dayfirst=cfg.dayfirst).astype(when.dtype)
        first = day0.groupby(raw).transform("first")  # one date per patient
        day0 = first
    if start_dates:
        given = {normalise_id(k): v for k, v in start_dates.items()}
        mapped = pd.to_datetime(raw.map(given).astype("string"), errors="coerce",
                                format="mixed", dayfirst=cfg.dayfirst).astype(when.dtype)
        day0 = day0.where(day0.notna(), mapped)
    return (when - day0.dt.floor("D")) / pd.Timedelta(days=1)


def _combine(rows: pd.DataFrame, issues: list[Issue]) -> pd.DataFrame:
    """Absolute counts, plus % x WBC where no absolute count exists at that time."""
    key = ["patient_id", "day"]
    absolute = rows[rows["kind"] == "abs"]
    dup = absolute.duplicated(key, keep="first")
    for p, n in absolute.loc[dup, "patient_id"].value_counts(sort=False).items():
        issues.append(Issue("info", "lab_rows_unusable", "several absolute counts at one time; "
                            "the first is kept", p, count=int(n)))
    absolute = absolute[~dup].assign(alc=lambda f: f["x"], source="absolute")
    pct = rows[rows["kind"] == "pct"].drop_duplicates(key)
    wbc = rows[rows["kind"] == "wbc"].drop_duplicates(key)
    derived = pct.merge(wbc[key + ["x"]], on=key, how="left", suffixes=("", "_wbc"))
    no_wbc = derived["x_wbc"].isna()
    for p, n in derived.loc[no_wbc, "patient_id"].value_counts(sort=False).items():
        issues.append(Issue("warning", "lab_rows_unusable", "lymphocyte % without a WBC at the "
                            "same time; rows not used", p, count=int(n)))
    derived = derived[~no_wbc].assign(alc=lambda f: f["x"] * f["x_wbc"], source="percent_x_wbc")
    have = pd.MultiIndex.from_frame(absolute[key])
    derived = derived[~pd.MultiIndex.from_frame(derived[key]).isin(have)]
    out = pd.concat([absolute, derived])[key + ["alc", "source"]]
    return out.sort_values(key, kind="stable").reset_index(drop=True)


def baseline_alc(labs: pd.DataFrame, window_days: float = 14.0) -> pd.DataFrame:
    """Last count per patient with ``-window_days <= day < 1`` (see the module docstring).

    Returns:
        Frame indexed by ``patient_id`` with ``baseline_alc`` (10^9/L) and ``baseline_day``.
    """
    window = labs[(labs["day"] >= -window_days) & (labs["day"] < 1.0)]
    last = window.sort_values(["patient_id", "day"], kind="stable").groupby("patient_id").tail(1)
    return last.set_index("patient_id")[["alc", "day"]].rename(
        columns={"alc": "baseline_alc", "day": "baseline_day"})


def read_start_dates(path: str | Path) -> dict[str, str]:
    """Raw patient id -> first-fraction date from a CSV with ``patient_id, first_fraction_date``."""
    from lymphonet.io.cohort import read_table

    path = Path(path)
    table = read_table(path, field="start_dates")
    cfg = LabConfig()
    pid = _column(table, cfg.patient_columns, "patient id", path)
    date = _column(table, cfg.day0_columns + cfg.datetime_columns, "first_fraction_date", path)
    return {normalise_id(p): d for p, d in zip(table[pid], table[date])
            if p is not None and d is not None}
