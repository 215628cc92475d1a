"""Models: the compact 3D CNN encoder, the hybrid CNN + kinetics model, the residual noise model."""

from lymphonet.models.encoder import DoseEncoder, count_parameters
from lymphonet.models.hybrid import (
           DEFAULT_ADJUSTED,
           EncoderConfig,
           HybridModel,
           HybridOutput,
           ModelConfig,
)
from lymphonet.models.noise import GRADE_CUTOFFS, ResidualNoise

__all__ = ["DEFAULT_ADJUSTED", "GRADE_CUTOFFS", "DoseEncoder", "EncoderConfig", "HybridModel",
           "HybridOutput", "ModelConfig", "ResidualNoise", "count_parameters"]
