"""The pieces of training as plain functions (no trainer class): model, optimiser, schedule,
AMP, one epoch, prediction and evaluation. The epoch loop itself is ``fit`` in ``train.py``, the
file ``lymphonet train`` runs.
"""

from __future__ import annotations

import contextlib
import random
import time
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from lymphonet.errors import InputError
from lymphonet.kinetics import interpolate_days
from lymphonet.metrics import normal_quantile, summarise
from lymphonet.models.hybrid import HybridModel, ModelConfig
from lymphonet.training.distributed import SINGLE_PROCESS, DistInfo, all_reduce_mean, unwrap
from lymphonet.training.losses import LossConfig, clean_labs, compute_loss, observed, observed_nadir


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; optionally request deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def build_model(cfg: ModelConfig, model_inputs: dict[str, int]) -> HybridModel:
    """The hybrid (or ablated) model for inputs with ``n_channels``, ``n_clinical`` and
    ``n_dose_summary`` features."""
    return HybridModel(model_inputs["n_channels"], model_inputs["n_clinical"],
                       model_inputs.get("n_dose_summary", 0), cfg)


def mechanistic_config(cfg: ModelConfig) -> ModelConfig:
    """The mechanistic model at its priors: kinetics with theta = 0 (only the noise is learned;
    ``mechanistic_prior`` in the evaluation, not the MAP-fitted ``mechanistic_population``)."""
    from dataclasses import replace

    return replace(cfg, use_kinetics=True, use_cnn=False, use_clinical=False,
                   learn_population_shift=False)


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float):
    """AdamW; no weight decay on biases, norms, the noise model and the population shift."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() > 1 and "noise" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def make_scheduler(optimizer, kind: str, epochs: int):
    """Per-epoch LR schedule: "cosine" (to 5% of lr) or "none"."""
    if kind == "none":
        return None
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, epochs),
                                                          eta_min=optimizer.defaults["lr"] * 0.05)
    raise InputError(f"unknown lr_schedule {kind!r}; use cosine or none", field="train.lr_schedule")


def make_scaler(device: torch.device, amp: str):
    """A GradScaler for fp16 autocast on CUDA (fp16 gradients underflow without it); None for
    bf16, off, or another device."""
    if torch.device(device).type == "cuda" and amp == "fp16":
        return torch.amp.GradScaler("cuda")
    return None


def autocast(device: torch.device, amp: str):
    """Autocast context for the network on CUDA ("bf16", "fp16"); a no-op elsewhere or "off"."""
    if device.type != "cuda" or amp == "off":
        return contextlib.nullcontext()
    if amp not in ("bf16", "fp16"):
        raise InputError(f"unknown amp {amp!r}; use bf16, fp16 or off", field="train.amp")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Move every tensor of a batch (non-blocking from pinned memory)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def progress_bar(iterable, enabled: bool, **kw):
    """``iterable`` wrapped in a tqdm bar when ``enabled``."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, leave=False, dynamic_ncols=True, **kw)


def train_one_epoch(model: torch.nn.Module, loader: DataLoader, optimizer, loss_cfg: LossConfig,
                    device: torch.device, *, amp: str = "off", grad_clip: float = 1.0,
                    scaler=None, max_bad_steps: int = 20,
                    info: DistInfo = SINGLE_PROCESS) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss parts, skipped steps and patients/s.

    Non-finite losses or gradient norms skip the step (NaN guard); more than ``max_bad_steps``
    consecutive bad steps raise, as the run has diverged.
    """
    model.train()
    noise = unwrap(model).noise
    sums: dict[str, float] = {}
    n_batches = n_patients = bad = consecutive = 0
    t0 = time.perf_counter()
    # no per-batch progress bar: wrapping the loader in one drew from torch's global RNG and so
    # changed the model with the display (v0.1); the epoch bar in train.py is enough
    for batch in loader:
        batch = to_device(batch, device)
        with autocast(device, amp):
            out = model(batch)
        loss, parts = compute_loss(out, batch, noise, loss_cfg)
        optimizer.zero_grad(set_to_none=True)
        ok = bool(torch.isfinite(loss))
        if ok:
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            ok = bool(torch.isfinite(norm))
        if ok:
            (scaler.step(optimizer) if scaler is not None else optimizer.step())
            consecutive = 0
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            n_batches += 1
        else:
            bad += 1
            consecutive += 1
            optimizer.zero_grad(set_to_none=True)
            if consecutive > max_bad_steps:
                raise FloatingPointError(f"{consecutive} consecutive non-finite steps: diverged")
        if scaler is not None:
            scaler.update()
        n_patients += int(batch["baseline_alc"].shape[0])
    elapsed = time.perf_counter() - t0
    res = {f"train_{k}": v / max(1, n_batches) for k, v in sums.items()}
    res = all_reduce_mean(res, info)
    res.update(bad_steps=float(bad), patients_per_s=n_patients * info.world_size / max(elapsed, 1e-9),
               epoch_s=elapsed)
    return res


@torch.no_grad()
def predict(model: torch.nn.Module, loader: DataLoader, device: torch.device, *, amp: str = "off",
            loss_cfg: LossConfig | None = None, level: float = 0.9) -> dict[str, Any]:
    """Predictions and per-lab / per-patient evaluation arrays for a whole loader (eval mode).

    The loss is the training loss of ``loss_cfg`` (the run's ``cfg.loss``: its weights and its
    ``min_labs_for_nadir``), so early stopping judges what training optimises.

    Returns:
        dict with ``index`` [N], ``alc`` [N, T], ``days`` [T], ``p_g3``/``p_g4`` [N],
        ``nadir_grid`` [N], per-lab arrays ``log_err``, ``nll``, ``inside`` (pooled), per-patient
        ``nadir_pred_at_labs``/``nadir_obs`` (patients with >= ``min_labs_for_nadir`` labs) and
        ``obs_days``/``obs_alc``/``obs_mask`` [N, M].
    """
    net = unwrap(model)
    net.eval()
    loss_cfg = loss_cfg or LossConfig()
    min_labs = loss_cfg.min_labs_for_nadir
    z = normal_quantile(0.5 + level / 2)
    acc: dict[str, list] = {k: [] for k in ("index", "alc", "p_g3", "p_g4", "nadir_grid", "log_err",
                                            "nll", "inside", "nadir_pred_at_labs", "nadir_obs",
                                            "p_g3_lab", "p_g4_lab", "obs_days", "obs_alc",
                                            "obs_mask", "loss")}
    days = None
    for batch in loader:
        batch = to_device(batch, device)
        with autocast(device, amp):
            out = net(batch)
        days = out.days
        loss, _ = compute_loss(out, batch, net.noise, loss_cfg)
        mask = observed(batch, float(days[-1]))
        t_obs, obs = clean_labs(batch, mask)
        pred = interpolate_days(out.alc.float(), days, t_obs)
        sig = net.noise.sigma(t_obs)
        err = pred.clamp_min(1e-6).log() - obs.log()
        acc["log_err"].append(err[mask])
        acc["nll"].append(-net.noise.log_likelihood(pred, obs, t_obs)[mask])
        acc["inside"].append((err.abs() <= z * sig)[mask])
        nadir_grid = out.alc.float().min(1).values
        probs = net.noise.grade_probabilities(nadir_grid)
        enough = mask.sum(1) >= min_labs
        acc["nadir_pred_at_labs"].append(torch.where(mask, pred, torch.inf).min(1).values[enough])
        acc["nadir_obs"].append(observed_nadir(batch, mask)[enough])
        acc["p_g3_lab"].append(probs[3][enough])
        acc["p_g4_lab"].append(probs[4][enough])
        for k, v in (("index", batch["index"]), ("alc", out.alc.float()), ("p_g3", probs[3]),
                     ("p_g4", probs[4]), ("nadir_grid", nadir_grid), ("obs_days", t_obs),
                     ("obs_alc", obs), ("obs_mask", mask),
                     ("loss", loss.reshape(1) * batch["baseline_alc"].shape[0])):
            acc[k].append(v)
    res = {k: torch.cat(v).cpu().numpy() if v else np.zeros(0) for k, v in acc.items()}
    res["days"] = days.cpu().numpy() if days is not None else np.zeros(0)
    res["loss"] = float(res["loss"].sum() / max(1, len(res["index"])))
    return res


def evaluate(model: torch.nn.Module, loader: DataLoader, device: torch.device, *,
             amp: str = "off", loss_cfg: LossConfig | None = None) -> dict[str, float]:
    """Held-out metrics (:func:`lymphonet.metrics.summarise`) plus the mean loss of ``loss_cfg``."""
    p = predict(model, loader, device, amp=amp, loss_cfg=loss_cfg)
    m = summarise(p["log_err"], p["nadir_pred_at_labs"], p["nadir_obs"], p["p_g3_lab"],
                  p["p_g4_lab"], p["inside"], p["nll"])
    m["loss"] = p["loss"]
    return m
