"""The network part of a hybrid model as a portable graph (ONNX, TorchScript) and its parity.

:class:`~lymphonet.models.head.NetworkHead` is the tensor function image, clinical vector, dose
summary -> theta (or the CNN-only head's knots); the kinetics layer and noise model stay in eager
PyTorch (:meth:`HybridModel.trajectory <lymphonet.models.hybrid.HybridModel.trajectory>`). :func:`portable_exports` writes ``network.onnx`` (dynamo
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

from lymphonet.models.head import NetworkHead


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
