"""``lymphonet fit-kinetics``: population fit of the kinetic parameters to a cohort's labs."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_FIT = ("alpha_per_gy", "blood_share", "fast_recovery_days", "slow_recovery_days",
               "baseline_loss", "chemo_rate_per_day")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit-kinetics", help="fit population kinetic parameters to a cohort's lab series",
        description="MAP fit (with priors) of the mechanistic model's population parameters to "
                    "the labs of a cohort, with Laplace uncertainty and an identifiability check. "
                    "Plans that fail to load are reported and left out; the rest are fitted.")
    p.add_argument("--manifest", required=True, type=Path, help="cohort manifest (CSV/Parquet)")
    p.add_argument("--labs", required=True, type=Path, help="labs table (patient_id, day, alc)")
    p.add_argument("--alc-unit", choices=["10^9/L", "cells/uL"], default=None,
                   help="unit of ALC columns without an alc_unit column")
    p.add_argument("--fit", default=",".join(DEFAULT_FIT),
                   help="comma-separated parameters to fit (others stay at the prior)")
    p.add_argument("--prior-sd", type=float, default=1.0, help="prior sd in theta space")
    p.add_argument("--default-beam-on-time", type=float, default=None,
                   help="beam-on time (s) for rows without one (default: such rows are errors)")
    p.add_argument("--particles", type=int, default=20_000, help="blood particles per plan")
    p.add_argument("--max-iter", type=int, default=100, help="L-BFGS iterations")
    p.add_argument("--out", required=True, type=Path, help="parameters JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from lymphonet.dosimetry.plan_features import features_of_plan
    from lymphonet.errors import InputError
    from lymphonet.io.cohort import load_cohort
    from lymphonet.io.plan import read_plan
    from lymphonet.kinetics import PARAM_NAMES, LymphocyteKinetics
    from lymphonet.kinetics.calibrate import Observations, fit_population
    from lymphonet.kinetics.simulate import inputs_from_features

    names = [n.strip() for n in args.fit.split(",") if n.strip()]
    unknown = sorted(set(names) - set(PARAM_NAMES))
    if unknown:
        raise InputError(f"unknown parameters {unknown}; choose from {list(PARAM_NAMES)}",
                         field="--fit")
    cohort = load_cohort(args.manifest, labs=args.labs, alc_unit=args.alc_unit)
    plans, features, failed = [], [], []
    for record in tqdm(cohort.plans, desc="plan features", unit="plan"):
        try:
            plan = read_plan(record, cohort.root,
                             default_beam_on_time_s=args.default_beam_on_time)
            features.append(features_of_plan(plan, particles=args.particles))
            plans.append(record)
        except InputError as err:
            failed.append(str(err.redacted(Path.cwd())))
    for message in failed:
        print(f"left out: {message}")
    if not plans:
        raise InputError("no plan could be loaded", file=args.manifest)
    labs = cohort.labs
    key = "plan_id" if "plan_id" in labs.columns and labs["plan_id"].notna().all() else "patient_id"
    ids = [getattr(r, key) for r in plans]
    after = labs[labs["day"] > 0]
    obs = Observations.from_long(after[key], after["day"], after["alc"], ids)
    inputs = inputs_from_features(features, [r.baseline_alc for r in plans],
                             fraction_days=[r.fraction_days for r in plans],
                             chemo=[r.chemo or "none" for r in plans], dtype=torch.float64)
    inputs.validate(ids)
    print(f"fitting {names} to {int(obs.mask.sum())} lab values of {len(plans)} plans ...")
    fit = fit_population(LymphocyteKinetics(), inputs, obs, fit_names=names,
                         prior_sd=args.prior_sd, max_iter=args.max_iter)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fit.to_json(args.out)
    print(fit.summary())
    print(f"residual sd of log ALC {fit.sigma:.3f}; converged: {fit.converged}; "
          f"written to {args.out}")
    return 0
