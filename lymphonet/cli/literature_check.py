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
import math
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
    p.add_argument("--pairs-n-per-row", type=int, default=1000,
                   help="recirculation core: virtual patients per row when the photon/particle "
                        "pairs are predicted again for their checks (1000; 0 = use the fit's)")
    p.add_argument("--pairs-n-phantoms", type=int, default=12,
                   help="recirculation core: anatomies per site for those pairs (12; 0 = the "
                        "fit's --n-phantoms)")
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
    if min(args.pairs_n_per_row, args.pairs_n_phantoms) < 0:
        from lymphonet.errors import InputError

        raise InputError("--pairs-n-per-row and --pairs-n-phantoms must be >= 0",
                         field="pairs_n_per_row")
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


def _loso(args, table):
    """The recirculation core's fit and its leave-one-study-out report.

    Args:
        args: The parsed command line.
        table: The validated literature table.

    Returns:
        ``(rc, report, theta_all)``: the virtual cohort, the per-row report (with the in-field
        share and, for photon/particle pairs, ``held_out_pairs`` on more patients) and the full
        fit's theta ``[P]``. Writes the in-field parts beside ``--out`` (``.in_field.csv``).
    """
    import torch

    from lymphonet.kinetics.recirculation import RECIRCULATION_NAMES
    from lymphonet.twin import literature as lit
    from lymphonet.twin import recirculation_fit as rf
    from lymphonet.twin.literature_checks import photon_particle_pairs

    cohort = lit.build_virtual_cohort(table, args.n_per_row, n_phantoms=args.n_phantoms,
                                      seed=args.seed, progress=not args.quiet)
    rc = rf.RecirculationCohort.of(cohort, seed=args.seed)

    def progress(k, n, study):
        if not args.quiet:
            print(f"held-out fit {k}/{n}: {study} left out", flush=True)

    report = rf.leave_one_study_out(rc, progress=progress)
    theta_all = torch.tensor([report.attrs["theta_all"][n] for n in RECIRCULATION_NAMES],
                             dtype=torch.float64)
    parts = rf.in_field_share(rc, theta_all)
    parts.round(6).to_csv(Path(args.out).with_suffix(".in_field.csv"))
    report["in_field_share"] = parts["in_field_share"].to_numpy()
    ids = sorted({row["id"] for pair in photon_particle_pairs(report) for row in pair})
    if ids and args.pairs_n_per_row > 0:
        large = rf.held_out_at_size(report, table, ids, args.pairs_n_per_row,
                                    n_phantoms=args.pairs_n_phantoms or args.n_phantoms,
                                    seed=args.seed)
        report["held_out_pairs"] = report["id"].map(large)
    return rc, report, theta_all


def _recirculation(args, table) -> int:
    from lymphonet.kinetics.recirculation import RECIRCULATION_NAMES
    from lymphonet.twin import recirculation_fit as rf

    rc, report, theta_all = _loso(args, table)
    report.to_csv(args.out, index=False)
    theta_file = Path(args.out).with_suffix(".theta.json")
    held = {study: dict(zip(RECIRCULATION_NAMES, theta))
            for study, theta in report.attrs["theta_held_out"].items()}
    theta_file.write_text(json.dumps({"theta": report.attrs["theta_all"],
                                      "params": _fitted_params(report),
                                      "theta_held_out": held}, indent=2) + "\n")
    ident = rf.identifiability(rc, theta_all)
    ident.to_csv(Path(args.out).with_suffix(".identifiability.csv"), index=False)
    print("identifiability (Laplace approximation at the full fit):")
    print(ident.round(3).to_string(index=False))
    if args.plot:
        rf.plot_loso(report, args.plot)
    pairs = "held_out_pairs" if "held_out_pairs" in report else None
    print(report[["id", "statistic", "value", "in_sample", "held_out"] + ([pairs] if pairs else [])]
          .round(3).to_string(index=False))
    passed = _print_checks(report, "held_out", _fitted_params(report), pairs)
    _print_maclennan_estimate(rc, theta_all, report)
    errors = {c: rf.weighted_error(report, c) for c in ("prior", "in_sample", "held_out")}
    print("weighted RMS residual (log ALC / arcsine-sqrt scale): "
          + ", ".join(f"{k} {v:.3f}" for k, v in errors.items())
          + f"; fitted theta {report.attrs['theta_all']}; report written to {args.out}")
    return _verdict(args, passed)


def _print_maclennan_estimate(rc, theta, report) -> None:
    """What MacLennan's ratio asks of direct killing, against the virtual patients' own field:
    the complete-refill estimate on their doses, at the fit and at the core's most radiosensitive
    corner, and the in-field share the estimate needs (docs/kinetics.md section 8)."""
    from lymphonet.kinetics.recirculation import RECIRCULATION_SPECS
    from lymphonet.twin.literature_checks import maclennan_estimate
    from lymphonet.twin.recirculation_fit import complete_refill_survival

    ids = {n: f"maclennan1978_{n}fx" for n in (5, 20)}
    if not set(ids.values()) <= set(report["id"]):
        return
    upper = {s.name: s.upper for s in RECIRCULATION_SPECS if s.name in ("alpha_per_gy",
                                                                        "beta_per_gy2")}
    share = report.set_index("id")["in_field_share"]
    print("MacLennan, complete-refill estimate (every fraction finds the pool back at its "
          "equilibrium shares, nothing recovers):")
    print(f"  the virtual patients' field holds {100 * share[ids[5]]:.2f}% (5 fx) and "
          f"{100 * share[ids[20]]:.2f}% (20 fx) of the lymphocytes, dose-weighted")
    corner = f"at alpha {upper['alpha_per_gy']:g}/Gy, beta {upper['beta_per_gy2']:g}/Gy^2"
    for label, over in (("at the fit", None), (corner, upper)):
        surv = complete_refill_survival(rc, theta, over)
        print(f"  20 fx / 5 fx pool ratio on their doses {label}: "
              f"{surv[ids[20]] / surv[ids[5]]:.3f} (check: <= 0.55)")
    b = maclennan_estimate(upper["alpha_per_gy"], upper["beta_per_gy2"])
    need = ("no share reaches it" if math.isnan(b.in_field_share) else
            f">= {100 * b.in_field_share:.1f}% of the lymphocytes at the full fraction dose and a "
            f"baseline ALC >= {b.baseline_needed:.2f} x10^9/L")
    print(f"  reaching 0.55 {corner}: {need}")


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


def _print_checks(report, column: str, params: dict[str, float],
                  pair_column: str | None = None) -> bool:
    """Print the named checks; True when every one passed."""
    from lymphonet.twin.literature_checks import named_checks

    print(f"named checks ({column}" + (f"; photon/particle pairs: {pair_column}" if pair_column
                                       else "") + "):")
    checks = named_checks(report, column, params, pair_column)
    for c in checks:
        print(f"  {'PASS' if c.passed else 'MISS'} {c.name:<28} {c.value:.3f} (target {c.target})"
              + (f"  [{c.detail}]" if c.detail else ""))
    return all(c.passed for c in checks)
