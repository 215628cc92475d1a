"""Monte-Carlo dose to circulating blood (the HEDOS model, our implementation).

Model (Shin et al., Phys Med Biol 66:045003, 2021; Beekman et al., Phys Med Biol 68, 2023): blood is
a population of particles moving through the compartments of a :class:`Circulation`. A stay in
compartment ``i`` lasts a Weibull time of shape ``k`` (2 by default; ``k = 1`` is the Markov /
exponential model) scaled so that its mean is ``MTT_i`` (``lambda_i = MTT_i / Gamma(1 + 1/k)``); the
next compartment is drawn from the balanced split fractions. Particles start in equilibrium: the
compartment with probability ``V_i`` and the remaining part of the current stay from the
forward-recurrence law (the current stay is length-biased, ``(T/lambda)^k ~ Gamma(1 + 1/k, 1)``,
and the elapsed part of it is uniform). Fractions are independent.

Dose within a stay (intra-organ correlation): the particle sits in a voxel drawn from the
compartment's per-fraction histogram (voxels weighted by the blood they hold) and receives that
voxel's dose rate ``d_g / T_g`` while beam group ``g`` is on (``T_g`` = beam-on time of the group; one
group unless per-beam dose maps are given). The voxel is redrawn at the events of a Poisson process
of mean interval ``tau_c`` (the correlation time): ``tau_c = inf`` keeps one voxel per stay (v0.1's
rule), ``tau_c -> 0`` averages the histogram (HEDOS redraws every 50 ms step, close to this limit).
The mean blood dose ``sum_i V_i D_i`` does not depend on ``tau_c``; the spread does.

Default ``tau_c`` = 1 s: a stay is mostly spent in the capillary bed, where red cells move about
0.5-1 mm/s and a capillary passage lasts about 1 s (0.75 s in the resting lung, Roughton, Am J
Physiol 143:621, 1945); arterioles and venules are crossed at 1-10 mm/s. Dose changes over
5-10 mm (photon penumbra), so within about 1 s blood stays within one dose level, and an organ stay
of several seconds samples a few independent levels. The two ends are reported by the CLI so the
sensitivity is visible.

Engines (same tables, :mod:`lymphonet.dosimetry.walk_tables`): a compiled per-particle loop on the
CPU (:mod:`lymphonet.dosimetry.walk_cpu`, no torch needed) and a vectorised torch loop for CUDA
(:mod:`lymphonet.dosimetry.walk_torch`). :mod:`lymphonet.dosimetry.reference` walks the same model
per time step, independently, for verification and benchmarks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from lymphonet.dosimetry.circulation import Circulation
from lymphonet.dosimetry.organ_dose import OrganDoseHistograms
from lymphonet.dosimetry.walk_tables import beam_windows, walk_tables
from lymphonet.errors import InputError

#: Default voxel-redraw correlation time, s (see the module docstring).
DEFAULT_TAU_C_S = 1.0


def resolve_device(device) -> str:
    """``"cpu"`` stays on the compiled CPU walk; ``"auto"`` picks CUDA when torch sees one."""
    name = "cpu" if device is None else str(device)
    if name == "cpu":
        return name
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(name).type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but CUDA is not available", field="device")
    return name


@dataclass(frozen=True, eq=False)
class BloodDoseResult:
    """Blood dose of ``particles`` blood particles.

    Attributes:
        per_fraction_gy: Dose of each particle in one fraction, Gy, float32 ``[P]``.
        course_gy: Sum of ``n_fractions`` independent fraction doses per particle, Gy, ``[P]``, or
            ``None`` when not requested.
        n_fractions: Fractions in the course.
        compartments: Compartment ids, length ``N``.
        contribution_gy: Mean per-fraction dose contributed by each compartment, Gy, ``[N]``; sums
            to :attr:`mean_gy`.
        expected_mean_gy: Closed form ``sum_i V_i D_i`` (per fraction) for comparison.
        beam_windows: ``((start_s, duration_s), ...)`` of one fraction.
        weibull_shape: Shape of the stay distribution.
        tau_c_s: Voxel-redraw correlation time, s.
        seconds: Wall time of the walk (tables excluded), s.
        device: Where it ran (``cpu`` or a CUDA device).
        notes: Warnings from the organ mapping.
    """

    per_fraction_gy: np.ndarray
    course_gy: np.ndarray | None
    n_fractions: int
    compartments: tuple[str, ...]
    contribution_gy: np.ndarray
    expected_mean_gy: float
    beam_windows: tuple[tuple[float, float], ...]
    weibull_shape: float
    tau_c_s: float
    seconds: float
    device: str
    notes: tuple[str, ...] = ()
    _sorted: dict = field(default_factory=dict, repr=False)

    @property
    def particles(self) -> int:
        return int(self.per_fraction_gy.size)

    def _values(self, course: bool) -> np.ndarray:
        if course and self.course_gy is None:
            raise InputError("course dose was not simulated (pass course=True)", field="course")
        key = "course" if course else "fraction"
        if key not in self._sorted:
            self._sorted[key] = np.sort(self.course_gy if course else self.per_fraction_gy)
        return self._sorted[key]

    @property
    def mean_gy(self) -> float:
        """Mean per-fraction blood dose, Gy."""
        return float(self.per_fraction_gy.mean(dtype=np.float64))

    @property
    def fraction_any_dose(self) -> float:
        """Fraction of blood with any (> 0) dose in one fraction."""
        return float(np.mean(self.per_fraction_gy > 0))

    def percentile_gy(self, q_percent: float, course: bool = False) -> float:
        """Dose below which ``q_percent`` % of blood lies (linear interpolation), Gy."""
        v = self._values(course)
        return float(np.quantile(v.astype(np.float64), q_percent / 100.0)) if v.size else 0.0

    @property
    def d2_gy(self) -> float:
        """Per-fraction dose received by the most exposed 2% of blood (98th percentile), Gy."""
        return self.percentile_gy(98.0)

    @property
    def d98_gy(self) -> float:
        """Per-fraction dose exceeded by 98% of blood (2nd percentile), Gy."""
        return self.percentile_gy(2.0)

    def quantiles(self, n: int = 128, course: bool = False) -> np.ndarray:
        """Dose (Gy) at probabilities ``(q + 0.5) / n``, ``q = 0..n-1``: float32 ``[n]``.

        Equal-weight representatives of the blood-dose distribution: the surviving fraction of
        blood lymphocytes is ``mean(exp(-alpha * quantiles))``.
        """
        v = self._values(course)
        idx = ((np.arange(n, dtype=np.float64) + 0.5) / n * v.size).astype(np.int64)
        return v[np.minimum(idx, v.size - 1)].astype(np.float32)

    def dvh(self, bin_edges_gy: np.ndarray | None = None, course: bool = False):
        """Cumulative blood DVH: ``(dose_gy [B], fraction of blood receiving >= dose_gy [B])``."""
        v = self._values(course).astype(np.float64)
        if bin_edges_gy is None:
            bin_edges_gy = np.linspace(0.0, max(float(v[-1]) if v.size else 0.0, 1e-6), 101)
        edges = np.asarray(bin_edges_gy, dtype=float)
        return edges, 1.0 - np.searchsorted(v, edges, side="left") / max(v.size, 1)

    def contributions(self) -> dict[str, float]:
        """Compartment -> mean per-fraction dose it contributes (Gy), non-zero entries only."""
        return {c: float(g) for c, g in zip(self.compartments, self.contribution_gy) if g > 0}

    def to_dict(self) -> dict:
        """JSON-ready summary (per-fraction statistics, plus course ones when simulated)."""
        out = {
            "mean_gy": self.mean_gy, "expected_mean_gy": self.expected_mean_gy,
            "fraction_any_dose": self.fraction_any_dose, "d2_gy": self.d2_gy,
            "d98_gy": self.d98_gy, "particles": self.particles, "n_fractions": self.n_fractions,
            "beam_on_time_s": sum(d for _, d in self.beam_windows),
            "beam_windows": [list(w) for w in self.beam_windows],
            "weibull_shape": self.weibull_shape,
            "tau_c_s": self.tau_c_s if math.isfinite(self.tau_c_s) else "inf",
            "seconds": self.seconds, "device": self.device,
            "contributions_gy": self.contributions(), "notes": list(self.notes),
        }
        if self.course_gy is not None:
            out["course_mean_gy"] = float(self.course_gy.mean(dtype=np.float64))
            out["course_d2_gy"] = self.percentile_gy(98.0, course=True)
            out["course_d98_gy"] = self.percentile_gy(2.0, course=True)
        return out


#: Smallest positive correlation time accepted (s): below it the redraws cost ~1/tau_c each and the
#: answer is the tau_c = 0 limit anyway.
MIN_TAU_C_S = 1e-3


def _check_tau_c(tau_c_s: float) -> float:
    tau = float(tau_c_s)
    if math.isnan(tau) or tau < 0 or 0 < tau < MIN_TAU_C_S:
        raise InputError(f"tau_c_s must be 0, >= {MIN_TAU_C_S} s or inf, got {tau_c_s!r}",
                         field="tau_c_s")
    return tau


def simulate_blood_dose(histograms: OrganDoseHistograms, circulation: Circulation,
                        beam_on_time_s: float | None = None, *, beams=None,
                        particles: int = 100_000, n_fractions: int = 1, course: bool = False,
                        weibull_shape: float = 2.0, tau_c_s: float = DEFAULT_TAU_C_S,
                        seed: int = 0, device: str | None = "cpu",
                        threads: int | None = None) -> BloodDoseResult:
    """Simulate per-fraction (and optionally course) blood dose.

    Args:
        histograms: Per-fraction dose histograms of the circulation's compartments.
        circulation: The compartment model (sex, TBV, CO; optionally with a tumour).
        beam_on_time_s: Total beam-on time of one fraction, s (one window from t = 0), or use
            ``beams``.
        beams: Beam windows ``[(start_s, duration_s), ...]`` of one fraction; with per-beam
            histograms (``G`` groups), window ``g`` delivers beam ``g``.
        particles: Number of blood particles ``P``.
        n_fractions: Fractions in the course (only used when ``course``).
        course: Also simulate ``n_fractions`` independent fractions per particle and sum them.
        weibull_shape: Stay-time shape ``k`` (2: HEDOS default; 1: Markov).
        tau_c_s: Voxel-redraw correlation time, s: 0 (histogram mean), > 0, or ``math.inf``
            (one voxel per stay).
        seed: Seed; equal seeds give equal results on one device (whatever ``threads``).
        device: ``"cpu"`` (compiled walk), ``"cuda"`` or ``"auto"`` (torch walk on CUDA).
        threads: CPU threads (default: the cores this process may use).

    Returns:
        A :class:`BloodDoseResult`; its statistics describe one fraction.
    """
    if int(particles) < 1:
        raise InputError(f"particles must be >= 1, got {particles}", field="particles")
    if int(n_fractions) < 1:
        raise InputError(f"n_fractions must be >= 1, got {n_fractions}", field="n_fractions")
    tau = _check_tau_c(tau_c_s)
    dev = resolve_device(device)
    windows = beam_windows(beam_on_time_s, beams)
    tab = walk_tables(circulation, histograms, windows, float(weibull_shape))
    fractions = int(n_fractions) if course else 1
    if dev == "cpu":
        from lymphonet.dosimetry.walk_cpu import walk, warm

        warm(tab)
        start = time.perf_counter()
        fx, course_gy, contrib = walk(tab, int(particles), seed=int(seed),
                                      n_fractions=fractions, tau_c=tau, threads=threads)
    else:
        import torch

        from lymphonet.dosimetry.walk_torch import walk as walk_torch

        start = time.perf_counter()
        fx, course_gy, contrib = walk_torch(tab, int(particles), seed=int(seed),
                                            n_fractions=fractions, tau_c=tau,
                                            device=torch.device(dev))
    if course and course_gy is None:  # one fraction: the course is that fraction
        course_gy = fx.copy()
    return BloodDoseResult(
        fx, course_gy, int(n_fractions), tuple(circulation.names), contrib,
        histograms.expected_blood_mean_gy(circulation.volume_fraction), windows,
        float(weibull_shape), tau, time.perf_counter() - start, dev, histograms.notes)


def _host_compartment(tumor_host: str) -> str:
    """A tumour host given as an organ (``lungs``) or a compartment (``lung``) -> compartment."""
    from lymphonet.dosimetry.organ_map import ORGAN_RULES, canonical_organ

    host = canonical_organ(tumor_host)
    if host in ORGAN_RULES and len(ORGAN_RULES[host].compartments) == 1:
        return ORGAN_RULES[host].compartments[0]
    return host


def _circulation(sex, tbv_l, co_l_min, tumor_host, tumor_fraction) -> Circulation:
    circ = Circulation.reference(sex, tbv_l, co_l_min)
    if tumor_host is None:
        return circ
    return circ.with_tumor(_host_compartment(tumor_host), tumor_fraction)


def blood_dose_for_plan(dose, structures, *, n_fractions: int, beam_on_time_s: float | None = None,
                        beams=None, sex: str = "M", tbv_l: float | None = None,
                        co_l_min: float | None = None,
                        whole_body_volume_l: float | str | None = "reference",
                        unknown: str = "error", composites: str = "error",
                        tumor_host: str | None = None, tumor_fraction: float | None = None,
                        blood_fraction=None, beam_doses=None, patient: str | None = None,
                        **engine) -> BloodDoseResult:
    """Blood dose of a plan: course dose map + canonical structures -> :class:`BloodDoseResult`.

    Args:
        dose: :class:`~lymphonet.io.volume.Volume`, total course dose in Gy.
        structures: :class:`~lymphonet.io.volume.StructureSet` on the dose grid, canonical names.
        n_fractions: Fractions of the course (per-fraction dose = course / n_fractions).
        beam_on_time_s: Beam-on time of one fraction, s (or ``beams`` windows).
        sex: ``"M"`` / ``"F"`` reference circulation; ``tbv_l`` / ``co_l_min`` personalise it.
        whole_body_volume_l: Body volume (L) for the out-of-scan remainder at 0 Gy; ``"reference"``
            (73 L male, 60 L female) or ``None`` for no correction.
        unknown: Non-canonical, non-target structures: ``"error"`` or ``"remainder"``.
        composites: A composite structure without its parts: ``"error"`` or ``"spread"``.
        tumor_host: Organ or compartment the tumour (GTV voxels inside that organ) sits in
            parallel to; ``None``: no tumour compartment (GTV voxels stay in their organ).
        tumor_fraction: The tumour's share of the host's blood and flow; default (and advised)
            the GTV's measured share of the host (:func:`~lymphonet.dosimetry.dose_map_histograms
            .tumour_share`); another value changes the mean blood dose and is noted.
        blood_fraction: Optional relative blood-content map (Volume) weighting voxels.
        beam_doses: Optional per-beam course dose maps (time-resolved delivery; one window each).
        patient: Patient id for error messages.
        **engine: Passed to :func:`simulate_blood_dose` (``particles``, ``seed``, ``device``,
            ``weibull_shape``, ``tau_c_s``, ``course``, ``threads``).
    """
    from lymphonet.dosimetry.dose_map_histograms import histograms_from_dose_map, tumour_share
    from lymphonet.dosimetry.organ_dose import REFERENCE_BODY_VOLUME_L

    host = None if tumor_host is None else _host_compartment(tumor_host)
    if tumor_fraction is not None and host is None:
        raise InputError("tumor_fraction needs tumor_host", patient=patient,
                         field="tumor_fraction")
    if host is not None and tumor_fraction is None:
        tumor_fraction = tumour_share(structures, host, blood_fraction, patient=patient)
    circ = _circulation(sex, tbv_l, co_l_min, tumor_host, tumor_fraction)
    if whole_body_volume_l == "reference":
        whole_body_volume_l = REFERENCE_BODY_VOLUME_L[circ.sex]
    hist = histograms_from_dose_map(dose, structures, circ.names, n_fractions=n_fractions,
                                    whole_body_volume_l=whole_body_volume_l, unknown=unknown,
                                    composites=composites, blood_fraction=blood_fraction,
                                    beam_doses=beam_doses, tumor_host=host, patient=patient)
    return simulate_blood_dose(hist, circ, beam_on_time_s, beams=beams, n_fractions=n_fractions,
                               **engine)


def blood_dose_quantiles(dose, structures, *, n_fractions: int, beam_on_time_s: float | None = None,
                         sex: str = "M", n_quantiles: int = 128, **kwargs) -> np.ndarray:
    """Per-fraction blood-dose quantiles of a plan, Gy, float32 ``[n_quantiles]``.

    The kinetics layer's input: ``survival = mean(exp(-alpha * q))``. Other keyword arguments as in
    :func:`blood_dose_for_plan`.
    """
    result = blood_dose_for_plan(dose, structures, n_fractions=n_fractions,
                                 beam_on_time_s=beam_on_time_s, sex=sex, **kwargs)
    return result.quantiles(n_quantiles)


def blood_dose_from_organ_doses(organ_doses, *, beam_on_time_s: float | None = None,
                                beams=None, sex: str = "M", tbv_l: float | None = None,
                                co_l_min: float | None = None, composites: str = "error",
                                tumor_host: str | None = None, tumor_fraction: float = 0.05,
                                patient: str | None = None, **engine) -> BloodDoseResult:
    """Blood dose from a table ``organ -> per-fraction dose`` (``histograms_from_organ_doses``).

    A ``tumor`` entry needs ``tumor_host`` (HEDOS's default: ``"lung"``, 5% of its blood).
    """
    from lymphonet.dosimetry.organ_dose import histograms_from_organ_doses
    from lymphonet.dosimetry.organ_map import canonical_organ

    has_tumour = any(canonical_organ(k) == "tumor" for k in organ_doses)
    if tumor_host is None and has_tumour:
        raise InputError("a tumour dose needs its host organ (tumor_host, CLI --tumor-host, "
                         "e.g. lung)", patient=patient, field="tumor_host")
    if tumor_host is not None and not has_tumour:
        raise InputError("tumor_host without a tumour dose would take blood from the host and "
                         "give it no dose: add tumor=... or drop tumor_host", patient=patient,
                         field="tumor_host")
    circ = _circulation(sex, tbv_l, co_l_min, tumor_host, tumor_fraction)
    hist = histograms_from_organ_doses(organ_doses, circ.names, composites=composites,
                                       patient=patient)
    return simulate_blood_dose(hist, circ, beam_on_time_s, beams=beams, **engine)
