"""Calibrating the recirculation core to a published-cohort table, judged leave-one-study-out.

The virtual cohorts of :mod:`lymphonet.twin.literature` (one per table row, planned on the site's
phantoms) are run through :class:`~lymphonet.kinetics.recirculation.RecirculationKinetics`; the
population theta of a subset of parameters is fitted by weighted least squares with a Gaussian
prior (the residual scales and weights of :mod:`lymphonet.twin.literature_fit`), and every study is
predicted by a fit that never saw it. The held-out error, not the in-sample one, is the headline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize

from lymphonet.kinetics.exposure import pool_dose_parts_gy, pool_fraction_survival
from lymphonet.kinetics.recirculation import (
    RECIRCULATION_NAMES,
    RECIRCULATION_SPECS,
    TISSUES,
    RecirculationKinetics,
    recirculation_params,
)
from lymphonet.twin.literature import VirtualCohort, row_statistics
from lymphonet.twin.literature_fit import residual_weights, transform_predictions

#: Parameters fitted by default and their prior sd on the theta scale (alpha held near its in-vivo
#: estimate; the blood share stays physiological by its bounds whatever theta does).
FIT_PRIOR_SD = {"alpha_per_gy": 0.5, "blood_share": 1.0, "turnover_per_day": 1.5,
                "marrow_recovery_days": 1.5, "stem_alpha_per_gy": 1.0,
                "chemo_rate_per_day": 1.5, "chemo_temozolomide_per_day": 1.5,
                "chemo_platinum_per_day": 1.5, "chemo_antimetabolite_per_day": 1.5}
#: Between-patient sd of theta (logit scale) of the virtual patients (lymphonet assumption: what
#: the phantoms do not vary: marrow reserve, stage, regimen).
PATIENT_SD = {"alpha_per_gy": 0.5, "blood_share": 0.5, "turnover_per_day": 0.5,
              "chemo_rate_per_day": 1.0, "chemo_temozolomide_per_day": 1.0,
              "chemo_platinum_per_day": 1.0, "chemo_antimetabolite_per_day": 1.0}


def study_of(row_id: str) -> str:
    """Study key of a row id (``shiraishi2018_pbt`` -> ``shiraishi2018``)."""
    return str(row_id).split("_")[0]


@dataclass
class RecirculationCohort:
    """A virtual cohort split into day-length groups (long follow-up rows simulated apart)."""

    cohort: VirtualCohort
    offsets: torch.Tensor                       # [B, P] per-patient theta offsets
    groups: list[tuple[list[int], int]]         # (row indices, n_days)

    @classmethod
    def of(cls, cohort: VirtualCohort, seed: int = 0) -> RecirculationCohort:
        gen = torch.Generator().manual_seed(seed)
        n = cohort.slices[0].stop - cohort.slices[0].start
        z = torch.randn(n, len(RECIRCULATION_SPECS), generator=gen, dtype=torch.float64)
        sd = torch.tensor([PATIENT_SD.get(name, 0.0) for name in RECIRCULATION_NAMES],
                          dtype=torch.float64)
        offsets = (z * sd).repeat(len(cohort.slices), 1)  # the same patients in every row
        groups: dict[int, list[int]] = {}
        for r, day_to in enumerate(cohort.table["day_to"].astype(int)):
            bucket = next(b for b in (130, 400, 800, 10_000) if day_to < b)
            groups.setdefault(bucket, []).append(r)
        return cls(cohort, offsets, [(rows, min(b, cohort.n_days)) for b, rows in groups.items()])

    def statistics(self, theta_pop: torch.Tensor, smooth_tau: float | None = None,
                   rows: list[int] | None = None) -> torch.Tensor:
        """Predicted statistic of every row ``[R]`` (NaN for rows not asked for)."""
        out = torch.full((len(self.cohort.slices),), float("nan"), dtype=torch.float64)
        wanted = set(range(len(self.cohort.slices)) if rows is None else rows)
        for group_rows, n_days in self.groups:
            todo = [r for r in group_rows if r in wanted]
            if not todo:
                continue
            idx = torch.cat([torch.arange(self.cohort.slices[r].start, self.cohort.slices[r].stop)
                             for r in todo])
            theta = theta_pop[None, :] + self.offsets[idx]
            alc = RecirculationKinetics(n_days=n_days)(self.cohort.inputs.index(idx), theta).alc
            sub = VirtualCohort(self.cohort.table.iloc[todo].reset_index(drop=True), None,
                                _packed_slices(self.cohort, todo), None, n_days)
            out = out.index_put((torch.tensor(todo),), row_statistics(alc, sub, smooth_tau))
        return out


def _packed_slices(cohort: VirtualCohort, rows: list[int]) -> list[slice]:
    out, start = [], 0
    for r in rows:
        n = cohort.slices[r].stop - cohort.slices[r].start
        out.append(slice(start, start + n))
        start += n
    return out


def _objective(rc: RecirculationCohort, rows: list[int], names, smooth_tau: float):
    """The penalised weighted least squares of :func:`fit` as a function of the fitted theta
    columns ``z`` ``[len(names)]`` (a torch scalar, differentiable)."""
    table = rc.cohort.table
    target, weight = residual_weights(table)
    cols = torch.tensor([RECIRCULATION_NAMES.index(n) for n in names])
    sd = torch.tensor([FIT_PRIOR_SD[n] for n in names], dtype=torch.float64)
    sel = torch.tensor(rows)

    def loss(z: torch.Tensor) -> torch.Tensor:
        theta = torch.zeros(len(RECIRCULATION_SPECS), dtype=torch.float64).index_put((cols,), z)
        pred = rc.statistics(theta, smooth_tau, rows)
        r = transform_predictions(pred[sel], table.iloc[rows]) - target[sel]
        return 0.5 * (weight[sel] * r**2).sum() + 0.5 * ((z / sd) ** 2).sum()

    return loss


def fit(rc: RecirculationCohort, rows: list[int], names=tuple(FIT_PRIOR_SD), *,
        smooth_tau: float = 0.1, max_iter: int = 60, start: torch.Tensor | None = None
        ) -> torch.Tensor:
    """Population theta ``[P]`` fitted to ``rows`` of the table (others untouched at 0).

    ``start`` (a full theta) warm-starts the optimiser, e.g. leave-one-out fits from the full fit.
    """
    cols = [RECIRCULATION_NAMES.index(n) for n in names]
    loss = _objective(rc, rows, names, smooth_tau)

    def objective(x: np.ndarray):
        z = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        value = loss(z)
        (g,) = torch.autograd.grad(value, z)
        return float(value.detach()), g.numpy().astype(float)

    x0 = np.zeros(len(cols)) if start is None else start[cols].numpy()
    res = minimize(objective, x0, jac=True, method="L-BFGS-B",
                   bounds=[(-6, 6)] * len(cols), options={"maxiter": max_iter})
    theta = torch.zeros(len(RECIRCULATION_SPECS), dtype=torch.float64)
    theta[cols] = torch.as_tensor(res.x)
    return theta


def identifiability(rc: RecirculationCohort, theta: torch.Tensor, names=tuple(FIT_PRIOR_SD), *,
                    smooth_tau: float = 0.1, step: float = 1e-3) -> pd.DataFrame:
    """Laplace approximation at the fit: which parameters the table pins down.

    The Hessian of the penalised objective (central differences of its autograd gradient, step
    ``step`` on theta) gives a posterior sd of each fitted theta; its ratio to the prior sd says
    how much the data added (``< 0.5`` identified, ``< 0.9`` weak, else the prior decides), and the
    largest absolute posterior correlation names the parameter it trades off against. (The exact
    Hessian includes the residuals' curvature, so a ratio can exceed 1 where the data bend the
    objective against the prior: that parameter, too, is left to its prior.) A Hessian
    that is not positive definite (the fit stopped short of a minimum) gives ``not a minimum``.
    """
    cols = [RECIRCULATION_NAMES.index(n) for n in names]
    loss = _objective(rc, list(range(len(rc.cohort.table))), names, smooth_tau)

    def grad(z: np.ndarray) -> np.ndarray:
        zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(loss(zt), zt)
        return g.numpy()

    z0 = theta[cols].numpy().astype(float)
    h = np.zeros((len(cols), len(cols)))
    for j in range(len(cols)):
        e = np.zeros(len(cols))
        e[j] = step
        h[:, j] = (grad(z0 + e) - grad(z0 - e)) / (2 * step)
    h = 0.5 * (h + h.T)
    prior_sd = np.array([FIT_PRIOR_SD[n] for n in names])
    if np.linalg.eigvalsh(h).min() <= 0:  # not a minimum (stopped early, or at a theta bound)
        nan = np.full(len(cols), np.nan)
        return pd.DataFrame({"param": list(names), "theta": z0, "posterior_sd": nan,
                             "prior_sd": prior_sd, "sd_ratio": nan, "verdict": "not a minimum",
                             "max_abs_corr": nan, "with": ""})
    cov = np.linalg.inv(h)
    sd_post = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd_post, sd_post)
    np.fill_diagonal(corr, 0.0)
    ratio = sd_post / prior_sd
    partner = np.abs(corr).argmax(1)
    return pd.DataFrame({
        "param": list(names), "theta": z0, "posterior_sd": sd_post, "prior_sd": prior_sd,
        "sd_ratio": ratio,
        "verdict": np.where(ratio < 0.5, "identified", np.where(ratio < 0.9, "weak", "prior")),
        "max_abs_corr": np.abs(corr).max(1), "with": [names[k] for k in partner]})


def leave_one_study_out(rc: RecirculationCohort, names=tuple(FIT_PRIOR_SD), *,
                        max_iter: int = 60, loo_iter: int = 15, progress=None) -> pd.DataFrame:
    """Per row: published value, prediction at the priors, in-sample and held-out predictions."""
    table = rc.cohort.table
    studies = table["id"].map(study_of)
    everything = list(range(len(table)))
    with torch.no_grad():
        prior = rc.statistics(torch.zeros(len(RECIRCULATION_SPECS), dtype=torch.float64))
    theta_all = fit(rc, everything, names, max_iter=max_iter)
    with torch.no_grad():
        in_sample = rc.statistics(theta_all)
    held = torch.full_like(in_sample, float("nan"))
    theta_held: dict[str, list[float]] = {}
    for k, study in enumerate(studies.unique()):
        rows = [r for r in everything if studies.iloc[r] != study]
        out = [r for r in everything if studies.iloc[r] == study]
        theta = fit(rc, rows, names, max_iter=loo_iter, start=theta_all)
        theta_held[study] = theta.tolist()
        with torch.no_grad():
            held[out] = rc.statistics(theta, rows=out)[out]
        if progress:
            progress(k + 1, studies.nunique(), study)
    report = table[["id", "site", "modality", "statistic", "value", "n"]].copy()
    report["study"] = studies
    report["prior"], report["in_sample"] = prior.numpy(), in_sample.numpy()
    report["held_out"] = held.numpy()
    report.attrs["theta_all"] = dict(zip(RECIRCULATION_NAMES, theta_all.tolist()))
    report.attrs["theta_held_out"] = theta_held  # study -> theta of the fit that left it out
    return report


def held_out_at_size(report: pd.DataFrame, table: pd.DataFrame, ids: list[str], n_per_row: int,
                     *, n_phantoms: int, seed: int = 0) -> pd.Series:
    """Held-out predictions of some rows again, on a larger virtual cohort.

    The fit needs only a few dozen virtual patients per row on a few anatomies, but a fraction of
    n patients below a threshold moves in steps of 1/n, and a particle/photon ratio of two such
    fractions from a few dozen patients is mostly Monte-Carlo noise. Each row is predicted with
    the theta of the fit that left its study out (``report.attrs["theta_held_out"]``) on
    ``n_per_row`` patients spread over ``n_phantoms`` anatomies per site (phantom ``k`` is the
    same anatomy whatever their number, so the fit's anatomies are among them).

    Args:
        report: Output of :func:`leave_one_study_out`.
        table: The validated table the report was made from.
        ids: Row ids to predict again.
        n_per_row: Virtual patients per row.
        n_phantoms: Phantoms (anatomies) per site.
        seed: Seed of the virtual patients.

    Returns:
        Predicted statistic per id.
    """
    from lymphonet.errors import InputError
    from lymphonet.twin.literature import build_virtual_cohort

    held = report.attrs.get("theta_held_out", {})
    missing = sorted({study_of(i) for i in ids} - set(held))
    if missing:
        raise InputError(f"no held-out fit for {', '.join(missing)}: predict rows of studies "
                         "the leave-one-study-out report left out", field="ids")
    sub = table[table["id"].isin(ids)].reset_index(drop=True)
    rc = RecirculationCohort.of(build_virtual_cohort(sub, n_per_row, n_phantoms=n_phantoms,
                                                     seed=seed), seed=seed)
    out = {}
    for r, rid in enumerate(sub["id"]):
        theta = torch.tensor(held[study_of(rid)], dtype=torch.float64)
        with torch.no_grad():
            out[rid] = float(rc.statistics(theta, rows=[r])[r])
    return pd.Series(out, name="held_out_large")


def weighted_error(report: pd.DataFrame, column: str) -> float:
    """Root weighted mean square residual on the fit's scale (log ALC / arcsine-sqrt)."""
    target, weight = residual_weights(report.rename(columns={}))
    pred = transform_predictions(torch.tensor(report[column].to_numpy(float)), report)
    r = pred - target
    return float(torch.sqrt((weight * r**2).sum() / weight.sum()))


def published_interval(report: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """95% interval of each published value: Wilson for fractions (binomial, ``n`` patients),
    ``value x exp(+-1.96 x 0.5 / sqrt(n))`` for ALC statistics (between-patient cv about 0.5, the
    residual model of the fit); rows without ``n`` use the fit's default size."""
    from lymphonet.twin.literature import DEFAULT_N, FRACTION_STATISTICS

    n = report["n"].fillna(DEFAULT_N).to_numpy(float)
    v = report["value"].to_numpy(float)
    z = 1.96
    share = np.clip(v, 0.0, 1.0)  # only used for the fraction rows
    centre = (share + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(share * (1 - share) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    frac = report["statistic"].isin(FRACTION_STATISTICS).to_numpy()
    lo = np.where(frac, centre - half, v * np.exp(-z * 0.5 / np.sqrt(n)))
    hi = np.where(frac, centre + half, v * np.exp(z * 0.5 / np.sqrt(n)))
    return lo, hi


def plot_loso(report: pd.DataFrame, path) -> None:
    """Predicted vs published, in-sample and held-out panels, with 95% intervals on the published
    values; colour = site, marker = modality (no per-point labels: the CSV names the rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lymphonet.twin.literature import FRACTION_STATISTICS

    lo, hi = published_interval(report)
    frac = report["statistic"].isin(FRACTION_STATISTICS).to_numpy()
    sites = sorted(report["site"].unique())
    colours = dict(zip(sites, plt.cm.tab20(np.linspace(0, 1, max(len(sites), 2)))))
    markers = {"photon": "o", "proton": "^", "carbon": "s"}
    fig, axes = plt.subplots(2, 2, figsize=(11, 10))
    for col, (column, title) in enumerate((("in_sample", "in sample (fitted to every row)"),
                                           ("held_out", "held out (study left out of the fit)"))):
        for row, (mask, unit) in enumerate(((~frac, "ALC statistic (10^9/L)"),
                                            (frac, "fraction of patients"))):
            ax = axes[row, col]
            sub = report[mask]
            top = 1.0 if row else max(2.0, float(np.nanmax(sub[["value", column]].to_numpy())))
            ax.plot([0, top], [0, top], "k--", lw=1)
            for i, r in sub.iterrows():
                ax.errorbar(r["value"], r[column], xerr=[[r["value"] - lo[i]], [hi[i] - r["value"]]],
                            fmt=markers.get(r["modality"], "o"), color=colours[r["site"]], ms=5,
                            elinewidth=0.8, alpha=0.85)
            err = weighted_error(sub, column)
            ax.set(xlim=(0, top * 1.05), ylim=(0, top * 1.05), xlabel=f"published {unit}",
                   ylabel=f"predicted {unit}", title=f"{title}\nweighted RMS residual {err:.3f}")
    handles = [plt.Line2D([], [], color=colours[s], marker="o", ls="", label=s) for s in sites]
    handles += [plt.Line2D([], [], color="k", marker=m, ls="", label=k)
                for k, m in markers.items()]
    fig.legend(handles=handles, loc="lower center", ncol=8, fontsize=8)
    fig.suptitle("recirculation core vs published cohorts (virtual cohorts, SIMULATED)")
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _per_row(rc: RecirculationCohort, theta: torch.Tensor, per_patient, overrides=None) -> list:
    """``per_patient(core, inputs, p)`` (``[b]`` or ``[b, m]``) averaged over each row's
    patients."""
    core = RecirculationKinetics()
    out = []
    for sl in rc.cohort.slices:
        idx = torch.arange(sl.start, sl.stop)
        p = recirculation_params(theta[None, :] + rc.offsets[idx])
        p.update({k: torch.full_like(p[k], v) for k, v in (overrides or {}).items()})
        with torch.no_grad():
            out.append(per_patient(core, rc.cohort.inputs.index(idx), p).mean(0).numpy())
    return out


def in_field_share(rc: RecirculationCohort, theta: torch.Tensor) -> pd.DataFrame:
    """Per row, the dose-weighted share of the body's lymphocytes in the field at a fraction.

    The row's patients' mean of each compartment's part of the pool's mean dose per fraction
    (:func:`~lymphonet.kinetics.exposure.pool_dose_parts_gy`, over the real fractions), divided by
    the row's fraction dose.

    Args:
        rc: The virtual cohort.
        theta: Population theta ``[P]`` (the patients add their offsets).

    Returns:
        Indexed by row id: ``in_field_share`` (0..1) and its parts ``in_field_blood``,
        ``in_field_<tissue>`` (they add up to it).
    """
    def parts(core, x, p):
        mask = x.fraction_mask.to(x.blood_dose_q_gy.dtype)[..., None]
        return (pool_dose_parts_gy(core, x, p) * mask).sum(1) / mask.sum(1)

    dose = rc.cohort.table["dose_per_fraction_gy"].to_numpy(float)[:, None]
    names = ["blood"] + [t.name for t in TISSUES]
    out = pd.DataFrame(np.stack(_per_row(rc, theta, parts)) / dose,
                       index=rc.cohort.table["id"], columns=[f"in_field_{n}" for n in names])
    out.insert(0, "in_field_share", out.sum(1))
    return out


def complete_refill_survival(rc: RecirculationCohort, theta: torch.Tensor,
                             overrides: dict[str, float] | None = None) -> pd.Series:
    """Per row, the pool's survival over the course if every fraction found it back at its
    equilibrium shares and nothing recovered: the product of
    :func:`~lymphonet.kinetics.exposure.pool_fraction_survival`, mean over the row's patients
    (the fractionation estimate of :func:`lymphonet.twin.literature_checks.maclennan_estimate`,
    on the row's own doses).

    Args:
        rc: The virtual cohort.
        theta: Population theta ``[P]``.
        overrides: Physical values to use instead, e.g. ``{"alpha_per_gy": 1.0}``.

    Returns:
        Surviving share (0..1) indexed by row id.
    """
    values = _per_row(rc, theta, lambda core, x, p: pool_fraction_survival(core, x, p).prod(1),
                      overrides)
    return pd.Series(np.asarray(values, float), index=rc.cohort.table["id"],
                     name="complete_refill_survival")
