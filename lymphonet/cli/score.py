"""``lymphonet score``: risk scores for every row of a manifest, streamed to CSV.

Examples::

    lymphonet score --model models/default --manifest cohort/manifest.csv --out scores.csv
    lymphonet score --model models/default --manifest m.csv --out s.csv --trajectories t.csv \\
        --workers 2
"""

from __future__ import annotations


def add_common(p) -> None:
    """Options shared with ``compare-plans``."""
    p.add_argument("--model", required=True, help="model bundle folder (lymphonet export)")
    p.add_argument("--manifest", required=True, help="manifest CSV / Parquet (data contract)")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    p.add_argument("--backend", choices=("torch", "onnx", "torchscript"), default="torch",
                   help="network runtime (default: eager torch)")
    p.add_argument("--resampler", choices=("fast", "torchio"), default="fast",
                   help="image resampling: fast numpy (default) or the torchio training path")
    p.add_argument("--particles", type=int, help="blood-dose particles per plan (default: as "
                                                 "the model was trained)")
    p.add_argument("--alc-unit", help="unit of baseline_alc without a unit column "
                                      "(10^9/L or cells/uL)")
    p.add_argument("--max-dose-gy", type=float, help="plausibility limit of a course maximum "
                                                     "(default: the model's, 150 Gy)")
    p.add_argument("--no-prescription-check", action="store_true",
                   help="do not refuse plans whose dose maximum or target D95 disagrees with "
                        "n_fractions x dose_per_fraction_gy (for lattice / SFRT or composite "
                        "plans; each such row says so in warnings)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score", help="score a manifest of plans with a model bundle (one row per input row)",
        description="Read each plan (DICOM or NIfTI), compute its features, run the model and "
                    "write one row per manifest row: predicted nadir, nadir day, P(grade >= 3), "
                    "P(grade 4), 90%% nadir interval, dose summaries, status ok / error with "
                    "the message. Re-running skips plans already scored ok by the same model.")
    add_common(p)
    p.add_argument("--out", required=True, help="output CSV (resumed if it exists)")
    p.add_argument("--trajectories", help="also write daily trajectories (plan_id, day, alc, "
                                          "lower, upper) to this CSV")
    p.add_argument("--restart", action="store_true", help="ignore an existing --out")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process or --workers processes (default); ray: Ray Data "
                        "actors (pip install -e '.[ray]'), same rows and numbers")
    p.add_argument("--address", help="Ray cluster address for --engine ray (default: start a "
                                     "local Ray instance with --workers CPUs)")
    p.set_defaults(func=run)


def options(args):
    from lymphonet.errors import InputError
    from lymphonet.scoring.runner import ScoreOptions

    if args.max_dose_gy is not None and not args.max_dose_gy > 0:
        raise InputError(f"must be > 0 Gy, got {args.max_dose_gy}", field="--max-dose-gy")
    return ScoreOptions(backend=args.backend, resampler=args.resampler, particles=args.particles,
                        alc_unit=args.alc_unit, max_dose_gy=args.max_dose_gy,
                        prescription_check=not args.no_prescription_check,
                        engine=getattr(args, "engine", "local"),
                        address=getattr(args, "address", None))


def run(args) -> int:
    from lymphonet.scoring.runner import score_manifest

    summary = score_manifest(args.model, args.manifest, args.out,
                             trajectories=args.trajectories, workers=args.workers,
                             progress=not args.no_progress, options=options(args),
                             resume=not args.restart)
    print(summary.line())
    return 0 if summary.n_error == 0 else 3
