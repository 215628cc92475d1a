"""The network part of a hybrid model as a portable graph (ONNX, TorchScript) and its parity.

:class:`NetworkHead` is the tensor function image, clinical vector, dose summary -> theta (or the
CNN-only head's knots); the kinetics layer and noise model stay in eager PyTorch
(:func:`trajectory_from_network`). :func:`portable_exports` writes ``network.onnx`` (dynamo
exporter; needs ``onnx`` + ``onnxscript``, optional extra ``lymphonet[onnx]``) and ``network.ts``
(``torch.jit.trace``, always available) and measures their largest absolute difference from
eager PyTorch on inputs of another batch size than the one traced.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


class NetworkHead(nn.Module):
    """Network part of a :class:`~lymphonet.models.hybrid.HybridModel` as a pure tensor function.

    ``forward(image [B, C, D, H, W], clinical [B, F], dose_summary [B, S]) -> [B, P]``: with the
    kinetics layer the full unconstrained theta (``P`` = number of kinetic parameters, float32,
    bounded adjustments + population shift, exactly :meth:`HybridModel.theta`); without it (the
    CNN-only ablation) the ``P = n_output_knots`` log(ALC / baseline) knot values.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, clinical: torch.Tensor,
                dose_summary: torch.Tensor) -> torch.Tensor:
        batch = {"image": image, "clinical": clinical, "dose_summary": dose_summary,
                 "baseline_alc": clinical[:, 0]}
        m = self.model
        if m.kinetics is not None:
            return m.theta(batch)[0]
        h = m.features(batch)
        if h is None:
            return clinical.new_zeros(clinical.shape[0], m.cfg.n_output_knots)
        return m.head(h).float()


def trajectory_from_network(model: nn.Module, net_out: torch.Tensor,
                            batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """ALC trajectory from the network part's output (the rest of ``HybridModel.forward``).

    Args:
        model: The eager HybridModel (its kinetics layer and config are used).
        net_out: ``[B, P]`` output of :class:`NetworkHead` (any backend).
        batch: Contract keys for the kinetics (``blood_dose_q_gy``, ``fraction_days``, ...).

    Returns:
        ``(alc [B, T] in 10^9/L, days [T])``, float32.
    """
    from lymphonet.kinetics import interpolate_days
    from lymphonet.models.hybrid import batch_kinetics_inputs

    if model.kinetics is not None:
        out = model.kinetics(batch_kinetics_inputs(batch), net_out.float())
        return out.alc, out.days.float()
    base = batch["baseline_alc"].float()
    n_days = model.cfg.n_days
    days = torch.arange(n_days, dtype=torch.float32)
    knot_days = torch.linspace(0, n_days - 1, model.cfg.n_output_knots)
    log_ratio = interpolate_days(net_out.float(), knot_days, days.expand(base.shape[0], -1))
    return base[:, None] * log_ratio.exp(), days


def example_inputs(model_inputs: dict[str, int], shape: tuple[int, int, int], batch: int = 2,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Deterministic example network inputs (dose-like channel 0 in [0, 1.4], 0/1 masks)."""
    g = torch.Generator().manual_seed(seed)
    c, f = model_inputs["n_channels"], model_inputs["n_clinical"]
    s = max(1, model_inputs.get("n_dose_summary", 0))
    image = (torch.rand(batch, c, *shape, generator=g) > 0.7).float()
    image[:, 0] = torch.rand(batch, *shape, generator=g) * 1.4
    return image, torch.randn(batch, f, generator=g), torch.rand(batch, s, generator=g) * 10


def portable_exports(model: nn.Module, folder: Path, model_inputs: dict[str, int],
                      shape: tuple[int, int, int], onnx: bool, torchscript: bool
                      ) -> dict[str, Any]:
    """Write network.onnx / network.ts and measure parity with eager PyTorch."""
    head = NetworkHead(model).eval()
    inputs = example_inputs(model_inputs, shape, batch=2)
    check = example_inputs(model_inputs, shape, batch=3, seed=1)  # other batch size, values
    with torch.no_grad():
        ref = head(*check).numpy()
    report: dict[str, Any] = {}
    if torchscript:
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(head, inputs, check_trace=False)
                traced.save(str(folder / "network.ts"))
                got = torch.jit.load(str(folder / "network.ts"))(*check).detach().numpy()
            report["torchscript"] = {"max_abs_diff": float(np.abs(got - ref).max()),
                                     "batch": 3}
        except Exception as err:  # noqa: BLE001 - a missing fallback is reported, not fatal
            report["torchscript"] = {"error": f"{type(err).__name__}: {err}"}
    if onnx:
        report["onnx"] = _export_onnx(head, inputs, check, ref, folder / "network.onnx")
    return report


def _export_onnx(head: nn.Module, inputs, check, ref: np.ndarray, path: Path) -> dict[str, Any]:
    try:
        import onnxscript  # noqa: F401 - needed by the dynamo exporter
    except ImportError:
        return {"skipped": "onnx export needs `pip install lymphonet[onnx]` (onnx, onnxscript)"}
    import logging

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision not installed" noise
    try:
        batch = torch.export.Dim("batch", min=1, max=4096)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                head, inputs, dynamo=True, input_names=["image", "clinical", "dose_summary"],
                output_names=["net_out"], verbose=False,
                dynamic_shapes={"image": {0: batch}, "clinical": {0: batch},
                                "dose_summary": {0: batch}})
        program.save(str(path))
    except Exception as err:  # noqa: BLE001
        if path.exists():
            path.unlink()
        return {"error": f"{type(err).__name__}: {err}"[:500]}
    out: dict[str, Any] = {"opset": "default", "batch": 3}
    try:
        got = run_onnx(path, *check)
        out["max_abs_diff"] = float(np.abs(got - ref).max())
    except ImportError:
        out["max_abs_diff"] = None
        out["note"] = "onnxruntime not installed: parity not measured at export"
    return out


def run_onnx(path: Path, image, clinical, dose_summary, session=None) -> np.ndarray:
    """Run network.onnx with ONNX Runtime (CPU) on torch or numpy inputs -> ``[B, P]`` numpy."""
    if session is None:
        session = onnx_session(path)
    feed = {"image": np.asarray(image, np.float32), "clinical": np.asarray(clinical, np.float32),
            "dose_summary": np.asarray(dose_summary, np.float32)}
    names = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in feed.items() if k in names})[0]


def onnx_session(path: Path, threads: int = 1):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (deterministic order)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
