"""ICRP-89 circulation: table, balancing, transit times, recurrence and equilibrium."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lymphonet.dosimetry.circulation import (
    PORTAL_ORGANS,
    Circulation,
    load_table,
    tbv_nadler_l,
)
from lymphonet.errors import InputError


@pytest.fixture(params=["M", "F"])
def circ(request) -> Circulation:
    return Circulation.reference(request.param)


def test_table_ships_with_32_compartments_and_volumes_summing_to_100_percent():
    rows = load_table()
    assert len(rows) == 32
    for col in ("volume_pct_male", "volume_pct_female"):
        assert sum(r[col] for r in rows) == pytest.approx(100.0, abs=1e-9)
    liver = next(r for r in rows if r["compartment"] == "liver")
    # Published: male liver 25.5% CO = 6.5% hepatic artery + 19% portal (Shin 2021 / ICRP 89).
    portal = sum(r["flow_pct_male"] for r in rows if r["compartment"] in PORTAL_ORGANS)
    assert liver["flow_pct_male"] == pytest.approx(liver["arterial_flow_pct_male"] + portal)


def test_balanced_network_conserves_flow_at_every_node(circ):
    edge = circ.edge_flow_fraction
    np.testing.assert_allclose(edge.sum(axis=0), edge.sum(axis=1), atol=1e-12)
    np.testing.assert_allclose(edge.sum(axis=1), circ.flow_fraction, atol=1e-12)
    np.testing.assert_allclose(circ.split.sum(axis=1), 1.0, atol=1e-12)
    assert circ.volume_fraction.sum() == pytest.approx(1.0, abs=1e-12)
    assert circ.flow_fraction[circ.index("aorta")] == pytest.approx(1.0)
    assert circ.flow_fraction[circ.index("left_heart")] == pytest.approx(1.0)


def test_male_balanced_flows_equal_published_except_arterial_trunk():
    circ = Circulation.reference("M")
    for name, pub, bal in zip(circ.names, circ.published_flow_fraction, circ.flow_fraction):
        if name == "large_arteries":  # table lists the trunk (100%); the network carries 93.5%
            assert bal == pytest.approx(0.935)
        else:
            assert bal == pytest.approx(pub, abs=1e-12), name


def test_female_imbalance_is_removed_keeping_published_split_ratios():
    circ = Circulation.reference("F")
    # Published female arterial side sums to 101.5% of CO at the aorta.
    i = {n: circ.index(n) for n in ("coronary", "bronchial", "skeletal_muscle", "fat", "liver")}
    pub = circ.published_flow_fraction
    bal = circ.flow_fraction
    assert pub[i["coronary"]] + pub[i["bronchial"]] + 0.94 == pytest.approx(1.015)
    assert bal[i["coronary"]] == pytest.approx(0.05 / 1.015)
    assert bal[i["skeletal_muscle"]] / bal[i["fat"]] == pytest.approx(12.0 / 8.5)
    assert bal[i["liver"]] == pytest.approx(0.275 / 1.015)


def test_network_is_strongly_connected_and_portal_blood_goes_through_liver(circ):
    reach = (circ.split > 0).astype(int) + np.eye(circ.n, dtype=int)
    closure = np.linalg.matrix_power(reach, circ.n) > 0
    assert closure.all()
    liver = circ.index("liver")
    for organ in PORTAL_ORGANS:
        assert circ.split[circ.index(organ), liver] == 1.0


def test_transit_times_and_rates_follow_the_closed_forms(circ):
    v, f = circ.volume_fraction, circ.flow_fraction
    np.testing.assert_allclose(circ.mtt_s, 60 * v * circ.tbv_l / (f * circ.co_l_min))
    k = circ.rate_per_s
    np.testing.assert_allclose(k, circ.edge_flow_fraction * circ.co_l_min
                               / (60 * v[:, None] * circ.tbv_l), rtol=1e-12)
    np.testing.assert_allclose(k.sum(axis=1), 1.0 / circ.mtt_s, rtol=1e-12)
    # Male lung: 10.5% of 5.3 L through 97.5% of 6.5 L/min = 5.27 s.
    if circ.sex == "M":
        assert circ.mtt_s[circ.index("lung")] == pytest.approx(60 * 0.105 * 5.3 / (0.975 * 6.5))


def test_whole_body_circulation_time_is_40_to_50_s():
    male, female = Circulation.reference("M"), Circulation.reference("F")
    assert male.circulation_time_s == pytest.approx(60 * 5.3 / 6.5)  # 48.9 s
    assert female.circulation_time_s == pytest.approx(60 * 3.9 / 5.9)  # 39.7 s
    assert 40 <= male.return_time_s("right_heart") <= 52


def test_stationary_jump_chain_weighted_by_mtt_gives_volume_fractions(circ):
    pi = circ.jump_stationary()
    np.testing.assert_allclose(pi @ circ.split, pi, atol=1e-12)
    occupancy = pi * circ.mtt_s
    np.testing.assert_allclose(occupancy / occupancy.sum(), circ.volume_fraction, rtol=1e-10)


def test_monte_carlo_return_time_to_right_heart_matches_closed_form():
    """Semi-Markov walk (numpy, Weibull-2 stays) from the right heart back to it."""
    circ = Circulation.reference("M")
    rng = np.random.default_rng(7)
    n = 4000
    start = circ.index("right_heart")
    comp = np.full(n, start)
    t = np.zeros(n)
    scale = circ.mtt_s / math.gamma(1.5)
    cum = np.cumsum(circ.split, axis=1)
    alive = np.ones(n, bool)
    while alive.any():
        idx = np.nonzero(alive)[0]
        t[idx] += scale[comp[idx]] * np.sqrt(rng.exponential(size=idx.size))
        nxt = (rng.random(idx.size)[:, None] > cum[comp[idx]]).sum(axis=1)
        comp[idx] = np.minimum(nxt, circ.n - 1)
        alive[idx[comp[idx] == start]] = False
    se = t.std() / math.sqrt(n)
    assert abs(t.mean() - circ.return_time_s("right_heart")) < 4 * se
    assert 40 < t.mean() < 60


def test_personalised_tbv_scales_transit_times_and_bad_input_is_refused():
    ref = Circulation.reference("M")
    big = Circulation.reference("M", tbv_l=6.36)
    np.testing.assert_allclose(big.mtt_s / ref.mtt_s, 6.36 / 5.3)
    assert Circulation.reference("female").tbv_l == 3.9
    with pytest.raises(InputError, match="sex"):
        Circulation.reference("X")
    with pytest.raises(InputError, match="tbv_l"):
        Circulation.reference("M", tbv_l=-1)
    with pytest.raises(InputError, match="compartment"):
        ref.index("appendix")


def test_nadler_blood_volume_of_reference_man_is_about_5_litres():
    # ICRP 89 reference man: 176 cm, 73 kg -> Nadler about 4.95 L (ICRP: 5.3 L).
    assert 4.5 < tbv_nadler_l("M", 176, 73) < 5.5
    assert tbv_nadler_l("F", 163, 60) < tbv_nadler_l("M", 176, 73)
    with pytest.raises(InputError, match="height"):
        tbv_nadler_l("M", 17.6, 73)
