"""Train the hybrid lymphopenia model, top to bottom (the steps `lymphonet train` runs).

    python train.py                                   # configs/default.yaml, simulated cohort
    python train.py --config configs/smoke.yaml --set train.epochs=3
    torchrun --nproc_per_node 2 train.py --device cpu # DistributedDataParallel (gloo on CPU)
"""

import argparse
from pathlib import Path

import torch

from lymphonet.config import to_dict
from lymphonet.training import distributed
from lymphonet.training.checkpoint import save_checkpoint
from lymphonet.training.config import load_training_config
from lymphonet.training.loop import (
    build_model,
    evaluate,
    fit,
    make_optimizer,
    make_scheduler,
    mechanistic_config,
    set_seed,
    train_one_epoch,
)
from lymphonet.training.metrics import format_table
from lymphonet.training.run import make_loaders, prepare_data
from lymphonet.training.tracking import NullTracker, make_tracker

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
ap.add_argument("--config")
ap.add_argument("--set", action="append", default=[])
ap.add_argument("--device")
ap.add_argument("--no-tracking", action="store_true")
args = ap.parse_args()

# ---- config, processes, seeds, data
cfg = load_training_config(args.config, args.set)
info, device = distributed.setup(args.device)
t = cfg.train
set_seed(t.seed + info.rank, t.deterministic)
run_dir = Path(cfg.out_dir) / cfg.name
data = prepare_data(cfg, run_dir, info)  # cohort (generated if needed) -> split -> cached sets
train_dl, val_dl, test_dl = make_loaders(data, t.batch_size, t.num_workers, t.seed, info, device)
tracker = make_tracker(cfg.tracking.enabled and not args.no_tracking, cfg.out_dir, cfg.name,
                       cfg.tracking.experiment, cfg.tracking.uri) if info.is_main else NullTracker()
tracker.log_config(to_dict(cfg))

# ---- model, optimiser, the loop
model = distributed.wrap(build_model(cfg.model, data.model_inputs).to(device), info, device)
optimizer = make_optimizer(model, t.lr, t.weight_decay)
scheduler = make_scheduler(optimizer, t.lr_schedule, t.epochs)
best, bad_epochs = float("inf"), 0
for epoch in range(1, t.epochs + 1):
    train_dl.sampler.set_epoch(epoch)
    train_metrics = train_one_epoch(model, train_dl, optimizer, cfg.loss, device, amp=t.amp,
                                    grad_clip=t.grad_clip, max_bad_steps=t.max_bad_steps, info=info)
    scheduler.step()
    val = evaluate(model, val_dl, device, amp=t.amp)
    tracker.log_metrics({**train_metrics, **{f"val_{k}": v for k, v in val.items()}}, step=epoch)
    if info.is_main:
        print(f"epoch {epoch:3d}  train loss {train_metrics.get('train_loss', float('nan')):.4f}  "
              f"val loss {val['loss']:.4f}  val log-ALC RMSE {val['log_alc_rmse']:.4f}")
    if val["loss"] < best - t.min_delta:
        best, bad_epochs = val["loss"], 0
        if info.is_main:
            save_checkpoint(run_dir / "best.pt", model, config=to_dict(cfg), encoder=data.encoder,
                            model_inputs=data.model_inputs, state={"epoch": epoch, "best": best})
    else:
        bad_epochs += 1
        if bad_epochs >= t.patience:
            break
best_state = torch.load(run_dir / "best.pt", weights_only=True)["model"] if info.is_main else None
if best_state is not None:
    distributed.unwrap(model).load_state_dict(best_state)

# ---- the population mechanistic model (theta = 0; only its noise model is fitted), comparison
mech = build_model(mechanistic_config(cfg.model), data.model_inputs).to(device)
fit(distributed.wrap(mech, info, device), train_dl, val_dl, epochs=t.baseline_epochs, lr=1e-2,
    weight_decay=0.0, loss_cfg=cfg.loss, device=device, lr_schedule="none", info=info)
if info.is_main:
    results = {"hybrid": evaluate(model, test_dl, device), "mechanistic": evaluate(mech, test_dl, device)}
    tracker.log_metrics({f"test_{m}_{k}": v for m, r in results.items() for k, v in r.items()})
    print(format_table(results))
    print(f"best model: {run_dir / 'best.pt'}; tracking: {tracker.uri or 'off'}")
tracker.end()
distributed.teardown()
