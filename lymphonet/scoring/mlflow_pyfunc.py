"""An MLflow model that scores plans, with no pickle anywhere (issue 16).

The model is an ``mlflow.pyfunc.PythonModel`` logged *from code*: ``mlflow_model_code.py``
beside this file defines it and is what MLflow stores and runs; the model object is never
serialised. Its only artifact is an export bundle (:mod:`lymphonet.bundle`): weights read with
``weights_only``, checksums verified when the model loads. ``predict`` takes a DataFrame in the
manifest contract (one row per plan; relative file paths resolved against ``params["root"]``,
default the working directory) and returns a DataFrame in the score contract
(:data:`~lymphonet.schema.SCORE_COLUMNS`), one row per input row in input order, with the batch
scorer's guarantees: a bad row becomes ``status="error"`` with its reason, never a guess, and no
absolute path reaches the output.

Use: ``mlflow.pyfunc.load_model(uri).predict(manifest_df)``; :func:`log_model` logs one (the
training run does, and ``lymphonet export --register NAME`` registers a version).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from lymphonet.schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, SCORE_COLUMNS

#: Manifest columns that hold file paths (made absolute against ``root`` before scoring).
PATH_COLUMNS = ("dose_path", "structures_path", "structure_map")
#: The models-from-code file MLflow stores with the model.
MODEL_CODE = Path(__file__).with_name("mlflow_model_code.py")


def _absolute(frame: pd.DataFrame, root: Path) -> pd.DataFrame:
    out = frame.copy()
    for col in PATH_COLUMNS:
        if col in out.columns:
            out[col] = [v if not isinstance(v, str) or not v.strip() or Path(v).is_absolute()
                        or (col == "structure_map" and not (root / v).exists())
                        else str(root / v) for v in out[col]]
    return out


def score_frame(frame: pd.DataFrame, root: str | Path = ".") -> pd.DataFrame:
    """Score a manifest DataFrame with the bundle loaded in this process (after
    :func:`load_bundle_for_scoring`)."""
    from lymphonet.scoring.runner import manifest_tasks
    from lymphonet.scoring.worker import score_task

    root = Path(root).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifest.csv"
        _absolute(frame, root).to_csv(path, index=False)
        tasks, _ = manifest_tasks(path)
    rows = [score_task(t, root)[0] for t in tasks]
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


def load_bundle_for_scoring(bundle_dir: str | Path) -> None:
    """Load (and verify the checksums of) a bundle for :func:`score_frame` in this process."""
    from lymphonet.scoring.prepare import ScoreOptions
    from lymphonet.scoring.worker import init_worker

    init_worker(str(bundle_dir), ScoreOptions(), verify=True, threads=1)


def predict_frame(model_input, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """The pyfunc's ``predict``: ``params["root"]`` resolves relative paths (default cwd)."""
    return score_frame(pd.DataFrame(model_input), (params or {}).get("root") or ".")


#: Manifest columns read as numbers (the rest are text); score columns that are text.
_NUMERIC = ("n_fractions", "dose_per_fraction_gy", "baseline_alc", "beam_on_time_s", "age",
            "bmi")
_TEXT_OUTPUTS = {"patient_id", "plan_id", "model_version", "input_sha256", "status", "error",
                 "warnings"}


def example_input() -> pd.DataFrame:
    """One manifest row for the model's input example (invented values: no patient, no path of
    this machine)."""
    row = {"patient_id": "EXAMPLE", "plan_id": "EXAMPLE_photon", "site": "esophagus",
           "modality": "photon", "n_fractions": 28, "dose_per_fraction_gy": 1.8,
           "fraction_days": "", "beam_on_time_s": 60.0, "chemo": "concurrent",
           "chemo_regimen": "carboplatin/paclitaxel", "age": 64.0, "sex": "M", "bmi": 24.5,
           "baseline_alc": 1.7, "dose_path": "plans/EXAMPLE/dose.nii.gz",
           "structures_path": "plans/EXAMPLE/structures", "steroids": "no"}
    x = pd.DataFrame([row])[[c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c in row]]
    return x.astype({c: float for c in _NUMERIC})


def model_signature():
    """Inputs: the manifest contract by name (required columns required, optional ones
    optional; any type, because lymphonet's own row checks, stricter than a type, validate the
    values: an id may arrive as a number, a count as 28 or 28.0); outputs: the score contract;
    parameter ``root`` (where relative paths start)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
    from mlflow.types.schema import AnyType

    def col(name, required):
        return ColSpec(AnyType(), name, required=required)

    inputs = Schema([col(c, True) for c in REQUIRED_COLUMNS]
                    + [col(c, False) for c in OPTIONAL_COLUMNS])
    outputs = Schema([ColSpec("string" if c in _TEXT_OUTPUTS else "double", c)
                      for c in SCORE_COLUMNS])
    return ModelSignature(inputs, outputs, ParamSchema([ParamSpec("root", "string", "")]))


def log_model(bundle_dir: str | Path, name: str = "model",
              registered_model_name: str | None = None):
    """Log the bundle as a pyfunc model of the active MLflow run (models from code, no pickle),
    registering a version of ``registered_model_name`` if given; returns MLflow's
    ``ModelInfo``."""
    import mlflow

    import lymphonet

    x = example_input()
    signature = model_signature()
    return mlflow.pyfunc.log_model(
        name=name, python_model=str(MODEL_CODE), artifacts={"bundle": str(bundle_dir)},
        signature=signature, input_example=(x, {"root": ""}),
        pip_requirements=[f"lymphonet=={lymphonet.__version__}"],
        registered_model_name=registered_model_name)


def log_run_model(run_dir: str | Path, registered_model_name: str | None = None):
    """Export the run's ``best.pt`` to a bundle (no ONNX / TorchScript: the pyfunc runs eager
    torch) and log it with :func:`log_model` into the active MLflow run.

    A run trained on in-memory synthetic data has no clinical encoder to export: warns and
    logs nothing."""
    import warnings

    from lymphonet.bundle.export import export_bundle
    from lymphonet.errors import InputError

    with tempfile.TemporaryDirectory() as tmp:
        try:
            bundle = export_bundle(Path(run_dir) / "best.pt", Path(tmp) / "bundle", onnx=False,
                                   torchscript=False)
        except InputError as err:
            warnings.warn(f"model not logged to MLflow: {err}", stacklevel=2)
            return None
        return log_model(bundle, registered_model_name=registered_model_name)
