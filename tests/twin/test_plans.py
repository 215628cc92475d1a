"""Analytic plans: normalisation, particle vs photon physics, low-dose bath, beam-on times."""

from __future__ import annotations

import numpy as np
import pytest

from lymphonet.errors import InputError
from lymphonet.twin.phantoms import thorax_phantom
from lymphonet.twin.plans import BEAM_ON_TIME_S, arc_angles, default_beam_on_time_s, make_plan
from lymphonet.twin.sites import site_phantom


@pytest.fixture(scope="module")
def phantom():
    return thorax_phantom()


@pytest.mark.parametrize("modality", ["photon", "proton", "carbon"])
def test_plan_normalised_to_prescription(phantom, modality):
    plan = make_plan(phantom, modality=modality, n_fractions=25, dose_per_fraction_gy=2.0)
    dose = plan.dose.array
    assert dose[phantom["target"]].mean() == pytest.approx(50.0, rel=1e-4)
    assert plan.prescription_gy == pytest.approx(50.0)
    assert np.all(dose[~phantom["body"]] == 0)
    assert np.isfinite(dose).all() and dose.min() >= 0
    assert plan.dose.same_grid(phantom.grid) and plan.dose.metadata["simulated"]
    # A conformal plan: the target is covered, the hottest spot is modest.
    assert np.percentile(dose[phantom["target"]], 5) > 0.85 * 50.0
    assert dose.max() < 1.15 * 50.0


def test_particles_spare_the_body_compared_with_photons(phantom):
    photon = make_plan(phantom, modality="photon").dose.array
    proton = make_plan(phantom, modality="proton").dose.array
    body = phantom["body"]
    assert proton[body].mean() < 0.5 * photon[body].mean()
    # The low-dose bath: body volume above 5 Gy shrinks by far more than half.
    assert (proton[body] > 5).mean() < 0.5 * (photon[body] > 5).mean()


def test_more_photon_beams_spread_the_low_dose_bath(phantom):
    body = phantom["body"]
    crt = make_plan(phantom, technique="3dcrt", beam_angles_deg=(0, 90, 180, 270)).dose.array
    imrt = make_plan(phantom, technique="imrt").dose.array
    vmat = make_plan(phantom, technique="vmat").dose.array
    v5 = [(d[body] > 5).mean() for d in (crt, imrt, vmat)]
    assert v5[0] < v5[1] < v5[2]
    # ... while the high-dose volume shrinks (the same integral dose spread thinner).
    assert (vmat[body] > 20).mean() < (crt[body] > 20).mean()


def _along_beam_columns(phantom, dose):
    """Masks of body voxels >10 mm beyond (anterior to) and >10 mm before (posterior to) the target,
    in the (z, x) columns a posterior beam (gantry 180, travelling towards -y) crosses the target."""
    y = phantom.grid.origin_mm[1] + phantom.grid.spacing_mm[1] * np.arange(dose.shape[1])
    yy = np.broadcast_to(y[None, :, None], dose.shape)
    tgt, body = phantom["target"], phantom["body"]
    y_min = np.where(tgt, yy, np.inf).min(axis=1)[:, None, :]
    y_max = np.where(tgt, yy, -np.inf).max(axis=1)[:, None, :]
    beyond = (yy < y_min - 10.0) & body & np.isfinite(y_min)
    before = (yy > y_max + 10.0) & body & np.isfinite(y_max)
    return beyond, before


@pytest.mark.parametrize("modality", ["proton", "carbon"])
def test_particle_distal_falloff_and_plateau(phantom, modality):
    plan = make_plan(phantom, modality=modality, beam_angles_deg=(180.0,), n_fractions=25,
                     dose_per_fraction_gy=2.0)
    beyond, before = _along_beam_columns(phantom, plan.dose.array)
    d = plan.dose.array
    limit = 0.005 if modality == "proton" else 0.05  # carbon: fragmentation tail
    assert beyond.sum() > 50 and d[beyond].max() < limit * 50.0
    assert 0.2 * 50 < d[before].mean() < 0.9 * 50  # entrance plateau below the SOBP


def test_photon_beam_exits_the_patient(phantom):
    plan = make_plan(phantom, beam_angles_deg=(180.0,), n_fractions=25, dose_per_fraction_gy=2.0)
    beyond, _ = _along_beam_columns(phantom, plan.dose.array)
    assert plan.dose.array[beyond].mean() > 0.3 * 50.0


def test_simultaneous_integrated_boost_reaches_both_levels():
    ph = site_phantom("head_neck")
    plan = make_plan(ph, modality="photon", n_fractions=35, dose_per_fraction_gy=2.0,
                     elective_dose_per_fraction_gy=1.6)
    d = plan.dose.array
    assert d[ph["target"]].mean() == pytest.approx(70.0, rel=1e-4)
    assert d[ph["target_elective"] & ~ph["target"]].mean() == pytest.approx(56.0, rel=1e-4)


def test_arc_angles():
    assert arc_angles(180, 180, 30) == tuple(float(a % 360) for a in range(180, 540, 30))
    assert arc_angles(300, 60, 30) == (300.0, 330.0, 0.0, 30.0, 60.0)


def test_beam_on_time_by_technique_and_dose_per_fraction():
    assert default_beam_on_time_s("3dcrt", 2.0) == BEAM_ON_TIME_S["3dcrt"]
    assert default_beam_on_time_s("imrt", 2.0) > default_beam_on_time_s("3dcrt", 2.0)
    sbrt, conv = default_beam_on_time_s("vmat", 10.0), default_beam_on_time_s("vmat", 2.0)
    assert conv < sbrt < 5 * conv  # more dose per fraction, delivered at a higher (FFF) rate
    assert default_beam_on_time_s("proton", 8.0) == pytest.approx(2 * BEAM_ON_TIME_S["proton"])
    plan = make_plan(thorax_phantom(), technique="vmat", n_fractions=5, dose_per_fraction_gy=10)
    assert plan.beam_on_time_s == pytest.approx(sbrt)
    with pytest.raises(InputError):
        default_beam_on_time_s("gamma_knife", 2.0)


def test_bad_input(phantom):
    with pytest.raises(InputError) as err:
        make_plan(phantom, modality="electron")
    assert err.value.field == "modality"
    with pytest.raises(InputError) as err:
        make_plan(phantom, technique="tomotherapy")
    assert err.value.field == "technique"
    with pytest.raises(InputError):
        make_plan(phantom, n_fractions=0)
    no_target = site_phantom("lung").rename({"target": "ptv"})
    with pytest.raises(InputError) as err:
        make_plan(no_target)
    assert err.value.field == "target"


def test_plans_are_deterministic(phantom):
    a = make_plan(phantom, modality="proton").dose.array
    b = make_plan(phantom, modality="proton").dose.array
    assert np.array_equal(a, b)
