"""`lymphonet score` on a manifest mixing good and bad rows: every bad row becomes status "error"
naming patient, file and field (or "ok" with a documented warning), no traceback, and the good
rows score exactly as they do alone."""

from __future__ import annotations

import csv
import re

import pandas as pd
import pytest

from lymphonet.scoring.runner import score_manifest

from .conftest import BREAST_ID, BREAST_NAME

COLUMNS = ["patient_id", "plan_id", "site", "modality", "n_fractions", "dose_per_fraction_gy",
           "beam_on_time_s", "baseline_alc", "age", "sex", "dose_path", "structures_path"]
KBP_ROW = {"site": "head_neck", "modality": "photon", "n_fractions": 35,
           "dose_per_fraction_gy": 2.0, "beam_on_time_s": 120, "baseline_alc": 1.6, "age": 60,
           "sex": "M", "dose_path": "kbp_dose", "structures_path": "kbp_labels"}
BREAST_ROW = {"site": "breast", "modality": "photon", "n_fractions": 7,
              "dose_per_fraction_gy": 2.0, "beam_on_time_s": 55, "baseline_alc": 1.8, "age": 55,
              "sex": "F", "dose_path": "breast_dose", "structures_path": "breast_rtss"}
GOOD = {"good_kbp": KBP_ROW, "good_breast": BREAST_ROW}

#: case -> (row changes, expected field in the error, words in the error); field None = ok row.
BAD = {
    "no_scaling": ({"dose_path": "dose_no_scaling"}, "DoseGridScaling", "missing"),
    "cgy_nifti": ({"dose_path": "kbp_cgy"}, "dose_path", "plausibility limit"),
    "zero_dose": ({"dose_path": "kbp_zero"}, "dose_path", "zero everywhere"),
    "nan_dose": ({"dose_path": "kbp_nan"}, "dose", "NaN"),
    "negative_dose": ({"dose_path": "kbp_negative"}, "dose", "negative"),
    "beam_dose": ({"dose_path": "dose_beam"}, "DoseSummationType", "BEAM"),
    "unknown_units": ({"dose_path": "dose_mgy"}, "DoseUnits", "MGY"),
    "truncated": ({"dose_path": "dose_truncated"}, None, "truncated"),
    "other_patient_structures": ({"structures_path": "breast_rtss"}, "structures_path",
                                 "inside the body"),
    "shifted_dose": ({"dose_path": "dose_shifted"}, "body", "no body contour"),
    "other_frame": ({"dose_path": "dose_other_for"}, "FrameOfReferenceUID",
                    "another frame of reference"),
    "ten_thousand_fractions": ({"n_fractions": 10000}, "n_fractions", "allowed range"),
    "double_fractions": ({"n_fractions": 70}, "n_fractions", "prescription"),
    "tiny_baseline": ({"baseline_alc": 0.01}, "baseline_alc", "allowed range"),
    "hours_of_beam_on": ({"beam_on_time_s": 100000}, "beam_on_time_s", "allowed range"),
    "tenfold_dose_per_fraction": ({"dose_per_fraction_gy": 20.0}, "n_fractions",
                                  "prescription"),
    "ct_as_dose": ({"dose_path": "breast_ct"}, "Modality", "RTDOSE"),
    "empty_file": ({"dose_path": "empty"}, "dose_path", "empty (0 bytes)"),
    "folder_as_dose": ({"dose_path": "folder"}, "dose_path", "folder"),
    "missing_file": ({"dose_path": "missing"}, "dose_path", "not found"),
    "empty_structures": ({"structures_path": "empty"}, None, "empty (0 bytes)"),
    "negative_baseline": ({"baseline_alc": -0.4}, "baseline_alc", "baseline_alc"),
    "cells_per_ul_baseline": ({"baseline_alc": 1500}, "baseline_alc", "baseline_alc"),
    "zero_fractions": ({"n_fractions": 0}, "n_fractions", "n_fractions"),
    "unknown_modality": ({"modality": "laser"}, "modality", "laser"),
    "negative_beam_on": ({"beam_on_time_s": -5}, "beam_on_time_s", "beam_on_time_s"),
    "missing_beam_on": ({"beam_on_time_s": ""}, "beam_on_time_s", "beam-on time"),
}
#: case -> (row changes, words in the warnings column): scored, with what was assumed said.
WARNED = {
    "unknown_site": ({"site": "brain_xyz"}, "brain_xyz"),
    "fraction_dose": ({"dose_path": "dose_fraction"}, "FRACTION dose x 7"),
    "relative_dose": ({"dose_path": "dose_relative"}, "cannot be checked against a RELATIVE"),
}


def _write(corpus, path, cases):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for name, row in cases.items():
            row = {"patient_id": name, "plan_id": f"{name}_plan", **row}
            for key in ("dose_path", "structures_path"):
                if row[key] in corpus:
                    row[key] = corpus[row[key]]
                else:
                    row[key] = corpus["root"] / f"{row[key]}.dcm"
            w.writerow([row[c] for c in COLUMNS])
    return path


@pytest.fixture(scope="module")
def scored(corpus, bundle):
    cases = dict(GOOD)
    for name, (change, *_rest) in {**BAD, **WARNED}.items():
        base = BREAST_ROW if name in ("shifted_dose", "other_frame", "ct_as_dose", "no_scaling",
                                      "beam_dose", "unknown_units", "truncated", "fraction_dose",
                                      "empty_structures", "relative_dose") else KBP_ROW
        cases[name] = {**base, **change}
    cases["formula"] = {**KBP_ROW}
    alone = _write(corpus, corpus["root"] / "good.csv", GOOD)
    mixed = _write(corpus, corpus["root"] / "mixed.csv", cases)
    text = mixed.read_text().replace("formula,formula_plan", '"=HYPERLINK(""x"")",formula_plan')
    mixed.write_text(text)
    score_manifest(bundle, alone, corpus["root"] / "alone.csv", progress=False)
    score_manifest(bundle, mixed, corpus["root"] / "mixed_scores.csv", progress=False,
                   trajectories=corpus["root"] / "mixed_traj.csv")
    read = lambda p: pd.read_csv(p, dtype={"patient_id": str, "plan_id": str},
                                 keep_default_na=False)
    return read(corpus["root"] / "alone.csv"), read(corpus["root"] / "mixed_scores.csv"), cases


def _row(table, name):
    return table.set_index("plan_id").loc[f"{name}_plan"]


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_row_is_an_error_naming_patient_file_field(scored, corpus, name):
    _, table, _ = scored
    _change, field, words = BAD[name]
    row = _row(table, name)
    assert row["status"] == "error", (name, row["predicted_nadir"])
    assert row["predicted_nadir"] == ""  # no number for a refused row
    assert f"patient {name!r}" in row["error"], row["error"]
    assert words.lower() in row["error"].lower(), row["error"]
    if field is not None:
        assert f"field {field!r}" in row["error"], row["error"]
    assert str(corpus["root"]) not in row["error"] and "/" not in row["error"].split("file")[0]


@pytest.mark.parametrize("name", sorted(WARNED))
def test_assumptions_are_scored_with_a_warning(scored, name):
    _, table, _ = scored
    row = _row(table, name)
    assert row["status"] == "ok" and WARNED[name][1] in row["warnings"], row["warnings"]


def test_fraction_dose_scores_as_the_plan_dose(scored):
    _, table, _ = scored
    a, b = _row(table, "fraction_dose"), _row(table, "good_breast")
    assert float(a["predicted_nadir"]) == pytest.approx(float(b["predicted_nadir"]), rel=1e-3)


def test_good_rows_are_unchanged_by_their_bad_neighbours(scored):
    alone, mixed, _ = scored
    cols = ["predicted_nadir", "p_grade4", "mean_body_dose_gy", "mean_blood_dose_gy"]
    for name in GOOD:
        assert _row(mixed, name)["status"] == "ok"
        assert [float(v) for v in _row(alone, name)[cols]] == \
            [float(v) for v in _row(mixed, name)[cols]]


def test_one_row_per_input_row_in_manifest_order(scored):
    _, table, cases = scored
    assert table["plan_id"].tolist() == [f"{n}_plan" for n in cases]


def test_formula_cells_are_escaped(scored):
    _, table, _ = scored
    assert _row(table, "formula")["patient_id"] == "'=HYPERLINK(\"x\")"


def test_no_identifier_uid_or_absolute_path_in_any_output(scored, corpus):
    text = "".join((corpus["root"] / n).read_text() for n in ("mixed_scores.csv", "mixed_traj.csv"))
    assert BREAST_NAME not in text.lower() and BREAST_ID not in text
    assert not re.search(r"\b[0-2](?:\.\d+){4,}\b", text)  # no DICOM UID
    assert str(corpus["root"]) not in text and "/tmp" not in text


def test_a_course_past_the_model_horizon_is_scored_with_a_warning(corpus, bundle):
    long = {**KBP_ROW, "n_fractions": 70, "dose_per_fraction_gy": 1.0}  # 14 weeks; horizon 80 d
    manifest = _write(corpus, corpus["root"] / "long.csv", {"long": long})
    score_manifest(bundle, manifest, corpus["root"] / "long_scores.csv", progress=False)
    row = pd.read_csv(corpus["root"] / "long_scores.csv", keep_default_na=False).iloc[0]
    assert row["status"] == "ok" and "horizon" in row["warnings"]
