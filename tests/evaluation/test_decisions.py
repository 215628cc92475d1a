"""Net benefit and the compare-plans error, against hand-worked examples."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lymphonet.evaluation.decisions import (
    decision_values,
    net_benefit,
    paired_difference_error,
    paired_rows,
    treat_all_net_benefit,
)


def test_net_benefit_matches_a_hand_count():
    y = np.array([1, 1, 0, 0, 0, np.nan])
    p = np.array([0.9, 0.1, 0.5, 0.05, 0.3, 0.99])
    w = np.ones((1, 6))
    # threshold 0.25: flagged 0.9 (TP), 0.5 (FP), 0.3 (FP); n = 5 labelled plans
    assert net_benefit(y, p, 0.25, w)[0] == pytest.approx(1 / 5 - 2 / 5 * 0.25 / 0.75)
    # flag all: 2 TP, 3 FP
    assert treat_all_net_benefit(y, 0.25, w)[0] == pytest.approx(2 / 5 - 3 / 5 / 3)
    # weights count plans: doubling the first plan adds one TP and one plan
    w2 = np.array([[2, 1, 1, 1, 1, 1]], float)
    assert net_benefit(y, p, 0.25, w2)[0] == pytest.approx(2 / 6 - 2 / 6 / 3)


def test_paired_rows_and_difference_error():
    pids = np.array(["a", "a", "b", "c", "c", "d"])
    mods = np.array(["photon", "proton", "photon", "carbon", "photon", "proton"])
    photon, particle = paired_rows(pids, mods)
    assert photon.tolist() == [0, 4] and particle.tolist() == [1, 3]
    pred = np.array([0.3, 0.5, 9.0, 0.7, 0.2, 9.0])
    true = np.array([0.3, 0.6, 9.0, 0.4, 0.2, 9.0])
    # a: predicted +0.2 vs true +0.3 -> 0.1; c: +0.5 vs +0.2 -> 0.3
    w = np.array([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]], float)
    err = paired_difference_error(pred, true, photon, particle, w)
    assert err[0] == pytest.approx(0.2) and err[1] == pytest.approx(0.3)


def test_decision_values_use_the_truth_when_there_is_one():
    out = SimpleNamespace(patient_ids=np.array(["a", "a"]),
                          modalities=np.array(["photon", "proton"]),
                          true_nadir=np.array([0.2, 0.5]), nadir=np.array([0.1, 0.9]))
    pred = SimpleNamespace(g4=np.array([0.6, 0.1]), alc=np.array([[1.0, 0.25], [1.0, 0.45]]))
    labels = {"g4": np.array([1.0, 0.0])}
    vals = decision_values(pred, labels, out, np.ones((1, 2)))
    assert vals["paired_nadir_diff_mae"][0][0] == pytest.approx(abs(0.2 - 0.3))
    # p >= 0.1 flags both plans: one TP, one FP
    assert vals["net_benefit_g4@0.1"][0][0] == pytest.approx(1 / 2 - 1 / 2 * 0.1 / 0.9)
    out.true_nadir = None
    vals = decision_values(pred, labels, out, np.ones((1, 2)))
    assert vals["paired_nadir_diff_mae"][0][0] == pytest.approx(abs(0.2 - 0.8))
