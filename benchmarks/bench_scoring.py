"""Benchmark ``lymphonet score`` end to end on OpenKBP NIfTI cases (targets in the README's Performance table).

Target: >= 10 patients/s end to end from NIfTI on 2 CPU cores with the default model.

What it measures (the model is the default architecture of configs/default.yaml with untrained,
random weights: speed does not depend on the weights):

1. end-to-end ``score_manifest`` throughput with ``--workers`` processes (bundle verification,
   pool start-up, reading, features, resampling, network, kinetics, CSV writing);
2. the per-stage breakdown (core-seconds per plan, summed inside the workers);
3. the network + kinetics step alone per backend (eager torch, TorchScript, ONNX Runtime);
4. the fast numpy resampler against the training code path (torchio): time and agreement;
5. blood-dose particles: time vs statistical precision (spread over engine seeds of the mean
   blood dose and of the predicted nadir).

Usage::

    python benchmarks/bench_scoring.py --n 20 --workers 2
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "openkbp"


def write_manifest(cases: list[Path], path: Path) -> None:
    """OpenKBP cases as a manifest (35 x 2 Gy photon IMRT, 120 s beam-on; baseline ALC set)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "plan_id", "site", "modality", "n_fractions",
                    "dose_per_fraction_gy", "beam_on_time_s", "baseline_alc", "age", "sex",
                    "dose_path", "structures_path"])
        for i, case in enumerate(cases):
            w.writerow([case.name, f"{case.name}_photon", "head_and_neck", "photon", 35, 2.0, 120,
                        1.2 + 0.05 * (i % 10), 60, "M", case / "dose.nii.gz",
                        case / "labels.nii.gz"])


def make_bundle(tmp: Path, onnx: bool) -> Path:
    from lymphonet.bundle.export import export_bundle, untrained_checkpoint
    from lymphonet.training.config import load_training_config

    cfg = load_training_config()
    ckpt = untrained_checkpoint(tmp / "run" / "best.pt", data_config=cfg.data,
                                model_config=cfg.model)
    return export_bundle(ckpt, tmp / "bundle", onnx=onnx)


def bench_end_to_end(bundle: Path, manifest: Path, tmp: Path, workers: int, particles,
                     engine: str = "local"):
    from lymphonet.scoring.runner import ScoreOptions, score_manifest

    opts = ScoreOptions(particles=particles, engine=engine)
    summary = score_manifest(bundle, manifest, tmp / f"scores_{engine}_{particles}.csv",
                             workers=workers, progress=False, options=opts, resume=False)
    n = summary.n_ok + summary.n_error
    print(f"\n[end to end, {engine} engine] particles={particles or 'trained'} "
          f"workers={workers}: {n} plans in "
          f"{summary.elapsed_s:.2f} s = {n / summary.elapsed_s:.1f} plans/s "
          f"({summary.n_error} errors)")
    total = sum(summary.stage_s.values())
    for k, v in summary.stage_s.items():
        print(f"    {k:<9} {1000 * v / n:7.1f} ms/plan ({100 * v / total:4.1f}% of worker time)")
    print(f"    {'sum':<9} {1000 * total / n:7.1f} ms/plan -> ideal {workers * n / total:.1f} "
          f"plans/s on {workers} cores")
    return summary


def bench_backends(bundle_dir: Path, manifest: Path, n: int = 5, reps: int = 20) -> None:
    from lymphonet.bundle.load import load_bundle
    from lymphonet.scoring.runner import Predictor, manifest_tasks, prepare_plan

    bundle = load_bundle(bundle_dir)
    tasks, root = manifest_tasks(manifest)
    plans = [prepare_plan(t.record, root, bundle) for t in tasks[:n]]
    print("\n[network + kinetics per plan, batch 1, 1 thread]")
    ref = None
    for backend in ("torch", "torchscript", "onnx"):
        try:
            pred = Predictor(bundle, backend)
        except Exception as err:  # noqa: BLE001
            print(f"    {backend:<12} unavailable ({err})")
            continue
        pred.predict(plans[0])
        t0 = time.perf_counter()
        for _ in range(reps):
            vals = [pred.predict(p)[0]["predicted_nadir"] for p in plans]
        dt = (time.perf_counter() - t0) / (reps * len(plans))
        t1 = time.perf_counter()
        for _ in range(reps):
            for p in plans:
                pred.network(p.image[None], p.clinical[None], p.dose_summary[None])
        dn = (time.perf_counter() - t1) / (reps * len(plans))
        ref = vals if ref is None else ref
        diff = max(abs(a - b) for a, b in zip(vals, ref))
        print(f"    {backend:<12} network {1000 * dn:6.2f} ms, network + kinetics "
              f"{1000 * dt:6.2f} ms; max |nadir - torch| = {diff:.2e}")


def bench_resampler(bundle_dir: Path, manifest: Path, n: int = 5) -> None:
    from lymphonet.bundle.load import load_bundle
    from lymphonet.data.images import image_from_plan, resample_fast
    from lymphonet.io.plan import read_plan
    from lymphonet.scoring.runner import manifest_tasks

    bundle = load_bundle(bundle_dir)
    tasks, root = manifest_tasks(manifest)
    tf = tt = 0.0
    dmax, agree = 0.0, []
    for t in tasks[:n]:
        plan = read_plan(t.record, root)
        dose, st = plan.dose, plan.structures
        t0 = time.perf_counter()
        a = resample_fast(dose, st, bundle.data_config)
        t1 = time.perf_counter()
        b = image_from_plan(dose, st, bundle.data_config)[0]
        t2 = time.perf_counter()
        tf, tt = tf + t1 - t0, tt + t2 - t1
        dmax = max(dmax, float(np.abs(a[0] - b[0]).max() / max(b[0].max(), 1e-6)))
        agree.append(float((a[1:] == b[1:]).mean()))
    print(f"\n[resampling] fast {1000 * tf / n:.1f} ms/plan, torchio {1000 * tt / n:.1f} ms/plan; "
          f"max |dose diff| / max dose = {dmax:.2e}; mask voxels equal {100 * min(agree):.3f}% "
          "(worst plan)")


def bench_particles(bundle_dir: Path, manifest: Path, counts: list[int], seeds: int = 8) -> None:
    from lymphonet.bundle.load import load_bundle
    from lymphonet.dosimetry.plan_features import plan_features
    from lymphonet.io.plan import read_plan
    from lymphonet.scoring.runner import Predictor, ScoreOptions, manifest_tasks, prepare_plan

    bundle = load_bundle(bundle_dir)
    tasks, root = manifest_tasks(manifest)
    rec = tasks[0].record
    _plan = read_plan(rec, root)
    dose, st = _plan.dose, _plan.structures
    pred = Predictor(bundle)
    print(f"\n[blood-dose particles] plan {rec.plan_id}, {seeds} engine seeds each")
    for p in counts:
        mbd, nadirs = [], []
        t0 = time.perf_counter()
        for s in range(seeds):
            f = plan_features(dose, st, n_fractions=rec.n_fractions, beam_on_time_s=120.0,
                              n_quantiles=bundle.data_config.n_quantiles, particles=p, seed=s)
            mbd.append(f.mean_blood_dose_gy)
        dt = (time.perf_counter() - t0) / seeds
        for s in range(seeds):
            b = replace(bundle, data_config=replace(bundle.data_config, feature_seed=s))
            nadirs.append(pred.predict(prepare_plan(rec, root, b, ScoreOptions(particles=p)))[0]
                          ["predicted_nadir"])
        print(f"    {p:>6} particles: features {1000 * dt:6.1f} ms; mean blood dose CV "
              f"{100 * np.std(mbd) / np.mean(mbd):.2f}%; nadir sd {np.std(nadirs):.4f} x10^9/L "
              f"(mean {np.mean(nadirs):.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--particles", type=int, nargs="*", default=[0, 2000, 1000],
                    help="particle counts for the end-to-end runs (0 = as trained)")
    ap.add_argument("--engines", nargs="+", default=["local"], choices=("local", "ray"),
                    help="scoring engines to time side by side (ray: pip install -e '.[ray]')")
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--quick", action="store_true", help="end to end only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cases = sorted((p for p in args.data.glob("pt_*") if p.is_dir()),
                   key=lambda p: int(p.name.split("_")[1]))[: args.n]
    if not cases:
        raise SystemExit(f"no OpenKBP cases under {args.data}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        manifest = tmp / "manifest.csv"
        write_manifest(cases, manifest)
        bundle = make_bundle(tmp, onnx=not args.no_onnx)
        print(f"{len(cases)} OpenKBP cases, default model, bundle {bundle.name}; "
              f"{torch.get_num_threads()} torch thread(s) per process")
        rates = {}
        for engine in args.engines:
            for p in args.particles:
                s = bench_end_to_end(bundle, manifest, tmp, args.workers, p or None, engine)
                rates[(engine, p)] = (s.n_ok + s.n_error) / s.elapsed_s
        if len(args.engines) > 1:
            print("\n[engines side by side, plans/s]  " + "  ".join(
                f"{e} (particles {p or 'trained'}): {r:.2f}" for (e, p), r in rates.items()))
        if not args.quick:
            bench_backends(bundle, manifest)
            bench_resampler(bundle, manifest)
            bench_particles(bundle, manifest, [5000, 2000, 1000])


if __name__ == "__main__":
    main()
