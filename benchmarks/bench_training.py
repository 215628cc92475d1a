"""Training throughput of the hybrid model, and whether data loading keeps up.

    python benchmarks/bench_training.py                     # small simulated cohort, CPU
    python benchmarks/bench_training.py --cohort runs/default/cohort --device cuda --workers 4

Measures, with the preprocessing cache warm:
  * loading: patients/s of the DataLoader alone (cached npz -> contract batches);
  * compute: patients/s of training steps (forward, loss, backward, step) on batches already in
    memory, on the CPU and, when available, on CUDA;
  * epoch:   patients/s of a real epoch (loading + compute, as training runs it).
Data loading is not the bottleneck when loading throughput >> compute throughput, i.e. the epoch
rate is close to the compute rate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def _rate(n: int, seconds: float) -> float:
    return n / max(seconds, 1e-9)


def measure(cohort: Path, device: torch.device, batch_size: int, workers: int, steps: int,
            overrides: list[str]) -> dict[str, float]:
    from lymphonet.data.prepare import load_datasets, make_loaders, prepare_split_and_cache
    from lymphonet.training.config import load_training_config
    from lymphonet.training.loop import build_model, make_optimizer, to_device, train_one_epoch
    from lymphonet.training.losses import compute_loss

    cfg = load_training_config(None, [f"cohort.path={cohort}", "train.progress=false",
                                      *overrides])
    prepare_split_and_cache(cfg, cohort)  # warms the cache (first pass only)
    data = load_datasets(cfg, cohort)
    train_dl, _, _ = make_loaders(data, batch_size, workers, 0, device=device)
    # loading alone
    t0 = time.perf_counter()
    batches = [b for b in train_dl]
    n = sum(int(b["baseline_alc"].shape[0]) for b in batches)
    load_rate = _rate(n, time.perf_counter() - t0)
    # compute alone, on batches already in memory (and on the device)
    model = build_model(cfg.model, data.model_inputs).to(device)
    opt = make_optimizer(model, 1e-3, 0.0)
    dev_batches = [to_device(b, device) for b in batches]
    done, t_comp = 0, 0.0
    for i in range(steps + 1):
        b = dev_batches[i % len(dev_batches)]
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        from lymphonet.training.loop import autocast

        with autocast(device, cfg.train.amp):
            out = model(b)
        loss, _ = compute_loss(out, b, model.noise, cfg.loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i > 0:  # first step is warm-up
            t_comp += time.perf_counter() - t0
            done += int(b["baseline_alc"].shape[0])
    comp_rate = _rate(done, t_comp)
    # a real epoch
    res = train_one_epoch(model, train_dl, opt, cfg.loss, device, amp=cfg.train.amp)
    return {"load_pps": load_rate, "compute_pps": comp_rate, "epoch_pps": res["patients_per_s"],
            "n_train": float(len(data.train))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cohort", type=Path, help="cohort folder (default: simulate a small one)")
    ap.add_argument("--n", type=int, default=40, help="patients to simulate without --cohort")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--steps", type=int, default=6, help="timed compute steps")
    ap.add_argument("--device", action="append", help="devices (default: cpu, and cuda if any)")
    ap.add_argument("--set", action="append", default=[], help="config overrides")
    args = ap.parse_args()
    cohort = args.cohort
    if cohort is None:
        from lymphonet.twin.cohort import simulate_cohort

        cohort = Path(tempfile.mkdtemp(prefix="bench_training_")) / "cohort"
        simulate_cohort(args.n, ["esophagus", "lung"], ["photon", "proton"], seed=0,
                        out_dir=cohort, spacing_mm=8.0, write_trajectories=False, progress=False)
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"cohort {cohort}; batch {args.batch_size}; workers {args.workers}; "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'device':<8}{'loading pt/s':>14}{'compute pt/s':>14}{'epoch pt/s':>12}  verdict")
    for name in devices:
        r = measure(cohort, torch.device(name), args.batch_size, args.workers, args.steps, args.set)
        ok = r["load_pps"] > 2 * r["compute_pps"]
        verdict = ("loading is not the bottleneck" if ok else
                   "loading limits training: raise --workers")
        print(f"{name:<8}{r['load_pps']:>14.1f}{r['compute_pps']:>14.1f}{r['epoch_pps']:>12.1f}  "
              f"{verdict}")


if __name__ == "__main__":
    main()
