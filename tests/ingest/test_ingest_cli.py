"""``lymphonet ingest`` end to end: cohort contract, dose summation, report, pseudonymisation,
incremental re-runs."""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

from lymphonet.cli import main
from lymphonet.ingest.pseudonym import Pseudonymizer
from lymphonet.io.cohort import load_cohort, load_manifest
from lymphonet.io.dicom import read_rtdose, read_rtplan
from lymphonet.io.loaders import read_structures
from lymphonet.io.nifti import read_volume

from .conftest import BREAST, SECRET

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")
LAB_ONLY_ID = "MRN-LB33-7781"


def _labs_csv(path: Path, people) -> Path:
    a, c = people["A"].patient_id, people["C"].patient_id
    path.write_text(
        "patient_id,datetime,test,code,value,unit,first_fraction_date\n"
        f"{a},2024-03-01 08:00,Lymphocytes,,1500,cells/uL,2024-03-04\n"
        f"{a},2024-02-01 08:00,Lymphocytes,,2500,cells/uL,2024-03-04\n"
        f"{a},2024-03-11 09:00,Lymph abs,731-0,0.8,10^9/L,2024-03-04\n"
        f"{a},2024-03-12 09:00,Lymphocytes,,0.7,mmol/L,2024-03-04\n"
        f"{c},2024-01-09 06:00,Lymph%,,25,%,2024-01-10\n"
        f"{c},2024-01-09 06:00,WBC,,6.0,10^3/uL,2024-01-10\n"
        f"{LAB_ONLY_ID},2024-01-09 07:30,Lymphocytes,,1.1,10^9/L,2024-01-10\n")
    return path


def _run(argv) -> tuple[int, str]:
    """Run the CLI capturing stdout, stderr and every log record of this process."""
    out, handler = io.StringIO(), logging.StreamHandler(io.StringIO())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main([str(a) for a in argv])
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    return code, out.getvalue() + handler.stream.getvalue()


@pytest.fixture(scope="module")
def ingested(export_tree, tmp_path_factory):
    base = tmp_path_factory.mktemp("ingested")
    secret = base / "keys" / "secret.key"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    out = base / "cohort"
    labs = _labs_csv(base / "labs.csv", export_tree.people)
    code, text = _run(["ingest", export_tree.root, "--out", out, "--labs", labs,
                       "--secret-file", secret, "--mapping-out", base / "ids.csv",
                       "--workers", 2, "--no-progress"])
    assert code == 0, text
    pseudo = Pseudonymizer(SECRET.encode())
    plan_ids = {k: pseudo.plan(export_tree.people[k[0]].patient_id, uid)
                for k, uid in export_tree.plan_uids.items()}
    return {"out": out, "text": text, "pseudo": pseudo, "plan_ids": plan_ids, "base": base}


def test_manifest_loads_under_the_cohort_contract(ingested, export_tree):
    cohort = load_cohort(ingested["out"])
    ids = ingested["plan_ids"]
    assert {p.plan_id for p in cohort.plans} == {ids["A1"], ids["A2"], ids["C"]}
    a1, a2, c = (cohort.plan(ids[k]) for k in ("A1", "A2", "C"))
    plan = read_rtplan(BREAST / "rtplan.dcm")
    assert (a1.n_fractions, a1.dose_per_fraction_gy, a1.modality) == (7, 2.0, "photon")
    assert a1.beam_on_time_s == pytest.approx(sum(b.meterset_mu for b in plan.beams) / 400 * 60)
    # the re-plan keeps beams 1 and 2 only: 97 + 87 MU at 400 MU/min
    assert a2.beam_on_time_s == pytest.approx((97 + 87) / 400 * 60)
    assert a1.patient_id == a2.patient_id == ingested["pseudo"].patient(
        export_tree.people["A"].patient_id)
    assert a1.baseline_alc == pytest.approx(1.5)  # last count within 14 days before day 0
    assert c.baseline_alc == pytest.approx(0.25 * 6.0)
    assert (a1.sex, a1.extras["ingest_status"]) == ("F", "complete")
    assert c.structures_path is None and c.n_fractions == 30
    labs = cohort.labs
    assert sorted(labs["patient_id"].unique()) == sorted({a1.patient_id, c.patient_id})
    a_days = labs[labs["patient_id"] == a1.patient_id]["day"].round(3).tolist()
    assert a_days == [round(-31 - 16 / 24, 3), round(-3 + 8 / 24, 3), round(7 + 9 / 24, 3)]


def test_plan_and_beam_doses_equal_the_original(ingested):
    ids, out = ingested["plan_ids"], ingested["out"]
    original = read_rtdose(BREAST / "rtdose.dcm")
    plans = {p.plan_id: p for p in load_manifest(out / "manifest.csv")}
    plan_dose = read_volume(plans[ids["A1"]].dose_path)
    beam_sum = read_volume(plans[ids["A2"]].dose_path)
    assert plan_dose.same_grid(original) and beam_sum.same_grid(original)
    np.testing.assert_array_equal(plan_dose.array, original.array)
    # 0.3 + 0.7 of the stored pixels (scalings written with 7 significant digits)
    np.testing.assert_allclose(beam_sum.array, original.array, rtol=1e-6, atol=1e-6)
    assert plans[ids["A2"]].extras["dose_kind"] == "BEAM"
    structures = read_structures(plans[ids["A1"]].structures_path, plan_dose)
    assert {"heart", "lung_left", "body"} <= set(structures.names)
    # pydicom's RELATIVE beam dose is scaled by its plan's prescription
    prescription_gy = read_rtplan(get_testdata_file("rtplan.dcm")).prescription_gy
    expected = read_rtdose(get_testdata_file("rtdose.dcm"), prescription_gy=prescription_gy)
    c_dose = read_volume(plans[ids["C"]].dose_path)
    np.testing.assert_allclose(c_dose.array, expected.array, rtol=1e-6)
    assert plans[ids["C"]].dose_per_fraction_gy * 30 == pytest.approx(prescription_gy)


def test_failures_and_leftovers_are_reported(ingested):
    out, ids, pseudo = ingested["out"], ingested["plan_ids"], ingested["pseudo"]
    incomplete = pd.read_csv(out / "manifest_incomplete.csv", dtype=str, keep_default_na=False)
    assert incomplete["plan_id"].tolist() == [ids["B"]]
    assert incomplete["ingest_status"].tolist() == ["error"]
    assert "truncated" in incomplete["ingest_notes"].iloc[0]
    report = pd.read_csv(out / "ingest_report.csv", dtype=str, keep_default_na=False)
    found = set(zip(report["code"], report["plan_id"] + report["file"]))
    assert ("conversion_error", ids["B"]) in found
    assert ("not_dicom", "misc/notes.txt") in found and ("unreadable", "misc/broken.dcm") in found
    assert ("missing_structures", ids["C"]) in found
    assert ("beam_dose_summed", ids["A2"]) in found
    assert ("unmatched_structures", ids["A1"]) in found
    lab_only = pseudo.patient(LAB_ONLY_ID)
    assert set(report.loc[report["code"] == "labs_without_plan", "patient_id"]) == {lab_only}
    assert "not converted" in " ".join(report.loc[report["code"] == "lab_rows_unusable",
                                                  "message"])
    left = pd.read_csv(out / "labs_incomplete.csv", dtype=str)
    assert left["patient_id"].tolist() == [lab_only]
    summary = (out / "ingest_summary.txt").read_text()
    assert "manifest rows: 3" in summary and "incomplete rows: 1" in summary
    assert "error   conversion_error: 1" in summary


def _all_text(folder: Path) -> str:
    chunks = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            chunks.append(gzip.decompress(data) if path.suffix == ".gz" else data)
            chunks.append(path.name.encode())
    return b"\n".join(chunks).decode("latin-1")


def test_no_identifier_reaches_the_cohort_or_the_logs(ingested, export_tree):
    text = _all_text(ingested["out"]).lower() + ingested["text"].lower()
    tokens = [t for p in export_tree.people.values() for t in p.tokens] + [LAB_ONLY_ID]
    assert tokens and all(len(t) >= 7 for t in tokens)  # long enough not to occur by chance
    leaked = [t for t in tokens if t.lower() in text]
    assert leaked == []
    # the export's folders are named after patient A: report paths are redacted
    report = (ingested["out"] / "ingest_report.csv").read_text()
    assert "[name]" in report or "Doeberitz" not in report
    ids = pd.read_csv(ingested["base"] / "ids.csv", dtype=str)
    expected = {p.patient_id: ingested["pseudo"].patient(p.patient_id)
                for p in export_tree.people.values()}
    expected[LAB_ONLY_ID] = ingested["pseudo"].patient(LAB_ONLY_ID)
    assert dict(zip(ids["original_patient_id"], ids["patient_id"])) == expected


def test_rerun_is_incremental(small_tree, secret_file, tmp_path):
    out = tmp_path / "cohort"
    args = ["ingest", small_tree.root, "--out", out, "--secret-file", secret_file,
            "--no-progress"]
    code, text = _run(args)
    assert code == 0 and "plans converted: 1" in text
    dose = next(out.glob("plans/*/dose.nii.gz"))
    stamp = dose.stat().st_mtime_ns
    code, text = _run(args)
    assert code == 0 and "plans converted: 0" in text and "plans unchanged: 1" in text
    assert dose.stat().st_mtime_ns == stamp
    plan_path = small_tree.files["C_plan"]
    ds = pydicom.dcmread(plan_path)
    ds.FractionGroupSequence[0].NumberOfFractionsPlanned = 25
    ds.save_as(plan_path)
    code, text = _run(args)
    assert code == 0 and "plans converted: 1" in text
    row = pd.read_csv(out / "manifest_incomplete.csv", dtype=str, keep_default_na=False)
    assert row["n_fractions"].tolist() == ["25"]  # no labs: incomplete (no baseline)
    assert "baseline_alc" in row["ingest_notes"].iloc[0]
    assert load_cohort(out).plans == []  # the (empty) manifest still loads


def test_secret_inside_the_cohort_is_refused(small_tree, tmp_path):
    out = tmp_path / "cohort"
    code, text = _run(["ingest", small_tree.root, "--out", out, "--secret-file",
                       out / "secret.key", "--no-progress"])
    assert code == 2 and "outside the cohort" in text
    assert not (out / "secret.key").exists()


# ------------------------------------------------------------------ conversion rules, one plan

def _job(small_tree, dose_files, kind, beams, **kw):
    from lymphonet.ingest.group import PlanJob

    return PlanJob("Pc", "Pc-1", str(small_tree.files["C_plan"]), tuple(map(str, dose_files)),
                   kind, beams, None, **kw)


def test_beam_doses_on_different_grids_are_resampled_and_summed(small_tree, tmp_path):
    from lymphonet.ingest.convert import convert_plan

    dose_path = small_tree.files["C_dose"]
    ds = pydicom.dcmread(dose_path)
    ds.ImagePositionPatient[0] = float(ds.ImagePositionPatient[0]) + float(ds.PixelSpacing[1])
    shifted = tmp_path / "shifted.dcm"
    ds.save_as(shifted)
    result = convert_plan(_job(small_tree, [dose_path, shifted], "BEAM", (1,)), tmp_path / "c")
    assert result.status == "converted", result.events
    assert "resampled_dose" in [code for _, code, _ in result.events]
    prescription_gy = read_rtplan(small_tree.files["C_plan"]).prescription_gy
    d = read_rtdose(dose_path, prescription_gy=prescription_gy).array
    total = read_volume(tmp_path / "c" / result.row["dose_path"]).array
    # the shifted copy puts voxel i-1's value at voxel i; outside its grid (i = 0) it is 0
    np.testing.assert_allclose(total[..., 1:], d[..., 1:] + d[..., :-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(total[..., 0], d[..., 0], rtol=1e-6)


def test_fraction_dose_scaling_and_missing_beam_doses(small_tree, tmp_path):
    from lymphonet.ingest.convert import convert_plan

    dose_path = small_tree.files["C_dose"]
    plan = read_rtplan(small_tree.files["C_plan"])
    single = read_rtdose(dose_path, prescription_gy=plan.prescription_gy).array
    # a course dose read as one fraction's is 30x too high: refused as implausible, not written
    wrong = convert_plan(_job(small_tree, [dose_path], "FRACTION", ()), tmp_path / "w")
    assert wrong.status == "error" and "plausibility limit" in wrong.events[-1][2]
    one_fx = pydicom.dcmread(dose_path)  # a true fraction dose: the course / n_fractions
    one_fx.DoseGridScaling = f"{float(one_fx.DoseGridScaling) / plan.n_fractions:.10g}"
    one_fx.save_as(tmp_path / "fraction.dcm")
    frac = convert_plan(_job(small_tree, [tmp_path / "fraction.dcm"], "FRACTION", ()),
                        tmp_path / "f")
    np.testing.assert_allclose(read_volume(tmp_path / "f" / frac.row["dose_path"]).array,
                               single, rtol=1e-5, atol=1e-5)
    partial = convert_plan(_job(small_tree, [dose_path], "BEAM", (7,)), tmp_path / "b")
    assert partial.status == "incomplete"
    assert "incomplete_beam_doses" in [code for _, code, _ in partial.events]
    broken = convert_plan(_job(small_tree, [tmp_path / "absent.dcm"], "PLAN", ()), tmp_path / "x")
    assert broken.status == "error" and "does not exist" in broken.events[-1][2]
