"""The MLflow model: a pyfunc over the export bundle, logged from code (no pickle), registered in
a local SQLite registry, and scoring a manifest DataFrame exactly like the batch scorer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lymphonet.bundle.export import export_bundle, untrained_checkpoint
from lymphonet.data.config import DataConfig
from lymphonet.models.hybrid import EncoderConfig, ModelConfig
from lymphonet.scoring.runner import score_manifest

DATA = DataConfig(spacing_mm=(16.0, 16.0, 16.0), shape=(12, 12, 12), n_quantiles=8,
                  blood_particles=300)
MODEL = ModelConfig(encoder=EncoderConfig(width=4, depth=2, embed_dim=8, convs_per_block=1),
                    mlp_hidden=8, n_days=60)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import mlflow

    from lymphonet.scoring.mlflow_pyfunc import log_model
    from lymphonet.twin.cohort import simulate_cohort

    tmp = tmp_path_factory.mktemp("pyfunc")
    cohort = tmp / "cohort"
    simulate_cohort(2, ["lung"], ["photon", "proton"], seed=2, paired=True, out_dir=cohort,
                    spacing_mm=12.0, particles=200, progress=False)
    ckpt = untrained_checkpoint(tmp / "run" / "best.pt", data_config=DATA, model_config=MODEL)
    bundle = export_bundle(ckpt, tmp / "bundle", onnx=False, torchscript=False)
    mlflow.set_tracking_uri(f"sqlite:///{(tmp / 'mlruns.db').as_posix()}")
    exp = mlflow.create_experiment("pyfunc", artifact_location=(tmp / "art").as_uri())
    with mlflow.start_run(experiment_id=exp):
        info = log_model(bundle, registered_model_name="lymphonet-test")
    return {"tmp": tmp, "cohort": cohort, "bundle": bundle, "info": info}


def test_registered_pyfunc_scores_like_the_batch_scorer(setup):
    import mlflow

    model = mlflow.pyfunc.load_model("models:/lymphonet-test/1")
    manifest = pd.read_csv(setup["cohort"] / "manifest.csv", dtype={"patient_id": str})
    bad = manifest.iloc[[0]].assign(plan_id="BAD", baseline_alc=-1.0)
    frame = pd.concat([manifest, bad], ignore_index=True)
    out = model.predict(frame, params={"root": str(setup["cohort"])})
    assert list(out["plan_id"]) == list(frame["plan_id"])  # one row per input row, in order
    assert list(out["status"]) == ["ok"] * 4 + ["error"]
    assert "baseline_alc" in out["error"].iloc[4]
    ref = score_manifest(setup["bundle"], setup["cohort"] / "manifest.csv",
                         setup["tmp"] / "scores.csv", progress=False)
    assert ref.n_ok == 4
    batch = pd.read_csv(setup["tmp"] / "scores.csv")
    for col in ("predicted_nadir", "p_grade3plus", "p_grade4", "mean_blood_dose_gy"):
        np.testing.assert_allclose(out[col].iloc[:4].astype(float), batch[col], rtol=1e-6)
    assert not any(str(setup["tmp"]) in str(v) for v in out.to_numpy().ravel())


def test_nothing_is_pickled(setup):
    from mlflow.artifacts import download_artifacts

    local = Path(download_artifacts(setup["info"].model_uri, dst_path=str(setup["tmp"] / "dl")))
    files = [p for p in local.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".pkl", ".pickle")]
    mlmodel = (local / "MLmodel").read_text()
    assert "loader_module: mlflow.pyfunc.loaders.code_model" in mlmodel  # models from code
    assert "python_model.pkl" not in mlmodel
    assert any(p.name == "mlflow_model_code.py" for p in files)
    assert any(p.name == "weights.safetensors" or p.suffix == ".pt" for p in files)
    sig = setup["info"].signature
    assert "dose_path" in sig.inputs.input_names() and "p_grade4" in sig.outputs.input_names()
