"""The evaluation report: ``metrics.csv`` plus one self-contained HTML page.

The page opens offline: figures are matplotlib PNGs embedded as base64 ``data:`` URIs, styles are
inline, there is no script and no external resource. It holds the overall metrics with 95%
bootstrap intervals, log-ALC error by time window, paired differences against the hybrid, ROC
and calibration plots, predicted vs observed trajectories for sample held-out plans (labelled by
site and modality only: no patient identifiers, so the page can be logged to MLflow), per-site
and per-modality tables, and the particle vs photon comparison.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from lymphonet import metrics as M

#: Headline metrics of the summary table: column key, label.
SUMMARY_METRICS = (("auroc_g3", "AUROC G>=3"), ("auroc_g4", "AUROC G4"),
                   ("auprc_g3", "AUPRC G>=3"), ("auprc_g4", "AUPRC G4"),
                   ("brier_g3", "Brier G>=3"), ("brier_g4", "Brier G4"),
                   ("calibration_slope_g4", "cal. slope G4"),
                   ("calibration_intercept_g4", "cal. intercept G4"),
                   ("log_alc_rmse_all", "log-ALC RMSE"), ("nadir_mae", "nadir MAE"),
                   ("coverage", "90% coverage"),
                   ("true_log_alc_rmse", "log-ALC RMSE vs truth"),
                   ("true_auroc_g4", "AUROC G4 vs true grade"))
SUBGROUP_METRICS = (("auroc_g3", "AUROC G>=3"), ("auroc_g4", "AUROC G4"),
                    ("brier_g4", "Brier G4"), ("log_alc_rmse_all", "log-ALC RMSE"),
                    ("nadir_mae", "nadir MAE"), ("mean_p_g4", "mean P(G4)"))

_CSS = """body{font-family:system-ui,Arial,sans-serif;margin:24px;max-width:1300px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:12px;margin:8px 0}td,th{border:1px solid #ccc;
padding:3px 6px;text-align:right}th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
.note{background:#fff6dd;border:1px solid #e5c76b;padding:6px 10px;font-size:13px}
.sim{background:#fde2e2;border:1px solid #d77;padding:6px 10px;font-weight:bold}
img{max-width:100%;border:1px solid #ddd;margin:4px 0}.small{font-size:12px;color:#555}"""


def _fmt(v: float) -> str:
    if v is None or not np.isfinite(v):
        return "-"
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.3g}"


def _cell(row) -> str:
    if row is None:
        return "-"
    ci = "" if not np.isfinite(row["ci_low"]) else \
        f" <span class='small'>[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]</span>"
    return _fmt(row["value"]) + ci


def _lookup(df: pd.DataFrame) -> dict:
    return {(r["model"], r["metric"], r["subgroup"]): r for r in df.to_dict("records")}


def _table(rows: list[str], cols: list[tuple[str, str]], get, first: str = "model") -> str:
    head = "".join(f"<th>{html.escape(lbl)}</th>" for _, lbl in cols)
    body = "".join(f"<tr><td>{html.escape(r)}</td>" + "".join(
        f"<td>{_cell(get(r, c))}</td>" for c, _ in cols) + "</tr>" for r in rows)
    return f"<table><tr><th>{first}</th>{head}</tr>{body}</table>"


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


def _figures(result) -> dict[str, str]:
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
    return figs


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


def _subgroup_tables(df: pd.DataFrame, look: dict, models: list[str]) -> list[str]:
    """Per site / modality / fold tables (one section each, when the subgroups exist)."""
    parts = []
    for title, prefix in (("Per site", "site="), ("Per modality", "modality="),
                          ("Per fold", "fold=")):
        groups = sorted({g for g in df["subgroup"] if g.startswith(prefix)})
        if not groups:
            continue
        rows = [(g, m) for g in groups for m in models + ["observed"]]
        cols = list(SUBGROUP_METRICS) + [("rate_g4", "obs. rate G4")]
        g_get = lambda r, c: look.get((r[1], c, r[0]))
        head = "".join(f"<th>{html.escape(lbl)}</th>" for _, lbl in cols)
        body = "".join(f"<tr><td>{html.escape(g[len(prefix):])}</td><td>{html.escape(m)}</td>"
                       + "".join(f"<td>{_cell(g_get((g, m), c))}</td>" for c, _ in cols)
                       + "</tr>" for g, m in rows)
        parts.append(f"<h2>{title}</h2><table><tr><th>{prefix[:-1]}</th><th>model</th>{head}"
                     f"</tr>{body}</table>")
    return parts


def render_html(result) -> str:
    """The report page for an :class:`~lymphonet.evaluation.harness.EvaluationResult`."""
    df, s = result.metrics, result.settings
    look = _lookup(df)
    models = list(result.predictions)
    get = lambda group: (lambda r, c: look.get((r, c, group)))
    figs = _figures(result)
    img = lambda k, alt: f"<img alt='{alt}' src='data:image/png;base64,{figs[k]}'>"
    parts = [(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>lymphonet evaluation"
              f"</title><style>{_CSS}</style></head><body><h1>lymphonet evaluation</h1>")]
    if s.get("simulated"):
        parts.append("<p class='sim'>SIMULATED cohort (lymphonet.twin): these numbers describe "
                     "the simulator, not patients.</p>")
    parts.append(f"<p>{s.get('n_plans')} held-out plans of {s.get('n_patients')} patients; "
                 f"folds {s.get('folds')} of {s.get('n_folds')}; {s.get('n_boot')} bootstrap "
                 f"replicates resampling patients (seed {s.get('seed')}); 95% percentile "
                 f"intervals in brackets. Checkpoint: {html.escape(str(s.get('checkpoint')))}.</p>")
    for name, note in result.notes.items():
        parts.append(f"<p class='note'><b>{html.escape(name)}</b>: {html.escape(note)}</p>")
    parts.append("<h2>Overall</h2>" + _table(models + ["observed"], list(SUMMARY_METRICS)
                                              + [("rate_g3", "obs. rate G>=3"),
                                                 ("rate_g4", "obs. rate G4")], get("all")))
    win = [(f"log_alc_rmse_{w[0]}", w[0]) for w in M.WINDOWS] + [("log_alc_rmse_all", "all")]
    parts.append("<h2>log-ALC RMSE by time window</h2><p class='small'>Windows in days after the "
                 "last fraction: " + ", ".join(f"{n} ({lo:g}, {hi:g}]" for n, lo, hi in M.WINDOWS)
                 + ".</p>" + _table([m for m in models if result.predictions[m].alc is not None],
                                    win, get("all")))
    diffs = [f"{m} - hybrid" for m in models if m != "hybrid"]
    if "hybrid" in models:
        parts.append("<h2>Paired differences against the hybrid</h2><p class='small'>model "
                     "minus hybrid on the same bootstrap replicates (an interval excluding 0 is "
                     "a difference).</p>" + _table(diffs, list(SUMMARY_METRICS), get("all"),
                                                   "comparison"))
    parts.append("<h2>ROC curves</h2>" + img("roc", "ROC curves"))
    parts.append("<h2>Calibration</h2>" + img("calibration", "calibration plots"))
    parts.append("<h2>Predicted vs observed trajectories (sample held-out plans)</h2>"
                 "<p class='small'>Dots: labs; band: hybrid 90% predictive interval; dashed: "
                 "grade 3 / 4 cut-offs; dotted: last fraction.</p>"
                 + img("trajectories", "trajectories"))
    parts += _subgroup_tables(df, look, models)
    pvp = [("particle_minus_photon_g3", "delta P(G>=3)"),
           ("particle_minus_photon_g4", "delta P(G4)"),
           ("particle_minus_photon_nadir", "delta nadir (10^9/L)")]
    if any(look.get(("observed", c, "all")) for c, _ in pvp):
        parts.append("<h2>Particle vs photon</h2><p class='small'>Particle (proton, carbon) minus "
                     "photon plans: observed grade rates and mean observed nadir (row "
                     "'observed') against each model's mean predicted probability and mean "
                     "predicted nadir. A model that reproduces the observed sparing has a "
                     "similar delta.</p>" + _table(["observed"] + models, pvp, get("all")))
    parts.append("<p class='small'>Generated by lymphonet.evaluation; metrics.csv has every "
                 "number.</p></body></html>")
    return "".join(parts)


def write_report(result, out_dir: str | Path) -> dict[str, Path]:
    """Write ``metrics.csv`` and ``report.html`` into ``out_dir`` (created); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "metrics.csv"
    result.metrics.to_csv(csv, index=False, float_format="%.6g")
    page = out / "report.html"
    page.write_text(render_html(result), encoding="utf-8")
    return {"metrics": csv, "report": page}
