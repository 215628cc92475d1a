"""Benchmark: the blood-dose engine vs a per-step reference walk, and vs HEDOS itself when given.

    python benchmarks/bench_blood_dose.py [--particles 1000000] [--beam-on 120]
    python benchmarks/bench_blood_dose.py --hedos PATH/TO/hedos   # side by side (not in CI)

Case: without ``--hedos``, a synthetic thoracic plan (gamma-distributed voxel doses for lungs,
heart, aorta, pulmonary artery, oesophagus and the body remainder; female reference circulation).
With ``--hedos`` (a checkout of MGHPhysicsResearch/hedos), HEDOS's own example: its six organ DVHs
(lung, heart, aorta, pulmonary artery, superior vena cava, tumour at 5% of the lung), 30 fractions,
female, read by ``lymphonet.io.dvh_table`` on our side and by HEDOS's code on its side.

Timed: walk + dose scoring (imports, table building and numba loading excluded), on the same
particles and beam. The engine runs with tau_c = 0 (HEDOS's per-step draw in the limit), the default
1 s and infinity (one voxel per stay), with all cores and with one thread. The per-step reference
(``lymphonet.dosimetry.reference``, 50 ms steps like HEDOS) runs on ``--ref-particles`` and its time
is scaled linearly. HEDOS runs in chunks of ``--hedos-chunk`` particles (its path array holds one
byte per particle and step; unchunked, 1e6 particles x 2600 steps need 2.6 GB plus copies).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np

from lymphonet.dosimetry.blood_dose import simulate_blood_dose
from lymphonet.dosimetry.circulation import Circulation
from lymphonet.dosimetry.organ_dose import histograms_from_organ_doses
from lymphonet.dosimetry.reference import per_step_walk
from lymphonet.io.dvh_table import read_cumulative_dvh

HEDOS_ORGANS = ("lung", "heart", "aorta", "pulmonary_artery", "superior_vena_cava", "tumor")
N_FRACTIONS = 30


def thoracic_histograms(names: tuple[str, ...], seed: int = 0):
    """Synthetic per-fraction organ DVHs (dose_gy, volume_cc) of a thoracic plan."""
    rng = np.random.default_rng(seed)

    def organ(mean_gy: float, shape: float, n_vox: int, frac_zero: float = 0.0):
        d = rng.gamma(shape, mean_gy / shape, n_vox)
        d[rng.random(n_vox) < frac_zero] = 0.0
        idx = np.clip(np.digitize(d, np.linspace(0.0, d.max(), 257)) - 1, 0, 255)
        vol = np.bincount(idx, minlength=256).astype(float)
        dose = np.bincount(idx, weights=d, minlength=256) / np.maximum(vol, 1)
        return dose[vol > 0], vol[vol > 0] * 0.027

    return histograms_from_organ_doses({
        "lungs": organ(0.5, 0.8, 200_000), "heart": organ(0.3, 0.6, 60_000),
        "aorta": organ(1.0, 1.5, 5_000), "pulmonary_artery": organ(1.2, 1.5, 2_000),
        "esophagus": organ(1.2, 2.0, 3_000),
        "remainder": organ(0.15, 0.5, 500_000, frac_zero=0.6),
    }, names)


def hedos_case(hedos: Path):
    """HEDOS's example as lymphonet inputs: (circulation with tumour, histograms)."""
    circ = Circulation.reference("F").with_tumor("lung", 0.05)
    dvh_dir = hedos / "input" / "patient" / "DVHs"
    doses = {o: read_cumulative_dvh(dvh_dir / f"{o}_DVH.csv", organ=o).per_fraction(N_FRACTIONS)
             for o in HEDOS_ORGANS}
    return circ, histograms_from_organ_doses(doses, circ.names)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux ru_maxrss is in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


#: Radiosensitivity for the kill column (1/Gy): the in-vivo estimate of Jin et al. 2020 (0.40).
ALPHA_PER_GY = 0.40


def stats(dose: np.ndarray) -> dict[str, float]:
    """Mean, share with any dose, p98 (Gy) and per-fraction kill ``1 - mean(exp(-alpha d))``."""
    return {"mean": float(dose.mean(dtype=np.float64)), "any": float(np.mean(dose > 0)),
            "p98": float(np.quantile(dose, 0.98)),
            "kill": float(1.0 - np.mean(np.exp(-ALPHA_PER_GY * dose.astype(np.float64))))}


def run_hedos(hedos: Path, particles: int, windows, chunk: int, seed: int):
    """HEDOS's own walk + per-step dose scoring of its example: (per-fraction dose, seconds)."""
    sys.path.insert(0, str(hedos))
    from simulation import (  # type: ignore[import-not-found]
        CompartmentDose,
        DoseRateFromDVH,
        ExpandFlowModel,
        TemporalDistribution,
    )

    np.random.seed(seed)
    dt = 0.05
    end = max(s + d for s, d in windows)
    sim = {"sample_size": chunk, "nr_steps": math.ceil(end / dt), "dt": dt, "weibull_shape": 2,
           "generate_new": True, "random_walk": False, "accumulate": False}
    patient = {"gender": "F", "sheet_name": "female_new", "tumor_site": "lung",
               "tumor_volume_fraction": 0.05, "relative_blood_density": 1.0,
               "relative_perfusion": 1.0, "organs": list(HEDOS_ORGANS), "TBV": 3.9,
               "CO": 5.9 / 60}
    total_on = sum(d for _, d in windows)
    with contextlib.redirect_stdout(io.StringIO()):
        model = ExpandFlowModel(str(hedos / "input/phantom/ICRP89_compartment_model.xlsx"),
                                patient, sim)
        model.split_box_parallel("tumor", box_dict=patient)
        model.construct_weibull()
        rate = DoseRateFromDVH(n_fractions=N_FRACTIONS, total_beam_on_time=total_on)
        hists = {o: rate.get_dose_rate_hist(str(hedos / f"input/patient/DVHs/{o}_DVH.csv"))
                 for o in HEDOS_ORGANS}
        ids = {o: [i for i, n in enumerate(model.names) if o in n] for o in HEDOS_ORGANS}
        out, start = [], time.perf_counter()
        for lo in range(0, particles, chunk):
            model.sample_size = min(chunk, particles - lo)
            blood = TemporalDistribution(model)
            blood.generate_from_weibull()
            total = np.zeros(model.sample_size)
            for organ in HEDOS_ORGANS:
                dose = CompartmentDose(blood.path, model.dt)
                for s, d in windows:
                    dose.add_dose(hists[organ], ids[organ], start_time=s, beam_on_time=d)
                total += dose.dose
            out.append(total)
            del blood
    return np.concatenate(out).astype(np.float32), time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=1_000_000)
    ap.add_argument("--beam-on", type=float, default=120.0, help="beam-on time per fraction, s")
    ap.add_argument("--beam-start", type=float, default=10.0, help="start of the beam, s")
    ap.add_argument("--ref-particles", type=int, default=10_000,
                    help="particles for the per-step reference walk (time scaled linearly)")
    ap.add_argument("--hedos", type=Path, help="a HEDOS checkout: run its example side by side")
    ap.add_argument("--hedos-particles", type=int, help="particles for HEDOS (default "
                                                        "--particles)")
    ap.add_argument("--hedos-chunk", type=int, default=250_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    windows = [(args.beam_start, args.beam_on)]
    if args.hedos:
        circ, hist = hedos_case(args.hedos)
        case = "HEDOS's example (6 organ DVHs incl. tumour, 30 fractions, female)"
    else:
        circ = Circulation.reference("F")
        hist = thoracic_histograms(circ.names)
        case = "synthetic thoracic plan (female)"
    print(f"case: {case}; {args.particles} particles; beam {args.beam_on:g} s from "
          f"t = {args.beam_start:g} s; closed-form mean "
          f"{hist.expected_blood_mean_gy(circ.volume_fraction):.5f} Gy")
    rows = []
    for tau in (0.0, 1.0, math.inf):
        for threads in (None, 1):
            times, res = [], None
            for rep in range(args.repeats):
                res = simulate_blood_dose(hist, circ, beams=windows, particles=args.particles,
                                          seed=rep, tau_c_s=tau, threads=threads)
                times.append(res.seconds)
            rows.append((f"engine tau_c={tau:g} s, {threads or 'all'} thr", min(times),
                         stats(res.per_fraction_gy)))
    print(f"peak RSS of the process after the engine runs: {peak_rss_mb():.0f} MB")
    start = time.perf_counter()
    ref = per_step_walk(hist, circ, windows, particles=args.ref_particles, dt_s=0.05, seed=7)
    t_ref = (time.perf_counter() - start) * args.particles / args.ref_particles
    rows.append((f"per-step reference (50 ms, {args.ref_particles} scaled)", t_ref, stats(ref)))
    t_hedos = None
    if args.hedos:
        n = args.hedos_particles or args.particles
        dose, secs = run_hedos(args.hedos, n, windows, args.hedos_chunk, seed=3)
        t_hedos = secs * args.particles / n
        rows.append((f"HEDOS ({n} particles{', scaled' if n != args.particles else ''})",
                     t_hedos, stats(dose)))
        print(f"peak RSS of the process after HEDOS: {peak_rss_mb():.0f} MB")
    print(f"{'method':<46} {'seconds':>9} {'x ref':>7} {'x HEDOS':>8} {'mean Gy':>9} "
          f"{'any':>7} {'p98 Gy':>8} {'kill %':>7}")
    for name, secs, st in rows:
        vs_hedos = f"{t_hedos / secs:8.0f}" if t_hedos else f"{'-':>8}"
        print(f"{name:<46} {secs:9.3f} {t_ref / secs:7.0f} {vs_hedos} {st['mean']:9.5f} "
              f"{st['any']:7.4f} {st['p98']:8.4f} {100 * st['kill']:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
