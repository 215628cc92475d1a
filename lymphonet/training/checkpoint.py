"""Checkpoints: a plain dict of tensors + JSON-able values, loadable with ``weights_only=True``.

Layout (``torch.save`` of a dict; nothing pickled beyond tensors, numbers, strings, lists, dicts)::

    format        "lymphonet-checkpoint/1"
    model         state_dict (tensors)
    optimizer     optimizer state_dict (tensors + numbers), or None
    scheduler     LR-scheduler state_dict, or None
    config        the resolved TrainingRunConfig as a plain dict
    model_inputs  {"n_channels", "n_clinical", "n_dose_summary"}: what build_model needs
    state         {"epoch", "best_metric", "best_epoch", "bad_epochs", "history"}
    encoder       the fitted clinical-feature encoder (JSON-able dict) or None
    rng           {"torch": ByteTensor, "cuda": [ByteTensor], "numpy": JSON-able list}
    versions      {"lymphonet", "torch", "python"}

A checkpoint never holds patient identifiers.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lymphonet.errors import InputError

FORMAT = "lymphonet-checkpoint/1"


def versions() -> dict[str, str]:
    """Versions recorded in every checkpoint."""
    from lymphonet import __version__

    return {"lymphonet": str(__version__), "torch": str(torch.__version__),
            "python": platform.python_version()}


def rng_state() -> dict[str, Any]:
    """Torch (CPU, CUDA) and numpy global RNG states in weights-only-loadable form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, torch.as_tensor(keys.astype(np.int64)), int(pos), int(has_gauss),
                      float(cached)]}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


def _plain_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def save_checkpoint(path: str | Path, model: torch.nn.Module, *, config: dict[str, Any],
                    model_inputs: dict[str, int], state: dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None, scheduler=None,
                    encoder: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (temp file + rename) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model": _plain_model_state(model),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "config": config,
        "model_inputs": {k: int(v) for k, v in model_inputs.items()},
        "state": state,
        "encoder": encoder,
        "rng": rng_state(),
        "versions": versions(),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` (no arbitrary code).

    Raises:
        InputError: Missing file, unreadable file or not a lymphonet checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint not found", file=path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise InputError(f"cannot read checkpoint: {err}", file=path) from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputError(f"not a {FORMAT} file", file=path, field="format")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the model of a loaded checkpoint (config + weights), in eval mode."""
    from lymphonet.config import from_dict
    from lymphonet.models.hybrid import HybridModel, ModelConfig

    cfg = from_dict(ModelConfig, ckpt["config"]["model"], where="checkpoint.config.model")
    model = HybridModel(cfg=cfg, **ckpt["model_inputs"])
    model.load_state_dict(ckpt["model"])
    return model.eval()
