"""Benchmark: 10,000 patients x 365 days through the kinetics layer (target < 1 s, 2 CPU cores).

Run: ``python benchmarks/bench_kinetics.py [--patients 10000] [--days 365] [--threads 2]``.
Prints forward and forward+backward wall times (best of ``--repeats``) in float32 and float64, for
the current core (``LymphocyteKinetics``) and the physiological recirculation core that will replace
it (``RecirculationKinetics``, issue 14), side by side.
Each patient has its own schedule (5-35 weekday fractions), per-fraction blood-dose quantiles
(Q = 32), lymphoid-organ doses, beam-on time and chemotherapy arm.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lymphonet.kinetics import N_PARAMS, KineticsInputs, LymphocyteKinetics
from lymphonet.kinetics.recirculation import RECIRCULATION_SPECS, RecirculationKinetics
from lymphonet.kinetics.schedule import CHEMO_REGIMENS
from lymphonet.organs import LYMPHOID_ORGANS
from lymphonet.schema import weekday_fraction_days


def make_batch(n: int, n_q: int = 32, seed: int = 0, dtype=torch.float32) -> KineticsInputs:
    """Random but plausible batch of ``n`` patients."""
    rng = np.random.default_rng(seed)
    n_fx = rng.choice([5, 15, 25, 30, 35], size=n)
    k = int(n_fx.max())
    days = np.zeros((n, k))
    mask = np.zeros((n, k), dtype=bool)
    for i, m in enumerate(n_fx):
        days[i, :m] = weekday_fraction_days(int(m))
        mask[i, :m] = True
    exposed = rng.uniform(0.05, 0.5, size=(n, 1))
    levels = (np.arange(n_q) + 0.5) / n_q
    blood = np.where(levels > 1 - exposed, rng.uniform(0.2, 2.0, size=(n, 1)), 0.0)
    n_sites = len(LYMPHOID_ORGANS)
    lym = np.sort(rng.uniform(0, 2.0, size=(n, n_sites, n_q)), axis=-1)
    t = lambda a: torch.as_tensor(a, dtype=dtype)
    return KineticsInputs(
        blood_dose_q_gy=t(blood), fraction_days=t(days), fraction_mask=torch.as_tensor(mask),
        baseline_alc=t(rng.uniform(1.0, 3.0, size=n)), lymphoid_dose_q_gy=t(lym),
        lymphoid_coverage=t(rng.uniform(0.1, 1.0, size=(n, n_sites))),
        beam_on_s=t(np.full((n, k), 120.0)), chemo=torch.as_tensor(rng.integers(0, 3, size=n)),
        chemo_regimen=torch.as_tensor(rng.integers(0, len(CHEMO_REGIMENS), size=n)),
    )


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"kinetics benchmark: {args.patients} patients x {args.days} days, "
          f"{args.threads} threads, target < 1 s forward")
    cores = {"two-population core": (LymphocyteKinetics(n_days=args.days), N_PARAMS),
             "recirculation core": (RecirculationKinetics(n_days=args.days),
                                    len(RECIRCULATION_SPECS))}
    for name, (model, n_params) in cores.items():
        for dtype in (torch.float32, torch.float64):
            inputs = make_batch(args.patients, dtype=dtype)
            theta = 0.3 * torch.randn(args.patients, n_params, dtype=dtype)

            def fwd(model=model, inputs=inputs, theta=theta):
                with torch.no_grad():
                    model(inputs, theta)

            def fwd_bwd(model=model, inputs=inputs, theta=theta):
                th = theta.clone().requires_grad_(True)
                model(inputs, th).alc.sum().backward()

            fwd()  # warm-up
            t_f, t_fb = best_of(fwd, args.repeats), best_of(fwd_bwd, args.repeats)
            ok = "OK" if t_f < 1.0 else "SLOWER THAN TARGET"
            print(f"  {name:20s} {dtype!s:14s} forward {t_f:6.3f} s [{ok}]   "
                  f"forward+backward {t_fb:6.3f} s")


if __name__ == "__main__":
    main()
