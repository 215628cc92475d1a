"""``lymphonet evaluate``: score the hybrid against every baseline on the held-out folds."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="compare a trained model with the baselines (metrics.csv + HTML report)",
        description="Score the hybrid model of a checkpoint (best.pt of `lymphonet train`) or an "
                    "exported bundle against the baselines (EDIC / DVH logistic regression, "
                    "gradient boosting, population and early-fit mechanistic models, CNN "
                    "without kinetics) on the held-out folds of the cohort's saved split, with "
                    "95% patient-bootstrap intervals. Writes REPORT_DIR/metrics.csv and "
                    "REPORT_DIR/report.html (self-contained). --folds all runs K-fold "
                    "cross-validation (the hybrid is retrained on every other fold).")
    p.add_argument("--model", help="checkpoint file (best.pt) or model bundle folder")
    p.add_argument("--config", help="training config YAML instead of --model (every hybrid is "
                                    "trained here; use with --folds all for cross-validation)")
    p.add_argument("--cohort", required=True, help="cohort folder (its splits.csv is reused)")
    p.add_argument("--out", required=True, help="report folder (created)")
    p.add_argument("--folds", default=None,
                   help="'all' or comma-separated folds (default: the model's test fold)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates (1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and bootstrap (0)")
    p.add_argument("--early-days", type=float, default=14.0,
                   help="last lab day the early-fit mechanistic model sees (14)")
    p.add_argument("--models", default=None,
                   help="comma-separated subset of: hybrid, hybrid_no_cnn, hybrid_no_clinical, "
                        "cnn_only, oracle (simulated cohorts), mechanistic_prior (theta = 0), "
                        "mechanistic_population, mechanistic_early_fit, edic_logistic, "
                        "dvh_logistic, dvh_gradient_boosting, kim_nomogram (default: all)")
    p.add_argument("--device", help="torch device for the networks (default cpu)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or "
                                          "the training run's store next to the checkpoint)")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.set_defaults(func=run)


def run(args) -> int:
    from lymphonet.errors import InputError
    from lymphonet.evaluation.harness import EvaluationOptions, evaluate_models
    from lymphonet.evaluation.registry import MODEL_NAMES
    from lymphonet.evaluation.report import write_report

    if bool(args.model) == bool(args.config):
        raise InputError("give exactly one of --model and --config", field="--model")
    if args.bootstrap < 0:
        raise InputError("--bootstrap must be >= 0", field="--bootstrap")
    config = None
    if args.config:
        from lymphonet.training.config import load_training_config

        config = load_training_config(args.config)
    models = MODEL_NAMES if not args.models else tuple(
        m.strip() for m in args.models.split(",") if m.strip())
    options = EvaluationOptions(folds=args.folds, n_boot=args.bootstrap, seed=args.seed,
                                early_days=args.early_days, models=models, device=args.device,
                                progress=True)
    result = evaluate_models(args.cohort, checkpoint=args.model, config=config, options=options)
    paths = write_report(result, args.out)
    tracked = "" if args.no_tracking else _track(result, paths, args)
    _print_summary(result)
    print(f"\nmetrics : {paths['metrics'].resolve()}\nreport  : {paths['report'].resolve()}"
          f"{tracked}")
    return 0


def _track(result, paths, args) -> str:
    """Log headline metrics and the report files to MLflow (tracking API of the training code)."""
    from pathlib import Path

    from lymphonet.training.tracking import make_tracker

    store = Path(args.model).resolve().parent.parent if args.model else Path(args.out)
    tracker = make_tracker(True, store, "evaluate", uri=args.tracking_uri)
    if not tracker.enabled:
        return ""
    df = result.metrics
    overall = df[(df["subgroup"] == "all") & ~df["model"].str.contains(" - ")]
    tracker.log_metrics({f"{m}.{k}": v for m, k, v in
                         zip(overall["model"], overall["metric"], overall["value"])})
    tracker.log_tags({"evaluation_folds": str(result.settings["folds"]),
                      "evaluation_seed": str(result.settings["seed"])})
    from lymphonet.data.prepare import cohort_fingerprint

    tracker.log_dataset(cohort_fingerprint(args.cohort), "evaluation")
    for p in paths.values():
        tracker.log_artifact(p, "evaluation")
    tracker.end()
    return f"\nMLflow  : {tracker.uri} (run {tracker.run_id})"


def _print_summary(result) -> None:
    df = result.metrics
    keys = ("auroc_g3", "auroc_g4", "brier_g4", "log_alc_rmse_all", "nadir_mae", "coverage")
    sub = df[(df["subgroup"] == "all") & df["metric"].isin(keys)]
    table = sub.pivot(index="model", columns="metric", values="value")
    table = table.reindex(columns=[k for k in keys if k in table.columns])
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
