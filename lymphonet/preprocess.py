"""The torchio-free half of the data pipeline: configuration, cache keys, tabular inputs.

:mod:`lymphonet.dataset` turns plans into image tensors with torchio and caches them; everything
it needs that is plain numpy lives here so that it can be used (and tested) without torchio:

* :class:`DataConfig`, the frozen configuration of preprocessing and augmentation;
* :func:`cache_key`, a hash of a plan's input files (path, size, mtime) and manifest fields plus the
  preprocessing settings, which names the plan's cache file;
* :class:`ClinicalEncoder`, standardised clinical features with missing-value indicators and
  fixed one-hot vocabularies, fitted on the training fold only;
* :func:`schedule_arrays`, :func:`lab_arrays` and :func:`dose_summary`, the fixed-shape
  per-plan arrays of the batch contract;
* cache-file I/O (:func:`write_atomic`, :func:`load_cached_image`, :func:`load_cached_features`),
  :func:`make_loader` and :func:`kinetics_inputs_from_batch` (re-exported by
  :mod:`lymphonet.dataset`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from lymphonet.errors import InputError
from lymphonet.features import SUMMARY_ORGANS, PlanFeatures
from lymphonet.kinetics.schedule import CHEMO_CODES, inputs_from_batch
from lymphonet.organs import LYMPHOID_ORGANS
from lymphonet.schema import PlanRecord

#: Bump when the preprocessing code changes what it writes: every cache entry is then recomputed.
CACHE_VERSION = 1

#: Default organ channels of the image (after the dose channel).
DEFAULT_ORGAN_CHANNELS: tuple[str, ...] = ("body", "lungs", "heart", "great_vessels",
                                           "bone_marrow", "lymph_nodes", "spleen", "liver",
                                           "target")


@dataclass(frozen=True)
class DataConfig:
    """Preprocessing, caching and augmentation settings (plain types: loads from YAML).

    Attributes:
        spacing_mm: Output voxel size ``(dx, dy, dz)`` in mm (ITK / LPS order, as Volume).
        shape: Output array shape ``(D, H, W)`` = ``(nz, ny, nx)`` (numpy order, as Volume);
            the output grid is axis-aligned in LPS: W runs to the patient's left, H posterior,
            D superior.
        organ_channels: Canonical organs, one mask channel each. A channel is the OR of the
            organ itself, its sub-structures (``lymph_nodes_*``, ``target_*``) and its parts
            (``lungs`` = ``lung_left | lung_right``, ``great_vessels`` = aorta, venae cavae and
            pulmonary artery, ...). Organs ending in ``_left``/``_right`` swap on a LR flip.
        crop_center: Centre the crop on the bounding box of the ``target`` (falls back to the
            body when a plan has no target) or always on the ``body``.
        dose_scale_gy: Fixed divisor of the dose channel (channel value 1.0 = this many Gy);
            applied when loading, so it does not invalidate the cache.
        n_quantiles: Q, quantile levels of blood and lymphoid-organ doses.
        blood_particles: Particles of the blood-dose engine per plan (computed once, cached).
        feature_seed: Seed of the blood-dose engine (features are reproducible).
        default_beam_on_time_s: Beam-on time per fraction (s) for plans whose manifest gives
            none; None makes a missing value an error naming the plan.
        cache_dir: Cache folder; None = ``<cohort folder>/.cache/lymphonet``.
        preprocess_workers: Processes for the first (uncached) preprocessing pass.
        augment: Whether the trainer augments its *training* set (``PlanDataset(...,
            augment=config.augment)``); evaluation sets are never augmented by default.
        flip_lr: With augmentation, flip left-right with probability 0.5 (``*_left`` /
            ``*_right`` channels swap). Dose physics is mirror symmetric; note that a mirrored
            thorax has its heart on the right.
        max_rotation_deg: With augmentation, largest rigid rotation about each axis (degrees).
        max_translation_mm: With augmentation, largest rigid shift along each axis (mm).
        obs_after_day: Lab draws with ``day > obs_after_day`` are observations; earlier ones
            are baseline draws (the manifest's ``baseline_alc`` is used as baseline).
        max_fractions: K, padded fraction count; None = the cohort's maximum.
        max_obs: M, padded lab-draw count; None = the cohort's maximum.
        seed: Seed of loaders and augmentation.
    """

    spacing_mm: tuple[float, float, float] = (8.0, 8.0, 8.0)
    shape: tuple[int, int, int] = (48, 48, 48)
    organ_channels: tuple[str, ...] = DEFAULT_ORGAN_CHANNELS
    crop_center: Literal["target", "body"] = "target"
    dose_scale_gy: float = 50.0
    n_quantiles: int = 64
    blood_particles: int = 20_000
    feature_seed: int = 0
    default_beam_on_time_s: float | None = None
    cache_dir: str | None = None
    preprocess_workers: int = 1
    augment: bool = False
    flip_lr: bool = True
    max_rotation_deg: float = 5.0
    max_translation_mm: float = 8.0
    obs_after_day: float = 0.0
    max_fractions: int | None = None
    max_obs: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.spacing_mm) != 3 or not all(s > 0 for s in self.spacing_mm):
            raise InputError(f"spacing_mm must be 3 positive numbers, got {self.spacing_mm}",
                             field="data.spacing_mm")
        if len(self.shape) != 3 or not all(int(n) >= 1 for n in self.shape):
            raise InputError(f"shape must be 3 positive integers, got {self.shape}",
                             field="data.shape")
        if self.dose_scale_gy <= 0:
            raise InputError("dose_scale_gy must be > 0", field="data.dose_scale_gy")
        if self.crop_center not in ("target", "body"):
            raise InputError("crop_center must be 'target' or 'body'", field="data.crop_center")
        if self.n_quantiles < 1 or self.blood_particles < 1:
            raise InputError("n_quantiles and blood_particles must be >= 1",
                             field="data.n_quantiles")

    @property
    def n_channels(self) -> int:
        """C = 1 (dose) + organ channels."""
        return 1 + len(self.organ_channels)

    def preprocessing_fields(self) -> dict:
        """The settings that change what is cached (not scale, augmentation, padding, paths)."""
        d = asdict(self)
        keep = ("spacing_mm", "shape", "organ_channels", "crop_center", "n_quantiles",
                "blood_particles", "feature_seed", "default_beam_on_time_s")
        return {k: list(d[k]) if isinstance(d[k], tuple) else d[k] for k in keep}


# ---------------------------------------------------------------------------------------------
# cache keys


def input_files(record: PlanRecord, root: Path) -> list[Path]:
    """Files a plan's preprocessing reads (folders expanded, label-map name files included)."""
    paths = [record.dose_path, record.structures_path, record.structure_map,
             extra_path(record, "targets_path", root)]
    out: list[Path] = []
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file())
            continue
        out.append(p)
        name = p.name
        for suffix in (".nii.gz", ".nii", ".nrrd", ".mha"):
            if name.endswith(suffix):
                sidecar = p.with_name(name[: -len(suffix)] + ".json")
                if sidecar.is_file():
                    out.append(sidecar)
                break
    return out


def extra_path(record: PlanRecord, column: str, root: Path) -> Path | None:
    """A path from a manifest column the schema passes through (e.g. ``targets_path``)."""
    value = record.extras.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
        return None
    path = Path(str(value).strip()).expanduser()
    return path if path.is_absolute() else root / path


def cache_key(record: PlanRecord, root: Path, config: DataConfig) -> str:
    """SHA-256 of the plan's input files (path, size, mtime), its relevant manifest fields, the
    preprocessing settings and :data:`CACHE_VERSION`.

    Raises:
        InputError: An input file cannot be stat-ed.
    """
    files = []
    for path in input_files(record, root):
        try:
            st = os.stat(path)
        except OSError as err:
            raise InputError(f"cannot read file ({err.strerror})", patient=record.patient_id,
                             file=path, field="dose_path") from None
        files.append([str(Path(path).resolve()), st.st_size, st.st_mtime_ns])
    payload = {
        "version": CACHE_VERSION,
        "config": config.preprocessing_fields(),
        "plan": {"plan_id": record.plan_id, "n_fractions": record.n_fractions,
                 "beam_on_time_s": None if math.isnan(record.beam_on_time_s)
                 else record.beam_on_time_s, "sex": record.sex},
        "files": files,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def beam_on_time_s(record: PlanRecord, config: DataConfig) -> float:
    """The plan's beam-on time per fraction (s), or the configured default."""
    if math.isfinite(record.beam_on_time_s):
        return float(record.beam_on_time_s)
    if config.default_beam_on_time_s is not None:
        return float(config.default_beam_on_time_s)
    raise InputError("beam_on_time_s is missing and data.default_beam_on_time_s is not set",
                     patient=record.patient_id, field="beam_on_time_s")


# ---------------------------------------------------------------------------------------------
# clinical features

#: Continuous clinical features: name -> (function of a record, may be missing).
_NUMERIC = {
    "age": (lambda r: r.age, True),
    "bmi": (lambda r: r.bmi, True),
    "log_baseline_alc": (lambda r: math.log(r.baseline_alc), False),
    "log_dose_per_fraction_gy": (lambda r: math.log(r.dose_per_fraction_gy), False),
    "n_fractions": (lambda r: float(r.n_fractions), False),
    "log_beam_on_time_s": (lambda r: math.log(r.beam_on_time_s), True),
}
_SEXES = ("F", "M", "unknown")
_CHEMO = ("none", "concurrent", "sequential", "unknown")
_MODALITIES = ("photon", "proton", "carbon")


def _default_sites() -> tuple[str, ...]:
    from lymphonet.twin.sites import SITES

    return tuple(SITES) + ("other",)


@dataclass(frozen=True)
class ClinicalEncoder:
    """Clinical vector of a plan: standardised numbers, missing indicators, one-hots.

    Continuous features (:data:`_NUMERIC`) are standardised with the mean and standard deviation
    of the plans given to :meth:`fit` (the training fold); a missing value becomes 0 (the mean)
    and its ``<name>_missing`` indicator 1. Categorical features are one-hot over fixed
    vocabularies (sex F/M/unknown; chemo none/concurrent/sequential/unknown; modality;
    site = the simulator's site names + ``other``), so the width F never depends on the data.

    Attributes:
        mean: Name -> training mean of each continuous feature.
        std: Name -> training standard deviation (1 when undefined or 0).
        sites: Site vocabulary (last entry ``other``).
    """

    mean: dict[str, float]
    std: dict[str, float]
    sites: tuple[str, ...]

    @classmethod
    def fit(cls, plans: Sequence[PlanRecord]) -> ClinicalEncoder:
        """Standardisation statistics from ``plans`` (pass the training fold only)."""
        if not plans:
            raise InputError("cannot fit the clinical encoder on no plans", field="clinical")
        raw = _numeric_matrix(plans)
        mean, std = {}, {}
        for j, name in enumerate(_NUMERIC):
            col = raw[:, j][np.isfinite(raw[:, j])]
            mean[name] = float(col.mean()) if col.size else 0.0
            sd = float(col.std()) if col.size > 1 else 0.0
            std[name] = sd if sd > 1e-8 else 1.0
        return cls(mean, std, _default_sites())

    @property
    def feature_names(self) -> list[str]:
        """Column names of :meth:`transform`, in order."""
        names = list(_NUMERIC)
        names += [f"{n}_missing" for n, (_, optional) in _NUMERIC.items() if optional]
        names += [f"sex={v}" for v in _SEXES] + [f"chemo={v}" for v in _CHEMO]
        names += [f"modality={v}" for v in _MODALITIES] + [f"site={v}" for v in self.sites]
        return names

    @property
    def n_features(self) -> int:
        """F."""
        return len(self.feature_names)

    def transform(self, plans: Sequence[PlanRecord]) -> np.ndarray:
        """``[N, F]`` float32 clinical vectors (columns :attr:`feature_names`)."""
        raw = _numeric_matrix(plans)
        mu = np.array([self.mean[n] for n in _NUMERIC])
        sd = np.array([self.std[n] for n in _NUMERIC])
        missing = ~np.isfinite(raw)
        z = np.where(missing, 0.0, (np.where(missing, 0.0, raw) - mu) / sd)
        optional = [j for j, (_, opt) in enumerate(_NUMERIC.values()) if opt]
        site_index = {s: i for i, s in enumerate(self.sites)}

        def onehot(values, vocab):
            out = np.zeros((len(plans), len(vocab)))
            out[np.arange(len(plans)), [vocab.index(v) for v in values]] = 1.0
            return out

        sexes = [p.sex if p.sex in ("F", "M") else "unknown" for p in plans]
        chemo = [p.chemo if p.chemo in CHEMO_CODES else "unknown" for p in plans]
        sites = np.zeros((len(plans), len(self.sites)))
        for i, p in enumerate(plans):
            key = (p.site or "").strip().lower()
            sites[i, site_index.get(key, len(self.sites) - 1)] = 1.0
        return np.concatenate([z, missing[:, optional].astype(float), onehot(sexes, _SEXES),
                               onehot(chemo, _CHEMO), onehot([p.modality for p in plans],
                                                             _MODALITIES), sites],
                              axis=1).astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-safe content (for checkpoints and model bundles)."""
        return {"version": 1, "numeric": list(_NUMERIC), "mean": dict(self.mean),
                "std": dict(self.std), "sites": list(self.sites)}

    @classmethod
    def from_dict(cls, data: dict) -> ClinicalEncoder:
        """Inverse of :meth:`to_dict`.

        Raises:
            InputError: Missing keys or features this version does not know.
        """
        try:
            if list(data["numeric"]) != list(_NUMERIC):
                raise InputError(f"clinical encoder features {data['numeric']} differ from "
                                 f"this version's {list(_NUMERIC)}", field="clinical_encoder")
            return cls({k: float(data["mean"][k]) for k in _NUMERIC},
                       {k: float(data["std"][k]) for k in _NUMERIC},
                       tuple(str(s) for s in data["sites"]))
        except (KeyError, TypeError) as err:
            raise InputError(f"bad clinical encoder content ({err!r})",
                             field="clinical_encoder") from None


def _numeric_matrix(plans: Sequence[PlanRecord]) -> np.ndarray:
    """``[N, len(_NUMERIC)]`` raw values, NaN where missing."""
    out = np.full((len(plans), len(_NUMERIC)), np.nan)
    for i, p in enumerate(plans):
        for j, (fn, _) in enumerate(_NUMERIC.values()):
            try:
                out[i, j] = float(fn(p))
            except (TypeError, ValueError):  # log of NaN / non-positive -> missing
                pass
    return out


# ---------------------------------------------------------------------------------------------
# fixed-shape per-plan arrays

#: Organs whose course mean dose is a dose-summary column (SUMMARY_ORGANS + other lymphoid).
SUMMARY_MEAN_ORGANS: tuple[str, ...] = SUMMARY_ORGANS + tuple(
    o for o in LYMPHOID_ORGANS if o not in SUMMARY_ORGANS)
#: Columns of ``dose_summary``.
DOSE_SUMMARY_NAMES: tuple[str, ...] = (
    ("mean_body_dose_gy", "edic_gy", "edic_missing", "mean_blood_dose_gy_per_fx",
     "fraction_blood_any_dose")
    + tuple(f"mean_{o}_gy" for o in SUMMARY_MEAN_ORGANS)
    + tuple(f"has_{o}" for o in SUMMARY_MEAN_ORGANS))


def dose_summary(features: PlanFeatures) -> np.ndarray:
    """``[S]`` float32 dose summaries (columns :data:`DOSE_SUMMARY_NAMES`; Gy, not standardised;
    missing EDIC or organ -> 0 with its indicator)."""
    edic_ok = math.isfinite(features.edic_gy)
    means = [features.organ_mean_gy.get(o, 0.0) for o in SUMMARY_MEAN_ORGANS]
    has = [float(o in features.organ_mean_gy) for o in SUMMARY_MEAN_ORGANS]
    return np.asarray([features.mean_body_dose_gy, features.edic_gy if edic_ok else 0.0,
                       0.0 if edic_ok else 1.0, features.mean_blood_dose_gy,
                       features.fraction_blood_any_dose, *means, *has], np.float32)


def schedule_arrays(record: PlanRecord, beam_on_s: float, k_max: int) -> dict[str, np.ndarray]:
    """Fraction days ``[K]`` (padding repeats the last day), mask ``[K]``, beam-on ``[K]`` (s,
    padding 0), chemo code (unknown -> none) and baseline ALC (10^9/L)."""
    days = np.asarray(record.fraction_days, np.float32)
    if days.size > k_max:
        raise InputError(f"{days.size} fractions exceed max_fractions={k_max}",
                         patient=record.patient_id, field="n_fractions")
    out_days = np.full(k_max, days[-1], np.float32)
    out_days[: days.size] = days
    mask = np.arange(k_max) < days.size
    return {"fraction_days": out_days, "fraction_mask": mask,
            "beam_on_s": np.where(mask, beam_on_s, 0.0).astype(np.float32),
            "chemo": np.int64(CHEMO_CODES.get(record.chemo or "none", 0)),
            "baseline_alc": np.float32(record.baseline_alc)}


def labs_by_plan(labs: pd.DataFrame, plans: Sequence[PlanRecord]) -> list[pd.DataFrame]:
    """Each plan's lab rows: rows naming the plan, plus the patient's rows that name no plan."""
    out = []
    by_plan = {k: g for k, g in labs.groupby("plan_id", sort=False, dropna=True)}
    unnamed = labs[labs["plan_id"].isna()]
    by_patient = {k: g for k, g in unnamed.groupby("patient_id", sort=False)}
    empty = labs.iloc[:0]
    for p in plans:
        parts = [g for g in (by_plan.get(p.plan_id), by_patient.get(p.patient_id))
                 if g is not None]
        out.append(pd.concat(parts).sort_values("day", kind="stable") if parts else empty)
    return out


def lab_arrays(rows: pd.DataFrame, m_max: int, obs_after_day: float) -> dict[str, np.ndarray]:
    """Observed draws after ``obs_after_day``, padded to ``[M]`` (days and ALC 0 in padding)."""
    sel = rows[rows["day"].to_numpy(float) > obs_after_day]
    days = sel["day"].to_numpy(np.float32)[:m_max]
    alc = sel["alc"].to_numpy(np.float32)[:m_max]
    out_d, out_a = np.zeros(m_max, np.float32), np.zeros(m_max, np.float32)
    out_d[: days.size], out_a[: alc.size] = days, alc
    return {"obs_days": out_d, "obs_alc": out_a, "obs_mask": np.arange(m_max) < days.size}


def n_observations(rows: pd.DataFrame, obs_after_day: float) -> int:
    """Number of draws after ``obs_after_day``."""
    return int((rows["day"].to_numpy(float) > obs_after_day).sum())


# ---------------------------------------------------------------------------------------------
# cache files, loaders and kinetics inputs


def write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez to a temporary file, then rename (readers never see half a file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_cached_features(path: Path) -> PlanFeatures:
    """Plan features from a cache file."""
    with np.load(path, allow_pickle=False) as data:
        return PlanFeatures.from_npz_dict({k[5:]: data[k] for k in data.files
                                           if k.startswith("feat_")})


def load_cached_image(path: Path, config: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """``[C, D, H, W]`` float32 image (channel 0 = dose / dose_scale_gy) and grid origin (mm)."""
    shape = tuple(config.shape)
    n_masks = len(config.organ_channels)
    with np.load(path, allow_pickle=False) as data:
        image = np.empty((1 + n_masks, *shape), np.float32)
        image[0] = data["dose_gy"].astype(np.float32) / config.dose_scale_gy
        if n_masks:
            bits = np.unpackbits(data["masks"], count=n_masks * int(np.prod(shape)))
            image[1:] = bits.reshape(n_masks, *shape)
        return image, data["origin_mm"]



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
kinetics_inputs_from_batch = inputs_from_batch
