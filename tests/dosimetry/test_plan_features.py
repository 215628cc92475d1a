import numpy as np
import pytest
import torch

from lymphonet.dosimetry.plan_features import PlanFeatures, lymphoid_masks, plan_features
from lymphonet.errors import InputError
from lymphonet.kinetics import PARAM_NAMES, LymphocyteKinetics, nadir
from lymphonet.kinetics.simulate import inputs_from_features
from lymphonet.organs import LYMPHOID_ORGANS
from lymphonet.twin.sites import plan_for_site, site_phantom


@pytest.fixture(scope="module")
def esophagus():
    phantom = site_phantom("esophagus", sex="M", height_cm=175, bmi=24,
                           rng=np.random.default_rng(0))
    plans = {m: plan_for_site(phantom, "esophagus", m, rng=np.random.default_rng(1))
             for m in ("photon", "proton")}
    feats = {m: plan_features(p.dose, phantom, n_fractions=p.n_fractions,
                              beam_on_time_s=p.beam_on_time_s) for m, p in plans.items()}
    return phantom, plans, feats


def test_features_consistent_with_dose(esophagus):
    phantom, plans, feats = esophagus
    f, dose = feats["photon"], plans["photon"].dose
    body = phantom["body"]
    assert f.mean_body_dose_gy == pytest.approx(float(dose.array[body].mean()), rel=1e-5)
    assert np.all(np.diff(f.blood_dose_q_gy) >= 0)
    # Mean of the blood quantiles ~ the engine's mean per-fraction blood dose.
    assert f.blood_dose_q_gy.mean() == pytest.approx(f.mean_blood_dose_gy, rel=0.05)
    # Organ quantiles: their mean is the organ's per-fraction mean dose.
    i = LYMPHOID_ORGANS.index("spleen")
    spleen_fx = dose.array[phantom["spleen"]].mean() / plans["photon"].n_fractions
    assert f.lymphoid_dose_q_gy[i].mean() == pytest.approx(spleen_fx, rel=0.05)
    assert np.all((f.lymphoid_coverage >= 0) & (f.lymphoid_coverage <= 1))
    assert "lymph_nodes" in lymphoid_masks(phantom)


def test_protons_lower_blood_dose_and_milder_depletion(esophagus):
    _, _, feats = esophagus
    assert feats["proton"].mean_blood_dose_gy < 0.6 * feats["photon"].mean_blood_dose_gy
    assert feats["proton"].edic_gy < feats["photon"].edic_gy
    inputs = inputs_from_features([feats["photon"], feats["proton"]], [2.0, 2.0],
                             chemo=["concurrent", "concurrent"])
    out = LymphocyteKinetics()(inputs, torch.zeros(2, len(PARAM_NAMES)))
    low, _ = nadir(out.alc, out.days)
    assert low[0] < low[1] < 2.0


def test_npz_round_trip(esophagus, tmp_path):
    f = esophagus[2]["photon"]
    np.savez(tmp_path / "f.npz", **f.to_npz_dict())
    g = PlanFeatures.from_npz_dict(np.load(tmp_path / "f.npz"))
    np.testing.assert_array_equal(f.blood_dose_q_gy, g.blood_dose_q_gy)
    assert g.organ_mean_gy == pytest.approx(f.organ_mean_gy)
    assert g.n_fractions == f.n_fractions and g.edic_gy == pytest.approx(f.edic_gy)


def test_bad_beam_on_time_names_field(esophagus):
    phantom, plans, _ = esophagus
    with pytest.raises(InputError, match="beam_on_time_s"):
        plan_features(plans["photon"].dose, phantom, n_fractions=28, beam_on_time_s=float("nan"),
                      patient="P1")


def test_batching_pads_schedules(esophagus):
    f = esophagus[2]["photon"]
    short = PlanFeatures(**{**f.__dict__, "n_fractions": 5})
    inputs = inputs_from_features([f, short], [1.5, 2.5])
    assert inputs.fraction_mask.sum(1).tolist() == [f.n_fractions, 5]
    inputs.validate()


def test_whole_organs_count_whole_inside_the_grid_and_in_part_when_the_grid_cuts_them():
    from lymphonet.dosimetry.plan_features import WHOLE_ORGAN_CC, site_coverage

    inside = np.zeros((10, 10, 10), bool)
    inside[2:8, 2:8, 2:8] = True                       # 216 voxels of 10 cc, not at any edge
    cut = np.zeros((10, 10, 10), bool)
    cut[0:2, 2:8, 2:8] = True                          # 72 voxels reaching the first slice
    assert site_coverage("lungs", inside, 10.0, "M", ("lung_left", "lung_right")) == 1.0
    assert site_coverage("lungs", inside, 10.0, "M", ("lung_left",)) == 0.5  # one lung of two
    assert site_coverage("liver", cut, 10.0, "F") == pytest.approx(
        720.0 / WHOLE_ORGAN_CC["liver"]["F"])
    assert site_coverage("lungs", cut, 10.0, "M", ("lungs",)) == pytest.approx(720.0 / 3370.0)
    assert site_coverage("lymph_nodes", inside, 1.0) == pytest.approx(216 / 500)
