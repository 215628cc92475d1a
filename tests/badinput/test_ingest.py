"""`lymphonet ingest` on bad inputs: an unusable dose is never the one a row is built from, bad lab
values are findings, and nothing identifying (name, ID, UID, absolute path) reaches an output or a
log, while structure names stay readable."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shutil

import pandas as pd
import pytest

from .conftest import BREAST, BREAST_ID, BREAST_NAME

SECRET = "fedcba9876543210fedcba9876543210-badinput-secret"


def _ingest(tree, tmp_path, labs=None):
    from lymphonet.cli import main

    secret = tmp_path / "keys" / "secret.key"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(SECRET)
    out, log = io.StringIO(), logging.StreamHandler(io.StringIO())
    root = logging.getLogger()
    root.addHandler(log)
    old, root.level = root.level, logging.DEBUG
    argv = ["ingest", tree, "--out", tmp_path / "cohort", "--secret-file", secret, "--no-progress"]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main([str(a) for a in argv + (["--labs", labs] if labs else [])])
    finally:
        root.removeHandler(log)
        root.level = old
    text = out.getvalue() + log.stream.getvalue()
    assert "Traceback" not in text
    return code, text, tmp_path / "cohort"


def _all_text(folder) -> str:
    import gzip

    parts = []
    for p in folder.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            parts.append((gzip.decompress(data) if p.suffix == ".gz" else data)
                         .decode("latin-1"))
    return "\n".join(parts)


@pytest.fixture()
def breast_tree(tmp_path):
    if not BREAST.is_dir():
        pytest.skip("shared breast-boost case not found")
    tree = tmp_path / "export" / "boost_breast_123456"  # folders named after the patient
    tree.mkdir(parents=True)
    for name in ("rtdose.dcm", "rtss.dcm", "rtplan.dcm", "ct.0.dcm"):
        shutil.copy(BREAST / name, tree / name)
    return tree.parent


def test_unscaled_newer_dose_is_passed_over_for_the_usable_one(breast_tree, tmp_path):
    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(breast_tree / "boost_breast_123456" / "rtdose.dcm")
    del ds.DoseGridScaling
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceCreationDate, ds.InstanceCreationTime = "29991231", "235959"
    ds.save_as(breast_tree / "boost_breast_123456" / "rtdose_newer.dcm")
    _code, _text, cohort = _ingest(breast_tree, tmp_path)
    report = pd.read_csv(cohort / "ingest_report.csv", dtype=str, keep_default_na=False)
    assert "DoseGridScaling" in " ".join(report.astype(str).values.ravel())
    manifest = cohort / "manifest.csv"
    assert not manifest.exists() or len(pd.read_csv(manifest)) == 0  # no complete row from it


def test_negative_lab_count_is_a_finding_not_a_value(breast_tree, tmp_path):
    labs = tmp_path / "labs.csv"
    labs.write_text("patient_id,datetime,test,value,unit,first_fraction_date\n"
                    f"{BREAST_ID},2024-03-01 08:00,Lymphocytes,1.5,10^9/L,2024-03-04\n"
                    f"{BREAST_ID},2024-03-11 08:00,Lymphocytes,-0.4,10^9/L,2024-03-04\n")
    code, text, cohort = _ingest(breast_tree, tmp_path, labs)
    assert code == 0, text
    alc = pd.read_csv(cohort / "labs.csv")["alc"]
    assert (alc > 0).all() and len(alc) == 1
    report = (cohort / "ingest_report.csv").read_text()
    assert "negative count" in report


def test_breast_case_keeps_structure_names_and_leaks_nothing(breast_tree, tmp_path):
    code, text, cohort = _ingest(breast_tree, tmp_path)
    assert code == 0, text
    everything = (_all_text(cohort) + text)
    assert BREAST_NAME not in everything.lower() and BREAST_ID not in everything
    assert "boost" not in everything.lower().replace("breast-boost", "")
    assert not re.search(r"\b[0-2](?:\.\d+){4,}\b", everything)  # no DICOM UID
    assert str(breast_tree) not in everything  # no absolute input path (outputs may be named)
    report = (cohort / "ingest_report.csv").read_text() + text
    assert "[name]" not in report.replace("[name]_", "")  # folder names are redacted, not ROIs


def test_a_dose_in_cgy_labelled_gy_is_refused_not_ingested(breast_tree, tmp_path):
    import pydicom

    path = breast_tree / "boost_breast_123456" / "rtdose.dcm"
    ds = pydicom.dcmread(path)
    ds.DoseGridScaling = f"{float(ds.DoseGridScaling) * 100:.10g}"  # max 1468 "Gy"
    ds.save_as(path)
    _, _, cohort = _ingest(breast_tree, tmp_path)
    report = (cohort / "ingest_report.csv").read_text()
    assert "plausibility limit" in report
    assert not (cohort / "manifest.csv").exists() or len(pd.read_csv(cohort / "manifest.csv")) == 0
    assert not list(cohort.rglob("dose.nii.gz"))  # nothing written from it
