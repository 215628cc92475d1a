"""The evaluation report's figures (matplotlib PNGs, base64 for embedding).

ROC and calibration curves of every model, reliability of the hybrid per site and per modality,
the grade-4 decision curve (net benefit against "flag all" and "flag none"), the compare-plans
scatter (predicted vs true or observed particle-minus-photon nadir difference of paired
patients) and sample trajectories. :func:`figures` returns them all by name.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np

from lymphonet import metrics as M
from lymphonet.evaluation.decisions import net_benefit, paired_rows, treat_all_net_benefit


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _roc_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-p, kind="mergesort")
    y = y[order]
    tpr = np.r_[0, np.cumsum(y) / max(y.sum(), 1)]
    fpr = np.r_[0, np.cumsum(1 - y) / max((1 - y).sum(), 1)]
    return fpr, tpr


def figures(result) -> dict[str, str]:
    """name -> base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = result.outcomes
    labels = M.grade_labels(out.nadir)
    figs = {}
    for kind in ("roc", "calibration"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
        for ax, ep, title in zip(axes, ("g3", "g4"), ("grade >= 3", "grade 4")):
            y = labels[ep]
            for name, pred in result.predictions.items():
                p = getattr(pred, ep)
                ok = np.isfinite(y) & np.isfinite(p)
                if ok.sum() < 2 or len(set(y[ok])) < 2:
                    continue
                if kind == "roc":
                    fpr, tpr = _roc_points(y[ok], p[ok])
                    ax.plot(fpr, tpr, label=f"{name} ({M.auroc(y[ok], p[ok]):.2f})")
                else:
                    bins = min(5, max(2, ok.sum() // 10))
                    edges = np.unique(np.quantile(p[ok], np.linspace(0, 1, bins + 1)))
                    idx = np.clip(np.searchsorted(edges, p[ok], side="right") - 1, 0,
                                  max(len(edges) - 2, 0))
                    xs = [p[ok][idx == b].mean() for b in np.unique(idx)]
                    ys = [y[ok][idx == b].mean() for b in np.unique(idx)]
                    ax.plot(xs, ys, "o-", label=name)
            ax.plot([0, 1], [0, 1], ":", color="grey")
            ax.set_title(f"{'ROC' if kind == 'roc' else 'Calibration'}: {title}")
            ax.set_xlabel("false-positive rate" if kind == "roc" else "predicted probability")
            ax.set_ylabel("true-positive rate" if kind == "roc" else "observed rate")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
            else:
                ax.text(0.5, 0.5, "not estimable: one outcome class\nin the held-out plans",
                        ha="center", va="center", transform=ax.transAxes)
        figs[kind] = _png(fig)
    figs["trajectories"] = _trajectory_figure(result, plt)
    figs["reliability"] = _reliability_by_group(result, plt)
    figs["decision"] = _decision_curve(result, plt)
    paired = _paired_figure(result, plt)
    if paired is not None:
        figs["paired"] = paired
    return figs


def _bins(y: np.ndarray, p: np.ndarray, n_max: int = 5) -> tuple[list[float], list[float]]:
    """Quantile-binned (mean predicted, observed rate) points."""
    bins = min(n_max, max(2, len(p) // 10))
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    keys = np.unique(idx)
    return [float(p[idx == b].mean()) for b in keys], [float(y[idx == b].mean()) for b in keys]


def _reference_model(result) -> str:
    return "hybrid" if "hybrid" in result.predictions else next(iter(result.predictions))


def _reliability_by_group(result, plt) -> str:
    """Reliability of the reference model's P(grade >= 3) and P(grade 4) per site and per
    modality (quantile bins; the diagonal is perfect calibration)."""
    out, name = result.outcomes, _reference_model(result)
    pred, labels = result.predictions[name], M.grade_labels(out.nadir)
    groups = [("site", out.sites), ("modality", out.modalities)]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.4), layout="constrained")
    for row, ep, title in ((0, "g3", "grade >= 3"), (1, "g4", "grade 4")):
        y, p = labels[ep], getattr(pred, ep)
        for col, (kind, values) in enumerate(groups):
            ax = axes[row, col]
            for g in sorted(set(values)):
                ok = (values == g) & np.isfinite(y) & np.isfinite(p)
                if ok.sum() >= 4:
                    xs, ys = _bins(y[ok], p[ok], 4)
                    ax.plot(xs, ys, "o-", label=f"{g} (n={int(ok.sum())})")
            ax.plot([0, 1], [0, 1], ":", color="grey")
            ax.set_title(f"{name}: {title} by {kind}", fontsize=10)
            ax.set_xlabel("predicted probability")
            ax.set_ylabel("observed rate")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    return _png(fig)


def _decision_curve(result, plt) -> str:
    """Net benefit of flagging grade 4 at each threshold probability, every model against
    "flag all" and "flag none"."""
    y = M.grade_labels(result.outcomes.nadir)["g4"]
    t = np.linspace(0.02, 0.5, 49)
    w = np.ones((1, len(y)))
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    for i, (name, pred) in enumerate(result.predictions.items()):
        if np.isfinite(pred.g4).any():  # past 10 models the colours repeat: dash them
            ax.plot(t, [net_benefit(y, pred.g4, x, w)[0] for x in t], label=name, lw=1.3,
                    ls="-" if i < 10 else "--")
    ax.plot(t, [treat_all_net_benefit(y, x, w)[0] for x in t], "k--", lw=1, label="flag all")
    ax.axhline(0.0, color="grey", lw=1, label="flag none")
    prevalence = float(np.nanmean(y)) if np.isfinite(y).any() else 0.0
    ax.set_ylim(-0.05, max(0.05, prevalence * 1.1))
    ax.set_xlabel("threshold probability of grade 4")
    ax.set_ylabel("net benefit")
    ax.set_title("Decision curve: grade 4 (observed labs)")
    ax.legend(fontsize=7)
    return _png(fig)


def _paired_figure(result, plt) -> str | None:
    """Predicted vs true (or observed) particle-minus-photon nadir of paired patients."""
    out = result.outcomes
    photon, particle = paired_rows(out.patient_ids, out.modalities)
    models = {k: p for k, p in result.predictions.items() if p.alc is not None}
    if len(photon) < 3 or not models:
        return None
    ref = out.true_nadir if out.true_nadir is not None else out.nadir
    truth = ref[particle] - ref[photon]
    fig, ax = plt.subplots(figsize=(6.5, 6), layout="constrained")
    for name, p in models.items():
        nad = p.alc.min(1)
        ax.plot(truth, nad[particle] - nad[photon], "o", ms=3, alpha=0.7, label=name)
    lim = np.nanmax(np.abs(np.r_[truth, 0.1]))
    ax.plot([-lim, lim], [-lim, lim], ":", color="grey")
    kind = "true" if out.true_nadir is not None else "observed"
    ax.set_xlabel(f"{kind} nadir, particle - photon (10^9/L)")
    ax.set_ylabel("predicted nadir, particle - photon (10^9/L)")
    ax.set_title(f"Compare plans: {len(photon)} patients with both plans")
    ax.legend(fontsize=7)
    return _png(fig)


def sample_plans(out, n: int = 6, seed: int = 0) -> list[int]:
    """Up to ``n`` held-out rows with labs, alternating photon and particle plans (seeded)."""
    rng = np.random.default_rng(seed)
    has = np.flatnonzero(M.lab_mask(out.obs_days, out.obs_alc, out.obs_mask).sum(1) >= 2)
    photon = [i for i in rng.permutation(has) if out.modalities[i] == "photon"]
    other = [i for i in rng.permutation(has) if out.modalities[i] != "photon"]
    picked = [x for pair in zip(photon, other) for x in pair]
    rest = [i for i in photon + other if i not in picked]
    return sorted((picked + rest)[:n])


def _trajectory_figure(result, plt) -> str:
    out = result.outcomes
    rows = sample_plans(out, 6, result.settings.get("seed", 0))
    traj = {k: p for k, p in result.predictions.items() if p.alc is not None}
    ncol = 3
    nrow = max(1, math.ceil(len(rows) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(13, 3.6 * nrow), squeeze=False,
                             layout="constrained")
    for ax, i in zip(axes.ravel(), rows):
        for name, p in traj.items():
            line, = ax.plot(p.days, p.alc[i], lw=1.3, label=name)
            if name == "hybrid" and p.lower is not None:
                ax.fill_between(p.days, p.lower[i], p.upper[i], color=line.get_color(), alpha=0.15)
        m = out.obs_mask[i] & (out.obs_alc[i] > 0)
        ax.plot(out.obs_days[i][m], out.obs_alc[i][m], "ko", ms=4, label="observed labs")
        ax.axvline(out.end_rt_day[i], color="grey", ls=":", lw=1)
        for cut in (M.GRADE3_ALC, M.GRADE4_ALC):
            ax.axhline(cut, color="red", ls="--", lw=0.6)
        ax.set_title(f"held-out plan {rows.index(i) + 1}: {out.sites[i]}, {out.modalities[i]}",
                     fontsize=9)
        ax.set_xlabel("day")
        ax.set_ylabel("ALC (10^9/L)")
    for ax in axes.ravel()[len(rows):]:
        ax.axis("off")
    handles, names = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=len(names), fontsize=8)
    return _png(fig)


