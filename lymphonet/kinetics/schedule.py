"""Inputs of the kinetics layer: schedule, per-fraction dose quantiles, chemotherapy, baseline.

The blood-dose engine (:mod:`lymphonet.dosimetry`) reduces a plan to per-fraction dose
*quantiles*: ``blood_dose_q_gy[b, (k,) q]`` is the dose one fraction gives to blood particles at
probability level ``(q + 0.5) / Q``; ``lymphoid_dose_q_gy[b, l, q]`` the same over the voxels of
lymphoid organ ``l`` (order :data:`lymphonet.organs.LYMPHOID_ORGANS`; zeros where absent).
Doses are RBE-weighted Gy, so photons, protons and carbon ions need no special case.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from lymphonet.errors import InputError
from lymphonet.organs import LYMPHOID_ORGANS
from lymphonet.schema import weekday_fraction_days

#: Chemotherapy codes of ``KineticsInputs.chemo``.
CHEMO_NONE, CHEMO_CONCURRENT, CHEMO_SEQUENTIAL = 0, 1, 2
CHEMO_CODES = {"none": CHEMO_NONE, "concurrent": CHEMO_CONCURRENT, "sequential": CHEMO_SEQUENTIAL}

#: Chemotherapy regimen classes of ``KineticsInputs.chemo_regimen`` (their lymphotoxicity differs:
#: temozolomide depletes CD4 cells for months, platinum doublets and antimetabolites less so).
CHEMO_REGIMENS: tuple[str, ...] = ("unspecified", "temozolomide", "platinum", "antimetabolite")
#: Patterns (regular expressions, matched case-insensitively) that put a free-text regimen in a
#: class, in order of precedence: a regimen with temozolomide is temozolomide; a platinum doublet
#: with a fluoropyrimidine (FOLFOX, cisplatin/5-FU) is platinum. Brand names and common
#: abbreviations are included; word boundaries keep "days-1" from reading as S-1.
_REGIMEN_PATTERNS: tuple[tuple[str, str], ...] = (
    ("temozolomide", r"temozolomid|\btmz\b|temodar|temodal"),
    ("platinum", (r"platin|\bcddp\b|\bcarbo\b|\bcis\b|folfox|folfirinox|capox|xelox|\beox\b|"
                  r"\becf\b|\bpf\b|\btp\b")),
    ("antimetabolite", (r"fluoro|\b5-?fu\b|\b5 fu\b|capecitabine|xeloda|gemcitabine|\bgem\b|"
                        r"(?<![\w-])s-?1\b|\bts-?1\b|tegafur|\buft\b|pemetrexed|folfiri|"
                        r"\bde gramont\b")),
)
#: Words that say the regimen was not given.
_NOT_GIVEN = r"\b(no|not|none|declined|without|omitted)\b"


def regimen_code(text: str | None, chemo: str | None = None) -> int:
    """Class code (index in :data:`CHEMO_REGIMENS`) of a free-text regimen; 0 when unknown,
    mixed, none, a phrase that says it was not given ("no TMZ", "declined"), or when the course's
    ``chemo`` is ``"none"`` (a regimen named for a course without chemotherapy was not given)."""
    t = (text or "").strip().lower()
    if not t or chemo == "none" or re.search(_NOT_GIVEN, t):
        return 0
    for name, pattern in _REGIMEN_PATTERNS:
        if re.search(pattern, t):
            return CHEMO_REGIMENS.index(name)
    return 0


#: Default sequential (adjuvant) chemotherapy window: starts this many days after the last
#: fraction and lasts this long (lymphonet assumption: ~4 weeks rest, 4 cycles of 3 weeks).
#: Induction chemotherapy before RT is already reflected in the pre-RT baseline ALC.
SEQUENTIAL_GAP_DAYS = 28.0
SEQUENTIAL_DURATION_DAYS = 84.0


def blood_quantiles_from_exposure(fraction_exposed, dose_exposed_gy, n_quantiles: int = 32,
                                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Two-level stand-in for a blood-dose distribution (tests and demos).

    A fraction ``fraction_exposed`` of the blood receives ``dose_exposed_gy`` per fraction, the rest
    nothing (the shape HEDOS-type engines give for a short beam-on, Shin et al. PMB 2021). The
    exposed share occupies the top quantile levels; the level whose bin straddles the boundary gets
    the dose times the exposed share of its bin, so the mean dose equals
    ``fraction_exposed * dose_exposed_gy`` exactly (mean survival is exact when ``f Q`` is an
    integer).

    Args:
        fraction_exposed: Exposed share of blood, in [0, 1]; scalar or ``[B]``.
        dose_exposed_gy: Per-fraction dose to the exposed share (Gy); scalar or ``[B]``.
        n_quantiles: Q.

    Returns:
        ``[B, Q]`` (or ``[Q]`` for scalars) per-fraction dose quantiles (Gy), non-decreasing.
    """
    f = torch.as_tensor(fraction_exposed, dtype=dtype)
    d = torch.as_tensor(dose_exposed_gy, dtype=dtype)
    if (f < 0).any() or (f > 1).any() or (d < 0).any():
        raise InputError("fraction_exposed must be in [0, 1] and dose_exposed_gy >= 0",
                         field="blood_dose")
    f, d = torch.broadcast_tensors(f, d)
    edges = torch.arange(n_quantiles + 1, dtype=dtype) / n_quantiles  # level bins [q/Q, (q+1)/Q]
    # share of bin q lying in the exposed top tail [1 - f, 1]
    lo_edge, hi_edge = edges[:-1], edges[1:]
    start = (1 - f)[..., None]
    share = ((hi_edge - torch.maximum(lo_edge, start)).clamp(min=0) * n_quantiles).clamp(max=1)
    return share * d[..., None]


def lea_catcheside_g(mu_t: torch.Tensor) -> torch.Tensor:
    """Lea-Catcheside dose-protraction factor for constant dose rate over time T.

    G(x) = 2 (x - 1 + exp(-x)) / x^2 with x = mu T (mu: repair rate, T: delivery time);
    G -> 1 for acute delivery (x -> 0) and -> 2/x for long delivery (Lea & Catcheside 1942;
    constant-rate form as in Brenner & Hall / Dale's LQ formulation). A Taylor series is used for
    small x to avoid cancellation.
    """
    x = mu_t
    small = x < 1e-3
    xs = torch.where(small, torch.ones_like(x), x)
    g_big = 2.0 * (xs - 1.0 + torch.exp(-xs)) / xs**2
    g_small = 1.0 - x / 3.0 + x**2 / 12.0
    return torch.where(small, g_small, g_big)


def protraction_g(inputs: KineticsInputs, repair_half_time_h: float) -> torch.Tensor | float:
    """Lea-Catcheside factor G of every fraction of a batch: ``[B, K]``, or ``[B, 1]`` when every
    patient has one beam-on time (so callers skip ``[B, K, (L,) Q]`` work), or 1.0 (acute) when
    ``inputs.beam_on_s`` is None. Repair rate ``ln 2 / repair_half_time_h``."""
    if inputs.beam_on_s is None:
        return 1.0
    mu_per_s = math.log(2.0) / (repair_half_time_h * 3600.0)
    beam = inputs.beam_on_s
    if bool(torch.where(inputs.fraction_mask, beam == beam[:, :1], True).all()):
        beam = beam[:, :1]
    return lea_catcheside_g(beam * mu_per_s)


@dataclass
class KineticsInputs:
    """Everything the kinetics layer needs for a batch of B patients (K fractions max, Q levels).

    Attributes:
        blood_dose_q_gy: ``[B, Q]`` (same every fraction) or ``[B, K, Q]`` per-fraction blood-dose
            quantiles (Gy, RBE-weighted).
        fraction_days: ``[B, K]`` days of each fraction from day 0 (float; padding arbitrary).
        fraction_mask: ``[B, K]`` bool, True for real fractions.
        baseline_alc: ``[B]`` pre-treatment ALC (10^9/L).
        lymphoid_dose_q_gy: ``[B, L, Q]`` per-fraction dose quantiles over each lymphoid organ
            (order LYMPHOID_ORGANS), or None (no resident-organ dose).
        lymphoid_coverage: ``[B, L]`` share (0..1) of each organ's lymphocytes that the given
            quantiles represent (the rest gets no dose); None = 1. E.g. contoured node stations
            hold only part of the body's lymph nodes.
        beam_on_s: ``[B, K]`` beam-on time per fraction (s), only for the Lea-Catcheside factor;
            None = acute (G = 1).
        chemo: ``[B]`` long, 0 none / 1 concurrent / 2 sequential; None = no chemo.
        chemo_start_day, chemo_end_day: ``[B]`` optional explicit chemo window [start, end)
            overriding the default (concurrent: first fraction day to last fraction day + 1;
            sequential: adjuvant, SEQUENTIAL_GAP_DAYS after the last fraction for
            SEQUENTIAL_DURATION_DAYS).
        chemo_regimen: ``[B]`` long, regimen class (index in :data:`CHEMO_REGIMENS`, 0 =
            unspecified; see :func:`regimen_code`); None = unspecified. Only the recirculation core
            uses it.
        dose_rate_blood_gy_h: ``[B, T]`` protracted dose rate to blood (Gy/h) on steps of
            ``dose_rate_step_h`` from day 0 (radiopharmaceuticals, brachytherapy), or None; see
            :mod:`lymphonet.kinetics.dose_rate`. Adds to the fractions.
        dose_rate_organs_gy_h: ``[B, T, L]`` the same for the lymphoid organs (each the rate of
            the whole organ), or None.
        dose_rate_step_h: ``[B]`` step of the dose-rate grid (h; one value for the batch), needed
            with either rate.
    """

    blood_dose_q_gy: torch.Tensor
    fraction_days: torch.Tensor
    fraction_mask: torch.Tensor
    baseline_alc: torch.Tensor
    lymphoid_dose_q_gy: torch.Tensor | None = None
    lymphoid_coverage: torch.Tensor | None = None
    beam_on_s: torch.Tensor | None = None
    chemo: torch.Tensor | None = None
    chemo_start_day: torch.Tensor | None = None
    chemo_end_day: torch.Tensor | None = None
    chemo_regimen: torch.Tensor | None = None
    dose_rate_blood_gy_h: torch.Tensor | None = None
    dose_rate_organs_gy_h: torch.Tensor | None = None
    dose_rate_step_h: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.fraction_days.shape[0])

    def to(self, device=None, dtype: torch.dtype | None = None) -> KineticsInputs:
        """Copy with tensors moved to ``device``; floating tensors cast to ``dtype``."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                out[f.name] = None
            elif v.is_floating_point():
                out[f.name] = v.to(device=device, dtype=dtype)
            else:
                out[f.name] = v.to(device=device)
        return KineticsInputs(**out)

    def validate(self, patient_ids=None) -> None:
        """Raise InputError (naming patient and field) for wrong shapes, NaNs or negative values."""
        b = self.batch_size

        def pid(i):
            return None if patient_ids is None else patient_ids[i]

        def check(name, t, ndims, nonneg=True):
            if t is None:
                return
            if t.dim() not in ndims or t.shape[0] != b:
                raise InputError(f"expected {ndims}-d tensor with batch {b}, got {tuple(t.shape)}",
                                 field=name)
            if t.is_floating_point():
                bad = ~torch.isfinite(t) | ((t < 0) if nonneg else torch.zeros_like(t, dtype=bool))
                if bad.any():
                    i = int(bad.reshape(b, -1).any(-1).nonzero()[0])
                    raise InputError("non-finite or negative value", patient=pid(i), field=name)

        check("blood_dose_q_gy", self.blood_dose_q_gy, (2, 3))
        check("fraction_days", self.fraction_days, (2,))
        check("fraction_mask", self.fraction_mask, (2,))
        check("baseline_alc", self.baseline_alc, (1,))
        check("lymphoid_dose_q_gy", self.lymphoid_dose_q_gy, (3,))
        check("lymphoid_coverage", self.lymphoid_coverage, (2,))
        check("beam_on_s", self.beam_on_s, (2,))
        check("chemo", self.chemo, (1,))
        check("chemo_regimen", self.chemo_regimen, (1,))
        check("dose_rate_blood_gy_h", self.dose_rate_blood_gy_h, (2,))
        check("dose_rate_organs_gy_h", self.dose_rate_organs_gy_h, (3,))
        check("dose_rate_step_h", self.dose_rate_step_h, (1,))
        organs = self.dose_rate_organs_gy_h
        if organs is not None and organs.shape[-1] != len(LYMPHOID_ORGANS):
            raise InputError(f"dose_rate_organs_gy_h needs L = {len(LYMPHOID_ORGANS)} organs "
                             f"{LYMPHOID_ORGANS} in its last axis", field="dose_rate_organs_gy_h")
        rated = self.dose_rate_blood_gy_h is not None or organs is not None
        if rated and (self.dose_rate_step_h is None or not bool(
                (self.dose_rate_step_h == self.dose_rate_step_h[0]).all()
                & (self.dose_rate_step_h[0] > 0))):
            raise InputError("a dose-rate curve needs one positive dose_rate_step_h (h) for the "
                             "batch", field="dose_rate_step_h")
        if (self.baseline_alc <= 0).any():
            i = int((self.baseline_alc <= 0).nonzero()[0])
            raise InputError("baseline ALC must be > 0 (10^9/L)", patient=pid(i),
                             field="baseline_alc")
        if self.fraction_mask.shape != self.fraction_days.shape:
            raise InputError("fraction_mask must match fraction_days", field="fraction_mask")
        if self.blood_dose_q_gy.dim() == 3 and self.blood_dose_q_gy.shape[1] != self.fraction_days.shape[1]:
            raise InputError("per-fraction blood_dose_q_gy must have K = fraction_days.shape[1]",
                             field="blood_dose_q_gy")
        if self.lymphoid_dose_q_gy is not None and self.lymphoid_dose_q_gy.shape[1] != len(LYMPHOID_ORGANS):
            raise InputError(f"lymphoid_dose_q_gy needs L = {len(LYMPHOID_ORGANS)} organs "
                             f"{LYMPHOID_ORGANS}", field="lymphoid_dose_q_gy")
        if self.chemo is not None and ((self.chemo < 0) | (self.chemo > 2)).any():
            raise InputError("chemo codes must be 0 none, 1 concurrent, 2 sequential", field="chemo")
        reg = self.chemo_regimen
        if reg is not None and ((reg < 0) | (reg >= len(CHEMO_REGIMENS))).any():
            raise InputError(f"chemo_regimen codes must index {CHEMO_REGIMENS}",
                             field="chemo_regimen")

    @classmethod
    def single(cls, n_fractions: int, blood_dose_q_gy, baseline_alc: float = 2.0,
               fraction_days=None, lymphoid_dose_q_gy=None, beam_on_s: float | None = None,
               chemo: str | int = "none", dtype: torch.dtype = torch.float64) -> KineticsInputs:
        """Build a batch of one patient from plain python values.

        Args:
            n_fractions: Number of fractions.
            blood_dose_q_gy: ``[Q]`` (or ``[K, Q]``) per-fraction blood-dose quantiles (Gy), e.g.
                from :func:`blood_quantiles_from_exposure`.
            baseline_alc: Pre-treatment ALC (10^9/L).
            fraction_days: Days of the fractions; default Monday-Friday from day 0.
            lymphoid_dose_q_gy: ``[L, Q]`` per-fraction lymphoid-organ dose quantiles, or None.
            beam_on_s: Beam-on time per fraction (s), or None (acute).
            chemo: "none" / "concurrent" / "sequential" or 0/1/2.
        """
        days = weekday_fraction_days(n_fractions) if fraction_days is None else np.asarray(
            fraction_days, dtype=float)
        if days.shape != (n_fractions,):
            raise InputError(f"fraction_days must have {n_fractions} entries", field="fraction_days")
        code = CHEMO_CODES.get(chemo, chemo) if isinstance(chemo, str) else int(chemo)
        if code not in (0, 1, 2):
            raise InputError(f"unknown chemo {chemo!r}; use none/concurrent/sequential", field="chemo")
        t = lambda v: torch.as_tensor(v, dtype=dtype)
        return cls(
            blood_dose_q_gy=t(blood_dose_q_gy)[None],
            fraction_days=t(days)[None],
            fraction_mask=torch.ones(1, n_fractions, dtype=torch.bool),
            baseline_alc=t([baseline_alc]),
            lymphoid_dose_q_gy=None if lymphoid_dose_q_gy is None else t(lymphoid_dose_q_gy)[None],
            beam_on_s=None if beam_on_s is None else torch.full((1, n_fractions), float(beam_on_s),
                                                                 dtype=dtype),
            chemo=torch.tensor([code]),
        )

    def index(self, idx) -> KineticsInputs:
        """Sub-batch ``idx`` (slice, index tensor or list)."""
        return replace(self, **{f.name: None if getattr(self, f.name) is None
                                else getattr(self, f.name)[idx] for f in fields(self)})


def concat_inputs(items: list[KineticsInputs]) -> KineticsInputs:
    """Concatenate single-patient or batched inputs along the batch (pads K with masked zeros)."""
    k = max(x.fraction_days.shape[1] for x in items)

    def pad(t, dim, value=0):
        if t.shape[dim] == k:
            return t
        shape = list(t.shape)
        shape[dim] = k - t.shape[dim]
        return torch.cat([t, torch.full(shape, value, dtype=t.dtype)], dim=dim)

    def per_fraction_blood(x):
        q = x.blood_dose_q_gy
        return q if q.dim() == 3 else q[:, None, :].expand(-1, x.fraction_days.shape[1], -1)

    out = {}
    any_3d = any(x.blood_dose_q_gy.dim() == 3 for x in items)
    for f in fields(KineticsInputs):
        vals = [getattr(x, f.name) for x in items]
        if f.name == "blood_dose_q_gy" and (any_3d or len({x.fraction_days.shape[1] for x in items}) > 1):
            vals = [pad(per_fraction_blood(x), 1) for x in items]
        elif f.name in ("fraction_days", "beam_on_s") and vals[0] is not None:
            vals = [pad(v, 1) for v in vals]
        elif f.name == "fraction_mask":
            vals = [pad(v, 1, False) for v in vals]
        if all(v is None for v in vals):
            out[f.name] = None
            continue
        if any(v is None for v in vals):
            raise InputError("cannot concatenate inputs where only some patients give a field",
                             field=f.name)
        out[f.name] = torch.cat(vals, dim=0)
    return KineticsInputs(**out)
