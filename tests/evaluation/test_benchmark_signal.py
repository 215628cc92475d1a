"""The benchmark has signal (issue 15): on a small simulated cohort the oracle (the true daily
ALC) beats the floor (the kinetics layer at theta = 0) with a paired patient-bootstrap interval
that excludes zero, against the truth and against the observed labs. If the simulated
patient-to-patient variation were too small for any model to exploit, this would fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from lymphonet.evaluation.harness import evaluate_models

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    from lymphonet.training.config import load_training_config
    from lymphonet.twin.cohort import simulate_cohort

    root = tmp_path_factory.mktemp("signal") / "cohort"
    simulate_cohort(48, ["esophagus", "lung", "pancreas", "liver"], ["photon", "proton"], seed=5,
                    out_dir=root, spacing_mm=10.0, particles=300, progress=False)
    cfg = load_training_config(REPO / "configs" / "smoke.yaml", [
        "cohort.synthetic=false", f"cohort.path={root}", "train.n_folds=3", "model.n_days=400",
        "data.shape=[8,8,8]", "data.spacing_mm=[24,24,24]", "data.blood_particles=500"])
    return evaluate_models(root, config=cfg, folds="all", n_boot=300, seed=0,
                           models=("oracle", "mechanistic_prior"), reference="mechanistic_prior")


def _row(df, model, metric):
    r = df.query("model == @model and metric == @metric and subgroup == 'all'")
    assert len(r) == 1, f"no {model} {metric} row"
    return r.iloc[0]


def test_oracle_beats_the_floor_with_an_interval_excluding_zero(result):
    df = result.metrics
    assert result.settings["truth_metrics"] and result.settings["n_plans"] == 48
    for metric in ("true_log_alc_rmse", "log_alc_rmse_all"):
        diff = _row(df, "oracle - mechanistic_prior", metric)
        assert diff["ci_high"] < 0, f"{metric}: {diff.to_dict()}"
    assert _row(df, "oracle", "true_log_alc_rmse")["value"] < 1e-6  # the truth itself
    assert _row(df, "oracle", "true_nadir_mae")["value"] < 1e-6
    # against noisy labs the oracle still pays the lab noise
    assert _row(df, "oracle", "log_alc_rmse_all")["value"] > 0.05
    # the truth defines subgroups: plans whose reactive nodes (the image-only effect) were dosed
    groups = set(df["subgroup"])
    assert {"truth:reactive_nodes_dosed", "truth:not_reactive_nodes_dosed"} <= groups
    n = df.query("model == 'oracle' and metric == 'true_log_alc_rmse'").set_index("subgroup")["n"]
    assert n["truth:reactive_nodes_dosed"] + n["truth:not_reactive_nodes_dosed"] == n["all"]


def test_bootstrap_reports_replicates_without_a_metric(result):
    df = result.metrics
    assert "boot_undefined" in df.columns
    assert (df["boot_undefined"] >= 0).all() and (df["boot_undefined"] <= 300).all()
