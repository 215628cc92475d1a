"""Model bundles: round trip, tamper / version checks, parity of TorchScript and ONNX exports."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from lymphonet.bundle.export import export_bundle, resolve_run_checkpoint, untrained_checkpoint
from lymphonet.bundle.load import load_bundle, write_checksums
from lymphonet.bundle.portable import example_inputs, run_onnx
from lymphonet.data.config import DataConfig
from lymphonet.errors import InputError
from lymphonet.models.head import NetworkHead
from lymphonet.models.hybrid import EncoderConfig, ModelConfig
from lymphonet.organs import LYMPHOID_ORGANS
from lymphonet.training.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint

DATA = DataConfig(spacing_mm=(16.0, 16.0, 16.0), shape=(16, 16, 16), n_quantiles=8,
                  blood_particles=500)
MODEL = ModelConfig(encoder=EncoderConfig(width=4, depth=2, embed_dim=8, convs_per_block=1),
                    mlp_hidden=8, n_days=60)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    (run / "metrics.json").write_text(json.dumps(
        {"run_id": "abc123", "results": {"hybrid": {"nadir_mae": 0.12}}, "best_epoch": 3}))
    return untrained_checkpoint(run / "best.pt", data_config=DATA, model_config=MODEL)


@pytest.fixture(scope="module")
def bundle_dir(checkpoint, tmp_path_factory) -> Path:
    return export_bundle(checkpoint, tmp_path_factory.mktemp("b") / "bundle", onnx=False)


def _copy(bundle_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle_dir, tmp_path / "copy"))


def _contract_batch(model_inputs: dict[str, int], b: int = 3) -> dict[str, torch.Tensor]:
    image, clinical, summary = example_inputs(model_inputs, DATA.shape, batch=b, seed=3)
    k = 10
    return {"image": image, "clinical": clinical, "dose_summary": summary,
            "blood_dose_q_gy": torch.linspace(0, 0.2, 8).expand(b, 8).contiguous(),
            "lymphoid_dose_q_gy": torch.rand(b, len(LYMPHOID_ORGANS), 8, generator=torch.Generator().manual_seed(0)),
            "lymphoid_coverage": torch.full((b, len(LYMPHOID_ORGANS)), 0.5),
            "fraction_days": torch.arange(k, dtype=torch.float32).expand(b, k),
            "fraction_mask": torch.ones(b, k, dtype=torch.bool),
            "beam_on_s": torch.full((b, k), 60.0), "chemo": torch.zeros(b, dtype=torch.long),
            "baseline_alc": torch.tensor([1.2, 1.8, 2.4])[:b]}


def test_round_trip_reproduces_the_checkpoint_model(checkpoint, bundle_dir):
    ckpt = load_checkpoint(checkpoint)
    original = model_from_checkpoint(ckpt)
    bundle = load_bundle(bundle_dir)
    for k, v in ckpt["model"].items():
        assert torch.equal(bundle.model.state_dict()[k], v), k
    batch = _contract_batch(ckpt["model_inputs"])
    with torch.no_grad():
        a, b = original(batch).alc, bundle.model(batch).alc
    assert torch.equal(a, b)
    assert a.shape == (3, MODEL.n_days) and torch.isfinite(a).all()
    assert bundle.data_config == DATA
    assert bundle.encoder.n_features == ckpt["model_inputs"]["n_clinical"]
    meta = bundle.metadata
    assert meta["inputs"]["channels"][0] == "dose"
    assert len(meta["inputs"]["channels"]) == DATA.n_channels
    assert meta["validation_metrics"]["held_out_fold"]["hybrid"]["nadir_mae"] == 0.12
    assert "other anatomy" in " ".join(meta["limits"]).lower()
    assert "research" in meta["intended_use"].lower()
    assert bundle.model_version.startswith("0.1.0+") and meta["model_version"] == bundle.model_version


def test_no_pickle_weights_load_with_weights_only(bundle_dir):
    state = torch.load(bundle_dir / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_altered_file_is_rejected(bundle_dir, tmp_path):
    copy = _copy(bundle_dir, tmp_path)
    state = torch.load(copy / "weights.pt", weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[name] = state[name] + 1e-3
    torch.save(state, copy / "weights.pt")
    with pytest.raises(InputError, match="checksum mismatch") as err:
        load_bundle(copy)
    assert err.value.file.endswith("weights.pt") and err.value.field == "checksums"


def test_missing_file_and_missing_checksums_are_rejected(bundle_dir, tmp_path):
    copy = _copy(bundle_dir, tmp_path)
    (copy / "clinical_encoder.json").unlink()
    with pytest.raises(InputError, match="missing"):
        load_bundle(copy)
    (copy / "checksums.sha256").unlink()
    with pytest.raises(InputError, match="checksums.sha256"):
        load_bundle(copy)


@pytest.mark.parametrize("key,value,field", [("lymphonet", "0.2.0", "versions.lymphonet"),
                                             ("torch", "1.13.1", "versions.torch")])
def test_version_mismatch_is_a_clear_error(bundle_dir, tmp_path, key, value, field):
    copy = _copy(bundle_dir, tmp_path)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["versions"][key] = value
    (copy / "metadata.json").write_text(json.dumps(meta))
    write_checksums(copy)  # consistent checksums: only the version check can catch it
    with pytest.raises(InputError, match=value.replace(".", r"\.")) as err:
        load_bundle(copy)
    assert err.value.field == field


def test_changed_kinetic_priors_are_rejected(bundle_dir, tmp_path):
    copy = _copy(bundle_dir, tmp_path)
    meta = json.loads((copy / "metadata.json").read_text())
    name = next(iter(meta["kinetics"]["params"]))
    meta["kinetics"]["params"][name][0] *= 1.1  # as if the prior had been recalibrated
    (copy / "metadata.json").write_text(json.dumps(meta))
    write_checksums(copy)
    with pytest.raises(InputError, match=name) as err:
        load_bundle(copy)
    assert err.value.field == "kinetics"


def test_a_bundle_whose_metadata_names_another_core_is_refused(bundle_dir, tmp_path):
    from lymphonet.bundle.load import kinetics_constants

    copy = _copy(bundle_dir, tmp_path)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["kinetics"] = kinetics_constants("recirculation")  # weights made for the other core
    (copy / "metadata.json").write_text(json.dumps(meta))
    write_checksums(copy)
    with pytest.raises(InputError, match="recirculation kinetics core") as err:
        load_bundle(copy)
    assert err.value.field == "kinetics.core"


def test_checkpoint_without_encoder_is_refused(tmp_path):
    from lymphonet.models.hybrid import HybridModel

    model = HybridModel(3, 6, 2, MODEL)
    path = save_checkpoint(tmp_path / "synthetic.pt", model, config={"model": {}},
                           model_inputs={"n_channels": 3, "n_clinical": 6, "n_dose_summary": 2},
                           state={}, encoder=None)
    with pytest.raises(InputError, match="no clinical encoder"):
        export_bundle(path, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_existing_output_needs_overwrite(checkpoint, bundle_dir):
    with pytest.raises(InputError, match="exists"):
        export_bundle(checkpoint, bundle_dir)


def test_torchscript_parity_including_trajectory(bundle_dir):
    bundle = load_bundle(bundle_dir)
    assert bundle.metadata["parity"]["torchscript"]["max_abs_diff"] < 1e-5
    batch = _contract_batch(bundle.metadata["inputs"]["model_inputs"], b=3)  # traced with B=2
    ts = torch.jit.load(str(bundle.torchscript_path))
    with torch.no_grad():
        eager = bundle.model(batch)
        net = ts(batch["image"], batch["clinical"], batch["dose_summary"])
        alc, days = bundle.model.trajectory(net, batch)
    assert torch.allclose(net, eager.theta, atol=1e-5, rtol=0)
    assert torch.allclose(alc, eager.alc, atol=1e-5, rtol=1e-5)
    assert torch.equal(days, eager.days)
    assert (eager.adjustment.abs() > 1e-4).any()  # the network really moves theta


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None
                    or importlib.util.find_spec("onnxscript") is None,
                    reason="onnxruntime / onnxscript not installed (pip install 'lymphonet[onnx]')")
def test_onnx_parity_with_eager_torch(checkpoint, tmp_path):
    out = export_bundle(checkpoint, tmp_path / "onnx_bundle", onnx=True, torchscript=False)
    bundle = load_bundle(out)
    assert bundle.onnx_path is not None, bundle.metadata["parity"]
    assert bundle.metadata["parity"]["onnx"]["max_abs_diff"] < 1e-4
    mi = bundle.metadata["inputs"]["model_inputs"]
    for b in (1, 5):  # dynamic batch dimension
        inputs = example_inputs(mi, DATA.shape, batch=b, seed=10 + b)
        with torch.no_grad():
            ref = NetworkHead(bundle.model)(*inputs).numpy()
        got = run_onnx(bundle.onnx_path, *inputs)
        assert got.shape == ref.shape
        assert abs(got - ref).max() < 1e-4


def test_resolve_run_by_folder_and_by_mlflow_id(checkpoint):
    run_dir = checkpoint.parent
    assert resolve_run_checkpoint(str(run_dir)) == checkpoint
    assert resolve_run_checkpoint("abc123", runs_dir=run_dir.parent) == checkpoint
    with pytest.raises(InputError, match="no run folder"):
        resolve_run_checkpoint("nope", runs_dir=run_dir.parent)


def test_kinetics_constants_name_their_core_and_a_changed_prior_is_refused():
    from lymphonet.bundle.load import check_kinetics, kinetics_constants

    rec = kinetics_constants("recirculation")
    assert rec["core"] == "recirculation" and "turnover_per_day" in rec["params"]
    check_kinetics(rec)  # same library: accepted
    # a bundle exported before the core was recorded and before lungs/liver/bowel/body had an
    # entry (weight 0 in the two-population core): written out here as it was
    now = kinetics_constants()
    legacy = {"params": now["params"],
              "organ_share": {"spleen": 0.15, "lymph_nodes": 0.40, "bone_marrow": 0.10,
                              "thymus": 0.05}}
    check_kinetics(legacy)
    with pytest.raises(InputError, match="organ_share.spleen"):
        check_kinetics({**legacy, "organ_share": {**legacy["organ_share"], "spleen": 0.2}})
    changed = {**rec, "params": {**rec["params"], "alpha_per_gy": [0.9, 0.2, 1.0]}}
    with pytest.raises(InputError, match="alpha_per_gy"):
        check_kinetics(changed)
