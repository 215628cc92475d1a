"""Training loop: a tiny overfit, early stopping, NaN guard, loss properties, the CLI smoke run."""

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset

from lymphonet.data.synthetic import SyntheticCohort
from lymphonet.metrics import auroc
from lymphonet.models.hybrid import EncoderConfig, ModelConfig
from lymphonet.training.config import TrainConfig, TrainingRunConfig
from lymphonet.training.loop import (
    build_model,
    evaluate,
    mechanistic_config,
    set_seed,
    train_one_epoch,
)
from lymphonet.training.losses import LossConfig, compute_loss, per_patient_mean
from lymphonet.training.script import load_train_script

N_DAYS = 40
INPUTS = {"n_channels": 3, "n_clinical": 6, "n_dose_summary": 2}
CPU = torch.device("cpu")


def cfg(**kw):
    base = {"n_days": N_DAYS, "encoder": EncoderConfig(width=4, depth=2, embed_dim=8),
            "mlp_hidden": 32, "dropout": 0.0}
    base.update(kw)
    return ModelConfig(**base)


def fit(model, tr, va, *, epochs, lr, weight_decay, loss_cfg, device, lr_schedule="cosine",
        patience=8, min_delta=1e-3):
    """train.py's fit with the run config these tests vary."""
    train = TrainConfig(epochs=epochs, lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule,
                        patience=patience, min_delta=min_delta, amp="off", progress=False)
    return load_train_script().fit(model, tr, va, TrainingRunConfig(loss=loss_cfg, train=train),
                                   device)


@pytest.fixture(scope="module")
def data():
    return SyntheticCohort(12, image_size=12, n_days=N_DAYS, seed=3, max_labs=10)


def test_tiny_overfit_beats_population_model(data):
    set_seed(0)
    loader = DataLoader(data, batch_size=12)
    model = build_model(cfg(use_cnn=False), INPUTS)
    mech = build_model(mechanistic_config(cfg()), INPUTS)
    before = evaluate(model, loader, CPU)["log_alc_rmse_all"]
    fit(model, loader, loader, epochs=80, lr=3e-2, weight_decay=0.0,
        loss_cfg=LossConfig(prior_weight=0.0), device=CPU, lr_schedule="none", patience=100)
    fit(mech, loader, loader, epochs=40, lr=3e-2, weight_decay=0.0, loss_cfg=LossConfig(),
        device=CPU, lr_schedule="none", patience=100)
    after = evaluate(model, loader, CPU)["log_alc_rmse_all"]
    mech_rmse = evaluate(mech, loader, CPU)["log_alc_rmse_all"]
    assert after < 0.6 * before  # memorises the 12 patients
    assert after < mech_rmse     # and does better than theta = 0
    assert after < 0.08          # close to the planted lab noise (sigma 0.05)


def test_early_stopping_and_best_weights(data):
    set_seed(0)
    tr = DataLoader(Subset(data, range(8)), batch_size=4)
    va = DataLoader(Subset(data, range(8, 12)), batch_size=4)
    model = build_model(cfg(), INPUTS)
    state = fit(model, tr, va, epochs=30, lr=1e-6, weight_decay=0.0, loss_cfg=LossConfig(),
                device=CPU, patience=2, min_delta=10.0)  # nothing can improve by 10
    assert state["stopped_early"] and state["epoch"] == 3 and state["best_epoch"] == 1
    assert len(state["history"]) == 3
    assert {"train_loss", "val_loss", "val_log_alc_rmse_all", "patients_per_s"} <= set(state["history"][0])


def test_nan_guard_skips_bad_steps(data):
    model = build_model(cfg(), INPUTS)
    bad = {k: v.clone() for k, v in data.items.items()}
    bad["obs_alc"][:] = float("nan")
    bad["obs_mask"][:] = True

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            return {k: v[i] for k, v in bad.items()}

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    # NaN labs are excluded by the observation mask (obs_alc > 0 is False for NaN) -> finite loss
    out = train_one_epoch(model, DataLoader(DS(), batch_size=6), opt, LossConfig(), CPU)
    assert out["bad_steps"] == 0
    # a non-finite parameter makes the loss non-finite: the step is skipped, weights unchanged
    with torch.no_grad():
        model.noise.log_sigma_knots.fill_(float("nan"))
    before = [p.detach().clone() for p in model.parameters()]
    out = train_one_epoch(model, DataLoader(data, batch_size=6), opt, LossConfig(), CPU)
    assert out["bad_steps"] == 2
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b.detach()) or torch.isnan(a).all()
    with pytest.raises(FloatingPointError):
        train_one_epoch(model, DataLoader(data, batch_size=1), opt, LossConfig(), CPU,
                        max_bad_steps=3)


def test_loss_weighs_patients_not_labs():
    vals = torch.tensor([[1.0, 1.0, 1.0, 1.0], [5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    mean, has = per_patient_mean(vals, mask)
    torch.testing.assert_close(mean, torch.tensor([1.0, 5.0, 0.0]))
    assert has.tolist() == [True, True, False]


def test_loss_is_finite_with_a_patient_without_labs(data):
    batch = {k: v[:4].clone() for k, v in data.items.items()}
    batch["obs_mask"][0] = False
    model = build_model(cfg(), INPUTS)
    loss, parts = compute_loss(model(batch), batch, model.noise, LossConfig())
    assert math.isfinite(loss.item()) and {"lab_nll", "prior"} <= set(parts)


def test_auroc_matches_pair_counting():
    rng = np.random.default_rng(0)
    y = rng.random(40) < 0.3
    s = rng.normal(size=40) + y
    pairs = [(a > b) + 0.5 * (a == b) for a in s[y] for b in s[~y]]
    assert auroc(y, s) == pytest.approx(np.mean(pairs))
    assert math.isnan(auroc(np.zeros(5, bool), np.arange(5.0)))


def test_cli_smoke_run(tmp_path, capsys):
    from lymphonet.cli import main

    rc = main(["train", "--config", "configs/smoke.yaml", "--out", str(tmp_path),
               "--set", "train.epochs=1", "--no-tracking"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "hybrid" in out and "mechanistic" in out and "log-ALC RMSE" in out
    assert (tmp_path / "smoke" / "best.pt").exists()
    assert (tmp_path / "smoke" / "plots" / "trajectories.png").exists()
    assert not (tmp_path / "mlruns.db").exists()


def test_evaluation_loss_follows_the_loss_config(data):
    model = build_model(cfg(), INPUTS)
    loader = DataLoader(data, batch_size=6)
    default = evaluate(model, loader, CPU)["loss"]
    weighted = evaluate(model, loader, CPU, loss_cfg=LossConfig(nadir_weight=5.0))["loss"]
    assert weighted != pytest.approx(default)
