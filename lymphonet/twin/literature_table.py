"""The published-cohort table (SIMULATED-model checks): format, validation, loading.

A *literature table* (CSV, one row per published observation; the shipped one is
``lymphonet/resources/literature_cohorts.csv``, sources in ``literature_cohorts.md``) gives, for a
cohort treated at one site with one modality, schedule and chemotherapy, one statistic of its ALC
in a day window: ``mean_alc``, ``median_alc``, ``median_nadir`` (10^9/L) or ``fraction_below`` /
``fraction_nadir_below`` (share of patients whose window-mean ALC / window minimum is below
``threshold``). :mod:`lymphonet.twin.literature` simulates a virtual cohort for every row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lymphonet.errors import InputError
from lymphonet.kinetics.schedule import CHEMO_CODES

__all__ = ["ALC_STATISTICS", "DATA_DIR", "DEFAULT_TABLE", "FRACTION_STATISTICS", "MAX_DAY",
           "OPTIONAL_COLUMNS", "STATISTICS", "TABLE_COLUMNS", "load_table", "validate_table"]

DATA_DIR = Path(__file__).resolve().parents[1] / "resources"
DEFAULT_TABLE = DATA_DIR / "literature_cohorts.csv"

TABLE_COLUMNS = ("id", "site", "modality", "n_fractions", "dose_per_fraction_gy", "chemo",
                 "statistic", "day_from", "day_to", "threshold", "value", "n", "source")
#: Optional columns: baseline ALC median of the cohort (10^9/L), photon technique override.
OPTIONAL_COLUMNS = ("baseline_alc_median", "technique")
ALC_STATISTICS = ("mean_alc", "median_alc", "median_nadir")
FRACTION_STATISTICS = ("fraction_below", "fraction_nadir_below")
STATISTICS = ALC_STATISTICS + FRACTION_STATISTICS
MAX_DAY = 730


def _err(msg, path, row_id=None, column=None):
    return InputError(msg, patient=row_id, file=path, field=column)


def validate_table(table: pd.DataFrame, path=None, require_value: bool = True) -> pd.DataFrame:
    """Check a literature table and return a clean copy (typed columns, optional columns added).

    Raises:
        InputError: naming the file, the row ``id`` (as patient) and the column.
    """
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise _err(f"literature table lacks columns {missing}", path, column=missing[0])
    from lymphonet.twin.sites import SITES

    df = table.copy()
    for c in OPTIONAL_COLUMNS:
        if c not in df.columns:
            df[c] = np.nan
    df["id"] = df["id"].astype(str).str.strip()
    if (df["id"] == "").any() or df["id"].duplicated().any():
        dup = df["id"][df["id"].duplicated() | (df["id"] == "")].iloc[0]
        raise _err("row ids must be unique and non-empty", path, dup, "id")
    for c in ("n_fractions", "dose_per_fraction_gy", "day_from", "day_to", "threshold", "value",
              "n", "baseline_alc_median"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    for _, r in df.iterrows():
        rid = r["id"]
        if r["site"] not in SITES:
            raise _err(f"unknown site {r['site']!r}; expected one of {sorted(SITES)}", path, rid,
                       "site")
        if r["modality"] not in SITES[r["site"]].modalities:
            raise _err(f"modality {r['modality']!r} not available for {r['site']}", path, rid,
                       "modality")
        if not (r["n_fractions"] >= 1 and float(r["n_fractions"]).is_integer()):
            raise _err("n_fractions must be a whole number >= 1", path, rid, "n_fractions")
        if not r["dose_per_fraction_gy"] > 0:
            raise _err("dose_per_fraction_gy must be > 0", path, rid, "dose_per_fraction_gy")
        if str(r["chemo"]) not in CHEMO_CODES:
            raise _err(f"chemo must be one of {sorted(CHEMO_CODES)}", path, rid, "chemo")
        if r["statistic"] not in STATISTICS:
            raise _err(f"statistic must be one of {STATISTICS}", path, rid, "statistic")
        if not (0 <= r["day_from"] <= r["day_to"] <= MAX_DAY):
            raise _err(f"need 0 <= day_from <= day_to <= {MAX_DAY}", path, rid, "day_from")
        is_frac = r["statistic"] in FRACTION_STATISTICS
        if is_frac and not 0 < r["threshold"] <= 5:
            raise _err("fraction statistics need a threshold in (0, 5] x 10^9/L", path, rid,
                       "threshold")
        if require_value:
            ok = (0 <= r["value"] <= 1) if is_frac else (0 < r["value"] <= 10)
            if not ok:
                raise _err("value out of range (fractions in [0, 1], ALC in (0, 10] x 10^9/L)",
                           path, rid, "value")
        if not (pd.isna(r["n"]) or r["n"] >= 1):
            raise _err("n must be empty or >= 1", path, rid, "n")
        if pd.isna(r["source"]) or not str(r["source"]).strip():
            raise _err("every row needs a source", path, rid, "source")
        b = r["baseline_alc_median"]
        if not (pd.isna(b) or 0.1 <= b <= 10):
            raise _err("baseline_alc_median must be in [0.1, 10] x 10^9/L", path, rid,
                       "baseline_alc_median")
    df["n_fractions"] = df["n_fractions"].astype(int)
    return df.reset_index(drop=True)


def load_table(path: str | Path = DEFAULT_TABLE, require_value: bool = True) -> pd.DataFrame:
    """Read and validate a literature table (CSV)."""
    path = Path(path)
    if not path.exists():
        raise InputError("literature table not found", file=path, field="table")
    try:
        table = pd.read_csv(path, comment=None)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read literature table: {exc}", file=path, field="table") from exc
    return validate_table(table, path, require_value)

