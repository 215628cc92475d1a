"""Patient-level K-fold splits, written once per cohort and reused by every model.

Folds come from scikit-learn's ``StratifiedGroupKFold``: groups are patients (so the paired
plans of one patient never sit in different folds) and strata are ``site|modality``. Strata with
fewer patients than folds cannot be spread over every fold; they are merged first into their
site (``site|*``), then into one ``rare`` stratum (itself joined to the largest stratum when still
too small), so the split never fails on a small cohort.
Plans are ordered by (patient_id, plan_id) before splitting, so the result depends on the seed,
not on the manifest's row order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lymphonet.errors import InputError
from lymphonet.schema import PlanRecord

SPLIT_COLUMNS = ("plan_id", "patient_id", "site", "modality", "fold")


def _merge_rare(strata: pd.Series, patients: pd.Series, min_patients: int) -> pd.Series:
    """Relabel strata holding fewer than ``min_patients`` patients: ``site|*``, then ``rare``."""
    strata = strata.copy()
    for level in ("site", "all"):
        counts = patients.groupby(strata).nunique()
        rare = counts.index[counts < min_patients]
        if not len(rare):
            break
        hit = strata.isin(rare)
        strata[hit] = (strata[hit].str.split("|").str[0] + "|*") if level == "site" else "rare"
    counts = patients.groupby(strata).nunique()
    if len(counts) > 1 and counts.min() < min_patients:  # "rare" itself too small: join largest
        strata[strata.isin(counts.index[counts < min_patients])] = counts.idxmax()
    return strata


def make_splits(plans: Sequence[PlanRecord], n_folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Assign every plan to one of ``n_folds`` folds, grouped by patient, stratified by
    site and modality.

    Args:
        plans: The cohort's plan records.
        n_folds: K (>= 2).
        seed: Shuffling seed; the same plans and seed give the same folds.

    Returns:
        Frame with columns ``plan_id, patient_id, site, modality, fold`` (fold in 0..K-1), rows
        in the order of ``plans``.

    Raises:
        InputError: Fewer patients than folds, or duplicate plan ids.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if n_folds < 2:
        raise InputError(f"n_folds must be >= 2, got {n_folds}", field="n_folds")
    df = pd.DataFrame({"plan_id": [p.plan_id for p in plans],
                       "patient_id": [p.patient_id for p in plans],
                       "site": [(p.site or "unknown").strip().lower() for p in plans],
                       "modality": [p.modality for p in plans]})
    if df["plan_id"].duplicated().any():
        dup = df.loc[df["plan_id"].duplicated(), "plan_id"].iloc[0]
        raise InputError(f"plan id {dup!r} occurs twice", patient=dup, field="plan_id")
    n_patients = df["patient_id"].nunique()
    if n_patients < n_folds:
        raise InputError(f"{n_patients} patients cannot fill {n_folds} folds", field="n_folds")
    order = df.sort_values(["patient_id", "plan_id"], kind="stable").index
    work = df.loc[order]
    strata = _merge_rare(work["site"] + "|" + work["modality"], work["patient_id"], n_folds)
    codes = pd.factorize(strata)[0]
    groups = pd.factorize(work["patient_id"])[0]
    fold = np.empty(len(work), np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(work)), codes, groups)):
        fold[test] = k
    df.loc[order, "fold"] = fold
    df["fold"] = df["fold"].astype(np.int64)
    return df[list(SPLIT_COLUMNS)]


def save_splits(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a split table as CSV (creates the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df[list(SPLIT_COLUMNS)].to_csv(path, index=False)
    return path


def load_splits(path: str | Path) -> pd.DataFrame:
    """Read a split table written by :func:`save_splits` (ids stay strings: "007" stays "007").

    Raises:
        InputError: Missing file or column, non-integer folds, a patient in several folds.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("split file not found", file=path, field="splits")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in SPLIT_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"columns {missing} missing", file=path, field=missing[0])
    fold = pd.to_numeric(df["fold"], errors="coerce")
    if fold.isna().any() or (fold < 0).any() or not (fold % 1 == 0).all():
        row = int(np.flatnonzero(fold.isna() | (fold < 0) | (fold % 1 != 0))[0])
        raise InputError(f"row {row + 1}: fold must be an integer >= 0, got {df['fold'][row]!r}",
                         patient=df["patient_id"][row], file=path, field="fold")
    df["fold"] = fold.astype(np.int64)
    crossing = df.groupby("patient_id")["fold"].nunique()
    if (crossing > 1).any():
        raise InputError("patient's plans are in different folds", patient=crossing.idxmax(),
                         file=path, field="fold")
    return df[list(SPLIT_COLUMNS)]


def get_or_make_splits(plans: Sequence[PlanRecord], path: str | Path, n_folds: int = 5,
                       seed: int = 0) -> pd.DataFrame:
    """Load the split file if it exists, else make and save it.

    A split file records what made it in ``<name>.json`` (fold count, seed). An existing file is
    used only when it covers ``plans`` and was made with ``n_folds`` and ``seed``; otherwise it is
    refused with the fix in the message (other models may have been compared on it, so it is
    never silently replaced).

    Raises:
        InputError: The split file does not match the plans or the settings.
    """
    path = Path(path)
    record = path.with_suffix(".json")
    want = {"n_folds": int(n_folds), "seed": int(seed)}
    if path.is_file():
        df = load_splits(path)
        check_coverage(df, plans, path)
        have = json.loads(record.read_text()) if record.is_file() else {
            "n_folds": int(df["fold"].max()) + 1, "seed": None}
        if have["n_folds"] != want["n_folds"] or have["seed"] not in (None, want["seed"]):
            raise InputError(f"the split file was made with n_folds={have['n_folds']}, seed="
                             f"{have['seed']}, but the config asks for n_folds={n_folds}, seed="
                             f"{seed}; set train.n_folds / train.seed to match, or move the "
                             "split file away to make a new one", file=path, field="train.n_folds")
        return df
    df = make_splits(plans, n_folds, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(want))  # the record first: a split never exists without it
    save_splits(df, path)
    return df


def check_coverage(df: pd.DataFrame, plans: Sequence[PlanRecord], path=None) -> None:
    """InputError if a plan has no fold or its patient differs from the split file's."""
    known = dict(zip(df["plan_id"], df["patient_id"]))
    for p in plans:
        if p.plan_id not in known:
            raise InputError(f"plan {p.plan_id!r} is not in the split file (the cohort changed; "
                             "make new splits)", patient=p.patient_id, file=path, field="plan_id")
        if known[p.plan_id] != p.patient_id:
            raise InputError(f"split file gives plan {p.plan_id!r} to patient "
                             f"{known[p.plan_id]!r}", patient=p.patient_id, file=path,
                             field="patient_id")


def fold_indices(plans: Sequence[PlanRecord], splits: pd.DataFrame,
                 folds: int | Sequence[int]) -> tuple[list[int], list[int]]:
    """Rows of ``plans`` outside and inside ``folds``: ``(train_idx, held_out_idx)``."""
    check_coverage(splits, plans)
    held = {folds} if isinstance(folds, (int, np.integer)) else set(folds)
    fold_of = dict(zip(splits["plan_id"], splits["fold"]))
    inside = [i for i, p in enumerate(plans) if fold_of[p.plan_id] in held]
    outside = [i for i, p in enumerate(plans) if fold_of[p.plan_id] not in held]
    return outside, inside
