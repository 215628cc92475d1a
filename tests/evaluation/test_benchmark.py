"""``lymphonet benchmark``: cross-validation pooled over folds and two simulated-cohort seeds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lymphonet.cli import main
from lymphonet.errors import InputError
from lymphonet.evaluation.benchmark import run_benchmark

REPO = Path(__file__).resolve().parents[2]
SETTINGS = ["cohort.synthetic=false", "cohort.n=16", "cohort.sites=[esophagus,lung]",
            "cohort.spacing_mm=10.0", "cohort.particles=300", "train.n_folds=3",
            "model.n_days=400", "data.shape=[8,8,8]", "data.spacing_mm=[24,24,24]",
            "data.blood_particles=300"]


def test_benchmark_pools_two_seeds_into_one_table(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["benchmark", "--config", str(REPO / "configs" / "smoke.yaml"), "--seeds", "3,4",
                 "--out", str(out), "--models", "oracle,mechanistic_prior,dvh_logistic",
                 "--bootstrap", "50", "--reference", "mechanistic_prior",
                 *[a for s in SETTINGS for a in ("--set", s)]])
    assert code == 0
    df = pd.read_csv(out / "metrics.csv")
    n = df.query("model == 'oracle' and metric == 'true_log_alc_rmse' and subgroup == 'all'")
    assert n["n"].item() == 32, "both cohorts' plans, each held out once"
    assert ((df.model == "oracle - mechanistic_prior") & (df.metric == "auroc_g4")).any() or \
        ((df.model == "oracle - mechanistic_prior") & (df.metric == "log_alc_rmse_all")).any()
    assert (out / "cohort_seed3" / "cohort" / "truth.csv").is_file()
    assert (out / "cohort_seed4" / "cohort" / "truth.csv").is_file()
    assert "32 plans, seeds [3, 4]" in capsys.readouterr().out


def test_benchmark_refuses_one_seed_and_a_given_cohort(tmp_path):
    from lymphonet.training.config import load_training_config

    cfg = load_training_config(REPO / "configs" / "smoke.yaml", SETTINGS)
    with pytest.raises(InputError, match="two different cohort seeds"):
        run_benchmark(cfg, [1, 1], tmp_path)
    given = load_training_config(REPO / "configs" / "smoke.yaml",
                                 SETTINGS + [f"cohort.path={tmp_path}"])
    with pytest.raises(InputError, match="simulates its cohorts"):
        run_benchmark(given, [0, 1], tmp_path)
