"""Cohort folder -> saved split -> cached datasets for the train / validation / test folds.

The split file (``<cohort>/splits.csv``, :mod:`lymphonet.splits`) is written once per cohort and
reused by every model, so the hybrid and the baselines are compared on the same held-out fold.
Plans are preprocessed once (rank 0 in multi-process runs; the others wait, then read the cache).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lymphonet.training import distributed as dist_utils


def split_summary(splits) -> list[dict[str, Any]]:
    """Plan counts per fold x site x modality: a de-identified description of a split."""
    counts = splits.groupby(["fold", "site", "modality"]).size().reset_index(name="n_plans")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in counts.to_dict("records")]


def cohort_datasets(cfg, root: Path, fold_roles, info=dist_utils.SINGLE_PROCESS):
    """:class:`~lymphonet.training.run.PreparedData` for the cohort at ``root``.

    Args:
        cfg: :class:`~lymphonet.training.config.TrainingRunConfig`.
        root: Cohort folder.
        fold_roles: ``f(folds [N], cfg) -> (train_idx, val_idx, test_idx)``.
        info: Distributed info (rank 0 preprocesses and writes the split).
    """
    from lymphonet.dataset import PlanDataset, preprocess_cohort
    from lymphonet.io.cohort import load_cohort
    from lymphonet.splits import get_or_make_splits
    from lymphonet.training.run import PreparedData

    cohort = load_cohort(root, errors="collect")
    split_path = Path(root) / "splits.csv"
    progress = cfg.train.progress and info.is_main
    if info.is_main:
        splits = get_or_make_splits(cohort.plans, split_path, cfg.train.n_folds, cfg.train.seed)
        report = preprocess_cohort(cohort, cfg.data, progress=progress)
        if report.errors:
            print(f"{len(report.errors)} plan(s) left out:\n{report.summary()}")
    dist_utils.barrier(info)
    if not info.is_main:
        splits = get_or_make_splits(cohort.plans, split_path, cfg.train.n_folds, cfg.train.seed)
    fold_of = dict(zip(splits["plan_id"], splits["fold"]))
    folds = np.array([fold_of[p.plan_id] for p in cohort.plans])
    tr, va, te = fold_roles(folds, cfg)
    train = PlanDataset(cohort, cfg.data, indices=tr, augment=cfg.data.augment)
    enc = train.clinical_encoder
    val = PlanDataset(cohort, cfg.data, indices=va, clinical_encoder=enc)
    test = PlanDataset(cohort, cfg.data, indices=te, clinical_encoder=enc)
    inputs = {"n_channels": train.n_channels, "n_clinical": train.n_clinical,
              "n_dose_summary": train.n_dose_summary}
    return PreparedData(train, val, test, inputs, encoder=enc.to_dict(), split_path=split_path,
                        split_summary=split_summary(splits))
