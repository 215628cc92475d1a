"""A torch Dataset over the plans of a cohort, and seeded loaders.

Items follow the batch contract of :mod:`lymphonet.data.batch`. Images are read from the
preprocessing cache (:mod:`lymphonet.data.cache`); the small per-plan arrays are held in memory.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lymphonet.data.batch import (
    DOSE_SUMMARY_NAMES,
    lab_arrays,
    labs_by_plan,
    n_observations,
    plan_arrays,
)
from lymphonet.data.cache import (
    as_cohort,
    load_cached_features,
    load_cached_image,
    preprocess_cohort,
)
from lymphonet.data.clinical import ClinicalEncoder
from lymphonet.data.config import DataConfig
from lymphonet.data.images import augment_image, lr_pairs
from lymphonet.errors import InputError
from lymphonet.io.cohort import Cohort


class PlanDataset(Dataset):
    """A torch Dataset over the plans of a cohort; ``ds[i]`` is one item of the batch contract.

    Item keys, shapes and units: :data:`lymphonet.data.batch.BATCH_KEYS` (no batch dim; the
    DataLoader's default collate adds ``B``); ``index`` is the position in :attr:`plans`.

    Args:
        cohort: Cohort, cohort folder or manifest.
        config: Settings (default :class:`DataConfig`).
        indices: Rows of ``cohort.plans`` to use (e.g. a fold); None = all.
        clinical_encoder: A fitted encoder (pass the training set's one to validation / test
            sets); None fits one on this dataset's plans (do that for the training fold only).
        augment: Apply random rigid transforms and LR flips (training only).
        progress: Progress bar for uncached plans.

    Attributes:
        plans: The usable plans (failing ones are left out and listed in :attr:`errors`).
        errors: InputErrors of plans left out. report: the :class:`PreprocessReport`.
    """

    def __init__(self, cohort: Cohort | str | Path, config: DataConfig | None = None, *,
                 indices: list[int] | None = None,
                 clinical_encoder: ClinicalEncoder | None = None, augment: bool = False,
                 progress: bool = False) -> None:
        self.config = config = config or DataConfig()
        cohort = as_cohort(cohort)
        if indices is not None:
            indices = [int(i) for i in indices]
            bad = [i for i in indices if not 0 <= i < len(cohort.plans)]
            if bad:
                raise InputError(f"plan indices {bad[:5]} outside 0..{len(cohort.plans) - 1}",
                                 field="indices")
        self.report = preprocess_cohort(cohort, config, progress=progress, indices=indices)
        self.errors = self.report.errors
        chosen = cohort.plans if indices is None else [cohort.plans[i] for i in indices]
        self.plans = [p for p in chosen if p.plan_id in self.report.paths]
        if not self.plans:
            raise InputError("no plan could be preprocessed:\n" + self.report.summary(),
                             file=cohort.manifest_path, field="plans")
        self.paths = [self.report.paths[p.plan_id] for p in self.plans]
        self.augment = augment
        self.clinical_encoder = clinical_encoder or ClinicalEncoder.fit(self.plans)
        all_labs = labs_by_plan(cohort.labs, cohort.plans)  # cohort-wide K and M
        k_max = config.max_fractions or max(p.n_fractions for p in cohort.plans)
        m_max = config.max_obs or max(1, max(n_observations(r, config.obs_after_day)
                                             for r in all_labs))
        labs = labs_by_plan(cohort.labs, self.plans)
        feats = [load_cached_features(path) for path in self.paths]
        rows = []
        for p, f, lab in zip(self.plans, feats, labs):
            row = plan_arrays(p, f, k_max)
            row.update(lab_arrays(lab, m_max, config.obs_after_day))
            rows.append(row)
        self._table = {k: torch.as_tensor(np.stack([r[k] for r in rows])) for k in rows[0]}
        for k in ("blood_dose_q_gy", "lymphoid_dose_q_gy", "lymphoid_coverage", "dose_summary"):
            self._table[k] = self._table[k].float()
        self._table["clinical"] = torch.as_tensor(self.clinical_encoder.transform(self.plans))
        self._swap = lr_pairs(config.organ_channels)

    @property
    def channel_names(self) -> list[str]:
        """Names of the C image channels."""
        return ["dose"] + list(self.config.organ_channels)

    @property
    def n_channels(self) -> int:
        return self.config.n_channels

    @property
    def n_clinical(self) -> int:
        return self.clinical_encoder.n_features

    @property
    def n_dose_summary(self) -> int:
        return len(DOSE_SUMMARY_NAMES)

    @property
    def plan_ids(self) -> list[str]:
        return [p.plan_id for p in self.plans]

    @property
    def patient_ids(self) -> list[str]:
        return [p.patient_id for p in self.plans]

    def __len__(self) -> int:
        return len(self.plans)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        image, origin = load_cached_image(self.paths[i], self.config)
        image = torch.from_numpy(image)
        if self.augment:
            image = augment_image(image, origin, self.config, self._swap)
        item = {k: v[i] for k, v in self._table.items()}
        item["image"] = image
        item["index"] = torch.tensor(i, dtype=torch.int64)
        return item



def _seed_worker(worker_id: int) -> None:
    """Seed numpy and random from the worker's torch seed; one thread per worker."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    torch.set_num_threads(1)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, workers: int = 0, seed: int = 0,
                distributed: bool = False, drop_last: bool = False) -> DataLoader:
    """A seeded DataLoader (default collate).

    Shuffling order and per-worker seeds follow ``seed``; memory is pinned when CUDA is
    available; workers persist across epochs. With ``distributed`` a DistributedSampler splits
    the data over ranks (call ``loader.sampler.set_epoch(epoch)`` every epoch).
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    sampler = None
    if distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None,
                      sampler=sampler, num_workers=workers, generator=generator,
                      worker_init_fn=_seed_worker, pin_memory=torch.cuda.is_available(),
                      persistent_workers=workers > 0, drop_last=drop_last)


#: Kinetics inputs of a collated batch (same device); defined with the kinetics inputs.
