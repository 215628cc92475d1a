"""``lymphonet sweep``: an Optuna hyper-parameter study over config keys, tracked in MLflow."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="hyper-parameter sweep (Optuna; each trial an MLflow run)",
        description="Sample config values from a search space (configs/space_*.yaml), train each "
                    "trial with train.py's loop as an MLflow run nested under one parent run, "
                    "prune poor trials on the per-epoch validation metric, and keep the study "
                    "in an RDB storage so a killed sweep resumes and several processes or "
                    "machines sharing --storage run trials in parallel. Writes "
                    "OUT/STUDY/trials.csv and OUT/STUDY/best.yaml (train it with "
                    "lymphonet train --config).")
    p.add_argument("--config", required=True, help="base training config YAML")
    p.add_argument("--space", required=True, help="search-space YAML")
    p.add_argument("--trials", type=int, required=True,
                   help="finished trials (complete + pruned) the study should hold in total")
    p.add_argument("--study", help="study name (default <config name>-sweep)")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///OUT/optuna.db; "
                                     "postgresql://... to share between machines)")
    p.add_argument("--jobs", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--out", help="output root (default: the config's out_dir)")
    p.add_argument("--sampler-seed", type=int, help="TPE sampler seed (default train.seed; "
                                                     "give each machine of a shared study its own)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field for every trial (repeatable)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: the config's)")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.set_defaults(func=run)


def run(args) -> int:
    from lymphonet.training.sweep import run_sweep

    res = run_sweep(args.config, args.space, args.trials, study=args.study,
                    storage=args.storage, jobs=args.jobs, out_dir=args.out,
                    overrides=tuple(args.set), tracking=not args.no_tracking,
                    tracking_uri=args.tracking_uri, sampler_seed=args.sampler_seed)
    print(f"study {res['study']}: {res['n_trials']} trials ({res['n_complete']} complete, "
          f"{res['n_pruned']} pruned)")
    if res["best_config"] is not None:
        print(f"best trial {res['best_trial']}: {res['best_value']:.4g} with {res['best_params']}"
              f"\nbest config: {res['best_config']} (lymphonet train --config "
              f"{res['best_config']})")
    return 0
