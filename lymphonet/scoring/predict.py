"""A bundle's model as a predictor of one prepared plan: network (eager, ONNX or TorchScript),
kinetics layer and noise model -> nadir, nadir day, grade probabilities, intervals, trajectory."""

from __future__ import annotations

import numpy as np
import torch

from lymphonet.bundle.portable import onnx_session, run_onnx
from lymphonet.errors import InputError
from lymphonet.kinetics.model import nadir
from lymphonet.models.head import NetworkHead
from lymphonet.scoring.prepare import Backend, PreparedPlan


class Predictor:
    """Network part (chosen backend) + kinetics + noise model of a bundle.

    Args:
        bundle: Loaded bundle.
        backend: ``torch``, ``onnx`` or ``torchscript``.
        level: Central coverage of intervals.
    """

    def __init__(self, bundle, backend: Backend = "torch", level: float = 0.9) -> None:
        self.bundle, self.backend, self.level = bundle, backend, level
        self.model = bundle.model.eval()
        if backend == "torch":
            self._net = NetworkHead(self.model).eval()
        elif backend == "torchscript":
            if bundle.torchscript_path is None:
                raise InputError("the bundle has no network.ts", file=bundle.path,
                                 field="--backend")
            import warnings

            with warnings.catch_warnings():  # jit.load is deprecated in favour of torch.export
                warnings.simplefilter("ignore", DeprecationWarning)
                self._net = torch.jit.load(str(bundle.torchscript_path))
        elif backend == "onnx":
            if bundle.onnx_path is None:
                raise InputError("the bundle has no network.onnx (export with onnx installed)",
                                 file=bundle.path, field="--backend")
            try:
                self._session = onnx_session(bundle.onnx_path)
            except ImportError:
                raise InputError("backend onnx needs onnxruntime (pip install "
                                 "'lymphonet[onnx]')", field="--backend") from None
        else:
            raise InputError(f"unknown backend {backend!r}; use torch, onnx or torchscript",
                             field="--backend")

    def network(self, image: np.ndarray, clinical: np.ndarray, summary: np.ndarray) -> torch.Tensor:
        """``[B, P]`` network output for batched numpy inputs."""
        if self.backend == "onnx":
            return torch.from_numpy(run_onnx(None, image, clinical, summary, self._session))
        with torch.no_grad():
            return self._net(torch.from_numpy(image), torch.from_numpy(clinical),
                             torch.from_numpy(summary)).float()

    @torch.no_grad()
    def predict(self, plan: PreparedPlan) -> tuple[dict[str, float], np.ndarray]:
        """Score one prepared plan.

        Returns:
            ``(values, trajectory)``: the numeric output columns, and ``[T, 4]`` float array of
            (day, alc, lower, upper) in days and 10^9/L.
        """
        out = self.network(plan.image[None], plan.clinical[None].astype(np.float32),
                           plan.dose_summary[None].astype(np.float32))
        batch = {k: torch.as_tensor(np.asarray(v))[None] for k, v in plan.kinetics.items()}
        alc, days = self.model.trajectory(out, batch)
        noise = self.model.noise
        value, day = nadir(alc, days)
        probs = noise.grade_probabilities(value)
        lo, hi = noise.nadir_interval(value, self.level)
        t_lo, t_hi = noise.interval(alc, days, self.level)
        values = {"predicted_nadir": float(value[0]), "nadir_day": float(day[0]),
                  "p_grade3plus": float(probs[3][0]), "p_grade4": float(probs[4][0]),
                  "nadir_lower": float(lo[0]), "nadir_upper": float(hi[0])}
        traj = torch.stack([days, alc[0], t_lo[0], t_hi[0]], 1).numpy()
        return values, traj
