"""Benchmark: reading + rasterisation + DVH, DICOM (breast-boost) and NIfTI (OpenKBP).

Run from the repository root::

    python benchmarks/bench_io_dvh.py [--repeats 5] [--openkbp-cases 20]

Prints the median wall time of each stage and compares the totals with the targets in the README's Performance table
(DICOM: the whole scoring path under 2 s per patient, so reading + DVH must leave room for the rest;
NIfTI: 10 patients/s end to end, so reading + DVH should take well under 0.1 s per patient).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from lymphonet.dosimetry.dvh import dvh_table
from lymphonet.io.loaders import read_dose, read_structures

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def bench_dicom(repeats: int) -> float:
    case = DATA / "dicom" / "breast-boost"
    t_dose, dose = timed(lambda: read_dose(case / "rtdose.dcm"), repeats)
    t_struct, structures = timed(lambda: read_structures(case / "rtss.dcm", dose), repeats)
    t_dvh, _ = timed(lambda: dvh_table(dose, structures), repeats)
    total = t_dose + t_struct + t_dvh
    print(f"DICOM breast-boost  grid {dose.shape} ({dose.array.size / 1e6:.2f} M voxels), "
          f"{len(structures)} structures")
    print(f"  read RTDOSE        {t_dose * 1e3:8.1f} ms")
    print(f"  rasterise RTSTRUCT {t_struct * 1e3:8.1f} ms")
    print(f"  DVH table          {t_dvh * 1e3:8.1f} ms")
    print(f"  total              {total * 1e3:8.1f} ms   (target for the full scoring path: "
          f"< 2000 ms per patient -> {'OK' if total < 2.0 else 'TOO SLOW'})")
    return total


def bench_nifti(n_cases: int) -> float:
    root = DATA / "openkbp"
    cases = sorted(p for p in root.glob("pt_*") if p.is_dir())[:n_cases]
    per_case = []
    for case in cases:
        t0 = time.perf_counter()
        dose = read_dose(case / "dose.nii.gz")
        structures = read_structures(case / "labels.nii.gz", dose)
        dvh_table(dose, structures)
        per_case.append(time.perf_counter() - t0)
    med = statistics.median(per_case)
    print(f"NIfTI OpenKBP  {len(cases)} cases, 128^3 grid")
    print(f"  read dose + labels + DVH: median {med * 1e3:.1f} ms/case, "
          f"{1 / med:.1f} cases/s (budget for the 10 patients/s scoring target: < 100 ms -> "
          f"{'OK' if med < 0.1 else 'OVER BUDGET'})")
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--openkbp-cases", type=int, default=20)
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"shared data not found at {DATA}")
    print(f"CPU cores: {os.cpu_count()}")
    bench_dicom(args.repeats)
    bench_nifti(args.openkbp_cases)


if __name__ == "__main__":
    main()
