"""Multi-process training with ``torchrun``: setup, teardown and small helpers.

``torchrun --nproc_per_node N train.py ...`` (or ``--nnodes``/``--rdzv-endpoint`` for several
nodes) sets RANK, WORLD_SIZE and LOCAL_RANK. :func:`setup` reads them, initialises the process
group (NCCL on CUDA, gloo otherwise) and picks the device; without them it is a no-op
(single process). Each rank trains on its :class:`~torch.utils.data.DistributedSampler` shard;
DistributedDataParallel averages gradients; validation runs on every rank over the full
validation set so early-stopping decisions agree; only rank 0 writes checkpoints and tracks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank, world size, local rank, and whether it is rank 0."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


#: The single-process default (DistInfo is frozen, so sharing one instance is safe).
SINGLE_PROCESS = DistInfo()


def select_device(requested: str | None = None, local_rank: int = 0) -> torch.device:
    """``requested`` ("cuda", "cuda:1", "mps", "cpu") or the best available: cuda > mps > cpu."""
    if requested and requested != "auto":
        dev = torch.device(requested)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", local_rank)
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def setup(device: str | None = None, backend: str | None = None,
          timeout_s: float = 600.0) -> tuple[DistInfo, torch.device]:
    """Initialise the process group if launched by torchrun; return (info, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), select_device(device)
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    dev = select_device(device, info.local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if dev.type == "cuda" else "gloo"),
                                timeout=timedelta(seconds=timeout_s))
    return info, dev


def teardown() -> None:
    """Destroy the process group (if any)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when running multi-process, else ``model``.

    The noise-model parameters are used in the loss, outside ``forward``; that is fine for DDP
    as long as every parameter gets a gradient in every step, which the loss guarantees
    (:func:`lymphonet.training.losses.compute_loss`), so unused-parameter search stays off.
    """
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel (or the model itself)."""
    return getattr(model, "module", model)


def all_reduce_mean(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average python floats over ranks (identity single-process)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t)}


def barrier(info: DistInfo) -> None:
    """Synchronise ranks (no-op single-process)."""
    if info.enabled:
        dist.barrier()
