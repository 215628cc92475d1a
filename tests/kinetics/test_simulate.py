import json

import numpy as np
import pytest
import torch

from lymphonet.dosimetry.plan_features import plan_features
from lymphonet.errors import InputError
from lymphonet.kinetics import PARAM_NAMES
from lymphonet.kinetics.simulate import load_theta, plot_trajectories, simulate
from lymphonet.twin.sites import plan_for_site, site_phantom


@pytest.fixture(scope="module")
def lung_features():
    phantom = site_phantom("lung", sex="F", height_cm=165, bmi=23, rng=np.random.default_rng(3))
    plan = plan_for_site(phantom, "lung", "photon", rng=np.random.default_rng(4))
    return plan_features(plan.dose, phantom, n_fractions=plan.n_fractions,
                         beam_on_time_s=plan.beam_on_time_s, sex="F")


def test_load_theta_defaults_and_file(tmp_path):
    assert torch.equal(load_theta(None), torch.zeros(len(PARAM_NAMES), dtype=torch.float64))
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"names": ["alpha_per_gy"], "theta": [0.7]}))
    theta = load_theta(path)
    assert theta[PARAM_NAMES.index("alpha_per_gy")] == pytest.approx(0.7)
    assert theta.abs().sum() == pytest.approx(0.7)
    path.write_text(json.dumps({"names": ["nope"], "theta": [1.0]}))
    with pytest.raises(InputError, match="nope"):
        load_theta(path)
    path.write_text("not json")
    with pytest.raises(InputError, match="p.json"):
        load_theta(path)


def test_simulate_trajectory_properties(lung_features, tmp_path):
    base, = simulate([lung_features], [2.0])
    assert base.alc[0] == pytest.approx(2.0, rel=1e-6)
    assert base.nadir_alc == pytest.approx(base.alc.min())
    assert 0 < base.nadir_day < 120
    assert base.alc[-1] > base.nadir_alc  # recovery after RT
    frame = base.to_frame()
    assert list(frame.columns) == ["day", "alc", "grade"] and len(frame) == 365
    # Chemotherapy and higher radiosensitivity both deepen the nadir.
    chemo, = simulate([lung_features], [2.0], chemo=["concurrent"])
    theta = torch.zeros(len(PARAM_NAMES))
    theta[PARAM_NAMES.index("alpha_per_gy")] = 1.5
    sensitive, = simulate([lung_features], [2.0], theta=theta)
    assert chemo.nadir_alc < base.nadir_alc and sensitive.nadir_alc < base.nadir_alc
    png = plot_trajectories({"base": base, "chemo": chemo}, tmp_path / "t.png")
    assert png.stat().st_size > 10_000
