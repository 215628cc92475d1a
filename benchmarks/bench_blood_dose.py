"""Benchmark: event-driven blood-dose engine vs the per-time-step reference walk of the same model.

    python benchmarks/bench_blood_dose.py [--particles 100000] [--beam-on 120] [--device cpu|cuda]

Case: a thoracic (lung-cancer-like) plan, per-fraction histograms of 256 bins for lungs, heart,
great vessels, oesophagus and the body remainder (synthetic, gamma-distributed voxel doses). Both
methods use the same circulation, stays and histograms. The reference walk (``dt`` steps, every
particle checked every step) is run on the same number of particles by default; with a smaller
``--ref-particles`` its time is scaled linearly to ``--particles`` and the scaling is printed.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time

import numpy as np
import torch

from lymphonet.dosimetry.blood_dose import reference_walk, simulate_blood_dose
from lymphonet.dosimetry.circulation import Circulation
from lymphonet.dosimetry.organ_dose import histograms_from_organ_doses


def thoracic_histograms(names: tuple[str, ...], seed: int = 0):
    """Synthetic per-fraction organ DVHs (dose_gy, volume_cc) of a thoracic plan."""
    rng = np.random.default_rng(seed)

    def organ(mean_gy: float, shape: float, n_vox: int, frac_zero: float = 0.0):
        d = rng.gamma(shape, mean_gy / shape, n_vox)
        d[rng.random(n_vox) < frac_zero] = 0.0
        edges = np.linspace(0.0, d.max(), 257)
        idx = np.clip(np.digitize(d, edges) - 1, 0, 255)
        vol = np.bincount(idx, minlength=256).astype(float)
        dose = np.bincount(idx, weights=d, minlength=256) / np.maximum(vol, 1)
        return dose[vol > 0], vol[vol > 0] * 0.027

    return histograms_from_organ_doses({
        "lungs": organ(0.5, 0.8, 200_000), "heart": organ(0.3, 0.6, 60_000),
        "great_vessels": organ(1.0, 1.5, 8_000), "esophagus": organ(1.2, 2.0, 3_000),
        "remainder": organ(0.15, 0.5, 500_000, frac_zero=0.6),
    }, names)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux ru_maxrss is in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def compare(fast: torch.Tensor, ref: torch.Tensor) -> list[tuple[str, float, float, float, bool]]:
    """(statistic, engine, reference, 4-sigma tolerance, agrees) rows."""
    rows = []
    se = math.hypot(float(fast.double().std()) / math.sqrt(fast.numel()),
                    float(ref.double().std()) / math.sqrt(ref.numel()))
    a, b = float(fast.double().mean()), float(ref.double().mean())
    rows.append(("mean_gy", a, b, 4 * se, abs(a - b) < 4 * se))
    for level in (0.0, 0.1, 0.3, 1.0):
        p1, p2 = float((fast > level).double().mean()), float((ref > level).double().mean())
        tol = 4.5 * math.sqrt(max(p1 * (1 - p1), 1e-5) * (1 / fast.numel() + 1 / ref.numel()))
        rows.append((f"P(dose > {level} Gy)", p1, p2, tol, abs(p1 - p2) < tol))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=100_000)
    ap.add_argument("--beam-on", type=float, default=120.0, help="beam-on time per fraction, s")
    ap.add_argument("--ref-particles", type=int, default=None,
                    help="particles for the (slow) reference walk (default: --particles); "
                         "a smaller number has its time scaled linearly (an overestimate: "
                         "per-step Python overhead does not grow with particles)")
    ap.add_argument("--dt", type=float, default=0.01, help="reference-walk time step, s")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: engine's)")
    ap.add_argument("--sex", default="M")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    circ = Circulation.reference(args.sex)
    hist = thoracic_histograms(circ.names)
    kw = {"device": args.device, "num_threads": args.threads}
    simulate_blood_dose(hist, circ, args.beam_on, particles=1000, seed=99, **kw)  # warm-up
    rss0 = peak_rss_mb()
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for rep in range(args.repeats):
        res = simulate_blood_dose(hist, circ, args.beam_on, particles=args.particles, seed=rep,
                                  **kw)
        times.append(res.seconds)
    t_fast = min(times)
    print(f"device {res.device}, torch threads {torch.get_num_threads()} (engine: "
          f"{args.threads or 'auto'}), {args.particles} particles, {args.beam_on:g} s beam-on, "
          f"{args.sex} reference circulation")
    print(f"event-driven engine : {t_fast:.3f} s (best of {args.repeats}: "
          f"{', '.join(f'{t:.3f}' for t in times)})")
    print(f"  peak RSS {peak_rss_mb():.0f} MB (process before runs {rss0:.0f} MB)")
    if args.device.startswith("cuda"):
        print(f"  peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.1f} MB")

    n_ref = min(args.ref_particles or args.particles, args.particles)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ref = reference_walk(hist, circ, args.beam_on, particles=n_ref, dt_s=args.dt, seed=123,
                         device=args.device)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t_ref_n = time.perf_counter() - t0
    t_ref = t_ref_n * args.particles / n_ref
    scaled = n_ref != args.particles
    print(f"per-step reference  : {t_ref_n:.2f} s for {n_ref} particles (dt {args.dt} s, "
          f"{math.ceil(args.beam_on / args.dt)} steps)"
          + (f" -> {t_ref:.1f} s scaled linearly to {args.particles} particles" if scaled else ""))
    print(f"speed-up            : {t_ref / t_fast:.0f}x")
    print("statistics (engine vs reference, per fraction):")
    ok = True
    for name, a, b, tol, agree in compare(res.per_fraction_gy.cpu(), ref.cpu()):
        ok &= agree
        print(f"  {name:<18} {a:.5f}  {b:.5f}  tol {tol:.5f}  {'ok' if agree else 'DIFFERS'}")
    print(f"  closed-form mean   {res.expected_mean_gy:.5f}")
    print(f"  engine: fraction_any {res.fraction_any_dose:.4f}, D2 {res.d2_gy:.4f} Gy, "
          f"D98 {res.d98_gy:.4f} Gy")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
