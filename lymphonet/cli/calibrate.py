"""``lymphonet calibrate``: fit population kinetic parameters to published cohort statistics.

Example::

    lymphonet calibrate --table lymphonet/resources/literature_cohorts.csv --out params.json \
        [--labs-cohort COHORT_DIR] [--fit alpha_per_gy,blood_share,...]
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate", help="fit population kinetic parameters to a literature table (and labs)",
        description="Fit the identifiable population kinetic parameters to the statistics of a "
                    "literature table over virtual cohorts, optionally jointly with the lab "
                    "series of a cohort folder; write physical values, theta, provenance and a "
                    "before/after fit report as JSON.")
    p.add_argument("--table", default=None,
                   help="literature table CSV (default: the shipped literature_cohorts.csv)")
    p.add_argument("--out", required=True, help="output params JSON")
    p.add_argument("--labs-cohort", default=None,
                   help="cohort folder (manifest + labs) fitted jointly with the table")
    p.add_argument("--default-beam-on-time", type=float, default=None,
                   help="beam-on time per fraction (s) for --labs-cohort plans whose manifest "
                        "gives none (default: such a plan is an error)")
    p.add_argument("--fit", default=None,
                   help="comma-separated parameter names (default: the identifiable subset)")
    p.add_argument("--n-per-row", type=int, default=200, help="virtual patients per row (200)")
    p.add_argument("--n-phantoms", type=int, default=6, help="anatomies per site (6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-iter", type=int, default=150, help="optimiser iterations (150)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from lymphonet.twin import literature as lit
    from lymphonet.twin import literature_fit as fit_mod

    torch.set_num_threads(min(2, torch.get_num_threads()))
    table_path = args.table or lit.DEFAULT_TABLE
    table = lit.load_table(table_path)
    names = fit_mod.FIT_NAMES if not args.fit else [n.strip() for n in args.fit.split(",") if n.strip()]
    cohort = lit.build_virtual_cohort(table, args.n_per_row, n_phantoms=args.n_phantoms,
                                      seed=args.seed, progress=not args.quiet)
    labs = None
    if args.labs_cohort:
        inputs, obs, _ = fit_mod.lab_cohort_inputs(
            args.labs_cohort, seed=args.seed, progress=not args.quiet,
            default_beam_on_time_s=args.default_beam_on_time)
        labs = (inputs, obs)
    fit = fit_mod.calibrate_to_table(cohort, names, max_iter=args.max_iter, labs=labs)
    fit_mod.write_params_json(fit, args.out, table_path=table_path, n_per_row=args.n_per_row,
                          seed=args.seed, n_phantoms=args.n_phantoms,
                          extra={"labs_cohort": str(args.labs_cohort) if labs else None})
    print(fit.report[["id", "published", "before", "after"]].round(3).to_string(index=False))
    for name in fit.names:
        print(f"{name:22s} {fit.params[name]:.4g}")
    print(f"loss {fit.loss_before:.2f} -> {fit.loss_after:.2f} ({fit.message}); wrote {args.out}")
    return 0
