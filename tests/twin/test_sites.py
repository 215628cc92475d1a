"""Site table: every site plans with every modality; particle sparing; EDIC and DVH realism."""

from __future__ import annotations

import numpy as np
import pytest

from lymphonet.dosimetry.edic import edic_from_structures
from lymphonet.errors import InputError
from lymphonet.twin.sites import SITES, draw_schedule, plan_for_site, site_phantom


@pytest.fixture(scope="module")
def phantoms():
    return {name: site_phantom(name) for name in SITES}


def _mean(plan, ph, organ):
    return float(plan.dose.array[ph[organ]].mean())


def test_site_table_has_the_required_sites_and_schedules():
    required = {"esophagus": {(28, 1.8), (23, 1.8)}, "lung": {(30, 2.0)},
                "liver": {(5, 10.0), (15, 4.5)}, "pancreas": {(28, 1.8), (5, 6.6)},
                "stomach": {(25, 1.8)}, "glioblastoma": {(30, 2.0)},
                "whole_brain": {(10, 3.0), (5, 4.0)},
                "prostate": {(39, 2.0), (20, 3.0), (5, 7.25)}, "prostate_nodes": {(39, 2.0)},
                "cervix": {(25, 1.8)}, "breast": {(15, 2.67), (5, 5.2)},
                "head_neck": {(35, 2.0)}}
    for name, schedules in required.items():
        have = {(s.n_fractions, s.dose_per_fraction_gy) for s in SITES[name].schedules}
        assert schedules <= have, name
    assert SITES["glioblastoma"].schedules[0].chemo_regimen == "temozolomide"
    assert SITES["head_neck"].schedules[0].chemo_regimen == "cisplatin"
    assert SITES["prostate"].schedules[0].chemo_probability == 0.0


@pytest.mark.parametrize("name", sorted(SITES))
def test_particles_spare_body_at_equal_target_dose(phantoms, name):
    ph = phantoms[name]
    plans = {m: plan_for_site(ph, name, m) for m in ("photon", "proton", "carbon")}
    rx = plans["photon"].prescription_gy
    body = ph["body"]
    integral = {}
    for m, plan in plans.items():
        assert _mean(plan, ph, "target") == pytest.approx(rx, rel=1e-4)
        integral[m] = float(plan.dose.array[body].sum())
    for m in ("proton", "carbon"):
        assert _mean(plans[m], ph, "body") < 0.85 * _mean(plans["photon"], ph, "body"), m
        assert integral[m] < 0.85 * integral["photon"], m


def test_pelvic_node_targets(phantoms):
    pn, p = phantoms["prostate_nodes"], phantoms["prostate"]
    nodes = pn["lymph_nodes_pelvic"]
    assert (pn["target_elective"] | pn["target"])[nodes].mean() > 0.95
    assert "target_elective" not in p and p["target"][p["lymph_nodes_pelvic"]].mean() < 0.1
    assert phantoms["cervix"]["target"][phantoms["cervix"]["lymph_nodes_pelvic"]].all()


@pytest.mark.parametrize("bmi,sex", [(26, "M"), (26, "F"), (22, "M")])
def test_lung_chemoradiation_edic_near_published_median(bmi, sex):
    # RTOG 0617 (60 Gy / 30 fx): median EDIC about 5.6-6.3 Gy (Jin et al. 2021), MLD ~15-20 Gy.
    ph = site_phantom("lung", sex=sex, bmi=bmi)
    edic = {}
    for tech in ("3dcrt", "imrt", "vmat"):
        plan = plan_for_site(ph, "lung", "photon", technique=tech)
        assert plan.n_fractions == 30 and plan.prescription_gy == pytest.approx(60.0)
        edic[tech] = edic_from_structures(plan.dose, ph, plan.n_fractions)
        assert 12.0 < _mean(plan, ph, "lungs") < 20.0
    assert 5.0 < edic["imrt"] < 7.5 and 5.0 < edic["vmat"] < 7.5
    assert edic["imrt"] < edic["3dcrt"] < 8.5
    proton = plan_for_site(ph, "lung", "proton")
    assert edic_from_structures(proton.dose, ph, 30) < 0.6 * edic["imrt"]


def test_clinical_dvh_realism(phantoms):
    eso = phantoms["esophagus"]
    plan = plan_for_site(eso, "esophagus", "photon", technique="imrt")
    assert 8.0 < _mean(plan, eso, "lungs") < 15.0    # esophagus IMRT: MLD ~8-15 Gy
    assert 15.0 < _mean(plan, eso, "heart") < 30.0   # distal esophagus: MHD ~15-30 Gy
    br = phantoms["breast"]
    tang = plan_for_site(br, "breast", "photon")
    assert tang.technique == "3dcrt" and tang.beam_angles_deg == (300.0, 120.0)
    assert 0.3 < _mean(tang, br, "heart") < 4.0      # left-breast tangents: a few Gy at most
    assert 0.5 < edic_from_structures(tang.dose, br, tang.n_fractions) < 3.0  # mean 1.7 Gy


def test_schedule_draws_and_chemo_follow_the_table():
    rng = np.random.default_rng(0)
    draws = [draw_schedule("prostate", rng).name for _ in range(2000)]
    freq = {s.name: draws.count(s.name) / 2000 for s in SITES["prostate"].schedules}
    for s in SITES["prostate"].schedules:
        assert freq[s.name] == pytest.approx(s.weight, abs=0.04)
    assert draw_schedule("lung").name == "conventional"


def test_plan_for_site_reproducible_with_seed(phantoms):
    ph = phantoms["pancreas"]
    a = plan_for_site(ph, "pancreas", "photon", rng=np.random.default_rng(5))
    b = plan_for_site(ph, "pancreas", "photon", rng=np.random.default_rng(5))
    assert np.array_equal(a.dose.array, b.dose.array)
    assert (a.schedule, a.concurrent_chemo, a.beam_angles_deg) == (
        b.schedule, b.concurrent_chemo, b.beam_angles_deg)
    sbrt = plan_for_site(ph, "pancreas", "photon", schedule="sbrt")
    assert sbrt.technique == "vmat" and sbrt.beam_on_time_s > 0
    assert not sbrt.concurrent_chemo and sbrt.chemo_regimen is None


def test_bad_site_input():
    with pytest.raises(InputError) as err:
        site_phantom("prostate", sex="F")
    assert err.value.field == "sex"
    with pytest.raises(InputError) as err:
        site_phantom("elbow")
    assert err.value.field == "site"
    ph = site_phantom("liver")
    with pytest.raises(InputError) as err:
        plan_for_site(ph, "liver", "photon", schedule="weekly")
    assert err.value.field == "schedule"
