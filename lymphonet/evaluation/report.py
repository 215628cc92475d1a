"""The evaluation report: ``metrics.csv`` plus one self-contained HTML page.

The page opens offline: figures are matplotlib PNGs embedded as base64 ``data:`` URIs, styles are
inline, there is no script and no external resource. It holds the overall metrics with 95%
bootstrap intervals, log-ALC error by time window, paired differences against the hybrid, ROC
and calibration plots, predicted vs observed trajectories for sample held-out plans (labelled by
site and modality only: no patient identifiers, so the page can be logged to MLflow), per-site
and per-modality tables, and the particle vs photon comparison.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from lymphonet import metrics as M
from lymphonet.evaluation.figures import figures

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


def _subgroup_tables(df: pd.DataFrame, look: dict, models: list[str]) -> list[str]:
    """Per site / modality / fold tables (one section each, when the subgroups exist)."""
    parts = []
    for title, prefix in (("Per site", "site="), ("Per modality", "modality="),
                          ("Per fold", "fold="),
                          ("Per subgroup of the simulated truth", "truth:")):
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
        label = prefix.rstrip("=:")
        parts.append(f"<h2>{title}</h2><table><tr><th>{label}</th><th>model</th>{head}"
                     f"</tr>{body}</table>")
    return parts


def _figure_sections(figs: dict[str, str]) -> list[str]:
    """The figure sections of the page (figures by name, base64 PNG)."""
    img = lambda k, alt: f"<img alt='{alt}' src='data:image/png;base64,{figs[k]}'>"
    parts = []
    parts.append("<h2>ROC curves</h2>" + img("roc", "ROC curves"))
    parts.append("<h2>Calibration</h2>" + img("calibration", "calibration plots"))
    parts.append("<h2>Calibration by site and modality</h2>" + img("reliability", "reliability"))
    parts.append("<h2>Decision curve (grade 4)</h2><p class='small'>Net benefit = TP/n - FP/n x "
                 "p_t / (1 - p_t) (Vickers &amp; Elkin 2006); a model is useful at a threshold "
                 "only where it lies above both 'flag all' and 'flag none'. Table rows "
                 "<code>net_benefit_g4@p_t</code> carry intervals.</p>"
                 + img("decision", "decision"))
    if "paired" in figs:
        parts.append("<h2>Compare plans (paired patients)</h2><p class='small'>Each dot is a "
                     "patient with a photon and a particle plan; metric "
                     "<code>paired_nadir_diff_mae</code> is the mean distance from the "
                     "diagonal.</p>" + img("paired", "paired plans"))
    parts.append("<h2>Predicted vs observed trajectories (sample held-out plans)</h2>"
                 "<p class='small'>Dots: labs; band: hybrid 90% predictive interval; dashed: "
                 "grade 3 / 4 cut-offs; dotted: last fraction.</p>"
                 + img("trajectories", "trajectories"))
    return parts


def render_html(result) -> str:
    """The report page for an :class:`~lymphonet.evaluation.harness.EvaluationResult`."""
    df, s = result.metrics, result.settings
    look = _lookup(df)
    models = list(result.predictions)
    get = lambda group: (lambda r, c: look.get((r, c, group)))
    figs = figures(result)
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
    parts += _figure_sections(figs)
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
