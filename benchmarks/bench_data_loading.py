"""Benchmark: data loading with and without the preprocessing cache.

Run from the repository root::

    python benchmarks/bench_data_loading.py [--plans 64] [--cohort DIR] [--epochs 2]

Generates a SIMULATED cohort (``lymphonet.twin.cohort.simulate_cohort``, 5 mm grids) unless
``--cohort`` names one, then times

1. the first, uncached preprocessing pass (read NIfTI, canonical structures, blood-dose engine,
   torchio resample + crop), i.e. what *every* epoch would cost without the cache;
2. the same without the blood-dose engine (only re-reading and resampling the volumes);
3. cached epochs through the DataLoader with 0 and 2 workers (plans/s).

The point (README, Performance: "data loading never starves the GPU"): with the cache an epoch
costs a few milliseconds per plan, far below a training step of the 3D CNN.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from lymphonet.data.cache import preprocess_cohort
from lymphonet.data.config import DataConfig
from lymphonet.data.dataset import PlanDataset, make_loader
from lymphonet.data.images import image_from_plan
from lymphonet.io.cohort import load_cohort
from lymphonet.io.plan import read_plan


def make_cohort(n_plans: int, out_dir: Path) -> Path:
    from lymphonet.twin.cohort import simulate_cohort

    t0 = time.perf_counter()
    simulate_cohort(n_plans, ["lung", "esophagus", "pancreas", "glioblastoma"],
                    ["photon", "proton"], seed=0, out_dir=out_dir, spacing_mm=5.0,
                    particles=2000, n_quantiles=16, write_trajectories=False, progress=False)
    print(f"generated {n_plans} plans in {time.perf_counter() - t0:.1f} s -> {out_dir}")
    return out_dir


def epoch(ds: PlanDataset, workers: int, batch_size: int, epochs: int) -> list[float]:
    """Plans/s of each epoch through one (persistent-worker) loader."""
    loader = make_loader(ds, batch_size=batch_size, shuffle=True, workers=workers, seed=0)
    rates = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        n = sum(int(b["index"].shape[0]) for b in loader)
        rates.append(n / (time.perf_counter() - t0))
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plans", type=int, default=64)
    ap.add_argument("--cohort", type=Path, default=None, help="existing cohort folder")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1, help="processes for the uncached pass")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    root = args.cohort or make_cohort(args.plans, Path(tmp.name) / "cohort")
    config = DataConfig(cache_dir=str(Path(tmp.name) / "cache"))
    cohort = load_cohort(root, errors="collect")
    n = len(cohort.plans)
    print(f"{n} plans; image {config.n_channels} x {config.shape} at {config.spacing_mm} mm; "
          f"{config.blood_particles} blood particles")

    t0 = time.perf_counter()
    for record in cohort.plans:
        _plan = read_plan(record, cohort.root)
        dose, structures = _plan.dose, _plan.structures
        image_from_plan(dose, structures, config)
    t_images = time.perf_counter() - t0

    report = preprocess_cohort(cohort, config, workers=args.workers, progress=False)
    print(report.summary())
    t_first = report.elapsed_s

    t0 = time.perf_counter()
    ds = PlanDataset(cohort, config)
    t_init = time.perf_counter() - t0
    rates = {w: epoch(ds, w, args.batch_size, args.epochs) for w in (0, 2)}

    print(f"\n{'pass':<52}{'s/epoch':>9}{'plans/s':>10}")
    rows = [("no cache: full preprocessing (read + blood dose + torchio)", t_first),
            ("no cache: read + torchio resample only (no blood dose)", t_images),
            ("cached: dataset construction (cache lookup + features)", t_init)]
    for w, r in rates.items():
        rows += [(f"cached epoch {e + 1}, {w} workers (DataLoader, batch {args.batch_size})",
                  n / x) for e, x in enumerate(r)]
    for name, t in rows:
        print(f"{name:<52}{t:>9.2f}{n / t:>10.1f}")
    best = max(max(r) for r in rates.values())
    print(f"\ncached loading is {best * t_first / n:.0f}x faster than re-preprocessing every "
          f"epoch ({best * t_images / n:.0f}x faster than only re-reading and resampling)")
    tmp.cleanup()


if __name__ == "__main__":
    main()
