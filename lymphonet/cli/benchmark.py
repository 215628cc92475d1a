"""``lymphonet benchmark``: pooled cross-validation over folds and simulated-cohort seeds."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "benchmark", help="cross-validate every model on simulated cohorts of >= 2 seeds",
        description="Simulate one cohort per seed from the config's cohort section (truth: the "
                    "recirculation core by default, not the hybrid's kinetics), run K-fold "
                    "cross-validation of every model on each (networks retrained per fold), "
                    "pool the held-out predictions over folds and seeds, and score them with "
                    "patient-bootstrap intervals, oracle (true ALC) and floor (theta = 0) rows "
                    "and paired differences. Writes OUT/metrics.csv and OUT/report.html.")
    p.add_argument("--config", required=True, help="training config YAML (simulated cohort)")
    p.add_argument("--seeds", default="0,1", help="cohort seeds, comma-separated (default 0,1)")
    p.add_argument("--out", required=True, help="report folder (created; cohorts go inside)")
    p.add_argument("--models", default=None, help="comma-separated subset (default: all)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates (1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and bootstrap (0)")
    p.add_argument("--reference", default="hybrid", help="model of the paired differences")
    p.add_argument("--device", help="torch device for the networks (default cpu)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable)")
    p.set_defaults(func=run)


def run(args) -> int:
    import time
    from pathlib import Path

    from lymphonet.errors import InputError
    from lymphonet.evaluation.benchmark import run_benchmark
    from lymphonet.evaluation.registry import MODEL_NAMES
    from lymphonet.evaluation.report import write_report
    from lymphonet.training.config import load_training_config

    if args.bootstrap < 0:
        raise InputError("--bootstrap must be >= 0", field="--bootstrap")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--seeds must be integers, got {args.seeds!r}", field="--seeds") from None
    config = load_training_config(args.config, args.set)
    models = MODEL_NAMES if not args.models else tuple(
        m.strip() for m in args.models.split(",") if m.strip())
    t0 = time.perf_counter()
    result = run_benchmark(config, seeds, Path(args.out), models=models, n_boot=args.bootstrap,
                           seed=args.seed, reference=args.reference, device=args.device,
                           progress=True)
    paths = write_report(result, args.out)
    df = result.metrics
    keys = ("true_log_alc_rmse", "log_alc_rmse_all", "auroc_g4", "true_auroc_g4", "brier_g4")
    sub = df[(df["subgroup"] == "all") & df["metric"].isin(keys)]
    print(sub.pivot(index="model", columns="metric", values="value").to_string(
        float_format=lambda v: f"{v:.3f}"))
    print(f"\n{result.settings['n_plans']} plans, seeds {seeds}, "
          f"{time.perf_counter() - t0:.0f} s\nmetrics : {paths['metrics'].resolve()}"
          f"\nreport  : {paths['report'].resolve()}")
    return 0
