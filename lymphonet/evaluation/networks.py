"""The networks of the evaluation: trained through ``train.py``'s one loop, or loaded.

:func:`train_network` trains a hybrid (or the CNN-only ablation) on a fold with the training
code's ``fit``; :func:`network_predictions` turns a network into held-out :class:`Predictions`;
:func:`load_trained` reads a ``lymphonet train`` checkpoint or an exported bundle.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lymphonet.evaluation.tables import Predictions


def train_network(model_cfg, cfg, train_ds, val_ds, model_inputs: dict[str, int], device,
                  seed: int):
    """Train one network through ``train.py``'s loop (the same ``fit`` as ``lymphonet train``:
    optimiser, schedule, AMP, early stopping on the validation fold, all from ``cfg.train``),
    seeded; returns it in eval mode with its best weights."""
    from lymphonet.data.prepare import PreparedData, make_loaders
    from lymphonet.training.loop import build_model, set_seed
    from lymphonet.training.script import load_train_script

    t = cfg.train
    set_seed(seed, t.deterministic)
    train_dl, val_dl, _ = make_loaders(PreparedData(train_ds, val_ds, val_ds, model_inputs),
                                       t.batch_size, 0, seed, device=device)
    model = build_model(model_cfg, model_inputs).to(device)
    quiet = replace(cfg, train=replace(t, progress=False))
    load_train_script().fit(model, train_dl, val_dl, quiet, device)
    return model.eval()


def network_predictions(model, dataset, device, batch_size: int = 32,
                        level: float = 0.9) -> Predictions:
    """Trajectories, grade probabilities (the model's noise model) and intervals of a network."""
    import torch
    from torch.utils.data import DataLoader

    from lymphonet.training.loop import to_device

    model.eval()
    acc: dict[str, list] = {k: [] for k in ("alc", "lower", "upper", "g3", "g4")}
    days = None
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size, shuffle=False):
            out = model(to_device(batch, device))
            alc = out.alc.float()
            days = out.days.float()
            probs = model.noise.grade_probabilities(alc.min(1).values)
            lo, hi = model.noise.interval(alc, days, level)
            for k, v in (("alc", alc), ("lower", lo), ("upper", hi), ("g3", probs[3]),
                         ("g4", probs[4])):
                acc[k].append(v.cpu())
    cat = {k: torch.cat(v).numpy().astype(float) for k, v in acc.items()}
    return Predictions(days=days.cpu().numpy().astype(float), **cat)


def load_trained(path: str | Path):
    """``(TrainingRunConfig, clinical encoder dict or None, model in eval mode)`` from a
    checkpoint file (``lymphonet train``'s ``best.pt``) or a model bundle folder
    (``lymphonet export``; verified by :func:`lymphonet.bundle.export.load_bundle`)."""
    from lymphonet.config import from_dict
    from lymphonet.training.config import TrainingRunConfig

    path = Path(path)
    if path.is_dir():
        import json

        from lymphonet.bundle.load import load_bundle

        bundle = load_bundle(path)
        raw = json.loads((path / "config.json").read_text())
        cfg = from_dict(TrainingRunConfig, raw, where="bundle config.json")
        return cfg, bundle.encoder.to_dict(), bundle.model
    from lymphonet.training.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(path)
    cfg = from_dict(TrainingRunConfig, ckpt["config"], where="checkpoint.config")
    return cfg, ckpt.get("encoder"), model_from_checkpoint(ckpt)
