"""``lymphonet simulate``: the mechanistic ALC trajectory of one plan."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate", help="mechanistic ALC trajectory for one plan (CSV + plot)",
        description="Blood dose from circulation through the dose field, lymphocyte kill and "
                    "recovery: writes day, alc (10^9/L) and CTCAE grade for each day.")
    p.add_argument("--dose", required=True, type=Path, help="total course dose (DICOM or NIfTI, Gy)")
    p.add_argument("--structures", required=True, type=Path, help="RTSTRUCT or label map")
    p.add_argument("--structure-map", type=Path, default=None, help="clinic -> canonical names")
    p.add_argument("--fractions", required=True, type=int, help="number of fractions")
    p.add_argument("--dose-per-fraction-gy", type=float, default=None,
                   help="prescribed dose per fraction (Gy): the schedule is then checked against "
                        "the dose file (strongly advised; without it, it cannot be)")
    p.add_argument("--max-dose-gy", type=float, default=None,
                   help="plausibility limit of the course maximum (default 150 Gy)")
    p.add_argument("--fraction-days", default=None,
                   help="comma-separated fraction days (default: weekdays from day 0)")
    p.add_argument("--beam-on-time", required=True, type=float, help="beam-on time per fraction (s)")
    p.add_argument("--modality", choices=["photon", "proton", "carbon"], default="photon",
                   help="recorded only: doses are RBE-weighted Gy, no special case inside")
    p.add_argument("--baseline-alc", required=True, type=float, help="pre-treatment ALC (10^9/L)")
    p.add_argument("--sex", choices=["F", "M"], default="M", help="reference circulation")
    p.add_argument("--chemo", choices=["none", "concurrent", "sequential"], default="none")
    p.add_argument("--params", type=Path, default=None,
                   help="kinetic parameters JSON (from fit-kinetics / calibrate); "
                        "default: population values")
    p.add_argument("--days", type=int, default=365, help="length of the simulated course (days)")
    p.add_argument("--particles", type=int, default=50_000, help="blood particles")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="trajectory CSV")
    p.add_argument("--plot", type=Path, default=None, help="PNG plot of the trajectory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lymphonet.dosimetry.plan_features import features_of_plan
    from lymphonet.errors import InputError
    from lymphonet.io.plan import read_plan_files
    from lymphonet.kinetics.simulate import load_theta, plot_trajectories, simulate

    days = None
    if args.fraction_days:
        try:
            days = [float(x) for x in args.fraction_days.split(",")]
        except ValueError:
            raise InputError("must be comma-separated numbers", field="--fraction-days") from None
        if len(days) != args.fractions:
            raise InputError(f"{len(days)} days given for {args.fractions} fractions",
                             field="--fraction-days")
    if args.baseline_alc <= 0:
        raise InputError("must be > 0 (10^9/L)", field="--baseline-alc")
    from lymphonet.io.loaders import MAX_COURSE_DOSE_GY

    rx = None if args.dose_per_fraction_gy is None else args.fractions * args.dose_per_fraction_gy
    if rx is None:
        print("warning: --dose-per-fraction-gy not given: the fraction count cannot be checked "
              "against the dose file", file=sys.stderr)
    if args.max_dose_gy is not None and not args.max_dose_gy > 0:
        raise InputError("must be > 0 Gy", field="--max-dose-gy")
    plan = read_plan_files(args.dose, args.structures, n_fractions=args.fractions,
                           beam_on_time_s=args.beam_on_time, structure_map=args.structure_map,
                           fraction_days=days, sex=args.sex, prescription_gy=rx,
                           max_dose_gy=args.max_dose_gy or MAX_COURSE_DOSE_GY)
    features = features_of_plan(plan, particles=args.particles, seed=args.seed)
    (traj,) = simulate([features], [args.baseline_alc], chemo=[args.chemo],
                       fraction_days=[plan.fraction_days],
                       theta=load_theta(args.params), n_days=args.days)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    traj.to_frame().to_csv(args.out, index=False, float_format="%.5g")
    print(f"{args.modality} plan, {args.fractions} fractions, beam-on {args.beam_on_time:g} s: "
          f"mean blood dose {features.mean_blood_dose_gy:.3f} Gy/fraction "
          f"({100 * features.fraction_blood_any_dose:.1f}% of blood dosed), mean body dose "
          f"{features.mean_body_dose_gy:.2f} Gy")
    print(f"nadir {traj.nadir_alc:.3f} x10^9/L on day {traj.nadir_day:.0f} "
          f"(CTCAE grade {traj.nadir_grade}); trajectory written to {args.out}")
    if args.plot is not None:
        plot_trajectories({args.modality: traj}, args.plot)
        print(f"plot written to {args.plot}")
    return 0
