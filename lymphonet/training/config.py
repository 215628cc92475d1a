"""The training configuration tree (frozen dataclasses; YAML via :func:`lymphonet.config.load_config`).

``TrainingRunConfig`` = name + data + model + loss + train + tracking + cohort. Every key is
documented in ``configs/default.yaml``; unknown keys are errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lymphonet.data.config import CohortConfig, DataConfig
from lymphonet.models.hybrid import ModelConfig
from lymphonet.training.losses import LossConfig


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, evaluation folds and runtime switches."""

    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    grad_clip: float = 1.0
    patience: int = 8
    min_delta: float = 1e-3
    seed: int = 0
    deterministic: bool = True
    amp: str = "bf16"
    num_workers: int = 0
    n_folds: int = 5
    test_fold: int = 0
    val_fold: int = 1
    max_bad_steps: int = 20
    baseline_epochs: int = 3
    baseline_lr: float = 1e-2
    progress: bool = True
    torch_threads: int = 0


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow tracking (one thin module, :mod:`lymphonet.training.tracking`)."""

    enabled: bool = True
    uri: str | None = None
    experiment: str = "lymphonet"
    log_model: bool = True


@dataclass(frozen=True)
class TrainingRunConfig:
    """Everything one training run needs."""

    name: str = "default"
    out_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    cohort: CohortConfig = field(default_factory=CohortConfig)


#: The built-in default config file (``lymphonet train`` with no ``--config``).
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"


def load_training_config(path: str | Path | None = None, overrides=()) -> TrainingRunConfig:
    """Load a :class:`TrainingRunConfig` (``path`` None: the repository's configs/default.yaml).

    The dataclass defaults are generic; the default *run* is the recipe in configs/default.yaml.
    Without that file (a non-editable install), a config must be given explicitly rather than
    silently training a different model.
    """
    from lymphonet.config import load_config
    from lymphonet.errors import InputError

    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            raise InputError("the default config is not installed with this copy of lymphonet; "
                             "pass --config (see configs/default.yaml in the repository)",
                             file=DEFAULT_CONFIG_PATH, field="--config")
        path = DEFAULT_CONFIG_PATH
    return load_config(TrainingRunConfig, path, list(overrides))
