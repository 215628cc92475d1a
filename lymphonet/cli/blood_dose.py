"""``lymphonet blood-dose``: dose to circulating blood for organ doses or a real plan.

Examples::

    lymphonet blood-dose --organ-dose lung=2.0 --beam-on-time 10 --sex F --particles 100000 --json
    lymphonet blood-dose --dose RD.dcm --structures RS.dcm --fractions 30 --beams 10:20,40:20
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lymphonet.errors import InputError


def _parse_organ_doses(items: list[str]) -> dict[str, float]:
    """``["lung=2.0", "heart=1,liver=0.5"]`` -> ``{"lung": 2.0, "heart": 1.0, "liver": 0.5}``."""
    out: dict[str, float] = {}
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            name, sep, value = part.partition("=")
            try:
                if not sep:
                    raise ValueError
                dose = float(value)
            except ValueError:
                raise InputError(f"expected ORGAN=GY, got {part!r}", field="--organ-dose") from None
            if name.strip() in out:
                raise InputError(f"organ {name.strip()!r} given twice", field="--organ-dose")
            out[name.strip()] = dose
    return out


def _parse_organ_dvhs(items: list[str], n_fractions: int) -> dict:
    """``["lung=lung.csv,heart=heart.csv"]`` -> organ -> per-fraction :class:`RelativeDVH`."""
    from lymphonet.io.dvh_table import read_cumulative_dvh

    out = {}
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            name, sep, path = part.partition("=")
            if not sep or not path.strip():
                raise InputError(f"expected ORGAN=FILE, got {part!r}", field="--organ-dvh")
            if name.strip() in out:
                raise InputError(f"organ {name.strip()!r} given twice", field="--organ-dvh")
            dvh = read_cumulative_dvh(path.strip(), organ=name.strip())
            out[name.strip()] = dvh.per_fraction(n_fractions)
    return out


def _parse_beams(text: str | None) -> list[tuple[float, float]] | None:
    """``"10:20,40:20"`` -> ``[(10.0, 20.0), (40.0, 20.0)]`` (start:duration in s)."""
    if text is None:
        return None
    beams = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            start, duration = (float(x) for x in part.split(":"))
        except ValueError:
            raise InputError(f"expected START:DURATION in s, got {part!r}",
                             field="--beams") from None
        beams.append((start, duration))
    return beams


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "blood-dose", help="Monte-Carlo dose to circulating blood (HEDOS-type compartment model)",
        description="Simulate blood particles circulating through ICRP-89 compartments while the "
                    "beam is on; report the per-fraction blood-dose distribution.")
    src = p.add_argument_group("dose input (organ doses or a plan)")
    src.add_argument("--organ-dose", action="append", default=[], metavar="ORGAN=GY",
                     help="per-fraction organ dose, repeatable or comma separated (lung=2.0)")
    src.add_argument("--organ-dvh", action="append", default=[], metavar="ORGAN=FILE",
                     help="cumulative organ DVH of the course in HEDOS's format (CSV columns "
                          "dose_bins in Gy, coverage in %%), repeatable or comma separated; "
                          "divided by --fractions")
    src.add_argument("--dose", help="course dose file (DICOM RTDOSE or NIfTI/NRRD/MHA in Gy)")
    src.add_argument("--structures", help="structures (DICOM RTSTRUCT or NIfTI label map)")
    src.add_argument("--structure-map", help="structure name map file")
    src.add_argument("--fractions", type=int, default=1, help="number of fractions (default 1)")
    src.add_argument("--unknown-structures", choices=("error", "remainder"), default="error",
                     help="non-canonical, non-target structures: error (default) or remainder")
    t = p.add_argument_group("delivery and patient")
    t.add_argument("--beam-on-time", type=float, help="beam-on time per fraction, s")
    t.add_argument("--beams", help="beam windows START:DURATION,... in s (e.g. 10:20,40:20)")
    t.add_argument("--sex", default="M", choices=("M", "F"))
    t.add_argument("--tbv-l", type=float, help="total blood volume, L (default ICRP 89)")
    t.add_argument("--co-l-min", type=float, help="cardiac output, L/min (default ICRP 89)")
    e = p.add_argument_group("engine")
    e.add_argument("--particles", type=int, default=100_000)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--weibull-shape", type=float, default=2.0,
                   help="stay-time Weibull shape (2: HEDOS; 1: Markov)")
    e.add_argument("--course", action="store_true", help="also simulate the whole course")
    e.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--patient", help="patient id (for messages)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lymphonet.dosimetry import blood_dose as bd

    beams = _parse_beams(args.beams)
    if beams is None and args.beam_on_time is None:
        raise InputError("give --beam-on-time or --beams", field="--beam-on-time")
    engine = {"particles": args.particles, "seed": args.seed,
              "weibull_shape": args.weibull_shape, "device": args.device, "course": args.course}
    common = {"beam_on_time_s": args.beam_on_time, "beams": beams, "sex": args.sex,
              "tbv_l": args.tbv_l, "co_l_min": args.co_l_min, "patient": args.patient}
    if args.fractions < 1:
        raise InputError(f"must be >= 1, got {args.fractions}", field="--fractions")
    organ_doses = _parse_organ_doses(args.organ_dose)
    dvhs = _parse_organ_dvhs(args.organ_dvh, args.fractions)
    if set(organ_doses) & set(dvhs):
        raise InputError(f"organs {sorted(set(organ_doses) & set(dvhs))} given as a dose and as "
                         "a DVH", field="--organ-dvh")
    organ_doses.update(dvhs)
    if organ_doses and args.dose:
        raise InputError("give either --organ-dose / --organ-dvh or --dose/--structures, not "
                         "both", field="--organ-dose")
    if organ_doses:
        result = bd.blood_dose_from_organ_doses(organ_doses, n_fractions=args.fractions,
                                                **common, **engine)
    elif args.dose and args.structures:
        from lymphonet.io.loaders import read_dose, read_structures
        from lymphonet.io.plan import check_dose_consistency

        dose = read_dose(args.dose, patient=args.patient, n_fractions=args.fractions)
        structures = read_structures(args.structures, dose, structure_map=args.structure_map,
                                     patient=args.patient)
        if "body" in structures:  # the structures must hold the dose
            check_dose_consistency(dose, structures, None, patient=args.patient,
                                   structures_file=Path(args.structures).name)
        result = bd.blood_dose_for_plan(dose, structures, n_fractions=args.fractions,
                                        unknown=args.unknown_structures, **common, **engine)
    else:
        raise InputError("give --organ-dose ORGAN=GY, or --dose and --structures", field="--dose")
    summary = result.to_dict()
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"blood dose per fraction ({summary['particles']} particles, "
          f"{summary['beam_on_time_s']:g} s beam-on, {summary['device']}, "
          f"{summary['seconds']:.3f} s)")
    for key in ("mean_gy", "expected_mean_gy", "d2_gy", "d98_gy"):
        print(f"  {key:<18} {summary[key]:.4f} Gy")
    print(f"  {'fraction_any_dose':<18} {summary['fraction_any_dose']:.4f}")
    if "course_mean_gy" in summary:
        print(f"  {'course_mean_gy':<18} {summary['course_mean_gy']:.4f} Gy "
              f"({summary['n_fractions']} fractions)")
    print("  contributions (Gy per fraction):")
    for comp, gy in sorted(summary["contributions_gy"].items(), key=lambda kv: -kv[1]):
        print(f"    {comp:<22} {gy:.4f}")
    return 0
