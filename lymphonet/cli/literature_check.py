"""``lymphonet literature-check``: the mechanistic model against published cohort statistics.

Example::

    lymphonet literature-check --table lymphonet/resources/literature_cohorts.csv --out report.csv \
        --plot report.png --n-per-row 200 --seed 0
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "literature-check", help="compare the mechanistic model with published cohort statistics",
        description="Simulate a virtual cohort for every row of a literature table (site phantoms "
                    "planned with the row's modality and schedule, varied baseline ALC and "
                    "kinetic parameters) and compare predicted with published statistics.")
    p.add_argument("--table", default=None,
                   help="literature table CSV (default: the shipped literature_cohorts.csv)")
    p.add_argument("--params", default=None,
                   help="population parameters JSON (default: the priors in lymphonet.kinetics)")
    p.add_argument("--out", required=True, help="report CSV")
    p.add_argument("--plot", default=None, help="predicted-vs-published PNG")
    p.add_argument("--n-per-row", type=int, default=200, help="virtual patients per row (200)")
    p.add_argument("--n-phantoms", type=int, default=6, help="anatomies per site (6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from lymphonet.twin import literature as lit

    torch.set_num_threads(min(2, torch.get_num_threads()))
    table = lit.load_table(args.table or lit.DEFAULT_TABLE)
    params = lit.load_params(args.params) if args.params else None
    report = lit.literature_check(table, params, n_per_row=args.n_per_row, seed=args.seed,
                                  n_phantoms=args.n_phantoms, progress=not args.quiet)
    report.to_csv(args.out, index=False)
    if args.plot:
        lit.plot_report(report, args.plot)
    mae = report.groupby(report["statistic"].isin(lit.FRACTION_STATISTICS))["abs_error"].mean()
    print(report[["id", "statistic", "published", "predicted", "abs_error"]].round(3)
          .to_string(index=False))
    print(f"mean abs error: ALC statistics {mae.get(False, float('nan')):.3f} x10^9/L, "
          f"fractions {mae.get(True, float('nan')):.3f}; report written to {args.out}")
    return 0
