"""``lymphonet blood-dose``: dose to circulating blood for organ doses or a real plan.

Examples::

    lymphonet blood-dose --organ-dose lung=2.0 --beam-on-time 10 --sex F --particles 100000 --json
    lymphonet blood-dose --organ-dvh lung=lung.csv,tumor=tumor.csv --tumor-host lung --fractions 30 \
        --beams 10:10 --sex F
    lymphonet blood-dose --dose RD.dcm --structures RS.dcm --fractions 30 --beams 10:20,40:20
    lymphonet blood-dose --dose RD.dcm --structures RS.dcm --fractions 30 \
        --beam-doses b1.nii.gz@10:20,b2.nii.gz@40:20

Runs on the CPU without importing torch (``--device cuda`` uses the torch engine). The JSON also
reports the two ends of the intra-organ correlation (``tau_c`` = 0 and infinity) beside the chosen
value, so the sensitivity to it is visible.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace

from lymphonet.errors import InputError
from lymphonet.io.dicom_plan import DEFAULT_BEAM_GAP_S


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


def _tau(text: str) -> float:
    return math.inf if text.strip().lower() in ("inf", "infinity") else float(text)


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
    src.add_argument("--composites", choices=("error", "spread"), default="error",
                     help="a composite structure (great_vessels, vena_cava, bowel) without its "
                          "parts: error (default) or spread over its parts' compartments (warned)")
    src.add_argument("--beam-doses", metavar="FILE[@START:DUR],...",
                     help="per-beam course dose maps, each delivered in its own window (s), or "
                          "timed from --rtplan; with --structures (they must sum to --dose when "
                          "both are given)")
    src.add_argument("--rtplan", help="RTPLAN whose beams time the --beam-doses RTDOSEs")
    src.add_argument("--beam-gap", type=float, default=DEFAULT_BEAM_GAP_S, metavar="S",
                     help=f"pause between beams when timed from --rtplan (default "
                          f"{DEFAULT_BEAM_GAP_S:g} s, an assumption reported in the notes)")
    src.add_argument("--blood-fraction", metavar="FILE",
                     help="relative blood content per voxel (perfusion map) on the dose grid; "
                          "default uniform within each organ")
    src.add_argument("--tumor-host", help="organ the tumour compartment sits in parallel to "
                                          "(HEDOS: lung); dose from --organ-dvh/--organ-dose "
                                          "tumor=..., or the GTV of --structures")
    src.add_argument("--tumor-fraction", type=float,
                     help="tumour share of the host's blood and flow (default 0.05 for organ "
                          "doses, the GTV's measured share for a dose map)")
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
    e.add_argument("--tau-c", type=_tau, default=None, metavar="S",
                   help="intra-organ correlation time, s: the voxel is redrawn at Poisson times "
                        "of this mean interval (0: HEDOS-like per-step limit, inf: one voxel per "
                        "stay; default 1 s)")
    e.add_argument("--threads", type=int, help="CPU threads (default: the cores available)")
    e.add_argument("--course", action="store_true", help="also simulate the whole course")
    e.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--patient", help="patient id (for messages)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _engine(args) -> dict:
    from lymphonet.dosimetry.blood_dose import DEFAULT_TAU_C_S

    return {"particles": args.particles, "seed": args.seed, "weibull_shape": args.weibull_shape,
            "device": args.device, "course": args.course, "threads": args.threads,
            "tau_c_s": DEFAULT_TAU_C_S if args.tau_c is None else args.tau_c}


def _check_route(args, organ_route: bool) -> None:
    """Refuse options the chosen route would ignore and timing options that contradict."""
    plan_only = {"--dose": args.dose, "--structures": args.structures,
                 "--beam-doses": args.beam_doses, "--rtplan": args.rtplan,
                 "--blood-fraction": args.blood_fraction, "--structure-map": args.structure_map}
    given = [flag for flag, value in plan_only.items() if value]
    if organ_route and given:
        raise InputError(f"{', '.join(given)} belong to the dose-map route, not to organ doses",
                         field=given[0])
    timing = [f for f, v in (("--beam-on-time", args.beam_on_time), ("--beams", args.beams),
                             ("--beam-doses", args.beam_doses)) if v is not None]
    if len(timing) > 1:
        raise InputError(f"give one of {', '.join(timing)}: each sets the beam timing",
                         field=timing[1])
    if args.tumor_fraction is not None and (not args.tumor_host or not organ_route):
        raise InputError("--tumor-fraction sets the tumour share for organ doses with "
                         "--tumor-host; with a dose map the GTV's share is measured",
                         field="--tumor-fraction")
    if args.rtplan and not args.beam_doses:
        raise InputError("--rtplan only times --beam-doses", field="--rtplan")


def _simulate(args, beams, engine):
    """One :class:`BloodDoseResult` from the organ-dose or the dose-map route."""
    from lymphonet.dosimetry import blood_dose as bd

    common = {"beam_on_time_s": args.beam_on_time, "beams": beams, "sex": args.sex,
              "tbv_l": args.tbv_l, "co_l_min": args.co_l_min, "patient": args.patient,
              "composites": args.composites, "tumor_host": args.tumor_host}
    organ_doses = _parse_organ_doses(args.organ_dose)
    dvhs = _parse_organ_dvhs(args.organ_dvh, args.fractions)
    if set(organ_doses) & set(dvhs):
        raise InputError(f"organs {sorted(set(organ_doses) & set(dvhs))} given as a dose and as "
                         "a DVH", field="--organ-dvh")
    organ_doses.update(dvhs)
    _check_route(args, bool(organ_doses))
    if organ_doses:
        if args.tumor_fraction is not None:
            common["tumor_fraction"] = args.tumor_fraction
        return bd.blood_dose_from_organ_doses(organ_doses, n_fractions=args.fractions,
                                              **common, **engine)
    if not (args.structures and args.dose):
        raise InputError("give --organ-dose ORGAN=GY / --organ-dvh ORGAN=FILE, or --dose and "
                         "--structures (with --beam-doses for time-resolved delivery)",
                         field="--dose")
    from lymphonet.cli._blood_dose_plan import read_plan_inputs

    dose, structures, extra = read_plan_inputs(args)
    if extra.get("beam_doses"):
        common["beams"] = extra.pop("beams")
    notes = extra.pop("notes", [])
    result = bd.blood_dose_for_plan(dose, structures, n_fractions=args.fractions,
                                    unknown=args.unknown_structures,
                                    **common, **extra, **engine)
    return replace(result, notes=(*result.notes, *notes))


def run(args: argparse.Namespace) -> int:
    beams = _parse_beams(args.beams)
    if beams is None and args.beam_on_time is None and not args.beam_doses:
        raise InputError("give --beam-on-time, --beams or --beam-doses", field="--beam-on-time")
    if args.fractions < 1:
        raise InputError(f"must be >= 1, got {args.fractions}", field="--fractions")
    engine = _engine(args)
    result = _simulate(args, beams, engine)
    summary = result.to_dict()
    summary["tau_c_ends"] = {}
    for label, tau in (("0", 0.0), ("inf", math.inf)):
        end = _simulate(args, beams, {**engine, "tau_c_s": tau, "course": False})
        summary["tau_c_ends"][label] = {"d2_gy": end.d2_gy, "fraction_any_dose":
                                        end.fraction_any_dose, "mean_gy": end.mean_gy}
    if args.json:
        print(json.dumps(summary))
        return 0
    _print(summary)
    return 0


def _print(summary: dict) -> None:
    print(f"blood dose per fraction ({summary['particles']} particles, "
          f"{summary['beam_on_time_s']:g} s beam-on, tau_c {summary['tau_c_s']} s, "
          f"{summary['device']}, {summary['seconds']:.3f} s)")
    for key in ("mean_gy", "expected_mean_gy", "d2_gy", "d98_gy"):
        print(f"  {key:<18} {summary[key]:.4f} Gy")
    print(f"  {'fraction_any_dose':<18} {summary['fraction_any_dose']:.4f}")
    for label, end in summary["tau_c_ends"].items():
        print(f"  at tau_c = {label:<4}      d2 {end['d2_gy']:.4f} Gy, any dose "
              f"{end['fraction_any_dose']:.4f}")
    if "course_mean_gy" in summary:
        print(f"  {'course_mean_gy':<18} {summary['course_mean_gy']:.4f} Gy "
              f"({summary['n_fractions']} fractions)")
    print("  contributions (Gy per fraction):")
    for comp, gy in sorted(summary["contributions_gy"].items(), key=lambda kv: -kv[1]):
        print(f"    {comp:<22} {gy:.4f}")
    for note in summary["notes"]:
        print(f"  warning: {note}")
