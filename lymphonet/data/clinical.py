"""The clinical vector of a plan: standardised numbers, missing-value indicators, one-hots.

Fitted on the training fold only and stored with checkpoints and bundles, so scoring encodes a
new plan exactly as training did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lymphonet.errors import InputError
from lymphonet.kinetics.schedule import CHEMO_CODES, CHEMO_REGIMENS, regimen_code
from lymphonet.schema import KNOWN_SITES, PlanRecord

#: Continuous clinical features: name -> (function of a record, may be missing).
_NUMERIC = {
    "age": (lambda r: r.age, True),
    "bmi": (lambda r: r.bmi, True),
    "log_baseline_alc": (lambda r: math.log(r.baseline_alc), False),
    "log_dose_per_fraction_gy": (lambda r: math.log(r.dose_per_fraction_gy), False),
    "n_fractions": (lambda r: float(r.n_fractions), False),
    "log_beam_on_time_s": (lambda r: math.log(r.beam_on_time_s), True),
}
_SEXES = ("F", "M", "unknown")
_CHEMO = ("none", "concurrent", "sequential", "unknown")
_STEROIDS = ("yes", "no", "unknown")
#: Content version of :meth:`ClinicalEncoder.to_dict` (2: steroids and regimen class one-hots).
ENCODER_VERSION = 2
_MODALITIES = ("photon", "proton", "carbon")


def _default_sites() -> tuple[str, ...]:
    return tuple(KNOWN_SITES) + ("other",)


@dataclass(frozen=True)
class ClinicalEncoder:
    """Clinical vector of a plan: standardised numbers, missing indicators, one-hots.

    Continuous features (:data:`_NUMERIC`) are standardised with the mean and standard deviation
    of the plans given to :meth:`fit` (the training fold); a missing value becomes 0 (the mean)
    and its ``<name>_missing`` indicator 1. Categorical features are one-hot over fixed
    vocabularies (sex F/M/unknown; chemo none/concurrent/sequential/unknown; regimen class;
    steroids yes/no/unknown; modality;
    site = the simulator's site names + ``other``), so the width F never depends on the data.

    Attributes:
        mean: Name -> training mean of each continuous feature.
        std: Name -> training standard deviation (1 when undefined or 0).
        sites: Site vocabulary (last entry ``other``).
    """

    mean: dict[str, float]
    std: dict[str, float]
    sites: tuple[str, ...]

    @classmethod
    def fit(cls, plans: Sequence[PlanRecord]) -> ClinicalEncoder:
        """Standardisation statistics from ``plans`` (pass the training fold only)."""
        if not plans:
            raise InputError("cannot fit the clinical encoder on no plans", field="clinical")
        raw = _numeric_matrix(plans)
        mean, std = {}, {}
        for j, name in enumerate(_NUMERIC):
            col = raw[:, j][np.isfinite(raw[:, j])]
            mean[name] = float(col.mean()) if col.size else 0.0
            sd = float(col.std()) if col.size > 1 else 0.0
            std[name] = sd if sd > 1e-8 else 1.0
        return cls(mean, std, _default_sites())

    @classmethod
    def identity(cls) -> ClinicalEncoder:
        """An encoder that does not standardise (mean 0, sd 1): for tests and untrained models."""
        return cls({k: 0.0 for k in _NUMERIC}, {k: 1.0 for k in _NUMERIC}, _default_sites())

    @property
    def feature_names(self) -> list[str]:
        """Column names of :meth:`transform`, in order."""
        names = list(_NUMERIC)
        names += [f"{n}_missing" for n, (_, optional) in _NUMERIC.items() if optional]
        names += [f"sex={v}" for v in _SEXES] + [f"chemo={v}" for v in _CHEMO]
        names += [f"regimen={v}" for v in CHEMO_REGIMENS] + [f"steroids={v}" for v in _STEROIDS]
        names += [f"modality={v}" for v in _MODALITIES] + [f"site={v}" for v in self.sites]
        return names

    @property
    def n_features(self) -> int:
        """F."""
        return len(self.feature_names)

    def transform(self, plans: Sequence[PlanRecord]) -> np.ndarray:
        """``[N, F]`` float32 clinical vectors (columns :attr:`feature_names`)."""
        raw = _numeric_matrix(plans)
        mu = np.array([self.mean[n] for n in _NUMERIC])
        sd = np.array([self.std[n] for n in _NUMERIC])
        missing = ~np.isfinite(raw)
        z = np.where(missing, 0.0, (np.where(missing, 0.0, raw) - mu) / sd)
        optional = [j for j, (_, opt) in enumerate(_NUMERIC.values()) if opt]
        site_index = {s: i for i, s in enumerate(self.sites)}

        def onehot(values, vocab):
            out = np.zeros((len(plans), len(vocab)))
            out[np.arange(len(plans)), [vocab.index(v) for v in values]] = 1.0
            return out

        sexes = [p.sex if p.sex in ("F", "M") else "unknown" for p in plans]
        chemo = [p.chemo if p.chemo in CHEMO_CODES else "unknown" for p in plans]
        sites = np.zeros((len(plans), len(self.sites)))
        for i, p in enumerate(plans):
            key = (p.site or "").strip().lower()
            sites[i, site_index.get(key, len(self.sites) - 1)] = 1.0
        regimen = [CHEMO_REGIMENS[regimen_code(p.chemo_regimen, p.chemo)] for p in plans]
        steroids = [p.steroids if p.steroids in ("yes", "no") else "unknown" for p in plans]
        return np.concatenate([z, missing[:, optional].astype(float), onehot(sexes, _SEXES),
                               onehot(chemo, _CHEMO), onehot(regimen, CHEMO_REGIMENS),
                               onehot(steroids, _STEROIDS),
                               onehot([p.modality for p in plans], _MODALITIES), sites],
                              axis=1).astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-safe content (for checkpoints and model bundles)."""
        return {"version": ENCODER_VERSION, "numeric": list(_NUMERIC), "mean": dict(self.mean),
                "std": dict(self.std), "sites": list(self.sites)}

    @classmethod
    def from_dict(cls, data: dict) -> ClinicalEncoder:
        """Inverse of :meth:`to_dict`.

        Raises:
            InputError: Missing keys or features this version does not know.
        """
        try:
            if data.get("version") != ENCODER_VERSION:
                raise InputError(f"clinical encoder version {data.get('version')} (this version "
                                 f"reads {ENCODER_VERSION}: steroids and regimen class were "
                                 "added); retrain or export the model again",
                                 field="clinical_encoder")
            if list(data["numeric"]) != list(_NUMERIC):
                raise InputError(f"clinical encoder features {data['numeric']} differ from "
                                 f"this version's {list(_NUMERIC)}", field="clinical_encoder")
            return cls({k: float(data["mean"][k]) for k in _NUMERIC},
                       {k: float(data["std"][k]) for k in _NUMERIC},
                       tuple(str(s) for s in data["sites"]))
        except (KeyError, TypeError) as err:
            raise InputError(f"bad clinical encoder content ({err!r})",
                             field="clinical_encoder") from None


def _numeric_matrix(plans: Sequence[PlanRecord]) -> np.ndarray:
    """``[N, len(_NUMERIC)]`` raw values, NaN where missing."""
    out = np.full((len(plans), len(_NUMERIC)), np.nan)
    for i, p in enumerate(plans):
        for j, (fn, _) in enumerate(_NUMERIC.values()):
            try:
                out[i, j] = float(fn(p))
            except (TypeError, ValueError):  # log of NaN / non-positive -> missing
                pass
    return out

