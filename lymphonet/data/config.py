"""Data settings: how plans become model inputs (grid, channels, features, augmentation).

:class:`DataConfig` is a frozen dataclass loaded from the ``data:`` section of a YAML config
(``configs/default.yaml`` documents every key). It is read by the cache (what is computed once per
plan), the image code (grid and channels), the dataset (padding, observation window) and the
bundle (the exported model remembers the settings it was trained with).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from lymphonet.errors import InputError

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
        max_dose_gy: Plausibility limit of a course's maximum dose (Gy); a higher dose is refused
            (raise it only for brachytherapy-like doses).
        prescription_check: Refuse plans whose dose maximum or target D95 disagrees with
            ``n_fractions x dose_per_fraction_gy`` (docs/refusals.md); off for lattice / SFRT or
            composite plans.
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
    max_dose_gy: float = 150.0
    prescription_check: bool = True
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
        if not self.max_dose_gy > 0:
            raise InputError("max_dose_gy must be > 0 Gy", field="data.max_dose_gy")
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
                "blood_particles", "feature_seed", "default_beam_on_time_s", "max_dose_gy",
                "prescription_check")
        return {k: list(d[k]) if isinstance(d[k], tuple) else d[k] for k in keep}


@dataclass(frozen=True)
class CohortConfig:
    """Where the cohort comes from: ``path`` (a cohort folder), else generated (SIMULATED).

    Attributes:
        path: A cohort folder in the data contract (manifest + labs); None = generate one.
        synthetic: In-memory synthetic contract data instead (smoke runs; no files).
        n, sites, modalities, seed, paired, spacing_mm, particles, truth: Settings of the
            generated cohort (:func:`lymphonet.twin.cohort.simulate_cohort`; ``truth`` is the
            kinetics core that makes the true ALC, ``recirculation`` by default, not the
            hybrid's own); recorded with it, and a change regenerates it.
    """

    path: str | None = None
    synthetic: bool = False
    n: int = 320
    sites: tuple[str, ...] = ("esophagus", "lung", "pancreas", "glioblastoma")
    modalities: tuple[str, ...] = ("photon", "proton")
    seed: int = 0
    paired: bool = False
    spacing_mm: float = 8.0
    particles: int = 5000
    truth: str = "recirculation"
