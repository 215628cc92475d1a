"""Header scan of a messy export and grouping of files into patients and plans.

Grouping rules are checked twice: on the export tree built from real files (conftest) and on
hand-made scan records, where each rule (ambiguity, frame-of-reference links, MULTI_PLAN, ...) is
isolated.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lymphonet.ingest.group import group_records
from lymphonet.ingest.pseudonym import Pseudonymizer
from lymphonet.ingest.scan import ScanRecord, age_in_years, scan_tree

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")

PSEUDO = Pseudonymizer(b"g" * 32)


@pytest.fixture(scope="module")
def scanned(export_tree):
    return {Path(r.path).resolve(): r for r in scan_tree(export_tree.root)}


def test_scan_classifies_every_file(export_tree, scanned):
    files = {k: Path(v).resolve() for k, v in export_tree.files.items()}
    assert len(scanned) == len(files)  # every file found, whatever its name or folder
    assert scanned[files["stray"]].status == "not_dicom"
    assert scanned[files["broken"]].status == "unreadable"
    # the truncated dose still has a readable header: it is found here, it fails at conversion
    assert scanned[files["B_dose"]].status == "dicom"
    assert scanned[files["A2_beam2"]].dose_summation == "BEAM"
    assert scanned[files["A2_beam2"]].ref_beam_numbers == (2,)
    assert scanned[files["A2_beam1"]].ref_plan_uids == (export_tree.plan_uids["A2"],)
    assert scanned[files["A_struct"]].for_uid == scanned[files["A1_dose"]].for_uid != ""
    assert {scanned[files[k]].modality for k in ("A1_plan", "A1_dose", "A_struct", "A_ct")} == {
        "RTPLAN", "RTDOSE", "RTSTRUCT", "CT"}


def test_scan_in_worker_processes_gives_the_same_records(export_tree, scanned):
    parallel = scan_tree(export_tree.root, workers=2, chunk=3)
    assert {Path(r.path).resolve(): r for r in parallel} == scanned


def test_grouping_of_the_export(export_tree, scanned):
    g = group_records(scanned.values(), PSEUDO)
    people = export_tree.people
    assert set(g.patients) == {p.patient_id for p in people.values()}
    jobs = {j.plan_id: j for j in g.jobs}
    plan_id = {k: PSEUDO.plan(people[k[0]].patient_id, uid)
               for k, uid in export_tree.plan_uids.items()}
    assert set(jobs) == set(plan_id.values())
    a1, a2, b, c = (jobs[plan_id[k]] for k in ("A1", "A2", "B", "C"))
    f = {k: str(Path(v).resolve()) for k, v in export_tree.files.items()}
    assert (a1.dose_kind, a1.dose_files) == ("PLAN", (f["A1_dose"],))
    assert (a2.dose_kind, a2.dose_files, a2.dose_beams) == (
        "BEAM", (f["A2_beam1"], f["A2_beam2"]), (1, 2))
    assert a1.struct_file == a2.struct_file == f["A_struct"]  # both plans reference it
    assert a1.patient_id == a2.patient_id != b.patient_id
    assert (c.dose_kind, c.struct_file) == ("BEAM", None)
    assert b.dose_files == (f["B_dose"],)
    codes = {(i.code, i.plan_id or i.file) for i in g.issues}
    assert ("missing_structures", c.plan_id) in codes
    assert ("not_dicom", "misc/notes.txt") in codes and ("unreadable", "misc/broken.dcm") in codes
    assert g.counts["patients"] == 3 and g.counts["RTDOSE files"] == 5


def test_report_paths_are_redacted(export_tree, scanned):
    g = group_records(scanned.values(), PSEUDO)
    a = export_tree.people["A"]
    text = g.redactor("Doeberitz_Janelle_MRN-ZX81-4471/rt/RS.dcm")
    assert text == f"[name]_[name]_{PSEUDO.patient(a.patient_id)}/rt/RS.dcm"


# ------------------------------------------------------------------ rules on hand-made records

def _rec(sop, modality, **kw) -> ScanRecord:
    kw.setdefault("patient_key", "PAT-1")
    kw.setdefault("for_uid", "FOR-1")
    return ScanRecord(path=f"/x/{sop}", rel=sop, size=1, mtime_ns=1, status="dicom",
                      modality=modality, sop_uid=sop, **kw)


def _codes(g):
    return sorted((i.level, i.code) for i in g.issues)


def test_newest_plan_dose_is_chosen_and_ambiguity_reported():
    g = group_records([
        _rec("plan", "RTPLAN", ref_struct_uids=("ss",)), _rec("ss", "RTSTRUCT"),
        _rec("d-old", "RTDOSE", dose_summation="PLAN", ref_plan_uids=("plan",),
             created="20200101 1200"),
        _rec("d-new", "RTDOSE", dose_summation="PLAN", ref_plan_uids=("plan",),
             created="20200102 0900"),
        _rec("beam", "RTDOSE", dose_summation="BEAM", ref_plan_uids=("plan",)),
    ], PSEUDO)
    (job,) = g.jobs
    assert job.dose_kind == "PLAN" and job.dose_files == ("/x/d-new",)
    assert ("warning", "ambiguous_dose") in _codes(g)
    assert "plan dose used" in job.notes[0]


def test_dose_without_reference_links_by_frame_of_reference_only_when_unique():
    one = group_records([_rec("p", "RTPLAN"), _rec("d", "RTDOSE", dose_summation="PLAN")], PSEUDO)
    assert one.jobs[0].dose_files == ("/x/d",)
    assert "frame of reference" in one.jobs[0].notes[0]
    two = group_records([_rec("p1", "RTPLAN"), _rec("p2", "RTPLAN"),
                         _rec("d", "RTDOSE", dose_summation="PLAN")], PSEUDO)
    assert all(j.dose_files == () for j in two.jobs)
    assert ("warning", "ambiguous_plan") in _codes(two)
    assert _codes(two).count(("error", "missing_dose")) == 2


def test_multi_plan_sum_duplicates_verification_and_unused_objects_are_reported():
    g = group_records([
        _rec("p1", "RTPLAN"), _rec("p2", "RTPLAN", for_uid="FOR-2"),
        _rec("qa", "RTPLAN", plan_intent="VERIFICATION"),
        _rec("sum", "RTDOSE", dose_summation="MULTI_PLAN", ref_plan_uids=("p1", "p2")),
        _rec("d1", "RTDOSE", dose_summation="PLAN", ref_plan_uids=("p1",)),
        _rec("d1", "RTDOSE", dose_summation="PLAN", ref_plan_uids=("p1",)),  # same instance
        _rec("ss-other", "RTSTRUCT", for_uid="FOR-9"),
        _rec("reg", "REG"),
        _rec("q", "RTPLAN", patient_key="PAT-2"),
    ], PSEUDO)
    assert len(g.jobs) == 3  # p1, p2 and PAT-2's plan; the QA plan is skipped
    codes = _codes(g)
    for expected in [("warning", "orphan_dose"), ("info", "duplicate_instance"),
                     ("info", "unused_structure_set"), ("info", "unsupported_modality"),
                     ("error", "missing_dose")]:
        assert expected in codes
    assert len({j.patient_id for j in g.jobs}) == 2


def test_beam_doses_one_per_beam_number():
    g = group_records([
        _rec("p", "RTPLAN"),
        *[_rec(f"b{n}", "RTDOSE", dose_summation="BEAM", ref_plan_uids=("p",),
               ref_beam_numbers=(n,)) for n in (3, 1, 2)],
        _rec("b2-again", "RTDOSE", dose_summation="BEAM", ref_plan_uids=("p",),
             ref_beam_numbers=(2,), created="20990101"),
    ], PSEUDO)
    (job,) = g.jobs
    assert job.dose_beams == (1, 2, 3)
    assert job.dose_files == ("/x/b1", "/x/b2-again", "/x/b3")
    assert ("warning", "ambiguous_dose") in _codes(g)


@pytest.mark.parametrize(("age", "birth", "study", "years"), [
    ("065Y", "", "", 65), ("030M", "", "", 2), ("", "19510317", "20090316", 57),
    ("", "19510317", "20090317", 58), ("", "19000101", "20090101", 90), ("", "", "", None),
])
def test_age_in_years(age, birth, study, years):
    assert age_in_years(age, birth, study) == years


def test_files_without_patient_id_are_grouped_by_frame_and_reported():
    g = group_records([_rec("p", "RTPLAN", patient_key=""),
                       _rec("d", "RTDOSE", patient_key="", dose_summation="PLAN",
                            ref_plan_uids=("p",))], PSEUDO)
    (job,) = g.jobs
    assert job.dose_files == ("/x/d",)
    assert _codes(g).count(("warning", "no_patient_id")) == 2
    assert job.patient_id == PSEUDO.patient("no-patient-id:FOR-1")
