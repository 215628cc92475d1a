"""``lymphonet literature-check``: the mechanistic model against published cohort statistics.

Example::

    lymphonet literature-check --table lymphonet/resources/literature_cohorts.csv --out report.csv \
        --plot report.png --n-per-row 200 --seed 0
    lymphonet literature-check --core recirculation --table \
        lymphonet/resources/literature_cohorts_extended.csv --out loso.csv --plot loso.png \
        --n-per-row 40 --n-phantoms 3

``--core recirculation`` fits the physiological recirculation core to the table and predicts every
study from a fit that left it out (leave-one-study-out); the held-out error is the headline. The
fitted population theta is written beside the report (``loso.theta.json``), the input of
``lymphonet particle-benefit``.
"""

from __future__ import annotations

import json
from pathlib import Path


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
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a named check misses (the acceptance run of issue 14)")
    p.add_argument("--core", choices=("two-population", "recirculation"),
                   default="two-population",
                   help="kinetics core: the current two-population model (in-sample check with "
                        "its shipped parameters) or the recirculation core (fitted, then "
                        "leave-one-study-out)")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from lymphonet.twin import literature as lit

    torch.set_num_threads(min(2, torch.get_num_threads()))
    table = lit.load_table(args.table or lit.DEFAULT_TABLE)
    if args.core == "recirculation":
        return _recirculation(args, table)
    params = lit.load_params(args.params) if args.params else None
    report = lit.literature_check(table, params, n_per_row=args.n_per_row, seed=args.seed,
                                  n_phantoms=args.n_phantoms, progress=not args.quiet)
    report.to_csv(args.out, index=False)
    if args.plot:
        lit.plot_report(report, args.plot)
    from dataclasses import fields

    used = params or lit.load_params()  # the shipped calibration when no --params is given
    values = {f.name: float(getattr(used, f.name).reshape(-1)[0]) for f in fields(used)}
    passed = _print_checks(report.rename(columns={"published": "value"}), "predicted", values)
    mae = report.groupby(report["statistic"].isin(lit.FRACTION_STATISTICS))["abs_error"].mean()
    print(report[["id", "statistic", "published", "predicted", "abs_error"]].round(3)
          .to_string(index=False))
    print(f"mean abs error: ALC statistics {mae.get(False, float('nan')):.3f} x10^9/L, "
          f"fractions {mae.get(True, float('nan')):.3f}; report written to {args.out}")
    return _verdict(args, passed)


def _recirculation(args, table) -> int:
    import torch

    from lymphonet.kinetics.recirculation import RECIRCULATION_NAMES
    from lymphonet.twin import literature as lit
    from lymphonet.twin import recirculation_fit as rf

    cohort = lit.build_virtual_cohort(table, args.n_per_row, n_phantoms=args.n_phantoms,
                                      seed=args.seed, progress=not args.quiet)
    rc = rf.RecirculationCohort.of(cohort, seed=args.seed)

    def progress(k, n, study):
        if not args.quiet:
            print(f"held-out fit {k}/{n}: {study} left out", flush=True)

    report = rf.leave_one_study_out(rc, progress=progress)
    theta_all = torch.tensor([report.attrs["theta_all"][n] for n in RECIRCULATION_NAMES],
                             dtype=torch.float64)
    report["in_field_share"] = rf.in_field_share(rc, theta_all).to_numpy()
    report.to_csv(args.out, index=False)
    theta_file = Path(args.out).with_suffix(".theta.json")
    theta_file.write_text(json.dumps({"theta": report.attrs["theta_all"],
                                      "params": _fitted_params(report)}, indent=2) + "\n")
    ident = rf.identifiability(rc, theta_all)
    ident.to_csv(Path(args.out).with_suffix(".identifiability.csv"), index=False)
    print("identifiability (Laplace approximation at the full fit):")
    print(ident.round(3).to_string(index=False))
    if args.plot:
        rf.plot_loso(report, args.plot)
    print(report[["id", "statistic", "value", "in_sample", "held_out"]].round(3)
          .to_string(index=False))
    passed = _print_checks(report, "held_out", _fitted_params(report))
    _print_maclennan_bound(report, _fitted_params(report))
    errors = {c: rf.weighted_error(report, c) for c in ("prior", "in_sample", "held_out")}
    print("weighted RMS residual (log ALC / arcsine-sqrt scale): "
          + ", ".join(f"{k} {v:.3f}" for k, v in errors.items())
          + f"; fitted theta {report.attrs['theta_all']}; report written to {args.out}")
    return _verdict(args, passed)


def _print_maclennan_bound(report, params: dict[str, float]) -> None:
    """What MacLennan's ratio asks of a direct-kill core, against the virtual patients' field."""
    from lymphonet.twin.literature_checks import maclennan_bound

    mac = report.loc[report["id"].str.startswith("maclennan1978_"), "in_field_share"]
    if mac.empty:
        return
    print(f"MacLennan bound: the virtual patients hold {100 * mac.mean():.2f}% of their "
          "lymphocytes in the field at a fraction (dose-weighted); a 20 fx / 5 fx ratio <= 0.55 "
          "needs, with complete refill, no recovery and linear kill:")
    for alpha in (1.0, params["alpha_per_gy"]):
        b = maclennan_bound(alpha)
        print(f"  alpha {alpha:.2f}/Gy: >= {100 * b.in_field_share:.1f}% in the field at the full "
              f"fraction dose and a baseline ALC >= {b.baseline_needed:.2f} x10^9/L")


def _verdict(args, passed: bool) -> int:
    """Exit code: 1 with ``--strict`` when a named check missed (the acceptance run), else 0."""
    if args.strict and not passed:
        print("named checks missed (--strict): exit 1")
        return 1
    return 0


def _fitted_params(report) -> dict[str, float]:
    import torch

    from lymphonet.kinetics.recirculation import RECIRCULATION_NAMES, recirculation_params

    theta = torch.tensor([report.attrs["theta_all"][n] for n in RECIRCULATION_NAMES],
                         dtype=torch.float64)
    return {k: float(v[0]) for k, v in recirculation_params(theta).items()}


def _print_checks(report, column: str, params: dict[str, float]) -> bool:
    """Print the named checks; True when every one passed."""
    from lymphonet.twin.literature_checks import named_checks

    print(f"named checks ({column}):")
    checks = named_checks(report, column, params)
    for c in checks:
        print(f"  {'PASS' if c.passed else 'MISS'} {c.name:<28} {c.value:.3f} (target {c.target})"
              + (f"  [{c.detail}]" if c.detail else ""))
    return all(c.passed for c in checks)
