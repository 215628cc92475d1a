"""Plots of a training run (matplotlib, Agg backend): learning curves and trajectories.

Plots carry no patient identifiers: held-out patients are labelled by their position in the fold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lymphonet.schema import CTCAE_CUTOFFS_ALC


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(history: list[dict[str, float]], path: str | Path) -> Path:
    """Training and validation loss, and validation log-ALC RMSE, per epoch."""
    plt = _plt()
    ep = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].plot(ep, [h.get("train_loss", np.nan) for h in history], label="train")
    axes[0].plot(ep, [h.get("val_loss", np.nan) for h in history], label="validation")
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[0].legend()
    axes[1].plot(ep, [h.get("val_log_alc_rmse_all", np.nan) for h in history], color="C2")
    axes[1].set(xlabel="epoch", ylabel="RMSE of log ALC", title="validation log-ALC RMSE")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def trajectories(preds: dict[str, dict[str, Any]], path: str | Path, n: int = 6,
                 level: float = 0.9) -> Path:
    """Predicted vs observed ALC for the first ``n`` held-out patients, one model per line style.

    Args:
        preds: model name -> output of :func:`lymphonet.training.loop.predict` (same loader), with
            optional ``lo``/``hi`` [N, T] interval bands.
    """
    plt = _plt()
    names = list(preds)
    first = preds[names[0]]
    n = min(n, len(first["index"]))
    cols = min(3, max(1, n))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for i in range(n):
        ax = axes[i // cols][i % cols]
        for j, name in enumerate(names):
            p = preds[name]
            ax.plot(p["days"], p["alc"][i], color=f"C{j}", label=name)
            if "lo" in p:
                ax.fill_between(p["days"], p["lo"][i], p["hi"][i], color=f"C{j}", alpha=0.15)
        m = first["obs_mask"][i]
        ax.scatter(first["obs_days"][i][m], first["obs_alc"][i][m], color="k", s=12, zorder=3,
                   label="labs")
        ax.axhline(CTCAE_CUTOFFS_ALC[4], color="r", lw=0.6, ls=":")  # grade 4
        ax.set(title=f"held-out patient {i + 1}", xlabel="day", ylabel="ALC (10^9/L)")
        if i == 0:
            ax.legend(fontsize=7)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
