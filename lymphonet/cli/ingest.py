"""``lymphonet ingest``: a clinic's DICOM export (+ lab export) -> a pseudonymised cohort folder."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

_DEFAULT_SECRET = Path("~/.config/lymphonet/pseudonym.key")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest", help="build a cohort from a DICOM RT export and a lab export",
        description="Walk DICOM_ROOT (any layout), group RTPLAN / RTDOSE / RTSTRUCT into plans by "
                    "their references, write NIfTI dose and structures per plan, a manifest and a "
                    "labs table under pseudonymous ids, and a report of everything found and not "
                    "used. Re-running converts only plans whose inputs changed.")
    p.add_argument("dicom_root", type=Path, metavar="DICOM_ROOT", help="export folder")
    p.add_argument("--out", required=True, type=Path, metavar="COHORT_DIR",
                   help="cohort folder to write (created)")
    p.add_argument("--labs", type=Path, default=None, metavar="LABS.csv",
                   help="long lab export: patient id, date/time, test name or code, value, unit")
    p.add_argument("--start-dates", type=Path, default=None, metavar="DATES.csv",
                   help="patient_id, first_fraction_date (day 0 of the lab table) where the lab "
                        "export has no first_fraction_date column")
    p.add_argument("--lab-config", type=Path, default=None, metavar="LABS.yaml",
                   help="lab columns / test names / LOINC codes / baseline window overrides")
    p.add_argument("--structure-map", type=Path, default=None, metavar="MAP.yaml",
                   help="structure-name map (default: built-in)")
    p.add_argument("--secret-file", type=Path, default=None,
                   help="pseudonym key, kept OUTSIDE the cohort (created if absent; default "
                        f"$LYMPHONET_SECRET_FILE or {_DEFAULT_SECRET})")
    p.add_argument("--mapping-out", type=Path, default=None, metavar="MAP.csv",
                   help="also write original id -> pseudonym here (outside the cohort)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lymphonet.errors import InputError
    from lymphonet.ingest import LabConfig, ingest

    if args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}", field="workers")
    secret = args.secret_file or Path(os.environ.get("LYMPHONET_SECRET_FILE", _DEFAULT_SECRET))
    result = ingest(
        args.dicom_root, args.out, secret_file=secret, labs=args.labs,
        structure_map=args.structure_map, workers=args.workers, mapping_file=args.mapping_out,
        lab_config=LabConfig.from_yaml(args.lab_config) if args.lab_config else None,
        start_dates=args.start_dates, progress=not args.no_progress)
    print(result.summary, end="")
    print(f"manifest: {result.manifest_path}\nincomplete rows: {result.incomplete_path}\n"
          f"report: {result.report_path}")
    return 0
