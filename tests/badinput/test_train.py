"""Training inputs: bad plans are left out of the training data with an error naming patient, file
and field (the others are used), and a bad config never starts a run."""

from __future__ import annotations

import csv

import pytest

from .conftest import run_cli
from .test_score import COLUMNS, KBP_ROW


@pytest.fixture(scope="module")
def cohort(corpus):
    root = corpus["root"] / "train_cohort"
    root.mkdir()
    rows = {"good": {}, "cgy": {"dose_path": corpus["kbp_cgy"]},
            "zero": {"dose_path": corpus["kbp_zero"]},
            "other_structures": {"structures_path": corpus["breast_rtss"]},
            "wrong_schedule": {"n_fractions": 70}}
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for name, change in rows.items():
            row = {**KBP_ROW, "dose_path": corpus["kbp_dose"],
                   "structures_path": corpus["kbp_labels"], **change,
                   "patient_id": name, "plan_id": name}
            w.writerow([row[c] for c in COLUMNS])
    with open(root / "labs.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "day", "alc"])
        for name in rows:
            w.writerows([[name, 7, 1.0], [name, 14, 0.8]])
    return root


def test_bad_plans_are_left_out_naming_patient_file_field(cohort):
    from lymphonet.data.config import DataConfig
    from lymphonet.data.dataset import PlanDataset

    cfg = DataConfig(spacing_mm=(16.0, 16.0, 16.0), shape=(12, 12, 12), n_quantiles=8,
                     blood_particles=300, cache_dir=str(cohort / "cache"))
    ds = PlanDataset(cohort, cfg)
    assert ds.plan_ids == ["good"]
    errors = {e.patient: e for e in ds.errors}
    assert set(errors) == {"cgy", "zero", "other_structures", "wrong_schedule"}
    assert errors["cgy"].field == "dose_path" and "plausibility" in errors["cgy"].message
    assert errors["zero"].field == "dose_path" and "zero" in errors["zero"].message
    assert errors["other_structures"].field == "structures_path"
    assert errors["wrong_schedule"].field == "n_fractions"
    assert all(e.file for e in errors.values())


@pytest.mark.parametrize("override, words", [
    ("train.epochz=3", "epochz"),
    ("train.epochs=many", "epochs"),
    ("data.max_dose_gy=-1", None),
])
def test_bad_config_never_starts_a_run(tmp_path, capsys, override, words):
    code, _, err = run_cli(["train", "--config", "configs/smoke.yaml", "--out", tmp_path,
                            "--no-tracking", "--set", override], capsys)
    if words is None:  # a negative limit would refuse every dose: refused up front
        assert code == 2 and "max_dose_gy" in err
        return
    assert code == 2 and words in err and not (tmp_path / "smoke").exists()
