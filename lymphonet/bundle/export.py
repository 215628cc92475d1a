"""Model bundles: a trained checkpoint as a self-describing, checksummed folder for scoring.

Layout of a bundle folder (nothing in it is a pickle; nothing in it names a patient)::

    weights.pt            model state dict (tensors only; read with torch.load(weights_only=True))
    config.json           the resolved training configuration (data, model, loss, train, ...)
    clinical_encoder.json the fitted clinical-feature encoder (training-fold means / sds)
    metadata.json         inputs, outputs, training-cohort summary, held-out metrics, versions,
                          intended use and limits, export parity figures
    network.onnx          the network part (CNN + MLP -> theta), if ``onnx`` + ``onnxscript``
    network.ts            the same as TorchScript (torch.jit.trace), the always-available fallback
    checksums.sha256      SHA-256 of every other file (``sha256sum -c`` format)

The *network part* (:class:`~lymphonet.models.head.NetworkHead`: image, clinical vector, dose summary -> the full
unconstrained kinetic parameter vector theta, or the CNN-only head's log-ratio knots) is what
ONNX / TorchScript hold; the kinetics layer and the noise model stay in eager PyTorch
(:meth:`HybridModel.trajectory <lymphonet.models.hybrid.HybridModel.trajectory>`), because the kinetics integrates a schedule whose length varies
per patient and is cheap. :func:`load_bundle` verifies checksums and versions before it builds
anything and fails with an :class:`~lymphonet.errors.InputError` naming the file and field.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lymphonet.bundle.load import (
    BUNDLE_FORMAT,
    CHECKSUM_FILE,
    INTENDED_USE,
    INTERVAL_LEVEL,
    LIMITS,
    current_versions,
    kinetics_constants,
    read_json,
    sha256_file,
    write_checksums,
)
from lymphonet.bundle.portable import portable_exports
from lymphonet.errors import InputError, without_absolute_paths
from lymphonet.schema import SCORE_COLUMNS

# ---------------------------------------------------------------------------------------------
# export


def _run_artifacts(run_dir: Path) -> tuple[dict[str, Any], list | None]:
    """Held-out metrics (metrics.json ``results``) and split summary of a training run folder."""
    metrics, summary = {}, None
    if (run_dir / "metrics.json").is_file():
        m = read_json(run_dir / "metrics.json")
        metrics = {"held_out_fold": m.get("results", {}), "best_epoch": m.get("best_epoch"),
                   "epochs_run": m.get("epochs_run")}
    if (run_dir / "split_summary.json").is_file():
        summary = json.loads((run_dir / "split_summary.json").read_text())
    return metrics, summary


def build_metadata(ckpt: dict[str, Any], data_cfg, encoder, run_dir: Path) -> dict[str, Any]:
    """metadata.json content (everything but parity, files and model_version)."""
    from lymphonet.data.batch import DOSE_SUMMARY_NAMES

    metrics, split = _run_artifacts(run_dir)
    cohort_cfg = ckpt["config"].get("cohort", {})
    simulated = not cohort_cfg.get("path")
    return {
        "format": BUNDLE_FORMAT,
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inputs": {
            "model_inputs": ckpt["model_inputs"],
            "grid": {"shape_dhw": list(data_cfg.shape), "spacing_mm_xyz": list(data_cfg.spacing_mm),
                     "orientation": "axis-aligned LPS (W to patient left, H posterior, D "
                                    "superior), centred on the target bounding box "
                                    f"(crop_center={data_cfg.crop_center})"},
            "channels": ["dose"] + list(data_cfg.organ_channels),
            "units": {"dose": f"Gy total course, channel 0 = dose / {data_cfg.dose_scale_gy} Gy",
                      "baseline_alc": "10^9/L", "beam_on_time_s": "s per fraction",
                      "dose_per_fraction_gy": "Gy"},
            "clinical_columns": list(encoder.feature_names),
            "dose_summary_columns": list(DOSE_SUMMARY_NAMES)[: ckpt["model_inputs"].get(
                "n_dose_summary", 0)],
            "manifest_columns": ["patient_id", "plan_id", "site", "modality", "n_fractions",
                                 "dose_per_fraction_gy", "fraction_days", "beam_on_time_s",
                                 "chemo", "age", "sex", "bmi", "baseline_alc", "dose_path",
                                 "structures_path", "structure_map"],
            "blood_particles": data_cfg.blood_particles, "n_quantiles": data_cfg.n_quantiles,
        },
        "outputs": {
            "columns": list(SCORE_COLUMNS),
            "trajectory_columns": ["plan_id", "day", "alc", "lower", "upper"],
            "days": f"0..{ckpt['config']['model']['n_days'] - 1} (days from the first fraction)",
            "interval_level": INTERVAL_LEVEL,
            "grades": "CTCAE v5: grade >= 3 when ALC < 0.5, grade 4 when ALC < 0.2 (10^9/L)",
        },
        "training_cohort": {
            "simulated": simulated,
            "source": "simulated (lymphonet twin)" if simulated else "cohort folder (path not "
                                                                      "recorded)",
            "sites": cohort_cfg.get("sites"), "modalities": cohort_cfg.get("modalities"),
            "n_plans": cohort_cfg.get("n") if simulated else None,
            "split_summary": split,
            "clinical_means": encoder.mean, "clinical_sds": encoder.std,
        },
        "validation_metrics": metrics,
        "versions": {"trained_with": ckpt.get("versions", {}), **current_versions()},
        "kinetics": ckpt.get("kinetics") or kinetics_constants(
            (ckpt.get("config", {}).get("model") or {}).get("kinetics_core", "two_population")),
        "intended_use": INTENDED_USE,
        "limits": LIMITS,
    }


def export_bundle(checkpoint: str | Path, out_dir: str | Path, *, onnx: bool = True,
                  torchscript: bool = True, overwrite: bool = False) -> Path:
    """Write a bundle folder from a training checkpoint.

    Args:
        checkpoint: ``best.pt`` / ``final.pt`` of a run (its folder's metrics.json and
            split_summary.json are read if present).
        out_dir: New bundle folder (must not exist unless ``overwrite``).
        onnx: Also export network.onnx (needs onnx + onnxscript; skipped with a note if absent).
        torchscript: Also export network.ts.
        overwrite: Replace an existing folder.

    Returns:
        The bundle folder.

    Raises:
        InputError: Unreadable checkpoint, no clinical encoder (trained on in-memory synthetic
            batches), inconsistent input sizes, or an existing output folder.
    """
    from lymphonet.config import from_dict
    from lymphonet.data.batch import DOSE_SUMMARY_NAMES
    from lymphonet.data.clinical import ClinicalEncoder
    from lymphonet.data.config import DataConfig
    from lymphonet.training.checkpoint import load_checkpoint, model_from_checkpoint

    checkpoint, out = Path(checkpoint), Path(out_dir)
    ckpt = load_checkpoint(checkpoint)
    if ckpt.get("encoder") is None:
        raise InputError("checkpoint has no clinical encoder (trained on in-memory synthetic "
                         "batches); it cannot score plans from files", file=checkpoint,
                         field="encoder")
    data_cfg = from_dict(DataConfig, ckpt["config"].get("data"), where="checkpoint.config.data")
    encoder = ClinicalEncoder.from_dict(ckpt["encoder"])
    mi = ckpt["model_inputs"]
    expected = {"n_channels": data_cfg.n_channels, "n_clinical": encoder.n_features}
    for key, value in expected.items():
        if int(mi.get(key, -1)) != value:
            raise InputError(f"model_inputs.{key} = {mi.get(key)} but the data config / encoder "
                             f"give {value}", file=checkpoint, field=f"model_inputs.{key}")
    if int(mi.get("n_dose_summary", 0)) not in (0, len(DOSE_SUMMARY_NAMES)):
        raise InputError(f"n_dose_summary {mi.get('n_dose_summary')} is neither 0 nor "
                         f"{len(DOSE_SUMMARY_NAMES)}", file=checkpoint,
                         field="model_inputs.n_dose_summary")
    model = model_from_checkpoint(ckpt)
    if out.exists():
        if not overwrite:
            raise InputError("output folder exists (use --force to replace it)", file=out,
                             field="--out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    torch.save({k: v.contiguous() for k, v in ckpt["model"].items()}, out / "weights.pt")
    (out / "config.json").write_text(json.dumps(without_absolute_paths(ckpt["config"]), indent=1))
    (out / "clinical_encoder.json").write_text(json.dumps(encoder.to_dict(), indent=1))
    meta = build_metadata(ckpt, data_cfg, encoder, checkpoint.parent)
    meta["parity"] = portable_exports(model, out, mi, tuple(data_cfg.shape), onnx, torchscript)
    meta["model_version"] = f"{meta['versions']['lymphonet']}+{sha256_file(out / 'weights.pt')[:12]}"
    meta["files"] = sorted(p.name for p in out.iterdir()) + ["metadata.json", CHECKSUM_FILE]
    (out / "metadata.json").write_text(json.dumps(meta, indent=1, default=float))
    write_checksums(out)
    return out


def resolve_run_checkpoint(run: str, runs_dir: str | Path = "runs") -> Path:
    """Checkpoint of a training run given as a run folder or an MLflow run id.

    A run folder gives ``best.pt`` (else ``final.pt``); a run id is looked up in the
    ``metrics.json`` files under ``runs_dir`` (each records its MLflow ``run_id``).

    Raises:
        InputError: No such run or no checkpoint in it.
    """
    folder = Path(run)
    if not folder.is_dir():
        hits = [p.parent for p in sorted(Path(runs_dir).glob("*/metrics.json"))
                if read_json(p).get("run_id") == run]
        if not hits:
            raise InputError(f"no run folder with MLflow run id {run!r} under {runs_dir}",
                             file=runs_dir, field="--run")
        folder = hits[0]
    for name in ("best.pt", "final.pt"):
        if (folder / name).is_file():
            return folder / name
    raise InputError("run folder has no best.pt or final.pt", file=folder, field="--run")


def untrained_checkpoint(path: str | Path, *, data_config=None, model_config=None,
                         seed: int = 0, head_scale: float = 0.5) -> Path:
    """A checkpoint of a *randomly initialised* model in the training format, for tests and
    benchmarks only (its predictions mean nothing).

    The zero-initialised adjustment head gets random weights of size ``head_scale`` so that
    the network part actually moves theta (parity checks are then not trivially 0 = 0).
    """
    from lymphonet.config import to_dict
    from lymphonet.data.batch import DOSE_SUMMARY_NAMES
    from lymphonet.data.clinical import ClinicalEncoder
    from lymphonet.data.config import DataConfig
    from lymphonet.models.hybrid import HybridModel, ModelConfig
    from lymphonet.training.checkpoint import save_checkpoint
    from lymphonet.training.config import TrainingRunConfig

    data_config = data_config or DataConfig()
    model_config = model_config or ModelConfig()
    torch.manual_seed(seed)
    encoder = ClinicalEncoder.identity()
    inputs = {"n_channels": data_config.n_channels, "n_clinical": encoder.n_features,
              "n_dose_summary": len(DOSE_SUMMARY_NAMES)}
    model = HybridModel(cfg=model_config, **inputs)
    if model.head is not None:
        nn.init.normal_(model.head.weight, std=head_scale / model.head.weight.shape[1] ** 0.5)
    cfg = TrainingRunConfig(name="untrained", data=data_config, model=model_config)
    return save_checkpoint(path, model, config=to_dict(cfg), model_inputs=inputs,
                           state={"epoch": 0}, encoder=encoder.to_dict())
