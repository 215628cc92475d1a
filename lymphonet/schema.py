"""The cohort data contract: columns, ranges, units, conversions and typed records (no file I/O).

A manifest has one row per plan (docs/contract.md section 2). This module turns one row (a mapping of
column name -> raw value, as read from CSV or Parquet) into a validated :class:`PlanRecord`, or into
the list of everything wrong with it, each problem an :class:`~lymphonet.errors.InputError` naming
patient, file and field. File reading and cross-row checks live in :mod:`lymphonet.io.cohort`.

Units (docs/contract.md section 1): ALC in 10^9 cells/L. Values in cells/uL are divided by 1000 only when a
unit is stated (an ``alc_unit`` column or option); unstated units are never guessed.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lymphonet.errors import InputError, UnitError

#: Canonical modality -> accepted spellings (compared lower-case, stripped).
MODALITIES: dict[str, tuple[str, ...]] = {
    "photon": ("photon", "photons", "x-ray", "xray", "imrt", "vmat"),
    "proton": ("proton", "protons", "pbs", "impt"),
    "carbon": ("carbon", "carbon ion", "carbon ions", "carbon-ion", "c12", "c-ion"),
}
CHEMO_VALUES: tuple[str, ...] = ("none", "concurrent", "sequential")
SEX_VALUES: dict[str, str] = {"f": "F", "female": "F", "m": "M", "male": "M"}
#: Values of the optional ``steroids`` column (systemic corticosteroids, e.g. dexamethasone, during
#: or within a month before RT: they lower the lymphocyte count on their own). Empty = unknown.
STEROID_VALUES: dict[str, str] = {"yes": "yes", "y": "yes", "true": "yes", "1": "yes",
                                  "no": "no", "n": "no", "false": "no", "0": "no"}

#: ALC unit spelling -> factor to 10^9 cells/L (1 x 10^9/L = 1000 cells/uL).
ALC_UNITS: dict[str, float] = {
    "10^9/l": 1.0, "1e9/l": 1.0, "x10^9/l": 1.0, "g/l": 1.0, "k/ul": 1.0, "cells/nl": 1.0,
    "10^3/ul": 1.0, "cells/ul": 1e-3, "/ul": 1e-3, "cells/mm3": 1e-3, "/mm3": 1e-3,
}
#: Median ALC above which an unstated unit is taken to be cells/uL and refused (10^9/L values
#: above ~20 do not occur; counts in cells/uL are typically 500 to 3000).
ALC_AMBIGUOUS_MEDIAN: float = 50.0

#: Manifest columns that must be present.
REQUIRED_COLUMNS: tuple[str, ...] = ("patient_id", "modality", "n_fractions",
                                     "dose_per_fraction_gy", "baseline_alc", "dose_path")
#: Optional manifest columns lymphonet understands (others are passed through in ``extras``).
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "plan_id", "site", "fraction_days", "beam_on_time_s", "chemo", "chemo_regimen", "age", "sex",
    "bmi", "structures_path", "structure_map", "alc_unit", "baseline_alc_unit", "steroids",
)
#: Numeric ranges: column -> (low, high, low inclusive, high inclusive, unit). Plausibility, not
#: just possibility: a pre-treatment ALC below 0.05 x 10^9/L (deep grade 4 before any treatment)
#: is almost always a unit slip; external-beam fractions are delivered in minutes, not hours;
#: no external-beam course has more than 100 fractions.
RANGES: dict[str, tuple[float, float, bool, bool, str]] = {
    "n_fractions": (1.0, 100.0, True, True, "fractions"),
    "dose_per_fraction_gy": (0.0, 30.0, False, False, "Gy"),
    "beam_on_time_s": (0.0, 3600.0, False, True, "s"),
    "age": (0.0, 120.0, True, True, "years"),
    "bmi": (10.0, 80.0, True, True, "kg/m^2"),
    "baseline_alc": (0.05, 20.0, True, False, "10^9/L"),
}
LABS_REQUIRED: tuple[str, ...] = ("patient_id", "day", "alc")

#: CTCAE v5 "lymphocyte count decreased": ALC (10^9/L) below which each grade starts. Grade 1
#: starts below the lower limit of normal, taken as 1.0 x 10^9/L. The one table of cut-offs.
CTCAE_CUTOFFS_ALC: dict[int, float] = {1: 1.0, 2: 0.8, 3: 0.5, 4: 0.2}

#: Treatment sites with a name of their own in the clinical encoder (others map to "other").
KNOWN_SITES: tuple[str, ...] = ("esophagus", "lung", "lung_sbrt", "liver", "pancreas", "stomach",
                                "glioblastoma", "whole_brain", "prostate", "prostate_nodes",
                                "cervix", "breast", "head_neck")

#: Columns of a score file (``lymphonet score``), one row per manifest row. ALC in 10^9/L, days
#: from the first fraction, doses in Gy for the course.
SCORE_COLUMNS: tuple[str, ...] = (
    "patient_id", "plan_id", "model_version", "input_sha256", "predicted_nadir", "nadir_day",
    "p_grade3plus", "p_grade4", "nadir_lower", "nadir_upper", "mean_body_dose_gy", "edic_gy",
    "mean_blood_dose_gy", "status", "error", "warnings")
#: Columns of a trajectory file: one row per plan and day (ALC and its interval in 10^9/L).
TRAJECTORY_COLUMNS: tuple[str, ...] = ("plan_id", "day", "alc", "lower", "upper")
_MISSING_TOKENS = {"", "nan", "na", "n/a", "null", "<na>"}


@dataclass(frozen=True)
class PlanRecord:
    """One validated manifest row (one patient and one plan).

    Attributes:
        patient_id: Patient identifier (string, kept verbatim: "007" stays "007").
        plan_id: Unique plan identifier (defaults to ``patient_id``).
        modality: "photon", "proton" or "carbon".
        n_fractions: Number of fractions, >= 1.
        dose_per_fraction_gy: Prescribed dose per fraction, Gy (RBE-weighted for particles).
        fraction_days: Day of each fraction, days from the first fraction (length n_fractions).
        baseline_alc: Baseline absolute lymphocyte count, 10^9/L.
        dose_path: Dose file or DICOM folder, resolved against the manifest folder.
        site: Treatment site (free text) or None.
        beam_on_time_s: Beam-on time per fraction in s, NaN when not given.
        chemo: "none", "concurrent", "sequential" or None (unknown).
        chemo_regimen: Free text or None (classed for the kinetics by
            :func:`lymphonet.kinetics.schedule.regimen_code`).
        steroids: "yes", "no" or None (unknown): systemic corticosteroids during RT.
        age: Years, NaN when not given.
        sex: "F", "M" or None.
        bmi: kg/m^2, NaN when not given.
        structures_path: Structure file (RTSTRUCT or label map) or None.
        structure_map: Structure-name map YAML or None.
        extras: Columns the schema does not know, passed through unchanged.
    """

    patient_id: str
    plan_id: str
    modality: str
    n_fractions: int
    dose_per_fraction_gy: float
    fraction_days: tuple[float, ...]
    baseline_alc: float
    dose_path: Path
    site: str | None = None
    beam_on_time_s: float = math.nan
    chemo: str | None = None
    chemo_regimen: str | None = None
    steroids: str | None = None
    age: float = math.nan
    sex: str | None = None
    bmi: float = math.nan
    structures_path: Path | None = None
    structure_map: Path | None = None
    extras: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def total_dose_gy(self) -> float:
        """Prescribed course dose, Gy."""
        return self.n_fractions * self.dose_per_fraction_gy


class CohortValidationError(InputError):
    """Several input problems at once; ``errors`` holds each one (with patient, file, field)."""

    def __init__(self, errors: list[InputError], *, file: str | Path | None = None) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"{len(self.errors)} problems:\n{lines}", file=file)


def raise_collected(errors: list[InputError], file: str | Path | None = None) -> None:
    """Raise nothing, the single error, or a :class:`CohortValidationError` holding them all."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise CohortValidationError(errors, file=file)


def is_missing(value: Any) -> bool:
    """True for None, NaN, pandas NA and empty / "NA"-like strings."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return value.strip().lower() in _MISSING_TOKENS
    try:
        return bool(math.isnan(value))  # numpy float scalars
    except (TypeError, ValueError):
        return False


def as_id(value: Any) -> str:
    """Identifier as a string; integral floats lose their ".0" (Parquet with gaps)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def weekday_fraction_days(n_fractions: int, start_weekday: int = 0,
                          fractions_per_day: int = 1, interval_h: float = 6.0) -> np.ndarray:
    """Treatment days for fractions on Monday-Friday, day 0 = first fraction.

    Args:
        n_fractions: Number of fractions.
        start_weekday: Weekday of day 0 (0 = Monday ... 4 = Friday).
        fractions_per_day: 1 (daily) or more (e.g. 2 for BID, ``interval_h`` apart).
        interval_h: Hours between fractions of the same day.

    Returns:
        ``[n_fractions]`` float days.
    """
    if n_fractions < 1 or fractions_per_day < 1 or not 0 <= start_weekday <= 4:
        raise InputError("n_fractions and fractions_per_day must be >= 1, start_weekday in 0..4",
                         field="fraction_days")
    days, day = [], 0
    while len(days) < n_fractions:
        if (start_weekday + day) % 7 < 5:
            for j in range(fractions_per_day):
                if len(days) < n_fractions:
                    days.append(day + j * interval_h / 24.0)
        day += 1
    return np.asarray(days, dtype=float)


def default_fraction_days(n_fractions: int) -> tuple[float, ...]:
    """Monday-to-Friday schedule starting on day 0: 0, 1, 2, 3, 4, 7, 8, ... (n entries)."""
    return tuple(float(d) for d in weekday_fraction_days(n_fractions))


def parse_fraction_days(value: Any, n_fractions: int) -> tuple[float, ...]:
    """Fraction days from "0,1,2", "[0, 1, 2]", a list or array; missing -> weekday default.

    Raises:
        ValueError: unparsable, wrong length, negative, non-finite or decreasing days (the caller
            wraps it in an InputError with patient, file and field).
    """
    if not isinstance(value, (list, tuple, np.ndarray)) and is_missing(value):
        return default_fraction_days(n_fractions)
    if isinstance(value, str):
        text = value.strip()
        try:
            items = json.loads(text) if text.startswith("[") else text.replace(";", ",").split(",")
        except json.JSONDecodeError as err:
            raise ValueError(f"cannot parse {value!r} as a JSON list ({err})") from None
    else:
        items = list(value)
    try:
        days = tuple(float(d) for d in items)
    except (TypeError, ValueError):
        raise ValueError(f"fraction days must be numbers, got {value!r}") from None
    if len(days) != n_fractions:
        raise ValueError(f"{len(days)} fraction days given for n_fractions={n_fractions}")
    if not all(math.isfinite(d) and d >= 0 for d in days):
        raise ValueError("fraction days must be finite and >= 0")
    if any(b < a for a, b in itertools.pairwise(days)):
        raise ValueError("fraction days must be non-decreasing")
    return days


def alc_factor(unit: Any) -> float:
    """Factor converting an ALC in ``unit`` to 10^9/L; unknown units raise ValueError."""
    key = str(unit).strip().lower().replace(" ", "").replace("µ", "u").replace("×", "x")
    if key not in ALC_UNITS:
        raise ValueError(f"unknown ALC unit {unit!r}; use '10^9/L' or 'cells/uL'")
    return ALC_UNITS[key]


def check_alc_unit_stated(median_alc: float, *, what: str, file: str | Path | None) -> None:
    """Refuse ALC values that look like cells/uL when no unit was stated.

    Raises:
        UnitError: ``median_alc`` above :data:`ALC_AMBIGUOUS_MEDIAN`.
    """
    if math.isfinite(median_alc) and median_alc > ALC_AMBIGUOUS_MEDIAN:
        raise UnitError(
            f"{what} values have median {median_alc:g}, which looks like cells/uL, but no unit is "
            "stated; add an 'alc_unit' column or pass alc_unit='cells/uL' (converted by /1000) "
            "or alc_unit='10^9/L'", file=file, field=what)


class _RowChecker:
    """Collects every problem of one manifest row while parsing its fields."""

    def __init__(self, row: Mapping[str, Any], patient: str | None, file: str | None) -> None:
        self.row, self.patient, self.file = row, patient, file
        self.errors: list[InputError] = []

    def error(self, column: str, message: str, cls: type[InputError] = InputError) -> None:
        self.errors.append(cls(message, patient=self.patient, file=self.file, field=column))

    def raw(self, column: str) -> Any:
        value = self.row.get(column)
        return None if is_missing(value) else value

    def text(self, column: str, required: bool = False) -> str | None:
        value = self.raw(column)
        if value is None and required:
            self.error(column, "required value is missing")
        return None if value is None else as_id(value)

    def number(self, column: str, required: bool = False, scale: float = 1.0,
               hint: str = "") -> float:
        """Parse a number, multiply by ``scale`` (unit conversion), check :data:`RANGES`."""
        value = self.raw(column)
        if value is None:
            if required:
                self.error(column, "required value is missing")
            return math.nan
        try:
            number = float(value) * scale
        except (TypeError, ValueError):
            self.error(column, f"not a number: {value!r}")
            return math.nan
        lo, hi, lo_in, hi_in, unit = RANGES.get(column, (-math.inf, math.inf, True, True, ""))
        ok = math.isfinite(number) and (number >= lo if lo_in else number > lo) and (
            number <= hi if hi_in else number < hi)
        if not ok:
            bounds = f"{'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"
            self.error(column, f"value {number:g} {unit} outside the allowed range {bounds}{hint}")
            return math.nan
        return number

    def choice(self, column: str, allowed: Mapping[str, str], required: bool = False) -> str | None:
        value = self.text(column, required)
        if value is None:
            return None
        key = value.strip().lower()
        if key not in allowed:
            self.error(column, f"{value!r} is not one of {sorted(set(allowed.values()))}")
            return None
        return allowed[key]

    def path(self, column: str, root: Path, required: bool = False) -> Path | None:
        value = self.text(column, required)
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else root / path


def plan_from_row(
    row: Mapping[str, Any],
    *,
    root: Path,
    file: str | Path | None = None,
    row_label: str = "",
    alc_unit: str | None = None,
) -> tuple[PlanRecord | None, list[InputError]]:
    """Validate one manifest row (pure: paths are resolved, not checked on disk).

    Args:
        row: Column name -> raw value.
        root: Folder that relative paths are resolved against (the manifest's folder).
        file: Manifest file name for error messages.
        row_label: Appended to the file name in messages (e.g. "row 3").
        alc_unit: Unit of ``baseline_alc`` when the row has no ``alc_unit`` column value; None means
            10^9/L (the file-level check :func:`check_alc_unit_stated` guards against cells/uL).

    Returns:
        ``(record, [])`` for a good row, ``(None, errors)`` listing every problem otherwise.
    """
    patient = as_id(row["patient_id"]) if not is_missing(row.get("patient_id")) else None
    where = f"{file} {row_label}".strip() if file is not None else (row_label or None)
    chk = _RowChecker(row, patient, where)
    chk.text("patient_id", required=True)
    modalities = {alias: canon for canon, aliases in MODALITIES.items() for alias in aliases}
    modality = chk.choice("modality", modalities, required=True)
    n_fractions = chk.number("n_fractions", required=True)
    if math.isfinite(n_fractions) and (n_fractions < 1 or not float(n_fractions).is_integer()):
        chk.error("n_fractions", f"must be an integer >= 1, got {n_fractions:g}")
        n_fractions = math.nan
    dose_per_fraction_gy = chk.number("dose_per_fraction_gy", required=True)
    fraction_days: tuple[float, ...] = ()
    if math.isfinite(n_fractions):
        try:
            fraction_days = parse_fraction_days(row.get("fraction_days"), int(n_fractions))
        except ValueError as err:
            chk.error("fraction_days", str(err))
    unit = chk.raw("alc_unit") if chk.raw("alc_unit") is not None else chk.raw("baseline_alc_unit")
    unit = unit if unit is not None else alc_unit
    factor = 1.0
    if unit is not None:
        try:
            factor = alc_factor(unit)
        except ValueError as err:
            chk.error("alc_unit", str(err), UnitError)
    baseline_alc = chk.number("baseline_alc", required=True, scale=factor,
                              hint="" if unit is not None else " (if in cells/uL, state alc_unit)")
    values = {
        "site": chk.text("site"), "beam_on_time_s": chk.number("beam_on_time_s"),
        "chemo": chk.choice("chemo", {c: c for c in CHEMO_VALUES}),
        "chemo_regimen": chk.text("chemo_regimen"), "age": chk.number("age"),
        "steroids": chk.choice("steroids", STEROID_VALUES),
        "sex": chk.choice("sex", SEX_VALUES), "bmi": chk.number("bmi"),
        "dose_path": chk.path("dose_path", root, required=True),
        "structures_path": chk.path("structures_path", root),
        "structure_map": chk.path("structure_map", root),
    }
    if chk.errors:
        return None, chk.errors
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    return PlanRecord(
        patient_id=patient,  # type: ignore[arg-type]
        plan_id=chk.text("plan_id") or patient,  # type: ignore[arg-type]
        modality=modality,  # type: ignore[arg-type]
        n_fractions=int(n_fractions),
        dose_per_fraction_gy=dose_per_fraction_gy,
        fraction_days=fraction_days,
        baseline_alc=baseline_alc,
        extras={k: v for k, v in row.items() if k not in known},
        **values,
    ), []


def ctcae_grade(alc: Any) -> Any:
    """CTCAE v5 lymphocyte-count-decreased grade (0-4) of ALC values (10^9/L).

    Works on numbers, numpy arrays (-> int64 array) and torch tensors (-> long tensor of the same
    shape): the grade is the number of :data:`CTCAE_CUTOFFS_ALC` the value lies below.
    """
    cuts = sorted(CTCAE_CUTOFFS_ALC.values(), reverse=True)
    if hasattr(alc, "new_tensor"):  # torch, without importing it here
        return (alc[..., None] < alc.new_tensor(cuts)).sum(-1)
    return (np.asarray(alc, float)[..., None] < np.asarray(cuts)).sum(-1).astype(np.int64)


#: Leading characters a spreadsheet reads as the start of a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: Any) -> Any:
    """A text cell that starts like a spreadsheet formula, prefixed with ``'`` (numbers and other
    text unchanged); every CSV lymphonet writes for people passes its text cells through it."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
