"""train.py is the training: it runs end to end, `lymphonet train` runs the same code, and the
bugs of the old parallel copy (drift between train.py and training/run.py) stay fixed."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from lymphonet.training.checkpoint import load_checkpoint
from lymphonet.training.config import load_training_config
from lymphonet.training.loop import make_scaler
from lymphonet.training.script import TRAIN_SCRIPT, load_train_script

REPO = Path(__file__).resolve().parents[2]
SMOKE = ["--config", "configs/smoke.yaml", "--no-tracking", "--set", "train.epochs=2"]


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["results"]


@pytest.fixture(scope="module")
def script_run(tmp_path_factory):
    """``python train.py --config configs/smoke.yaml`` as a user types it."""
    out = tmp_path_factory.mktemp("script")
    proc = subprocess.run([sys.executable, "train.py", *SMOKE, "--out", str(out)], cwd=REPO,
                          check=False,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "smoke", proc.stdout


def test_train_py_runs_end_to_end_and_leaves_checkpoints_with_their_config(script_run):
    run_dir, stdout = script_run
    assert "hybrid" in stdout and "mechanistic" in stdout and "log-ALC RMSE" in stdout
    for name in ("best.pt", "last.pt", "final.pt", "config.yaml", "metrics.json",
                 "history.json", "plots/learning_curves.png", "plots/trajectories.png"):
        assert (run_dir / name).is_file(), name
    last = load_checkpoint(run_dir / "last.pt")
    assert last["config"]["name"] == "smoke" and last["config"]["train"]["epochs"] == 2
    assert last["state"]["epoch"] == 2 and last["optimizer"] is not None
    assert "split_sha256" in last["state"]  # None for in-memory synthetic data


def test_lymphonet_train_runs_the_same_code(script_run, tmp_path):
    from lymphonet.cli import main

    assert main(["train", *SMOKE, "--out", str(tmp_path)]) == 0
    a, b = _results(script_run[0]), _results(tmp_path / "smoke")
    assert a == b  # same seed, same loop, same sampler epochs -> the same model, bit for bit


def test_lr_schedule_none_trains(tmp_path):
    # the old train.py called scheduler.step() on None
    cfg = load_training_config(REPO / "configs/smoke.yaml",
                               ["train.epochs=2", "train.lr_schedule=none", "tracking.enabled=false"])
    summary = load_train_script().train(cfg, out_dir=str(tmp_path))
    assert summary["epochs_run"] == 2


def test_fp16_on_cuda_gets_a_grad_scaler_and_fit_uses_it(monkeypatch, tmp_path):
    with warnings.catch_warnings():  # "CUDA is not available. Disabling." on CPU machines
        warnings.simplefilter("ignore", UserWarning)
        assert isinstance(make_scaler(torch.device("cuda"), "fp16"), torch.amp.GradScaler)
    assert make_scaler(torch.device("cuda"), "bf16") is None
    assert make_scaler(torch.device("cpu"), "fp16") is None
    script = load_train_script()
    calls = []
    monkeypatch.setattr(script, "make_scaler", lambda dev, amp: calls.append((dev.type, amp)))
    cfg = load_training_config(REPO / "configs/smoke.yaml",
                               ["train.epochs=1", "train.amp=fp16", "tracking.enabled=false"])
    script.train(cfg, out_dir=str(tmp_path), device="cpu")
    assert calls[0] == ("cpu", "fp16")  # the one loop asks for a scaler (None on the CPU)


def test_validation_counts_patients_with_min_labs_for_nadir(tmp_path):
    script = load_train_script()
    seen = {}
    for k in (1, 50):  # synthetic patients have at most 8 labs: none qualifies at 50
        cfg = load_training_config(REPO / "configs/smoke.yaml", [
            "train.epochs=1", f"loss.min_labs_for_nadir={k}", "tracking.enabled=false"])
        summary = script.train(cfg, out_dir=str(tmp_path / str(k)))
        hist = json.loads((Path(summary["run_dir"]) / "history.json").read_text())
        seen[k] = hist[0]["val_n_patients"]
    assert seen[1] > 0 and seen[50] == 0


def test_mechanistic_baseline_uses_its_configured_optimisation(monkeypatch):
    script = load_train_script()
    got = {}

    def spy(model, train_dl, val_dl, cfg, device, **kw):
        got.update(vars(cfg.train))
        return {}

    monkeypatch.setattr(script, "fit", spy)
    cfg = load_training_config(REPO / "configs/smoke.yaml",
                               ["train.baseline_lr=0.02", "train.baseline_epochs=4"])
    inputs = {"n_channels": 3, "n_clinical": 6, "n_dose_summary": 2}
    script.fit_mechanistic_baseline(cfg, inputs, None, None, torch.device("cpu"))
    assert got["lr"] == 0.02 and got["epochs"] == 4 and got["patience"] == 4
    assert got["lr_schedule"] == "none" and got["weight_decay"] == 0.0


def test_the_script_is_the_repository_file():
    assert TRAIN_SCRIPT == REPO / "train.py"
    assert load_train_script().__file__ == str(TRAIN_SCRIPT)


def test_the_model_does_not_depend_on_the_progress_display(tmp_path):
    # v0.1 wrapped the batch loader in a progress bar, which drew from torch's global RNG: the
    # same seed gave another model with bars on (the default) than off
    script = load_train_script()
    results = {}
    for shown in ("true", "false"):
        cfg = load_training_config(REPO / "configs/smoke.yaml", [
            "train.epochs=2", f"train.progress={shown}", "tracking.enabled=false"])
        results[shown] = script.train(cfg, out_dir=str(tmp_path / shown))["results"]
    assert json.dumps(results["true"], sort_keys=True) == json.dumps(results["false"], sort_keys=True)


def test_validation_and_test_losses_use_the_run_loss_config(monkeypatch, tmp_path):
    script = load_train_script()
    seen = []
    real = script.evaluate

    def spy(model, loader, device, **kw):
        seen.append(kw["loss_cfg"])
        return real(model, loader, device, **kw)

    monkeypatch.setattr(script, "evaluate", spy)
    cfg = load_training_config(REPO / "configs/smoke.yaml", [
        "train.epochs=1", "loss.nadir_weight=2.5", "loss.prior_weight=0.1",
        "tracking.enabled=false"])
    script.train(cfg, out_dir=str(tmp_path))
    assert seen and all(c == cfg.loss for c in seen)


def test_resume_is_refused_after_a_config_change(tmp_path, capsys):
    from lymphonet.cli import main

    base = ["train", "--config", "configs/smoke.yaml", "--out", str(tmp_path), "--no-tracking",
            "--set", "train.epochs=1"]
    assert main(base) == 0
    assert main(base + ["--set", "train.epochs=2", "--resume"]) == 0  # more epochs: fine
    code = main(base + ["--set", "model.mlp_hidden=32", "--resume"])
    assert code == 2 and "trained with other model" in capsys.readouterr().err


def test_sampler_sees_zero_based_epochs_and_fit_passes_the_scaler(monkeypatch):
    from torch.utils.data import DataLoader

    from lymphonet.data.synthetic import SyntheticCohort
    from lymphonet.training.loop import build_model

    script = load_train_script()
    ds = SyntheticCohort(8, image_size=8, n_days=60)
    epochs_seen, scalers = [], []

    class Sampler(torch.utils.data.SequentialSampler):
        def set_epoch(self, epoch):
            epochs_seen.append(epoch)

    real_epoch = script.train_one_epoch
    sentinel = object()
    monkeypatch.setattr(script, "make_scaler", lambda dev, amp: sentinel)

    def spy(*a, **kw):
        scalers.append(kw["scaler"])
        return real_epoch(*a, **{**kw, "scaler": None})

    monkeypatch.setattr(script, "train_one_epoch", spy)
    cfg = load_training_config(REPO / "configs/smoke.yaml", ["train.epochs=3", "train.patience=9"])
    loader = DataLoader(ds, batch_size=4, sampler=Sampler(ds))
    model = build_model(cfg.model, {"n_channels": 3, "n_clinical": 6, "n_dose_summary": 2})
    script.fit(model, loader, loader, cfg, torch.device("cpu"))
    assert epochs_seen == [0, 1, 2]  # the seed-and-epoch shuffle of lymphonet train (v0.1: 1..E)
    assert scalers == [sentinel] * 3


def test_training_runs_on_the_recirculation_core(tmp_path):
    cfg = load_training_config(REPO / "configs/smoke.yaml", [
        "train.epochs=1", "tracking.enabled=false", "model.kinetics_core=recirculation",
        "model.adjusted_params=[alpha_per_gy,blood_share,turnover_per_day]"])
    summary = load_train_script().train(cfg, out_dir=str(tmp_path))
    assert summary["epochs_run"] == 1
    ckpt = torch.load(tmp_path / "smoke" / "best.pt", weights_only=True)
    assert ckpt["config"]["model"]["kinetics_core"] == "recirculation"
