"""``lymphonet demo``: the end-to-end mechanistic pipeline on one simulated patient."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="end-to-end demo on a simulated patient (photon vs proton)",
        description="Build a simulated phantom, plan it with photons and protons, read the plans "
                    "back as NIfTI, compute DVH, EDIC and blood dose, and predict the lymphocyte "
                    "course of each plan. Needs no data, server or GPU.")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    p.add_argument("--site", default="esophagus", help="simulated site (see docs/twin.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline-alc", type=float, default=1.8, help="10^9/L")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lymphonet.errors import InputError
    from lymphonet.twin.demo import run_demo
    from lymphonet.twin.sites import SITES

    if args.site not in SITES:
        raise InputError(f"unknown site; choose from {sorted(SITES)}", field="--site")
    run_demo(args.out, site=args.site, seed=args.seed, baseline_alc=args.baseline_alc)
    return 0
