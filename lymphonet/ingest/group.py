"""Group scanned DICOM files into patients and plans by their references.

Links followed (DICOM PS3.3 RT modules), strongest first:

* RTDOSE -> plan: ``ReferencedRTPlanSequence``; a dose without a resolvable reference is attached
  to the patient's only plan of the same ``FrameOfReferenceUID`` (said in the plan's notes), and is
  reported as ``orphan_dose`` / ``ambiguous_plan`` otherwise.
* plan -> structure set: the plan's ``ReferencedStructureSetSequence``, else the one its doses
  reference, else the structure sets sharing the plan's (or its dose's) frame of reference.
* Dose choice per plan: a plan-level dose (DoseSummationType PLAN, or absent) is preferred; else
  per-beam doses (BEAM), one per beam number, are summed at conversion; else a FRACTION dose is
  scaled by the number of fractions. Several candidates of one kind: the newest (creation stamp,
  then UID) is used and the choice is reported. MULTI_PLAN sums and session/control-point doses
  are reported, not used: every plan becomes its own manifest row.
* Patients are keyed by PatientID; files without one are grouped by frame of reference and
  reported. Plans with PlanIntent VERIFICATION (phantom QA) are reported and skipped.

Every file that ends up in no plan is an :class:`~lymphonet.ingest.report.Issue`.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass, field

from lymphonet.ingest.pseudonym import Pseudonymizer, Redactor, identifier_replacements
from lymphonet.ingest.report import Issue
from lymphonet.ingest.scan import IMAGE_MODALITIES, RT_MODALITIES, ScanRecord

_PLAN_LEVEL = ("PLAN", "")
_UNUSED_SUMMATIONS = ("MULTI_PLAN", "BEAM_SESSION", "FRACTION_SESSION", "CONTROL_POINT", "RECORD")


@dataclass(frozen=True)
class PlanJob:
    """Everything the conversion of one plan needs (picklable; holds no raw identifier).

    Attributes:
        patient_id: Patient pseudonym.
        plan_id: Plan pseudonym.
        plan_file: RTPLAN path.
        dose_files: RTDOSE paths (several only for per-beam doses); empty when none was found.
        dose_kind: "PLAN", "BEAM", "FRACTION" or "" (no dose).
        dose_beams: For BEAM doses, the beam number of each dose file (-1 if not stated).
        struct_file: RTSTRUCT path or None.
        sex: "F", "M" or "".
        age_years: Whole years or None.
        notes: Grouping remarks for the manifest's ``ingest_notes``.
        inputs: ``(path, size, mtime_ns)`` of every input file (for the change check).
    """

    patient_id: str
    plan_id: str
    plan_file: str
    dose_files: tuple[str, ...]
    dose_kind: str
    dose_beams: tuple[int, ...]
    struct_file: str | None
    sex: str = ""
    age_years: int | None = None
    notes: tuple[str, ...] = ()
    inputs: tuple[tuple[str, int, int], ...] = ()


@dataclass
class Grouping:
    """Result of :func:`group_records`.

    Attributes:
        jobs: One job per plan, sorted by plan id.
        issues: Findings (redacted).
        patients: Raw PatientID -> pseudonym (in memory; written only on request).
        redactor: Replaces every identifier seen in the export.
        counts: Files and objects found, for the summary.
    """

    jobs: list[PlanJob] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    patients: dict[str, str] = field(default_factory=dict)
    redactor: Redactor = field(default_factory=Redactor)
    counts: dict[str, int] = field(default_factory=dict)


def _newest(records: list[ScanRecord]) -> ScanRecord:
    return max(records, key=lambda r: (r.created, r.sop_uid))


def _patient_key(record: ScanRecord) -> str:
    return record.patient_key or f"no-patient-id:{record.for_uid or record.study_uid}"


def group_records(records: Iterable[ScanRecord], pseudo: Pseudonymizer) -> Grouping:
    """Group scanned files into plan jobs and findings.

    Args:
        records: Output of :func:`~lymphonet.ingest.scan.scan_tree`.
        pseudo: Pseudonymizer (patient and plan ids of the output).

    Returns:
        :class:`Grouping`.
    """
    out = Grouping()
    records = list(records)
    for rec in records:
        if rec.status == "dicom":
            key = _patient_key(rec)
            pid = out.patients.setdefault(key, pseudo.patient(key))
            out.redactor.update(identifier_replacements(rec.patient_key, pid, rec.name_parts,
                                                        [rec.birth_date]))
    red = out.redactor
    counts = collections.Counter(files=len(records))
    seen: dict[str, ScanRecord] = {}
    by_patient: dict[str, list[ScanRecord]] = collections.defaultdict(list)
    for rec in records:
        if rec.status != "dicom":
            level = "info" if rec.status == "ignored" else "warning"
            code = {"not_dicom": "not_dicom", "ignored": "not_dicom"}.get(rec.status, "unreadable")
            out.issues.append(Issue(level, code, rec.message, file=red(rec.rel)))
            counts[rec.status + "_files"] += 1
            continue
        if rec.sop_uid in seen:
            out.issues.append(Issue("info", "duplicate_instance", "same SOPInstanceUID as "
                                    f"{red(seen[rec.sop_uid].rel)}; ignored",
                                    out.patients[_patient_key(rec)], file=red(rec.rel)))
            continue
        seen[rec.sop_uid] = rec
        if not rec.patient_key:
            out.issues.append(Issue("warning", "no_patient_id", "file has no PatientID; grouped by "
                                    "frame of reference", out.patients[_patient_key(rec)],
                                    file=red(rec.rel)))
        by_patient[_patient_key(rec)].append(rec)
    counts["patients"] = len(by_patient)
    for key in sorted(by_patient, key=lambda k: out.patients[k]):
        _group_patient(key, by_patient[key], pseudo, out, counts)
    out.jobs.sort(key=lambda j: j.plan_id)
    out.counts = dict(counts)
    return out


def _group_patient(key: str, recs: list[ScanRecord], pseudo: Pseudonymizer, out: Grouping,
                   counts: collections.Counter) -> None:
    red, pid = out.redactor, out.patients[key]
    by_mod: dict[str, list[ScanRecord]] = collections.defaultdict(list)
    for rec in recs:
        by_mod[rec.modality].append(rec)
    for modality, items in sorted(by_mod.items()):
        counts[f"{modality or 'no-modality'} files"] += len(items)
        if modality not in RT_MODALITIES and modality not in IMAGE_MODALITIES:
            out.issues.append(Issue("info", "unsupported_modality",
                                    f"{len(items)} {modality or 'no-modality'} file(s) not used",
                                    pid, count=len(items)))
    plans = []
    for rec in by_mod["RTPLAN"]:
        if rec.plan_intent == "VERIFICATION":
            out.issues.append(Issue("info", "unsupported_modality", "verification (QA) plan "
                                    "skipped", pid, file=red(rec.rel)))
        else:
            plans.append(rec)
    if not plans:
        out.issues.append(Issue("warning", "no_plan", "patient has DICOM files but no RTPLAN",
                                pid, count=len(recs)))
    plan_uids = {p.sop_uid for p in plans}
    doses_of: dict[str, list[ScanRecord]] = collections.defaultdict(list)
    notes_of: dict[str, list[str]] = collections.defaultdict(list)
    for dose in by_mod["RTDOSE"]:
        targets = [u for u in dose.ref_plan_uids if u in plan_uids]
        if dose.dose_summation in _UNUSED_SUMMATIONS or len(targets) > 1:
            out.issues.append(Issue("warning", "orphan_dose", f"DoseSummationType "
                                    f"{dose.dose_summation or '-'} refers to {len(targets)} plans: "
                                    "not used (one manifest row per plan)", pid,
                                    file=red(dose.rel)))
            continue
        if not targets:
            same_frame = [p for p in plans if dose.for_uid and p.for_uid == dose.for_uid]
            if len(same_frame) == 1 or (len(plans) == 1 and not same_frame and not dose.for_uid):
                target = (same_frame or plans)[0]
                targets = [target.sop_uid]
                notes_of[target.sop_uid].append("dose linked to plan by frame of reference")
            else:
                code = "ambiguous_plan" if len(same_frame) > 1 else "orphan_dose"
                out.issues.append(Issue("warning", code, f"RTDOSE refers to no plan in the export "
                                        f"({len(same_frame)} plan(s) share its frame of "
                                        "reference): not used", pid, file=red(dose.rel)))
                continue
        doses_of[targets[0]].append(dose)
    structs = {s.sop_uid: s for s in by_mod["RTSTRUCT"]}
    used_structs: set[str] = set()
    for plan in plans:
        plan_id = pseudo.plan(key, plan.sop_uid)
        job = _plan_job(plan, plan_id, pid, doses_of[plan.sop_uid], structs,
                        notes_of[plan.sop_uid], out)
        if job.struct_file is not None:
            used_structs.add(next(u for u, s in structs.items() if s.path == job.struct_file))
        out.jobs.append(job)
    for uid, struct in structs.items():
        if uid not in used_structs:
            out.issues.append(Issue("info", "unused_structure_set", "RTSTRUCT used by no plan",
                                    pid, file=red(struct.rel)))


def _plan_job(plan: ScanRecord, plan_id: str, pid: str, doses: list[ScanRecord],
              structs: dict[str, ScanRecord], notes: list[str], out: Grouping) -> PlanJob:
    red = out.redactor
    notes = list(notes)
    usable = [d for d in doses if not d.unusable]
    for d in doses:
        if d.unusable and usable:
            out.issues.append(Issue("warning", "unusable_dose", f"RTDOSE not used: {d.unusable}",
                                    pid, plan_id, file=red(d.rel)))
    doses = usable or doses  # none usable: the conversion reports why
    plan_level = [d for d in doses if d.dose_summation in _PLAN_LEVEL]
    beams = [d for d in doses if d.dose_summation == "BEAM"]
    fractions = [d for d in doses if d.dose_summation == "FRACTION"]
    chosen: list[ScanRecord] = []
    kind, dose_beams = "", ()
    if plan_level:
        chosen, kind = [_newest(plan_level)], "PLAN"
        if len(plan_level) > 1:
            out.issues.append(Issue("warning", "ambiguous_dose", f"{len(plan_level)} plan doses "
                                    f"for one plan; the newest ({red(chosen[0].rel)}) is used",
                                    pid, plan_id, count=len(plan_level)))
        if beams or fractions:
            notes.append(f"plan dose used; {len(beams) + len(fractions)} beam/fraction dose(s) "
                         "not needed")
    elif beams:
        per_beam: dict[int, list[ScanRecord]] = collections.defaultdict(list)
        for i, d in enumerate(beams):
            number = d.ref_beam_numbers[0] if len(d.ref_beam_numbers) == 1 else -1 - i
            per_beam[number].append(d)
        for number, items in per_beam.items():
            if len(items) > 1:
                out.issues.append(Issue("warning", "ambiguous_dose", f"{len(items)} doses for "
                                        f"beam {number}; the newest is used", pid, plan_id,
                                        count=len(items)))
        chosen = [_newest(per_beam[n]) for n in sorted(per_beam)]
        kind, dose_beams = "BEAM", tuple(n if n >= 0 else -1 for n in sorted(per_beam))
    elif fractions:
        chosen, kind = [_newest(fractions)], "FRACTION"
        if len(fractions) > 1:
            out.issues.append(Issue("warning", "ambiguous_dose", f"{len(fractions)} fraction "
                                    "doses; the newest is used", pid, plan_id,
                                    count=len(fractions)))
    else:
        out.issues.append(Issue("error", "missing_dose", "no RTDOSE refers to this plan", pid,
                                plan_id, file=red(plan.rel)))
    struct = _structure_set(plan, chosen, structs, pid, plan_id, out)
    inputs = [plan, *chosen] + ([struct] if struct is not None else [])
    return PlanJob(
        patient_id=pid, plan_id=plan_id, plan_file=plan.path,
        dose_files=tuple(d.path for d in chosen), dose_kind=kind, dose_beams=dose_beams,
        struct_file=None if struct is None else struct.path, sex=plan.sex,
        age_years=plan.age_years, notes=tuple(notes),
        inputs=tuple((r.path, r.size, r.mtime_ns) for r in inputs),
    )


def _structure_set(plan: ScanRecord, doses: list[ScanRecord], structs: dict[str, ScanRecord],
                   pid: str, plan_id: str, out: Grouping) -> ScanRecord | None:
    for refs, how in ((plan.ref_struct_uids, ""),
                      (tuple(u for d in doses for u in d.ref_struct_uids), "dose reference")):
        found = [structs[u] for u in dict.fromkeys(refs) if u in structs]
        if found:
            return _pick(found, how, pid, plan_id, out)
    frames = {plan.for_uid, *(d.for_uid for d in doses)} - {""}
    found = [s for s in structs.values() if s.for_uid in frames]
    if found:
        return _pick(found, "frame of reference", pid, plan_id, out)
    out.issues.append(Issue("warning", "missing_structures", "no structure set found for this "
                            "plan (dose converted without structures)", pid, plan_id))
    return None


def _pick(found: list[ScanRecord], how: str, pid: str, plan_id: str, out: Grouping) -> ScanRecord:
    chosen = _newest(found)
    if len(found) > 1:
        out.issues.append(Issue("warning", "ambiguous_structures", f"{len(found)} candidate "
                                f"structure sets{' by ' + how if how else ''}; the newest "
                                f"({out.redactor(chosen.rel)}) is used", pid, plan_id,
                                count=len(found)))
    elif how:
        out.issues.append(Issue("info", "structures_linked", f"structure set found by {how} "
                                "(the plan does not reference it)", pid, plan_id))
    return chosen
