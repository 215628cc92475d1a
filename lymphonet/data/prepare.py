"""Cohort folder -> saved split -> cached datasets for the train / validation / test folds.

:func:`ensure_cohort` finds the cohort (``cohort.path``) or generates a SIMULATED one into the run
folder; :func:`prepare_split_and_cache` writes the split and fills the preprocessing cache (rank 0
of a distributed run); :func:`load_datasets` builds the three datasets (every rank);
:func:`make_loaders` the seeded loaders.

Stale-data guards: a generated cohort records the ``cohort`` settings it was made with
(``cohort_config.json``) and is regenerated when they change; a split file records its fold count
and seed (``splits.json``) and is refused, with the fix in the message, when they differ from the
config. Nothing is silently reused for data the config does not describe.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from lymphonet.data.config import CohortConfig
from lymphonet.data.splits import get_or_make_splits
from lymphonet.errors import InputError

#: Files a generated cohort folder carries to say what made it.
COHORT_RECORD = "cohort_config.json"


@dataclass
class PreparedData:
    """Datasets of the three roles plus what the model and the checkpoint need.

    Attributes:
        train, val, test: Datasets yielding batch-contract items.
        model_inputs: ``n_channels``, ``n_clinical``, ``n_dose_summary``.
        encoder: Fitted clinical encoder as a JSON-able dict (None for synthetic data).
        split_path: The split file (None for synthetic data).
        split_sha256: SHA-256 of the split file (None for synthetic data).
        split_summary: De-identified plan counts per fold x site x modality (no identifiers).
        dataset: What data this is, for tracking (:func:`cohort_fingerprint`).
    """

    train: Dataset
    val: Dataset
    test: Dataset
    model_inputs: dict[str, int]
    encoder: dict[str, Any] | None = None
    split_path: Path | None = None
    split_sha256: str | None = None
    split_summary: list[dict[str, Any]] | None = None
    dataset: dict[str, Any] | None = None


def _cohort_record(c: CohortConfig) -> dict[str, Any]:
    d = asdict(c)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items() if k != "path"}


def ensure_cohort(c: CohortConfig, run_dir: Path, *, progress: bool = False) -> Path:
    """The cohort folder: ``c.path``, or a simulated one in ``run_dir/cohort``.

    A generated cohort is reused only when its recorded settings equal ``c``; otherwise it is
    regenerated (it is the run's own output). A folder there without a record is refused.
    """
    if c.path:
        root = Path(c.path)
        if not root.exists():
            raise InputError("cohort folder not found", file=root, field="cohort.path")
        return root
    root = run_dir / "cohort"
    want = _cohort_record(c)
    record = root / COHORT_RECORD
    if (root / "manifest.csv").exists():
        if not record.exists():
            raise InputError("this generated-cohort folder does not say which cohort settings "
                             "made it; delete it (it will be regenerated) or point cohort.path "
                             "at it", file=root, field="cohort")
        if json.loads(record.read_text()) == want:
            return root
        print(f"cohort settings changed: regenerating the SIMULATED cohort in {root}", flush=True)
        shutil.rmtree(root)
    from lymphonet.twin.cohort import simulate_cohort

    print(f"generating a SIMULATED cohort of {c.n} patients in {root} ...", flush=True)
    simulate_cohort(c.n, list(c.sites), list(c.modalities), seed=c.seed, out_dir=root,
                    paired=c.paired, spacing_mm=c.spacing_mm, particles=c.particles,
                    truth=c.truth, write_trajectories=True, progress=progress)
    record.write_text(json.dumps(want, indent=1))
    return root


def fold_roles(folds: np.ndarray, test_fold: int, val_fold: int) -> tuple[list[int], ...]:
    """Row indices ``(train, val, test)`` from per-row folds: test and validation are one fold
    each, training is every other fold."""
    if test_fold == val_fold:
        raise InputError("train.test_fold and train.val_fold must differ", field="train.val_fold")
    test = [i for i, f in enumerate(folds) if f == test_fold]
    val = [i for i, f in enumerate(folds) if f == val_fold]
    train = [i for i, f in enumerate(folds) if f not in (test_fold, val_fold)]
    if not train or not val or not test:
        raise InputError(f"empty fold role (train {len(train)}, val {len(val)}, test {len(test)})",
                         field="train.n_folds")
    return train, val, test


def split_summary(splits) -> list[dict[str, Any]]:
    """Plan counts per fold x site x modality: a de-identified description of a split."""
    counts = splits.groupby(["fold", "site", "modality"]).size().reset_index(name="n_plans")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in counts.to_dict("records")]


def prepare_split_and_cache(cfg, root: Path, *, progress: bool = False) -> None:
    """Write (or check) the cohort's split and fill the preprocessing cache (rank 0's job).

    Args:
        cfg: A :class:`~lymphonet.training.config.TrainingRunConfig` (``data``, ``train``).
        root: Cohort folder.
        progress: Progress bar for uncached plans.
    """
    from lymphonet.data.cache import preprocess_cohort
    from lymphonet.io.cohort import load_cohort

    cohort = load_cohort(root, errors="collect")
    get_or_make_splits(cohort.plans, root / "splits.csv", cfg.train.n_folds, cfg.train.seed)
    report = preprocess_cohort(cohort, cfg.data, progress=progress)
    if report.errors:
        print(f"{len(report.errors)} plan(s) left out:\n{report.summary()}")


def load_datasets(cfg, root: Path | None) -> PreparedData:
    """Datasets of the three fold roles (every rank; after :func:`prepare_split_and_cache`).

    Args:
        cfg: A :class:`~lymphonet.training.config.TrainingRunConfig`.
        root: Cohort folder (None with ``cfg.cohort.synthetic``).
    """
    t = cfg.train
    if cfg.cohort.synthetic:
        from lymphonet.data.synthetic import SyntheticCohort

        ds = SyntheticCohort(cfg.cohort.n, seed=cfg.cohort.seed, n_days=cfg.model.n_days)
        tr, va, te = fold_roles(np.arange(len(ds)) % t.n_folds, t.test_fold, t.val_fold)
        inputs = {"n_channels": ds.n_channels, "n_clinical": ds.n_clinical,
                  "n_dose_summary": ds.n_dose_summary}
        return PreparedData(Subset(ds, tr), Subset(ds, va), Subset(ds, te), inputs,
                            dataset={"name": "synthetic", "manifest_sha256": None,
                                     "n_plans": len(ds), "n_patients": len(ds),
                                     "split_sha256": None, "simulated": True})
    from lymphonet.data.dataset import PlanDataset
    from lymphonet.io.cohort import load_cohort

    cohort = load_cohort(root, errors="collect")
    split_path = Path(root) / "splits.csv"
    splits = get_or_make_splits(cohort.plans, split_path, t.n_folds, t.seed)
    fold_of = dict(zip(splits["plan_id"], splits["fold"]))
    folds = np.array([fold_of[p.plan_id] for p in cohort.plans])
    tr, va, te = fold_roles(folds, t.test_fold, t.val_fold)
    train = PlanDataset(cohort, cfg.data, indices=tr, augment=cfg.data.augment)
    enc = train.clinical_encoder
    val = PlanDataset(cohort, cfg.data, indices=va, clinical_encoder=enc)
    test = PlanDataset(cohort, cfg.data, indices=te, clinical_encoder=enc)
    inputs = {"n_channels": train.n_channels, "n_clinical": train.n_clinical,
              "n_dose_summary": train.n_dose_summary}
    split_sha = hashlib.sha256(split_path.read_bytes()).hexdigest()
    return PreparedData(train, val, test, inputs, encoder=enc.to_dict(), split_path=split_path,
                        split_sha256=split_sha, split_summary=split_summary(splits),
                        dataset=cohort_fingerprint(root, split_sha))


def make_loaders(data: PreparedData, batch_size: int, num_workers: int, seed: int, *,
                 world_size: int = 1, rank: int = 0, device: torch.device | None = None):
    """(train, val, test) DataLoaders; the train loader is sharded with DistributedSampler.

    The training order depends only on ``(seed, epoch)`` (call ``sampler.set_epoch(epoch)`` with
    the 0-based epoch), also in a single process, so ``--resume`` continues exactly.
    """
    from torch.utils.data.distributed import DistributedSampler

    pin = device is not None and torch.device(device).type == "cuda"
    common = {"num_workers": num_workers, "pin_memory": pin, "persistent_workers": num_workers > 0}
    sampler = DistributedSampler(data.train, world_size, rank, shuffle=True, seed=seed)
    train = DataLoader(data.train, batch_size, sampler=sampler, drop_last=False, **common)
    val = DataLoader(data.val, batch_size * 2, shuffle=False, **common)
    test = DataLoader(data.test, batch_size * 2, shuffle=False, **common)
    return train, val, test


def cohort_fingerprint(root: str | Path, split_sha256: str | None = None) -> dict[str, Any]:
    """Which data a run saw, without identifiers or paths: the cohort folder's name, the
    SHA-256 of its manifest file, its numbers of plans and patients, the split file's hash and
    whether it is simulated (a ``truth.csv`` beside it)."""
    from lymphonet.io.cohort import MANIFEST_NAMES, read_table

    root = Path(root)
    folder = root if root.is_dir() else root.parent
    manifest = root if root.is_file() else next(
        (folder / n for n in MANIFEST_NAMES if (folder / n).is_file()), None)
    if manifest is None:
        raise InputError("no manifest in the cohort folder", file=folder, field="manifest")
    table = read_table(manifest)
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    return {"name": folder.name, "manifest_sha256": digest,
            "n_plans": len(table), "n_patients": int(table["patient_id"].nunique()),
            "split_sha256": split_sha256, "simulated": (folder / "truth.csv").is_file()}
