"""Plan comparison: closed-form ratio intervals, Monte-Carlo difference intervals, end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lymphonet.errors import InputError
from lymphonet.scoring.compare import COMPARE_COLUMNS, compare_plans, nadir_difference

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*:DeprecationWarning")
Z90 = 1.6448536269514722  # standard normal 95th percentile


def test_ratio_interval_is_the_lognormal_closed_form():
    sigma, n_a, n_b = 0.3, 0.4, 0.6
    r = nadir_difference(n_a, n_b, sigma, shift=0.1, rho=0.0)
    s = sigma * math.sqrt(2)
    assert r["nadir_ratio"] == pytest.approx(1.5)
    assert r["nadir_ratio_lower"] == pytest.approx(1.5 * math.exp(-Z90 * s), rel=1e-6)
    assert r["nadir_ratio_upper"] == pytest.approx(1.5 * math.exp(Z90 * s), rel=1e-6)
    p = 0.5 * (1 + math.erf(math.log(1.5) / s / math.sqrt(2)))
    assert r["p_higher_nadir"] == pytest.approx(p, rel=1e-9)


def test_difference_interval_matches_an_independent_simulation():
    sigma, shift, n_a, n_b, rho = 0.25, -0.05, 0.5, 0.7, 0.4
    r = nadir_difference(n_a, n_b, sigma, shift, rho=rho)
    rng = np.random.default_rng(123)  # other seed, other construction (bivariate normal)
    z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=200_000)
    diff = n_b * np.exp(shift + sigma * z[:, 1]) - n_a * np.exp(shift + sigma * z[:, 0])
    lo, hi = np.quantile(diff, [0.05, 0.95])
    assert r["delta_nadir"] == pytest.approx(0.2)
    assert r["delta_nadir_lower"] == pytest.approx(lo, abs=0.01)
    assert r["delta_nadir_upper"] == pytest.approx(hi, abs=0.01)
    assert r["p_higher_nadir"] == pytest.approx((diff > 0).mean(), abs=0.01)


def test_fully_correlated_residuals_give_no_ratio_uncertainty():
    r = nadir_difference(0.5, 0.4, 0.3, 0.0, rho=1.0)
    assert r["nadir_ratio_lower"] == pytest.approx(r["nadir_ratio_upper"])
    assert r["p_higher_nadir"] == 0.0
    assert r["delta_nadir_upper"] < 0  # the plan is worse in every draw
    with pytest.raises(InputError, match="rho"):
        nadir_difference(0.5, 0.4, 0.3, 0.0, rho=1.5)


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> tuple[Path, Path]:
    """One lung patient with a photon and a proton plan, one patient with a single plan, and a
    population-prior model (head_scale = 0: the network does not move theta, so the
    mechanistic layer alone decides and less blood dose must mean a higher nadir)."""
    from lymphonet.bundle.export import export_bundle, untrained_checkpoint
    from lymphonet.data.config import DataConfig
    from lymphonet.io.nifti import write_label_map, write_volume
    from lymphonet.io.volume import StructureSet
    from lymphonet.models.hybrid import EncoderConfig, ModelConfig
    from lymphonet.twin.sites import plan_for_site, site_phantom

    root = tmp_path_factory.mktemp("plans")
    data = DataConfig(spacing_mm=(12.0, 12.0, 12.0), shape=(24, 24, 24), n_quantiles=8,
                      blood_particles=1000)
    model = ModelConfig(encoder=EncoderConfig(width=4, depth=2, embed_dim=8), mlp_hidden=8,
                        n_days=120, learn_population_shift=False)
    ckpt = untrained_checkpoint(root / "run" / "best.pt", data_config=data, model_config=model,
                                head_scale=0.0)
    bundle = export_bundle(ckpt, root / "bundle", onnx=False, torchscript=False)
    ph = site_phantom("lung", sex="F", spacing_mm=(10.0, 10.0, 10.0),
                      rng=np.random.default_rng(0))
    write_label_map(StructureSet(dict(ph.masks), ph.grid), root / "labels.nii.gz")
    rows = []
    for pid, mod in (("A", "proton"), ("A", "photon"), ("B", "photon")):
        plan = plan_for_site(ph, "lung", mod)
        write_volume(plan.dose, root / f"dose_{mod}.nii.gz")
        rows.append({"patient_id": pid, "plan_id": f"{pid}_{mod}", "site": "lung",
                     "modality": mod, "n_fractions": plan.n_fractions,
                     "dose_per_fraction_gy": plan.dose_per_fraction_gy,
                     "beam_on_time_s": plan.beam_on_time_s, "baseline_alc": 1.6, "sex": "F",
                     "dose_path": f"dose_{mod}.nii.gz", "structures_path": "labels.nii.gz"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return bundle, root / "manifest.csv"


def test_proton_plan_spares_lymphocytes_under_the_mechanistic_prior(plans, tmp_path):
    bundle, manifest = plans
    res = compare_plans(bundle, manifest, tmp_path / "compare.csv", plot=tmp_path / "c.png")
    assert (res.n_patients, res.n_single, res.n_error) == (1, 1, 0)
    table = pd.read_csv(tmp_path / "compare.csv")
    assert list(table.columns) == list(COMPARE_COLUMNS) and len(table) == 1
    row = table.iloc[0]
    assert row["reference_plan_id"] == "A_photon" and row["plan_id"] == "A_proton"
    assert row["delta_nadir"] == pytest.approx(row["nadir_plan"] - row["nadir_reference"],
                                               abs=1e-5)
    assert row["delta_nadir"] > 0 and row["p_higher_nadir"] > 0.5
    assert row["delta_nadir_lower"] < row["delta_nadir"] < row["delta_nadir_upper"]
    assert row["delta_p_grade3plus"] <= 0 and row["delta_p_grade4"] <= 0
    assert (tmp_path / "c.png").stat().st_size > 10_000
