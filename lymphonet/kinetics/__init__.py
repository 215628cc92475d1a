"""Lymphocyte kinetics: a differentiable, batched mechanistic model and its calibration.

Pure torch / numpy / scipy (never torchio or mlflow). See ``docs/kinetics.md``.
"""

from lymphonet.kinetics.model import (
    ORGAN_SHARE_OF_BODY,
    KineticsOutput,
    LymphocyteKinetics,
    interpolate_days,
    mean_survival,
    nadir,
)
from lymphonet.kinetics.params import (
    N_PARAMS,
    PARAM_NAMES,
    PARAM_SPECS,
    KineticParams,
    ParamSpec,
    dphysical_dtheta,
    expand_theta,
    param_spec,
    params_to_theta,
    theta_to_params,
    theta_to_tensor,
)
from lymphonet.kinetics.schedule import (
    CHEMO_CODES,
    KineticsInputs,
    blood_quantiles_from_exposure,
    concat_inputs,
    lea_catcheside_g,
)

__all__ = [
    "CHEMO_CODES",
    "N_PARAMS",
    "ORGAN_SHARE_OF_BODY",
    "PARAM_NAMES",
    "PARAM_SPECS",
    "KineticParams",
    "KineticsInputs",
    "KineticsOutput",
    "LymphocyteKinetics",
    "ParamSpec",
    "blood_quantiles_from_exposure",
    "concat_inputs",
    "dphysical_dtheta",
    "expand_theta",
    "interpolate_days",
    "lea_catcheside_g",
    "mean_survival",
    "nadir",
    "param_spec",
    "params_to_theta",
    "theta_to_params",
    "theta_to_tensor",
]
