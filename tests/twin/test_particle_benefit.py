"""Particle vs photon on paired virtual cohorts: definitions, pairing, direction, CLI."""

import json

import numpy as np
import pytest
import torch

from lymphonet.cli import main
from lymphonet.kinetics.recirculation import RECIRCULATION_NAMES
from lymphonet.twin.particle_benefit import (
    HORIZON_DAYS,
    depletion,
    paired_table,
    particle_benefit,
    theta_from_json,
)


def test_depletion_definitions_on_a_hand_made_course():
    days = np.arange(HORIZON_DAYS + 11, dtype=float)
    alc = np.where(days < 30, 2.0 - days / 30, 1.0 + (days - 30) / 90)  # nadir 1.0 on day 30
    alc = np.minimum(alc, 2.0)
    d = depletion(torch.tensor(alc)[None])
    assert d["nadir"][0] == pytest.approx(0.5)
    # area over 0..120 of 1 - ALC/ALC0, by the trapezoid-free daily mean written out here
    expect = np.mean([1 - a / 2.0 for a in alc[: HORIZON_DAYS + 1]])
    assert d["area"][0] == pytest.approx(expect)


def test_paired_table_has_both_arms_with_the_same_schedule():
    t = paired_table(["esophagus"])
    assert set(t["modality"]) == {"photon", "proton"}
    for _, g in t.groupby("chemo"):
        assert g["n_fractions"].nunique() == 1 and len(g) == 2


@pytest.fixture(scope="module")
def esophagus():
    torch.set_num_threads(1)
    return particle_benefit(torch.zeros(len(RECIRCULATION_NAMES), dtype=torch.float64),
                            ["esophagus"], n_per_site=6, n_phantoms=2, particles=600)


def test_protons_deplete_less_and_the_summary_is_the_per_patient_table(esophagus):
    per_patient, summary = esophagus
    rt = per_patient[(per_patient["chemo"] == "none") & (per_patient["measure"] == "area")]
    assert len(rt) == 6 and (rt["particle"] < rt["photon"]).all()
    row = summary[(summary["site"] == "esophagus") & (summary["chemo"] == "none")
                  & (summary["measure"] == "area")].iloc[0]
    assert row["reduction_of_mean"] == pytest.approx(1 - rt["particle"].mean() / rt["photon"].mean())
    assert row["median_reduction"] == pytest.approx(float(np.median(1 - rt["particle"]
                                                                    / rt["photon"])))
    assert {"pooled"} <= set(summary["site"])
    # chemotherapy adds depletion both arms share, so the relative reduction shrinks
    chemo = summary[(summary["site"] == "esophagus") & (summary["measure"] == "area")]
    assert set(chemo["chemo"]) == {"none", "concurrent"}  # the site's default has chemo
    by = chemo.set_index("chemo")["reduction_of_mean"]
    assert by["concurrent"] < by["none"]


def test_theta_json_refuses_unknown_names(tmp_path):
    assert theta_from_json({"theta": {"alpha_per_gy": 0.3}})[0] == pytest.approx(0.3)
    with pytest.raises(Exception, match="unknown"):
        theta_from_json({"theta": {"fast_fraction": 0.1}})
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"theta": {"nope": 1}}))
    assert main(["particle-benefit", "--theta", str(bad), "--out", str(tmp_path / "o"),
                 "--sites", "esophagus", "--n-per-site", "2", "--n-phantoms", "1"]) == 2
