"""``lymphonet compare-plans``: predicted difference between plans of the same patient.

Example::

    lymphonet compare-plans --model models/default --manifest plans.csv --out compare.csv
"""

from __future__ import annotations


def register(subparsers) -> None:
    from lymphonet.cli.score import add_common

    p = subparsers.add_parser(
        "compare-plans", help="compare the plans of each patient (e.g. photon vs proton)",
        description="Score every plan, then for each patient with several plans report the "
                    "difference of each plan against the reference plan (the first photon plan, "
                    "else the first listed): nadir difference with a 90%% interval, grade "
                    "probability differences, P(the plan has the higher nadir); and plot the "
                    "trajectories.")
    add_common(p)
    p.add_argument("--out", required=True, help="output CSV (one row per non-reference plan)")
    p.add_argument("--plot", help="trajectory figure (default: <out stem>.png)")
    p.add_argument("--reference", help="modality of the reference plan (default: photon)",
                   default="photon")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from lymphonet.cli.score import options
    from lymphonet.scoring.compare import compare_plans

    plot = args.plot or str(Path(args.out).with_suffix(".png"))
    result = compare_plans(args.model, args.manifest, args.out, plot=plot,
                           workers=args.workers, options=options(args),
                           reference_modality=args.reference, progress=not args.no_progress)
    print(result.line())
    return 0 if result.n_error == 0 else 3
