import numpy as np
import pytest

from lymphonet.twin.phantoms import thorax_phantom
from lymphonet.twin.plans import make_plan


@pytest.fixture(scope="module")
def phantom():
    return thorax_phantom()


def test_phantom_organ_volumes_plausible(phantom):
    cc = {n: phantom[n].sum() * phantom.grid.voxel_volume_cc for n in phantom.names}
    assert 2500 < cc["lungs"] < 4500
    assert 400 < cc["heart"] < 900
    assert 120 < cc["spleen"] < 350
    for name in phantom.names:
        assert not (phantom[name] & ~phantom["body"]).any(), name


@pytest.mark.parametrize("modality", ["photon", "proton", "carbon"])
def test_plan_normalised_to_prescription(phantom, modality):
    plan = make_plan(phantom, modality=modality, n_fractions=25, dose_per_fraction_gy=2.0)
    dose = plan.dose.array
    assert dose[phantom["target"]].mean() == pytest.approx(50.0, rel=1e-4)
    assert np.all(dose[~phantom["body"]] == 0)
    assert np.isfinite(dose).all() and dose.min() >= 0


def test_particles_spare_the_body_compared_with_photons(phantom):
    photon = make_plan(phantom, modality="photon").dose.array
    proton = make_plan(phantom, modality="proton").dose.array
    body = phantom["body"]
    assert proton[body].mean() < 0.5 * photon[body].mean()
    # The low-dose bath: body volume above 5 Gy shrinks by far more than half.
    assert (proton[body] > 5).mean() < 0.5 * (photon[body] > 5).mean()


def test_more_photon_beams_spread_the_low_dose_bath(phantom):
    crt = make_plan(phantom, technique="3dcrt").dose.array
    vmat = make_plan(phantom, technique="vmat").dose.array
    body = phantom["body"]
    assert (vmat[body] > 5).mean() > (crt[body] > 5).mean()
