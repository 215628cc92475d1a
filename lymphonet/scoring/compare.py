"""Plan comparison: for a patient with several plans (e.g. photon and proton), how much the
predicted lymphocyte nadir and grade probabilities differ, with intervals.

Every plan is scored as in :mod:`lymphonet.scoring`. Each non-reference plan ``b`` of a patient
is compared with the reference plan ``a`` (the first plan of ``reference_modality``, else the
first listed). Under the bundle's residual-noise model the observed nadir of plan ``x`` is
``N_x = n_x exp(b + sigma_n Z_x)`` (:class:`lymphonet.models.noise.ResidualNoise`), so

* the nadir ratio ``N_b / N_a`` is log-normal with log-mean ``log(n_b / n_a)`` and log-sd
  ``sigma_n sqrt(2 (1 - rho))``: its 90% interval and ``P(N_b > N_a)`` are closed form;
* the nadir difference ``N_b - N_a`` has no closed form: its 90% interval is the 5th-95th
  percentile of 20,000 seeded Monte-Carlo draws.

``rho`` is the correlation of the two plans' residuals for the same patient. It is not
identifiable without paired outcomes; the default 0 gives the widest (conservative) intervals,
since a patient's own deviation from the model (e.g. higher radiosensitivity) would move both
plans the same way. Grade-probability differences are point values: the noise model has no
uncertainty of its own parameters to put an interval on them.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lymphonet.errors import InputError
from lymphonet.metrics import normal_quantile
from lymphonet.schema import escape_cell
from lymphonet.scoring.runner import ScoreOptions, iter_scores, manifest_tasks

COMPARE_COLUMNS: tuple[str, ...] = (
    "patient_id", "reference_plan_id", "plan_id", "reference_modality", "modality",
    "model_version", "nadir_reference", "nadir_plan", "delta_nadir", "delta_nadir_lower",
    "delta_nadir_upper", "nadir_ratio", "nadir_ratio_lower", "nadir_ratio_upper",
    "p_higher_nadir", "p_grade3plus_reference", "p_grade3plus_plan", "delta_p_grade3plus",
    "p_grade4_reference", "p_grade4_plan", "delta_p_grade4", "status", "error")
_MC_DRAWS = 20_000


@dataclass
class CompareResult:
    """Outcome of :func:`compare_plans`."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    n_patients: int = 0
    n_single: int = 0
    n_error: int = 0
    out: Path | None = None
    plot: Path | None = None

    def line(self) -> str:
        return (f"{self.n_patients} patients with several plans, {len(self.rows)} comparisons "
                f"({self.n_error} errors); {self.n_single} patients with one plan skipped "
                f"-> {self.out}" + (f", plot {self.plot}" if self.plot else ""))


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def nadir_difference(n_ref: float, n_plan: float, sigma: float, shift: float, rho: float = 0.0,
                     level: float = 0.9, seed: int = 0) -> dict[str, float]:
    """Difference and ratio of the observed nadirs of two plans (10^9/L).

    Args:
        n_ref, n_plan: Predicted nadirs (10^9/L, > 0).
        sigma: sd of log observed nadir (the noise model's ``sigma_nadir``).
        shift: Log shift ``b`` of the observed nadir.
        rho: Correlation of the two plans' residuals (in [-1, 1]).
        level: Central coverage.
        seed: Monte-Carlo seed (results are reproducible).

    Returns:
        ``delta_nadir`` (n_plan - n_ref), its interval (observed nadirs, Monte Carlo),
        ``nadir_ratio`` and its interval (closed form), ``p_higher_nadir`` = P(N_plan > N_ref).
    """
    if not -1.0 <= rho <= 1.0:
        raise InputError(f"rho must be in [-1, 1], got {rho}", field="rho")
    z = normal_quantile(0.5 + level / 2)
    s_ratio = sigma * math.sqrt(max(2.0 * (1.0 - rho), 0.0))
    log_ratio = math.log(n_plan / n_ref)
    rng = np.random.default_rng(seed)
    za = rng.standard_normal(_MC_DRAWS)
    zb = rho * za + math.sqrt(max(1.0 - rho**2, 0.0)) * rng.standard_normal(_MC_DRAWS)
    diff = n_plan * np.exp(shift + sigma * zb) - n_ref * np.exp(shift + sigma * za)
    lo, hi = np.quantile(diff, [0.5 - level / 2, 0.5 + level / 2])
    p_higher = (0.5 if log_ratio == 0 else float(log_ratio > 0)) if s_ratio == 0 else \
        _phi(log_ratio / s_ratio)
    return {"delta_nadir": n_plan - n_ref, "delta_nadir_lower": float(lo),
            "delta_nadir_upper": float(hi), "nadir_ratio": math.exp(log_ratio),
            "nadir_ratio_lower": math.exp(log_ratio - z * s_ratio),
            "nadir_ratio_upper": math.exp(log_ratio + z * s_ratio), "p_higher_nadir": p_higher}



def compare_plans(bundle_dir: str | Path, manifest: str | Path, out: str | Path, *,
                  plot: str | Path | None = None, workers: int = 1,
                  options: ScoreOptions | None = None, reference_modality: str = "photon",
                  rho: float = 0.0, progress: bool = False) -> CompareResult:
    """Compare the plans of each patient of a manifest and write ``out`` (CSV).

    Holds every plan's summary and trajectory in memory (meant for plan sets, not cohorts).

    Args:
        bundle_dir: Model bundle.
        manifest: Manifest with several rows (plan_id) per patient.
        out: Output CSV (columns :data:`COMPARE_COLUMNS`).
        plot: Trajectory figure (PNG), one panel per patient (first 12); None = no plot.
        workers: Scoring processes.
        options: Scoring options (trajectories are always computed).
        reference_modality: Modality of the reference plan.
        rho: Residual correlation between a patient's plans (see module docstring).
        progress: Progress bar.
    """
    from dataclasses import replace

    from lymphonet.bundle.load import load_bundle

    options = options or ScoreOptions()
    bundle = load_bundle(bundle_dir)
    noise = bundle.model.noise
    sigma, shift = float(noise.sigma_nadir.detach()), float(noise.nadir_shift.detach())
    tasks, root = manifest_tasks(manifest, options.alc_unit)
    scored: dict[str, list[tuple[Any, dict, np.ndarray | None]]] = {}
    opts = replace(options, trajectories=True)
    for task, row, traj, _ in iter_scores(bundle.path, tasks, root, opts, workers, progress,
                                          verify=False):
        scored.setdefault(task.patient_id, []).append((task, row, traj))
    result = CompareResult(out=Path(out))
    for pid, plans in scored.items():
        if len(plans) < 2:
            result.n_single += 1
            continue
        result.n_patients += 1
        modality = lambda t: t.record.modality if t.record is not None else ""
        ref = next((p for p in plans if modality(p[0]) == reference_modality), plans[0])
        for task, row, _ in plans:
            if task is ref[0]:
                continue
            result.rows.append(_compare_row(pid, ref, (task, row), modality, sigma, shift, rho,
                                            bundle.model_version))
    result.n_error = sum(r["status"] == "error" for r in result.rows)
    result.out.parent.mkdir(parents=True, exist_ok=True)
    with open(result.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, COMPARE_COLUMNS)
        w.writeheader()
        w.writerows({k: (f"{v:.6g}" if isinstance(v, float) else escape_cell(v))
                     for k, v in r.items()}
                    for r in result.rows)
    if plot is not None:
        result.plot = plot_trajectories({p: v for p, v in scored.items() if len(v) > 1},
                                        Path(plot))
    return result


def _compare_row(pid, ref, other, modality, sigma, shift, rho, version) -> dict[str, Any]:
    (rt, rr, _), (ot, orow) = ref, other
    row: dict[str, Any] = {c: "" for c in COMPARE_COLUMNS}
    row.update(patient_id=pid, reference_plan_id=rt.plan_id, plan_id=ot.plan_id,
               reference_modality=modality(rt), modality=modality(ot), model_version=version)
    failed = [r for r in (rr, orow) if r["status"] != "ok"]
    if failed:
        row.update(status="error", error=" | ".join(f"{r['plan_id']}: {r['error']}"
                                                     for r in failed))
        return row
    row.update(nadir_difference(rr["predicted_nadir"], orow["predicted_nadir"], sigma, shift,
                                rho))
    row.update(nadir_reference=rr["predicted_nadir"], nadir_plan=orow["predicted_nadir"],
               p_grade3plus_reference=rr["p_grade3plus"], p_grade3plus_plan=orow["p_grade3plus"],
               delta_p_grade3plus=orow["p_grade3plus"] - rr["p_grade3plus"],
               p_grade4_reference=rr["p_grade4"], p_grade4_plan=orow["p_grade4"],
               delta_p_grade4=orow["p_grade4"] - rr["p_grade4"], status="ok")
    return row


def plot_trajectories(scored: dict[str, list], path: Path, max_patients: int = 12) -> Path:
    """Predicted ALC trajectories with 90% bands, one panel per patient, one line per plan."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = list(scored.items())[:max_patients]
    n = max(1, len(items))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (pid, plans) in zip(axes.ravel(), items):
        for task, row, traj in plans:
            label = f"{task.plan_id} ({task.record.modality if task.record else '?'})"
            if traj is None:
                ax.plot([], [], label=f"{label}: error")
                continue
            line, = ax.plot(traj[:, 0], traj[:, 1], label=label)
            ax.fill_between(traj[:, 0], traj[:, 2], traj[:, 3], color=line.get_color(), alpha=0.15)
        for g, level in ((3, 0.5), (4, 0.2)):
            ax.axhline(level, color="grey", lw=0.7, ls="--")
            ax.text(0, level, f" G{g}", va="bottom", fontsize=7, color="grey")
        ax.set_title(f"patient {pid}", fontsize=9)
        ax.set_xlabel("day from first fraction")
        ax.set_ylabel("ALC (10^9/L)")
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(items):]:
        ax.axis("off")
    fig.suptitle("Predicted lymphocyte counts per plan (90% bands)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
