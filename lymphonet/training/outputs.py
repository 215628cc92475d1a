"""What a finished training run leaves behind (rank 0): plots, metrics, MLflow, a printed table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from lymphonet.errors import without_absolute_paths
from lymphonet.metrics import format_table
from lymphonet.training.loop import predict


def run_summary(state: dict[str, Any], results: dict[str, dict[str, float]], run_dir: Path,
                times: dict[str, float], tracker, *, world_size: int, device: torch.device,
                split_sha256: str | None) -> dict[str, Any]:
    """The run's summary (``metrics.json``): held-out results, epochs, timings, where it lives."""
    history = state["history"]
    mean = lambda key: float(np.mean([h[key] for h in history] or [np.nan]))
    return {"results": results, "run_dir": str(run_dir.resolve()),
            "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
            "stopped_early": state["stopped_early"], **times, "world_size": world_size,
            "device": str(device), "tracking_uri": tracker.uri, "run_id": tracker.run_id,
            "split_sha256": split_sha256, "epoch_s": mean("epoch_s"),
            "patients_per_s": mean("patients_per_s")}


def write_outputs(cfg, run_dir: Path, state: dict[str, Any], models: dict[str, torch.nn.Module],
                  results: dict[str, dict[str, float]], summary: dict[str, Any], tracker,
                  test_dl: DataLoader, device: torch.device) -> None:
    """Learning curves and held-out trajectories (PNG), ``metrics.json``, ``history.json``, the
    MLflow metrics and artifacts, and the printed comparison table (the caller logs the model
    and ends the MLflow run)."""
    from lymphonet.training.plots import learning_curves, trajectories

    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    preds = {}
    for name, net in models.items():
        preds[name] = predict(net, test_dl, device, amp=cfg.train.amp, loss_cfg=cfg.loss)
        lo, hi = net.noise.interval(torch.as_tensor(preds[name]["alc"]),
                                    torch.as_tensor(preds[name]["days"]))
        preds[name]["lo"], preds[name]["hi"] = lo.detach().numpy(), hi.detach().numpy()
    files = []
    if state["history"]:
        files.append(learning_curves(state["history"], plots / "learning_curves.png"))
    files.append(trajectories(preds, plots / "trajectories.png"))
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=1, default=float))
    (run_dir / "history.json").write_text(json.dumps(state["history"], indent=1))
    for name, res in results.items():
        tracker.log_metrics({f"test_{name}_{k}": v for k, v in res.items()})
    for f in files:
        tracker.log_artifact(f)
    _log_shareable(tracker, run_dir, summary, cfg)
    _print_summary(cfg, run_dir, state, results, summary, tracker, plots)


def _log_shareable(tracker, run_dir: Path, summary: dict[str, Any], cfg) -> None:
    """The summary and the config as MLflow artifacts without absolute paths (the run folder's
    own copies keep them, to rerun the run on this machine)."""
    if not tracker.enabled:
        return
    import yaml

    from lymphonet.config import to_dict

    shared = run_dir / "shared"
    shared.mkdir(exist_ok=True)
    (shared / "metrics.json").write_text(
        json.dumps(without_absolute_paths(summary), indent=1, default=float))
    (shared / "config.yaml").write_text(
        yaml.safe_dump(without_absolute_paths(to_dict(cfg)), sort_keys=False))
    for name in ("metrics.json", "config.yaml"):
        tracker.log_artifact(shared / name)


def _print_summary(cfg, run_dir, state, results, summary, tracker, plots) -> None:
    print(f"\nHeld-out fold (test fold {cfg.train.test_fold}), hybrid vs the mechanistic "
          "model at its priors (theta = 0; `mechanistic_prior` of lymphonet evaluate):")
    print(format_table(results))
    print(f"\nrun folder : {summary['run_dir']}")
    print(f"model      : {(run_dir / 'best.pt').resolve()} (best epoch {state['best_epoch']} of "
          f"{state['epoch']}{', stopped early' if state['stopped_early'] else ''})")
    print(f"plots      : {plots.resolve()}")
    if tracker.enabled:
        print(f"MLflow     : {tracker.uri} (run {tracker.run_id}); browse with "
              f"`mlflow ui --backend-store-uri {tracker.uri}`")
    print(f"time       : data {summary['data_s']:.0f} s, hybrid training "
          f"{summary['hybrid_s']:.0f} s ({summary['epoch_s']:.1f} s/epoch, "
          f"{summary['patients_per_s']:.1f} patients/s), total {summary['total_s']:.0f} s on "
          f"{summary['device']}")
