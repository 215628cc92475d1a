"""``lymphonet inspect``: what a file or folder holds (modality, grid, structures, plan)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect", help="show what a DICOM / NIfTI file or a folder holds",
        description="Summarise each file: DICOM RT modality, dose grid and units, structure names, "
                    "plan fractions and beams; NIfTI/NRRD/MHA grids and label names. Never prints "
                    "patient names or other identifiers.")
    p.add_argument("path", type=Path, help="file or folder")
    p.add_argument("--json", action="store_true", help="print JSON (one object per file)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lymphonet.io.inspect import inspect_path

    summaries = inspect_path(args.path)
    if args.json:
        print(json.dumps(summaries, indent=2, default=str))
        return 0
    skipped = [item for item in summaries if "skipped" in item]
    for item in summaries:
        if "skipped" in item:
            continue
        print(f"{item['file']}")
        for key, value in item.items():
            if key != "file":
                print(f"  {key}: {_short(value)}")
    if skipped:
        print(f"({len(skipped)} other file(s) skipped: not DICOM or a volume file)")
    return 0


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return "\n    " + "\n    ".join(
            ", ".join(f"{k}={_short(v)}" for k, v in item.items()) for item in value)
    return str(value)
