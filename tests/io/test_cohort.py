"""Tests for lymphonet.io.cohort: manifest and labs files, both error modes, units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lymphonet.errors import InputError, UnitError
from lymphonet.io.cohort import load_cohort, load_labs, load_manifest
from lymphonet.schema import CohortValidationError


def _manifest_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "patient_id": ["007", "p2", "p3"],
        "site": ["lung", "esophagus", "brain"],
        "modality": ["photon", "PROTON", "Carbon"],
        "n_fractions": [30, 28, 5],
        "dose_per_fraction_gy": [2.0, 1.8, 5.0],
        "fraction_days": ["", "", "0,2,4,7,9"],
        "beam_on_time_s": [120.0, 90.0, np.nan],
        "chemo": ["concurrent", "none", ""],
        "age": [64, 71, 55],
        "sex": ["F", "m", "M"],
        "bmi": [22.5, 30.1, 25.0],
        "baseline_alc": [1.6, 2.1, 1.2],
        "dose_path": ["007/dose.nii.gz", "p2/dose.nii.gz", "p3/dose.nii.gz"],
        "trial_arm": ["A", "B", "A"],
    })


def _labs_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "patient_id": ["007", "007", "p2", "p2", "p3"],
        "day": [-3.0, 14.0, 0.0, 21.0, 10.0],
        "alc": [1.6, 0.7, 2.1, 0.4, 0.9],
    })


def _write(folder: Path, manifest: pd.DataFrame, labs: pd.DataFrame | None = None,
           fmt: str = "csv") -> Path:
    for pid in manifest["patient_id"]:
        (folder / str(pid)).mkdir(parents=True, exist_ok=True)
        (folder / str(pid) / "dose.nii.gz").write_bytes(b"")
    for name, frame in (("manifest", manifest), ("labs", labs)):
        if frame is None:
            continue
        path = folder / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    return folder / f"manifest.{fmt}"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_good_cohort_round_trip(tmp_path, fmt):
    _write(tmp_path, _manifest_frame(), _labs_frame(), fmt)
    cohort = load_cohort(tmp_path)
    assert [p.patient_id for p in cohort.plans] == ["007", "p2", "p3"]  # "007" keeps its zeros
    first, second, third = cohort.plans
    assert (first.modality, second.modality, third.modality) == ("photon", "proton", "carbon")
    assert first.fraction_days[:7] == (0, 1, 2, 3, 4, 7, 8) and len(first.fraction_days) == 30
    assert third.fraction_days == (0, 2, 4, 7, 9)
    assert first.dose_path == tmp_path / "007" / "dose.nii.gz"
    assert second.sex == "M" and third.chemo is None and np.isnan(third.beam_on_time_s)
    assert first.extras["trial_arm"] == "A"
    assert cohort.errors == [] and cohort.root == tmp_path
    assert list(cohort.labs.columns) == ["patient_id", "plan_id", "day", "alc"]
    assert cohort.labs_for("007")["alc"].tolist() == [1.6, 0.7]
    assert set(cohort.labs["plan_id"]) == {"007", "p2", "p3"}  # single plans fill plan_id


def test_missing_column(tmp_path):
    path = _write(tmp_path, _manifest_frame().drop(columns="dose_path"))
    with pytest.raises(InputError) as info:
        load_manifest(path)
    assert info.value.field == "dose_path" and "manifest.csv" in str(info.value)


def test_duplicate_plan_ids(tmp_path):
    frame = _manifest_frame()
    frame.loc[2, "patient_id"] = "p2"
    path = _write(tmp_path, frame)
    with pytest.raises(InputError) as info:
        load_manifest(path)
    assert info.value.field == "plan_id" and "'p2'" in str(info.value)
    # a plan_id column distinguishing the two plans of p2 makes it valid
    frame["plan_id"] = ["007", "p2_photon", "p2_proton"]
    records = load_manifest(_write(tmp_path, frame), check_files=False)
    assert [r.plan_id for r in records] == ["007", "p2_photon", "p2_proton"]


def test_nan_baseline_and_bad_modality_collected(tmp_path):
    frame = _manifest_frame()
    frame.loc[1, "baseline_alc"] = np.nan
    frame.loc[2, "modality"] = "electron"
    path = _write(tmp_path, frame)
    with pytest.raises(CohortValidationError) as info:
        load_manifest(path)
    text = str(info.value)
    for needle in ["'p2'", "'p3'", "manifest.csv row 2", "manifest.csv row 3", "baseline_alc",
                   "modality"]:
        assert needle in text
    records, errors = load_manifest(path, errors="collect")
    assert [r.patient_id for r in records] == ["007"]
    assert {(e.patient, e.field) for e in errors} == {("p2", "baseline_alc"), ("p3", "modality")}


def test_missing_dose_file_reported(tmp_path):
    path = _write(tmp_path, _manifest_frame())
    (tmp_path / "p3" / "dose.nii.gz").unlink()
    records, errors = load_manifest(path, errors="collect")
    assert len(records) == 2 and errors[0].patient == "p3" and errors[0].field == "dose_path"
    assert len(load_manifest(path, check_files=False)) == 3


def test_alc_in_cells_per_ul(tmp_path):
    frame = _manifest_frame()
    frame["baseline_alc"] = [1600, 2100, 1200]
    path = _write(tmp_path, frame)
    with pytest.raises(UnitError) as info:
        load_manifest(path)
    assert info.value.field == "baseline_alc" and "alc_unit" in str(info.value)
    records = load_manifest(path, alc_unit="cells/uL")
    assert [r.baseline_alc for r in records] == pytest.approx([1.6, 2.1, 1.2])
    frame["alc_unit"] = "cells/uL"
    records = load_manifest(_write(tmp_path, frame))
    assert [r.baseline_alc for r in records] == pytest.approx([1.6, 2.1, 1.2])


def test_labs_negative_alc_names_patient_file_row(tmp_path):
    manifest = load_manifest(_write(tmp_path, _manifest_frame()))
    labs = _labs_frame()
    labs.loc[3, "alc"] = -0.2
    labs.to_csv(tmp_path / "labs.csv", index=False)
    with pytest.raises(InputError) as info:
        load_labs(tmp_path / "labs.csv", manifest=manifest)
    err = info.value
    assert err.patient == "p2" and err.field == "alc" and "labs.csv row 4" in str(err)
    frame, errors = load_labs(tmp_path / "labs.csv", manifest=manifest, errors="collect")
    assert len(frame) == 4 and len(errors) == 1


def test_labs_missing_alc_error_or_dropped(tmp_path):
    labs = _labs_frame()
    labs.loc[0, "alc"] = np.nan
    labs.to_csv(tmp_path / "labs.csv", index=False)
    with pytest.raises(InputError, match="drop_missing"):
        load_labs(tmp_path / "labs.csv")
    frame = load_labs(tmp_path / "labs.csv", drop_missing=True)
    assert len(frame) == 4 and len(frame.attrs["dropped"]) == 1
    assert "'007'" in frame.attrs["dropped"][0]


def test_labs_unknown_patient_and_units(tmp_path):
    manifest = load_manifest(_write(tmp_path, _manifest_frame()))
    labs = _labs_frame()
    labs.loc[4, "patient_id"] = "ghost"
    labs.to_csv(tmp_path / "labs.csv", index=False)
    with pytest.raises(InputError) as info:
        load_labs(tmp_path / "labs.csv", manifest=manifest)
    assert info.value.patient == "ghost" and info.value.field == "patient_id"
    labs = _labs_frame()
    labs["alc"] *= 1000
    labs.to_parquet(tmp_path / "labs.parquet", index=False)
    with pytest.raises(UnitError):
        load_labs(tmp_path / "labs.parquet")
    labs["alc_unit"] = "cells/uL"
    labs.to_parquet(tmp_path / "labs.parquet", index=False)
    frame = load_labs(tmp_path / "labs.parquet", manifest=manifest)
    np.testing.assert_allclose(frame.sort_values(["patient_id", "day"])["alc"],
                               _labs_frame().sort_values(["patient_id", "day"])["alc"])


def test_cohort_collect_mode_keeps_other_patients(tmp_path):
    frame = _manifest_frame()
    frame.loc[0, "n_fractions"] = 0
    labs = _labs_frame()
    labs.loc[2, "alc"] = -1.0
    _write(tmp_path, frame, labs)
    with pytest.raises(CohortValidationError) as info:
        load_cohort(tmp_path)
    assert len(info.value.errors) == 2
    cohort = load_cohort(tmp_path, errors="collect")
    assert [p.patient_id for p in cohort.plans] == ["p2", "p3"]
    assert {(e.patient, e.field) for e in cohort.errors} == {("007", "n_fractions"),
                                                             ("p2", "alc")}
    # labs of the failed manifest row are not "unknown patients": they stay
    assert len(cohort.labs) == 4 and "007" in set(cohort.labs["patient_id"])
