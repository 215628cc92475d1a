"""``lymphonet dvh``: DVH statistics per structure, one CSV row each."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dvh", help="DVH statistics per structure (CSV)",
        description="Read a dose (DICOM RTDOSE or NIfTI/NRRD/MHA, Gy) and structures (DICOM "
                    "RTSTRUCT or a label map with JSON names) and write one row per structure: "
                    "volume_cc, mean/min/max, D95, D2cc, V5Gy and more.")
    p.add_argument("--dose", required=True, type=Path, help="dose file (total course, Gy)")
    p.add_argument("--structures", required=True, type=Path, help="RTSTRUCT or label map")
    p.add_argument("--structure-map", type=Path, default=None,
                   help="YAML mapping clinic names to canonical organs (default: built-in map)")
    p.add_argument("--raw-names", action="store_true",
                   help="keep the structure names of the file instead of canonical organ names")
    p.add_argument("--prescription-gy", type=float, default=None,
                   help="course prescription (Gy): scales an RTDOSE in RELATIVE units, and is "
                        "checked against the dose maximum and a contoured target's D95")
    p.add_argument("--fractions", type=int, default=None,
                   help="number of fractions: adds EDIC (needs lungs, heart, body) and scales a "
                        "FRACTION RTDOSE to the course")
    p.add_argument("--max-dose-gy", type=float, default=None,
                   help="plausibility limit of the course maximum (default 150 Gy; raise only "
                        "for brachytherapy-like doses)")
    p.add_argument("--out", type=Path, default=None, help="CSV path (default: print to stdout)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lymphonet.dosimetry.dvh import dvh_table
    from lymphonet.errors import InputError
    from lymphonet.io.loaders import MAX_COURSE_DOSE_GY, canonicalise, read_dose, read_structures
    from lymphonet.io.plan import check_dose_consistency

    if args.fractions is not None and args.fractions < 1:
        raise InputError(f"must be an integer >= 1, got {args.fractions}", field="--fractions")
    if args.max_dose_gy is not None and not args.max_dose_gy > 0:
        raise InputError(f"must be > 0 Gy, got {args.max_dose_gy}", field="--max-dose-gy")
    dose = read_dose(args.dose, prescription_gy=args.prescription_gy, n_fractions=args.fractions,
                     max_dose_gy=MAX_COURSE_DOSE_GY if args.max_dose_gy is None
                     else args.max_dose_gy)
    raw = read_structures(args.structures, dose, canonical=False)
    if not any(m.any() for m in raw.masks.values()):
        raise InputError("no structure has a voxel on the dose grid: the structures and the dose "
                         "do not overlap (another patient, frame of reference or grid?)",
                         file=args.structures.name, field="structures")
    canonical = canonicalise(raw, args.structure_map)
    if "body" in canonical:
        relative = dose.metadata.get("DoseUnits") == "RELATIVE"  # scaled by it: no check
        check_dose_consistency(dose, canonical, None if relative else args.prescription_gy,
                               structures_file=args.structures.name)
    table = dvh_table(dose, raw if args.raw_names else canonical)
    empty = table.loc[table["empty"], "structure"].tolist()
    if empty:
        print(f"warning: {len(empty)} structure(s) have no voxel on the dose grid (rows marked "
              f"empty, statistics NaN): {', '.join(map(str, empty))}", file=sys.stderr)
    if args.fractions is not None:
        from lymphonet.dosimetry.edic import edic_from_structures

        try:
            edic = edic_from_structures(dose, canonical, args.fractions)
            print(f"EDIC: {float(edic):.3f} Gy ({args.fractions} fractions)")
        except InputError as err:  # the DVH stands without it
            print(f"warning: EDIC not computed: {err.message}", file=sys.stderr)
    if args.out is None:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        from lymphonet.schema import escape_cell

        table.assign(structure=table["structure"].map(escape_cell)).to_csv(args.out, index=False)
        print(f"wrote {len(table)} structures to {args.out}")
    return 0
