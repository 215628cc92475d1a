"""The hybrid model: 3D CNN over the dose map + MLP over clinical features -> kinetic adjustments.

Per patient the network outputs *bounded adjustments* ``theta`` of a subset of the kinetic
parameters (radiosensitivity, blood share, recovery times, fast fraction, chemo rate ...), in the
unconstrained space of :mod:`lymphonet.kinetics.params`. The kinetics layer integrates the
schedule with them. The adjustment head is zero-initialised and ``theta = 0`` maps to the
population prior exactly, so an untrained (or zero-output) hybrid *is* the population
mechanistic model, and any finite output stays inside the physical bounds (APHYNITY-style
hybrid, Yin et al., ICLR 2021).

Ablations are one config switch each (:class:`ModelConfig`): ``use_kinetics = False`` replaces the
kinetics layer by a head predicting log(ALC / baseline) at fixed knots (a CNN-only baseline);
``use_cnn = False`` gives the mechanistic + clinical model; with ``use_cnn = use_clinical =
False`` and ``learn_population_shift = False`` it is the mechanistic model at its priors (theta = 0).
The kinetics layer always runs in float32 outside autocast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from lymphonet.data.batch import Batch, kinetics_inputs
from lymphonet.errors import InputError
from lymphonet.kinetics import cores, interpolate_days
from lymphonet.models.encoder import DoseEncoder
from lymphonet.models.noise import ResidualNoise

#: Parameters the network adjusts by default (two-population core): radiosensitivity,
#: exposed-blood share, fast fraction, both recovery times, lost production capacity, chemotherapy
#: effect. The recirculation core's default set is ``cores.DEFAULT_ADJUSTED["recirculation"]``.
DEFAULT_ADJUSTED = cores.DEFAULT_ADJUSTED["two_population"]


@dataclass(frozen=True)
class EncoderConfig:
    """3D CNN encoder (see :class:`~lymphonet.models.encoder.DoseEncoder`)."""

    width: int = 16
    depth: int = 4
    embed_dim: int = 64
    norm: str = "group"
    convs_per_block: int = 2
    max_width: int = 128
    dropout: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    """Hybrid model switches and sizes (every field documented in configs/default.yaml)."""

    use_kinetics: bool = True
    kinetics_core: str = "two_population"
    use_cnn: bool = True
    use_clinical: bool = True
    use_dose_summary: bool = True
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    mlp_hidden: int = 64
    mlp_layers: int = 2
    dropout: float = 0.1
    adjusted_params: tuple[str, ...] = DEFAULT_ADJUSTED
    max_adjustment: float = 3.0
    learn_population_shift: bool = True
    n_days: int = 200
    steps_per_day: int = 1
    n_output_knots: int = 12
    knot_spacing: str = "linear"
    noise_knots: int = 4
    init_sigma: float = 0.3


@dataclass
class HybridOutput:
    """Forward result for B patients on T grid days.

    Attributes:
        alc: ``[B, T]`` predicted ALC (10^9/L, float32) on ``days``.
        days: ``[T]`` grid days (float32).
        theta: ``[B, n_params]`` unconstrained kinetic parameters used (None without kinetics).
        adjustment: ``[B, n_adjusted]`` per-patient part of theta (None when no network branch).
    """

    alc: torch.Tensor
    days: torch.Tensor
    theta: torch.Tensor | None
    adjustment: torch.Tensor | None


def _mlp(n_in: int, hidden: int, layers: int, dropout: float) -> tuple[nn.Module, int]:
    mods: list[nn.Module] = []
    c = n_in
    for _ in range(layers):
        mods += [nn.Linear(c, hidden), nn.SiLU(), nn.Dropout(dropout)]
        c = hidden
    return nn.Sequential(*mods), c


class HybridModel(nn.Module):
    """Encoder + clinical MLP -> kinetic adjustments -> kinetics (or a direct trajectory head).

    Args:
        n_channels: Image channels C (0 when the CNN is off is fine).
        n_clinical: Clinical feature count F.
        n_dose_summary: Dose-summary feature count S (used if ``use_dose_summary``).
        cfg: :class:`ModelConfig`.
    """

    def __init__(self, n_channels: int, n_clinical: int, n_dose_summary: int = 0,
                 cfg: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        known = cores.param_names(cfg.kinetics_core)
        unknown = [n for n in cfg.adjusted_params if n not in known]
        if unknown:
            raise InputError(f"unknown {cfg.kinetics_core} kinetic parameters {unknown}; known "
                             f"{list(known)}", field="model.adjusted_params")
        self.cfg = cfg
        self.encoder = None
        n_feat = 0
        if cfg.use_cnn:
            e = cfg.encoder
            self.encoder = DoseEncoder(n_channels, e.width, e.depth, e.embed_dim, e.norm,
                                       e.convs_per_block, e.max_width, e.dropout)
            n_feat += e.embed_dim
        if cfg.use_clinical:
            n_feat += n_clinical + (n_dose_summary if cfg.use_dose_summary else 0)
        self.trunk, n_hidden = (None, 0) if n_feat == 0 else _mlp(
            n_feat, cfg.mlp_hidden, cfg.mlp_layers, cfg.dropout)
        n_out = len(cfg.adjusted_params) if cfg.use_kinetics else cfg.n_output_knots
        self.head = None
        if self.trunk is not None:
            self.head = nn.Linear(n_hidden, n_out)
            nn.init.zeros_(self.head.weight)  # zero output at init = population model
            nn.init.zeros_(self.head.bias)
        self.population_shift = None
        if cfg.use_kinetics and cfg.learn_population_shift:
            self.population_shift = nn.Parameter(torch.zeros(len(cfg.adjusted_params)))
        self.kinetics = cores.build(cfg.kinetics_core, cfg.n_days, cfg.steps_per_day) \
            if cfg.use_kinetics else None
        self.noise = ResidualNoise(cfg.n_days - 1, cfg.noise_knots, cfg.init_sigma)

    # ------------------------------------------------------------------ the network part
    def network(self, image: torch.Tensor | None, clinical: torch.Tensor,
                dose_summary: torch.Tensor | None) -> torch.Tensor:
        """The exportable tensor function: ``[B, P]`` float32 network output.

        With the kinetics layer: the full unconstrained theta (``P`` = number of kinetic
        parameters: bounded adjustments + population shift). Without it (the CNN-only ablation):
        the ``P = n_output_knots`` values of log(ALC / baseline) at knots spaced per ``knot_spacing``.

        Args:
            image: ``[B, C, D, H, W]`` (ignored when the CNN is off).
            clinical: ``[B, F]`` encoded clinical features (sets the batch size B).
            dose_summary: ``[B, S]`` dose summaries (ignored unless used).
        """
        adj = self._adjustment(image, clinical, dose_summary)
        if self.kinetics is None:
            return adj if adj is not None else clinical.new_zeros(clinical.shape[0],
                                                                 self.cfg.n_output_knots).float()
        return self._theta(adj, clinical)

    def _adjustment(self, image, clinical, dose_summary) -> torch.Tensor | None:
        """Per-patient network output ``[B, n_adjusted]`` (bounded by ``max_adjustment``; the
        knot values for the CNN-only head), or None when no branch is on."""
        h = self._trunk(image, clinical, dose_summary)
        if h is None:
            return None
        raw = self.head(h).float()
        if self.kinetics is None:
            return raw
        m = self.cfg.max_adjustment
        return m * torch.tanh(raw / m)  # bounded, exact 0 at 0

    def _theta(self, adj: torch.Tensor | None, clinical: torch.Tensor) -> torch.Tensor:
        """Full theta ``[B, n_params]``: adjustment + population shift on the adjusted names."""
        sub = clinical.new_zeros(clinical.shape[0], len(self.cfg.adjusted_params)).float()
        if adj is not None:
            sub = sub + adj
        if self.population_shift is not None:
            sub = sub + self.population_shift.float()
        return cores.expand(self.cfg.kinetics_core, sub, self.cfg.adjusted_params)

    def trajectory(self, net_out: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alc [B, T] in 10^9/L, days [T])`` float32 from the network output and the batch's
        kinetics keys (or its baseline ALC for the CNN-only head)."""
        n_days = self.cfg.n_days
        if self.kinetics is not None:
            with torch.autocast(device_type=net_out.device.type, enabled=False):  # float32
                out = self.kinetics(kinetics_inputs(batch), net_out.float())
            return out.alc, out.days.float()
        base = batch["baseline_alc"].float()
        days = torch.arange(n_days, dtype=torch.float32, device=base.device)
        u = torch.linspace(0, 1, self.cfg.n_output_knots, device=base.device)
        # quadratic spacing resolves the first weeks, where most nadirs fall
        knot_days = (n_days - 1) * (u ** 2 if self.cfg.knot_spacing == "quadratic" else u)
        log_ratio = interpolate_days(net_out.float(), knot_days, days.expand(base.shape[0], -1))
        return base[:, None] * log_ratio.exp(), days

    def _trunk(self, image, clinical, dose_summary) -> torch.Tensor | None:
        """Trunk features ``[B, hidden]`` from image and clinical inputs (None if both off)."""
        if self.trunk is None:
            return None
        parts = []
        if self.encoder is not None:
            parts.append(self.encoder(image))
        if self.cfg.use_clinical:
            parts.append(clinical.to(parts[0].dtype if parts else torch.float32))
            if self.cfg.use_dose_summary and dose_summary is not None:
                parts.append(dose_summary.to(parts[0].dtype))
        return self.trunk(torch.cat(parts, 1))

    def forward(self, batch: Batch) -> HybridOutput:
        """Predict the daily ALC trajectory of a batch (keys: :data:`~lymphonet.data.batch.BATCH_KEYS`)."""
        clinical = batch["clinical"]
        adj = self._adjustment(batch.get("image"), clinical, batch.get("dose_summary"))
        if self.kinetics is None:
            knots = adj if adj is not None else clinical.new_zeros(
                clinical.shape[0], self.cfg.n_output_knots).float()
            alc, days = self.trajectory(knots, batch)
            return HybridOutput(alc=alc, days=days, theta=None, adjustment=None)
        theta = self._theta(adj, clinical)
        alc, days = self.trajectory(theta, batch)
        return HybridOutput(alc=alc, days=days, theta=theta, adjustment=adj)
