"""Checkpoints: weights-only round trip, config and versions carried, exact resume."""

from dataclasses import replace

import pytest
import torch
from torch.utils.data import DataLoader, Subset

from lymphonet.config import to_dict
from lymphonet.data.prepare import PreparedData, make_loaders
from lymphonet.errors import InputError
from lymphonet.training.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from lymphonet.training.config import load_training_config
from lymphonet.training.loop import build_model, set_seed
from lymphonet.training.script import load_train_script

OVERRIDES = ["model.n_days=40", "model.encoder.width=4", "model.encoder.depth=2",
             "model.encoder.embed_dim=8", "model.mlp_hidden=8", "cohort.synthetic=true"]
INPUTS = {"n_channels": 3, "n_clinical": 6, "n_dose_summary": 2}


@pytest.fixture(scope="module")
def cfg():
    return load_training_config("configs/smoke.yaml", OVERRIDES)


@pytest.fixture(scope="module")
def data():
    from lymphonet.data.synthetic import SyntheticCohort

    ds = SyntheticCohort(16, image_size=12, n_days=40, seed=5)
    return PreparedData(Subset(ds, range(10)), Subset(ds, range(10, 16)), Subset(ds, range(10, 16)),
                        INPUTS)


def test_round_trip_weights_only(tmp_path, cfg, data):
    model = build_model(cfg.model, INPUTS)
    with torch.no_grad():
        model.head.weight.normal_()
    path = save_checkpoint(tmp_path / "m.pt", model, config=to_dict(cfg), model_inputs=INPUTS,
                           state={"epoch": 3, "history": [{"epoch": 1, "val_loss": 0.5}]},
                           encoder={"mean": [0.0, 1.0]})
    raw = torch.load(path, weights_only=True)  # plain types only
    assert raw["config"]["model"]["n_days"] == 40 and raw["versions"]["torch"] == torch.__version__
    ckpt = load_checkpoint(path)
    again = model_from_checkpoint(ckpt)
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    batch = next(iter(DataLoader(data.val, batch_size=6)))
    model.eval()
    torch.testing.assert_close(model(batch).alc, again(batch).alc, rtol=0, atol=0)
    assert ckpt["state"]["epoch"] == 3 and ckpt["encoder"] == {"mean": [0.0, 1.0]}


def test_bad_checkpoint_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="format"):
        load_checkpoint(tmp_path / "other.pt")


class Crash(Exception):
    pass


def _train(cfg, data, epochs, tmp_path, resume=None, crash_after=None):
    set_seed(0)
    model = build_model(cfg.model, INPUTS)
    tr, va, _ = make_loaders(data, 4, 0, seed=0)

    def ckpt_fn(tag, m, opt, sch, state):
        save_checkpoint(tmp_path / f"{tag}.pt", m, config=to_dict(cfg), model_inputs=INPUTS,
                        state=state, optimizer=opt, scheduler=sch)
        if tag == "last" and state["epoch"] == crash_after:
            raise Crash

    run_cfg = replace(cfg, train=replace(cfg.train, epochs=epochs, lr=1e-2, weight_decay=1e-4,
                                         lr_schedule="cosine", patience=100))
    state = load_train_script().fit(model, tr, va, run_cfg, torch.device("cpu"), save=ckpt_fn,
                                    resume=resume)
    return model, state


def test_resume_is_exact(tmp_path, cfg, data):
    # 4 epochs straight vs a run that crashes after epoch 2 and resumes from last.pt
    # (weights, AdamW state, cosine schedule, RNG and the (seed, epoch) shuffle all restored)
    straight, s1 = _train(cfg, data, 4, tmp_path / "a")
    with pytest.raises(Crash):
        _train(cfg, data, 4, tmp_path / "b", crash_after=2)
    ckpt = load_checkpoint(tmp_path / "b" / "last.pt")
    assert ckpt["state"]["epoch"] == 2 and ckpt["optimizer"] is not None
    ckpt["best_model"] = load_checkpoint(tmp_path / "b" / "best.pt")["model"]
    resumed, s3 = _train(cfg, data, 4, tmp_path / "c", resume=ckpt)
    assert s3["epoch"] == 4 and len(s3["history"]) == 4
    assert [h["train_loss"] for h in s3["history"]] == pytest.approx(
        [h["train_loss"] for h in s1["history"]], rel=1e-5)
    assert s3["best_epoch"] == s1["best_epoch"]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
