"""GPU figures: training throughput with and without AMP (bf16), data loading vs compute, the
blood-dose engine at 1e6 particles, and the network on ONNX Runtime's CUDA provider vs eager.

    python benchmarks/bench_gpu.py                      # small simulated cohort
    python benchmarks/bench_gpu.py --cohort runs/default/cohort --workers 8

On a machine without CUDA it prints why it skips and exits 0. Each figure has a same-run
reference (the CPU, eager torch, or the same run without AMP).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _cuda_time(fn, reps: int) -> float:
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def bench_training(cohort: Path, batch_size: int, workers: int, steps: int) -> None:
    from bench_training import measure

    print("\n[training, patients/s: loading alone | compute alone | a real epoch]")
    for device, amp in (("cpu", "off"), ("cuda", "off"), ("cuda", "bf16")):
        r = measure(cohort, torch.device(device), batch_size, workers, steps,
                    [f"train.amp={amp}"])
        print(f"    {device:<5} amp={amp:<5} {r['load_pps']:9.1f} | {r['compute_pps']:9.1f} | "
              f"{r['epoch_pps']:9.1f}")


def bench_blood_dose(particles: int) -> None:
    from bench_blood_dose import thoracic_histograms

    from lymphonet.dosimetry.blood_dose import simulate_blood_dose
    from lymphonet.dosimetry.circulation import Circulation

    circ = Circulation.reference("M")
    hist = thoracic_histograms(circ.names)
    print(f"\n[blood dose, {particles:.0e} particles, one 60 s fraction]")
    for device in ("cpu", "cuda"):
        simulate_blood_dose(hist, circ, beam_on_time_s=60.0, particles=1000,
                            device=device)  # compile / warm up
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        res = simulate_blood_dose(hist, circ, beam_on_time_s=60.0, particles=particles,
                                  device=device)
        if device == "cuda":
            torch.cuda.synchronize()
        print(f"    {device:<5} {time.perf_counter() - t0:8.3f} s   mean blood dose "
              f"{float(np.mean(res.per_fraction_gy)):.4f} Gy (closed form "
              f"{res.expected_mean_gy:.4f})")


def bench_onnx_cuda(batch: int, reps: int) -> None:
    from lymphonet.bundle.export import export_bundle, untrained_checkpoint
    from lymphonet.bundle.load import load_bundle
    from lymphonet.models.head import NetworkHead
    from lymphonet.training.config import load_training_config

    cfg = load_training_config()
    with tempfile.TemporaryDirectory() as d:
        ckpt = untrained_checkpoint(Path(d) / "run" / "best.pt", data_config=cfg.data,
                                    model_config=cfg.model)
        bundle = load_bundle(export_bundle(ckpt, Path(d) / "bundle", onnx=True))
        net = NetworkHead(bundle.model).eval()
        mi = bundle.metadata["inputs"]["model_inputs"]
        img = torch.rand(batch, mi["n_channels"], *cfg.data.shape)
        clin, summ = torch.rand(batch, mi["n_clinical"]), torch.rand(batch, mi["n_dose_summary"])
        print(f"\n[network forward, batch {batch}, ms per batch]")
        for device in ("cpu", "cuda"):
            m, args = net.to(device), (img.to(device), clin.to(device), summ.to(device))
            with torch.no_grad():
                dt = _cuda_time(lambda m=m, args=args: m(*args), reps)
            print(f"    eager torch {device:<5} {1000 * dt:8.2f}")
        try:
            import onnxruntime as ort
        except ImportError:
            print("    onnxruntime not installed: pip install onnxruntime-gpu")
            return
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            print("    ONNX Runtime has no CUDA provider here (install onnxruntime-gpu)")
            return
        sess = ort.InferenceSession(str(bundle.onnx_path), providers=["CUDAExecutionProvider"])
        feed = dict(zip([i.name for i in sess.get_inputs()],
                        (img.numpy(), clin.numpy(), summ.numpy())))
        dt = _cuda_time(lambda: sess.run(None, feed), reps)
        print(f"    onnxruntime CUDA  {1000 * dt:8.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cohort", type=Path, help="cohort folder (default: simulate 64 patients)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--particles", type=int, default=1_000_000)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("SKIPPED: no CUDA device here (torch.cuda.is_available() is False); run this on a "
              "machine with an NVIDIA GPU and a CUDA build of torch==2.13.0")
        return 0
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    cohort = args.cohort
    if cohort is None:
        from lymphonet.twin.cohort import simulate_cohort

        cohort = Path(tempfile.mkdtemp(prefix="bench_gpu_")) / "cohort"
        simulate_cohort(64, ["esophagus", "lung"], ["photon", "proton"], seed=0, out_dir=cohort,
                        spacing_mm=8.0, write_trajectories=False, progress=False)
    bench_training(cohort, args.batch_size, args.workers, args.steps)
    bench_blood_dose(args.particles)
    bench_onnx_cuda(args.batch_size, 20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
