"""Patient-level stratified K-fold splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lymphonet.data.splits import (
    fold_indices,
    get_or_make_splits,
    load_splits,
    make_splits,
    save_splits,
)
from lymphonet.errors import InputError
from lymphonet.schema import PlanRecord


def _plan(pid: str, plan_id: str, site: str, modality: str) -> PlanRecord:
    return PlanRecord(patient_id=pid, plan_id=plan_id, modality=modality, n_fractions=5,
                      dose_per_fraction_gy=2.0, fraction_days=(0, 1, 2, 3, 4), baseline_alc=1.5,
                      dose_path=Path("dose.nii.gz"), site=site)


def _cohort() -> list[PlanRecord]:
    """3 sites x 2 modalities x 10 patients; 12 of them paired (a second plan); one rare site."""
    plans, n = [], 0
    for site in ("lung", "esophagus", "brain"):
        for modality in ("photon", "proton"):
            for _ in range(10):
                pid = f"{n:03d}"  # leading zeros must survive the CSV round trip
                plans.append(_plan(pid, f"{pid}_{modality}", site, modality))
                if n % 5 == 0:
                    other = "proton" if modality == "photon" else "photon"
                    plans.append(_plan(pid, f"{pid}_{other}", site, other))
                n += 1
    plans.append(_plan("999", "999_carbon", "sarcoma", "carbon"))
    return plans


def test_every_plan_one_fold_and_pairs_together():
    plans = _cohort()
    df = make_splits(plans, n_folds=5, seed=0)
    assert df["plan_id"].tolist() == [p.plan_id for p in plans]
    assert df["fold"].between(0, 4).all() and df["fold"].nunique() == 5
    assert df.groupby("patient_id")["fold"].nunique().max() == 1
    paired = df[df["patient_id"].duplicated(keep=False)]
    assert len(paired) == 24  # 12 paired patients, all kept together


def test_stratification_roughly_balanced():
    df = make_splits(_cohort(), n_folds=5, seed=1)
    patients = df.drop_duplicates("patient_id")
    for site in ("lung", "esophagus", "brain"):
        counts = patients[patients["site"] == site]["fold"].value_counts().reindex(range(5),
                                                                                    fill_value=0)
        assert counts.min() >= 2 and counts.max() <= 6, (site, counts.tolist())  # 20 / 5 = 4
    sizes = df["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 4  # 73 plans over 5 folds


def test_deterministic_and_order_independent():
    plans = _cohort()
    a = make_splits(plans, n_folds=5, seed=7)
    b = make_splits(plans, n_folds=5, seed=7)
    assert a.equals(b)
    shuffled = [plans[i] for i in np.random.default_rng(0).permutation(len(plans))]
    c = make_splits(shuffled, n_folds=5, seed=7).set_index("plan_id")["fold"]
    assert (c[a["plan_id"]].to_numpy() == a["fold"].to_numpy()).all()
    d = make_splits(plans, n_folds=5, seed=8)
    assert not (d["fold"].to_numpy() == a["fold"].to_numpy()).all()


def test_save_load_round_trip(tmp_path):
    df = make_splits(_cohort(), n_folds=4, seed=0)
    path = save_splits(df, tmp_path / "sub" / "splits.csv")
    back = load_splits(path)
    pd.testing.assert_frame_equal(back, df)
    assert back["patient_id"].iloc[0] == "000"


def test_tiny_cohort_and_errors(tmp_path):
    tiny = [_plan(str(i), f"p{i}", site, "photon")
            for i, site in enumerate(["lung", "brain", "liver", "lung", "rare"])]
    df = make_splits(tiny, n_folds=5, seed=0)
    assert sorted(df["fold"]) == [0, 1, 2, 3, 4]
    with pytest.raises(InputError, match="patients cannot fill"):
        make_splits(tiny[:3], n_folds=5)
    with pytest.raises(InputError, match="twice"):
        make_splits(tiny + tiny[:1], n_folds=2)
    bad = df.copy()
    bad.loc[len(bad)] = ["p0b", "0", "lung", "proton", (int(df["fold"][0]) + 1) % 5]
    save_splits(bad, tmp_path / "bad.csv")
    with pytest.raises(InputError, match="different folds") as err:
        load_splits(tmp_path / "bad.csv")
    assert err.value.patient == "0"


def test_written_once_and_reused(tmp_path):
    plans = _cohort()
    path = tmp_path / "splits.csv"
    first = get_or_make_splits(plans, path, n_folds=5, seed=0)
    again = get_or_make_splits(plans, path, n_folds=5, seed=0)
    pd.testing.assert_frame_equal(first, again)
    # a split made with other settings is refused, never silently reused (stale-data guard)
    with pytest.raises(InputError, match="seed=0.*seed=123"):
        get_or_make_splits(plans, path, n_folds=5, seed=123)
    with pytest.raises(InputError, match="n_folds=5.*n_folds=3"):
        get_or_make_splits(plans, path, n_folds=3, seed=0)
    with pytest.raises(InputError, match="not in the split file"):
        get_or_make_splits(plans + [_plan("new", "new_photon", "lung", "photon")], path,
                           n_folds=5, seed=0)
    train, held = fold_indices(plans, first, 2)
    assert sorted(train + held) == list(range(len(plans)))
    assert {first["fold"][i] for i in held} == {2} and 2 not in {first["fold"][i] for i in train}
    held_patients = {plans[i].patient_id for i in held}
    assert not held_patients & {plans[i].patient_id for i in train}
