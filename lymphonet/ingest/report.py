"""The ingestion report: every finding as a row of a table, and a short summary in words.

Nothing found in the export is dropped silently: each file that is not used, each plan that could
not be converted or is incomplete, each lab row that could not be placed is an :class:`Issue`.
Issue codes (stable strings, to filter the table on):

=========================  =====================================================================
code                       meaning
=========================  =====================================================================
``not_dicom``              a file that is not DICOM (ignored)
``unreadable``             a DICOM file pydicom cannot parse (ignored)
``no_patient_id``          a DICOM file without PatientID (grouped by frame of reference)
``duplicate_instance``     a second file with an already seen SOPInstanceUID (ignored)
``unsupported_modality``   a DICOM object that ingestion does not use (RTRECORD, REG, ...)
``missing_dose``           a plan without any RTDOSE referring to it
``missing_structures``     a plan without a structure set
``structures_linked``      structure set found through a dose or the frame of reference (info)
``no_plan``                a patient with DICOM files but no RTPLAN
``ambiguous_dose``         several plan-level doses for one plan (the newest is used)
``ambiguous_structures``   several candidate structure sets (the newest is used)
``ambiguous_plan``         a dose whose plan cannot be decided (not used)
``orphan_dose``            an RTDOSE not attached to any plan
``unused_structure_set``   an RTSTRUCT no plan uses
``beam_dose_summed``       per-beam doses summed into a plan dose (info)
``fraction_dose_scaled``   a FRACTION dose multiplied by the number of fractions (info)
``resampled_dose``         a beam dose on a different grid, resampled onto the first
``incomplete_beam_doses``  beam doses do not cover every treatment beam of the plan
``unmatched_structures``   structure names the structure map does not know (kept, listed)
``conversion_error``       reading or writing a plan failed (message says why)
``incomplete_row``         a converted plan lacks a required manifest value
``no_baseline``            no lymphocyte count in the baseline window
``labs_without_plan``      lab rows of a patient with no converted plan
``no_day0``                lab rows of a patient without a first-fraction date
``lab_rows_unusable``      lab rows without value, unit or time, or with a unit not converted
``stale_plan``             a plan converted earlier that this export no longer contains
=========================  =====================================================================
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

REPORT_NAME = "ingest_report.csv"
SUMMARY_NAME = "ingest_summary.txt"
LEVELS = ("error", "warning", "info")


@dataclass(frozen=True)
class Issue:
    """One finding. Every text is pseudonymised/redacted before it becomes an Issue.

    Attributes:
        level: "error" (something not converted), "warning" (converted with a caveat, or data left
            out) or "info".
        code: One of the codes in the module docstring.
        message: Words a user can act on.
        patient_id: Pseudonym, if known.
        plan_id: Plan pseudonym, if known.
        file: File path relative to the export root (redacted), if any.
        count: Number of items (files, rows) the finding covers.
    """

    level: str
    code: str
    message: str
    patient_id: str = ""
    plan_id: str = ""
    file: str = ""
    count: int = 1


def issues_table(issues: Iterable[Issue]) -> pd.DataFrame:
    """Issues as a frame sorted by level (errors first), code, patient and plan."""
    rows = [asdict(i) for i in issues]
    columns = list(Issue.__dataclass_fields__)
    frame = pd.DataFrame(rows, columns=columns)
    if frame.empty:
        return frame
    frame["_lvl"] = frame["level"].map({lvl: i for i, lvl in enumerate(LEVELS)})
    frame = frame.sort_values(["_lvl", "code", "patient_id", "plan_id", "file"], kind="stable")
    return frame.drop(columns="_lvl").reset_index(drop=True)


def summary_text(counts: dict[str, int], issues: Iterable[Issue]) -> str:
    """A few lines: what was found and converted, then issue counts per level and code."""
    issues = list(issues)
    lines = ["lymphonet ingest summary"]
    lines += [f"  {key.replace('_', ' ')}: {value}" for key, value in counts.items()]
    by_code = collections.Counter((i.level, i.code) for i in issues)
    items = collections.Counter()
    for i in issues:
        items[(i.level, i.code)] += i.count
    if by_code:
        lines.append("findings (level, code: entries / items):")
        for level in LEVELS:
            for (lvl, code), n in sorted(by_code.items()):
                if lvl == level:
                    lines.append(f"  {level:7s} {code}: {n} / {items[(lvl, code)]}")
    else:
        lines.append("findings: none")
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | Path, counts: dict[str, int], issues: Iterable[Issue]
                 ) -> tuple[Path, Path, str]:
    """Write ``ingest_report.csv`` and ``ingest_summary.txt`` into ``out_dir``.

    Returns:
        ``(report_path, summary_path, summary_text)``.
    """
    out_dir = Path(out_dir)
    issues = list(issues)
    report_path = out_dir / REPORT_NAME
    issues_table(issues).to_csv(report_path, index=False)
    text = summary_text(counts, issues)
    summary_path = out_dir / SUMMARY_NAME
    summary_path.write_text(text, encoding="utf-8")
    return report_path, summary_path, text
