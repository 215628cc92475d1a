"""Tiny synthetic cohorts in the batch contract, for tests, smoke runs and benchmarks.

Not a simulation of patients (that is :mod:`lymphonet.twin`): a fast in-memory stand-in whose
items have exactly the keys, dtypes and shapes of the data pipeline's batches
(``/tmp``-independent, seconds to build). Ground truth is planted so that learning is possible:
the true per-patient kinetic adjustment depends on one clinical feature (radiosensitivity) and on
how much dose the image puts inside organ channel 1 (blood share), and labs are the kinetics
output at irregular days times log-normal noise (sigma 0.05).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from lymphonet.kinetics import PARAM_NAMES, LymphocyteKinetics, blood_quantiles_from_exposure
from lymphonet.organs import LYMPHOID_ORGANS


class SyntheticCohort(Dataset):
    """In-memory synthetic dataset; ``ds[i]`` is one contract item (no batch dimension).

    Args:
        n: Patients.
        image_size: Cube side S of the ``[C, S, S, S]`` image.
        n_channels: C (channel 0 dose / 50 Gy, the others masks).
        n_clinical: F.
        max_fractions: K.
        max_labs: M.
        n_days: Grid used to generate the truth (labs lie in [1, n_days - 2]).
        seed: Seed.
    """

    def __init__(self, n: int = 32, image_size: int = 16, n_channels: int = 3, n_clinical: int = 6,
                 max_fractions: int = 10, max_labs: int = 8, n_days: int = 60, seed: int = 0,
                 n_quantiles: int = 16) -> None:
        rng = np.random.default_rng(seed)
        s, c, k, m, q = image_size, n_channels, max_fractions, max_labs, n_quantiles
        grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s)] * 3, indexing="ij"))
        centre = rng.uniform(-0.5, 0.5, (n, 3))
        amp = rng.uniform(0.2, 1.2, n)  # dose / 50 Gy
        r2 = ((grid[None] - centre[:, :, None, None, None]) ** 2).sum(1)
        dose = amp[:, None, None, None] * np.exp(-r2 / 0.15)
        image = np.zeros((n, c, s, s, s), np.float32)
        image[:, 0] = dose
        organ_centres = rng.uniform(-0.5, 0.5, (c - 1, 3))
        for j in range(1, c):
            image[:, j] = (((grid - organ_centres[j - 1][:, None, None, None]) ** 2).sum(0) < 0.2)
        organ_dose = (image[:, 0] * image[:, min(1, c - 1)]).mean((1, 2, 3)) / max(
            image[:, min(1, c - 1)].mean(), 1e-6)
        clinical = rng.normal(size=(n, n_clinical)).astype(np.float32)
        n_fx = rng.integers(max(2, k // 2), k + 1, n)
        fx_days = np.tile(np.arange(k, dtype=np.float32), (n, 1))
        fx_mask = np.arange(k)[None] < n_fx[:, None]
        chemo = rng.integers(0, 3, n)
        baseline = rng.uniform(1.2, 2.5, n).astype(np.float32)
        dose_per_fx = amp * 50.0 / n_fx
        blood_q = blood_quantiles_from_exposure(rng.uniform(0.1, 0.4, n), dose_per_fx * 0.3, q,
                                                dtype=torch.float32)
        lymph_q = np.zeros((n, len(LYMPHOID_ORGANS), q), np.float32)
        lymph_q[:, 0] = (organ_dose * 100.0 / n_fx)[:, None] * np.linspace(0.5, 1.5, q)
        coverage = np.zeros((n, len(LYMPHOID_ORGANS)), np.float32)
        coverage[:, 0] = 1.0
        # planted truth: alpha from clinical[0], blood share from the dose in organ channel 1
        theta = np.zeros((n, len(PARAM_NAMES)), np.float32)
        theta[:, PARAM_NAMES.index("alpha_per_gy")] = 1.5 * clinical[:, 0]
        theta[:, PARAM_NAMES.index("blood_share")] = 2.0 * (organ_dose - organ_dose.mean()) / (
            organ_dose.std() + 1e-6)
        n_labs = rng.integers(1, m + 1, n)
        obs_days = np.sort(rng.uniform(1, n_days - 2, (n, m)), 1).astype(np.float32)
        obs_mask = np.arange(m)[None] < n_labs[:, None]
        t = torch.as_tensor
        self.items = {
            "image": t(image), "clinical": t(clinical),
            "dose_summary": t(np.stack([amp, organ_dose], 1).astype(np.float32)),
            "blood_dose_q_gy": blood_q, "lymphoid_dose_q_gy": t(lymph_q),
            "lymphoid_coverage": t(coverage), "fraction_days": t(fx_days),
            "fraction_mask": t(fx_mask), "beam_on_s": t(np.full((n, k), 60.0, np.float32)),
            "chemo": t(chemo).long(), "baseline_alc": t(baseline),
            "obs_days": t(obs_days), "obs_mask": t(obs_mask), "index": torch.arange(n),
        }
        from lymphonet.data.batch import kinetics_inputs
        from lymphonet.kinetics import interpolate_days

        with torch.no_grad():
            out = LymphocyteKinetics(n_days)(kinetics_inputs(self.items), t(theta))
            true = interpolate_days(out.alc, out.days, self.items["obs_days"])
        noise = torch.exp(0.05 * torch.as_tensor(rng.normal(size=(n, m)), dtype=torch.float32))
        self.items["obs_alc"] = torch.where(self.items["obs_mask"], true * noise, 0.0)
        self.true_theta = t(theta)
        self.n_channels, self.n_clinical, self.n_dose_summary = c, n_clinical, 2

    def __len__(self) -> int:
        return int(self.items["index"].shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.items.items()}
