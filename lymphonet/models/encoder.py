"""Compact 3D CNN encoder of the dose map and organ masks.

A plain stack of strided residual-free conv blocks (conv 3x3x3 stride 2 -> norm -> activation ->
conv 3x3x3 -> norm -> activation), widths doubling per block, then global average pooling and a
linear projection. With the defaults (4 blocks, base width 16) it has about 0.8 M parameters and
reduces a 48^3 input to 3^3 before pooling. Group normalisation (Wu & He, ECCV 2018) is the
default because training batches on CPU are small (batch-norm statistics over 8 samples are
noisy), and it behaves identically in training and evaluation.
"""

from __future__ import annotations

import torch
from torch import nn

from lymphonet.errors import InputError


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "none":
        return nn.Identity()
    raise InputError(f"unknown norm {kind!r}; use group, instance, batch or none", field="model.norm")


class ConvBlock(nn.Module):
    """Strided conv (downsample by 2) + conv, each followed by norm and SiLU.

    Args:
        c_in, c_out: Channels.
        norm: "group", "instance", "batch" or "none".
        n_convs: Convolutions in the block (the first is strided).
    """

    def __init__(self, c_in: int, c_out: int, norm: str = "group", n_convs: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [nn.Conv3d(c_in if i == 0 else c_out, c_out, 3, stride=2 if i == 0 else 1,
                                 padding=1, bias=norm == "none"),
                       _norm(norm, c_out), nn.SiLU(inplace=True)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class DoseEncoder(nn.Module):
    """3D CNN: image ``[B, C, D, H, W]`` -> embedding ``[B, embed_dim]``.

    Args:
        in_channels: C (dose channel + organ-mask channels).
        width: Channels of the first block; block i has ``width * 2**i`` (capped at ``max_width``).
        depth: Number of strided blocks (each halves the spatial size).
        embed_dim: Output embedding size.
        norm: Normalisation ("group", "instance", "batch", "none").
        convs_per_block: Convolutions per block.
        max_width: Cap on block width.
        dropout: Dropout on the pooled features.
    """

    def __init__(self, in_channels: int, width: int = 16, depth: int = 4, embed_dim: int = 64,
                 norm: str = "group", convs_per_block: int = 2, max_width: int = 128,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if in_channels < 1 or width < 1 or depth < 1 or embed_dim < 1:
            raise InputError("in_channels, width, depth and embed_dim must be >= 1",
                             field="model.encoder")
        blocks, c = [], in_channels
        for i in range(depth):
            c_out = min(width * 2**i, max_width)
            blocks.append(ConvBlock(c, c_out, norm, convs_per_block))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, embed_dim),
                                  nn.SiLU())
        self.in_channels = in_channels
        self.embed_dim = embed_dim

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Embed a batch.

        Args:
            image: ``[B, C, D, H, W]`` float (channel 0 = dose / dose scale, then masks).

        Returns:
            ``[B, embed_dim]`` embedding.
        """
        if image.dim() != 5 or image.shape[1] != self.in_channels:
            raise InputError(f"image must be [B, {self.in_channels}, D, H, W], got "
                             f"{tuple(image.shape)}", field="image")
        feats = self.blocks(image)
        return self.head(feats.mean(dim=(2, 3, 4)))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
