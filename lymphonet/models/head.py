"""The network part of a hybrid model as a pure tensor function, for export (ONNX, TorchScript).

``NetworkHead(model)(image [B, C, D, H, W], clinical [B, F], dose_summary [B, S]) -> [B, P]`` is
exactly :meth:`HybridModel.network <lymphonet.models.hybrid.HybridModel.network>`: the full theta
with the kinetics layer, the log(ALC / baseline) knots for the CNN-only head. The kinetics layer
and the noise model stay in eager PyTorch (:meth:`HybridModel.trajectory`).
"""

from __future__ import annotations

import torch
from torch import nn


class NetworkHead(nn.Module):
    """Wraps a :class:`~lymphonet.models.hybrid.HybridModel` as image, clinical, summary -> out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, clinical: torch.Tensor,
                dose_summary: torch.Tensor) -> torch.Tensor:
        return self.model.network(image, clinical, dose_summary)
