"""Simulated cohorts: data contract, pairing, seeds, particle sparing, covariate and dose effects."""

from __future__ import annotations

import filecmp
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from lymphonet.cli import main
from lymphonet.errors import InputError
from lymphonet.io.cohort import load_cohort
from lymphonet.io.loaders import read_dose, read_structures
from lymphonet.kinetics import PARAM_NAMES
from lymphonet.twin.cohort import simulate_cohort
from lymphonet.twin.covariates import (
    DEMOGRAPHICS,
    CovariateEffects,
    covariate_shift,
    draw_clinical,
)
from lymphonet.twin.dose_effects import _posterior_midline, dose_drivers, dose_shift
from lymphonet.twin.patient import simulate_patient
from lymphonet.twin.sites import site_phantom
from lymphonet.twin.truth import true_trajectories, truth_names

SPACING = 8.0  # coarse grid: fast; the physics is the same


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    summary = simulate_cohort(4, "esophagus,lung", "photon,proton", seed=3, out_dir=out,
                              paired=True, spacing_mm=SPACING, particles=2000, progress=False)
    return out, summary


@pytest.fixture(scope="module")
def paired_memory():
    """In-memory paired cohort (no files) used for the modality and realism checks."""
    return simulate_cohort(24, "esophagus,lung", "photon,proton", seed=11, paired=True,
                           spacing_mm=6.0, particles=3000, write_volumes=False, progress=False)


def test_written_cohort_loads_with_the_data_contract(written):
    out, summary = written
    cohort = load_cohort(out, check_files=True)
    assert len(cohort.plans) == 8 and len(cohort.patient_ids) == 4
    assert len(cohort.labs) == len(summary.labs) > 8 * 4
    assert set(cohort.labs["plan_id"]) == {p.plan_id for p in cohort.plans}
    first = summary.labs.groupby("plan_id")["alc"].first()
    for rec in cohort.plans:
        assert rec.baseline_alc == pytest.approx(first[rec.plan_id]), "baseline = first lab"
        assert len(rec.fraction_days) == rec.n_fractions and rec.fraction_days[0] == 0.0
        assert rec.chemo in ("concurrent", "none") and rec.sex in ("F", "M")
        assert rec.dose_path.is_file() and rec.structures_path.is_dir()
    for name in ("truth.csv", "trajectories.parquet", "README.md", "effects.json"):
        assert (out / name).is_file()
    readme = (out / "README.md").read_text()
    assert "SIMULATED" in readme and "theta_dose" in readme and "marrow V20" in readme
    manifest = pd.read_csv(out / "manifest.csv")
    assert not set(manifest.columns) & {"nadir_alc", "grade", "theta_alpha_per_gy"}


def test_files_hold_the_simulated_dose_and_anatomy(written):
    out, summary = written
    rec = summary.manifest.iloc[0]
    truth = summary.truth.set_index("plan_id").loc[rec["plan_id"]]
    dose = read_dose(out / rec["dose_path"])
    structures = read_structures(out / rec["structures_path"], dose)
    assert {"heart", "lungs", "bone_marrow", "lymph_nodes_mediastinal"} <= set(structures.names)
    assert float(dose.array[structures["body"]].mean()) == pytest.approx(
        truth["mean_body_dose_gy"], rel=1e-4)
    assert dose_drivers(dose.array, structures)["marrow_v20"] == pytest.approx(
        truth["marrow_v20"], abs=1e-9)
    assert main(["dvh", "--dose", str(out / rec["dose_path"]), "--structures",
                 str(out / rec["structures_path"]), "--out", str(out / "dvh.csv")]) == 0
    assert "heart" in set(pd.read_csv(out / "dvh.csv")["structure"])


def test_paired_plans_share_the_patient_and_differ_only_in_the_plan(written):
    _, s = written
    m, t = s.manifest, s.truth
    assert m["plan_id"].is_unique and m.groupby("patient_id").size().eq(2).all()
    same = ["site", "age", "sex", "height_cm", "bmi", "baseline_alc", "fraction_days", "chemo",
            "n_fractions", "schedule"]
    assert (m.groupby("patient_id")[same].nunique() == 1).all().all()
    shared_theta = [f"theta_{p}_{n}" for p in ("re", "cov") for n in truth_names("recirculation")]
    assert (t.groupby("patient_id")[shared_theta + ["baseline_alc_true"]].nunique() == 1
            ).all().all()
    assert (t.groupby("patient_id")["mean_body_dose_gy"].nunique() == 2).all()
    labs = s.labs.groupby("plan_id")["day"].apply(tuple)
    for pid, plans in m.groupby("patient_id")["plan_id"]:
        a, b = plans
        assert labs[a] == labs[b]


def test_same_seed_gives_identical_files_and_another_seed_does_not(written, tmp_path):
    out, _ = written
    again = tmp_path / "again"
    simulate_cohort(4, "esophagus,lung", "photon,proton", seed=3, out_dir=again, paired=True,
                    spacing_mm=SPACING, particles=2000, progress=False)
    names = ["manifest.csv", "labs.csv", "truth.csv", "trajectories.parquet", "README.md",
             "plans/SIM00001/dose_proton.nii.gz", "plans/SIM00003/structures/heart.nii.gz"]
    _match, mismatch, errors = filecmp.cmpfiles(out, again, names, shallow=False)
    assert not mismatch and not errors
    a = read_dose(out / "plans/SIM00002/dose_photon.nii.gz").array
    assert np.array_equal(a, read_dose(again / "plans/SIM00002/dose_photon.nii.gz").array)
    other = simulate_cohort(4, "esophagus,lung", "photon,proton", seed=4, paired=True,
                            spacing_mm=SPACING, particles=2000, write_volumes=False,
                            progress=False)
    assert not np.array_equal(other.manifest["age"], pd.read_csv(out / "manifest.csv")["age"])


def test_particles_spare_body_dose_and_lymphocytes(paired_memory):
    t = paired_memory.truth
    wide = t.pivot(index="patient_id", columns="modality",
                   values=["mean_body_dose_gy", "nadir_alc"])
    assert (wide["mean_body_dose_gy"]["proton"] < wide["mean_body_dose_gy"]["photon"]).all()
    assert (wide["nadir_alc"]["proton"] > wide["nadir_alc"]["photon"]).mean() >= 0.9
    assert wide["nadir_alc"]["proton"].mean() > 1.2 * wide["nadir_alc"]["photon"].mean()
    g = t.groupby("modality")["grade"].apply(lambda x: (x >= 3).mean())
    assert g["proton"] < g["photon"]


def _nadir_with(clinical, site="esophagus", chemo_seed=0, **changes):
    """True nadir of the same patient/plan with changed covariates and no random effect."""
    seq = np.random.SeedSequence(chemo_seed)
    recs = simulate_patient(0, site, ["photon"], seq, spacing_mm=SPACING, particles=2000,
                            clinical=replace(clinical, **changes),
                            theta_re=np.zeros(len(truth_names("recirculation"))))
    alc, _, _ = true_trajectories(recs, 120, "recirculation")
    return float(alc.min()), recs[0]


def test_covariates_move_the_true_nadir_in_the_documented_direction():
    clin = draw_clinical("esophagus", np.random.default_rng(0))
    young, r_young = _nadir_with(clin, age=45.0)
    old, r_old = _nadir_with(clin, age=82.0)
    assert np.array_equal(r_young.plan.dose.array, r_old.plan.dose.array), "same plan"
    assert old < young
    thin, _ = _nadir_with(clin, bmi=18.0)
    heavy, _ = _nadir_with(clin, bmi=32.0)
    assert thin < heavy
    # chemo on the two-population truth: raises the chemo death rate and slows recovery
    c = covariate_shift(60.0, 25.0, True, "temozolomide") - covariate_shift(60.0, 25.0, False)
    assert c[PARAM_NAMES.index("chemo_rate_per_day")] > 0
    assert c[PARAM_NAMES.index("slow_recovery_days")] > 0
    # on the recirculation truth it slows marrow recovery (the regimen rate is the core's own)
    names = truth_names("recirculation")
    effects = CovariateEffects.for_core("recirculation")
    c = (covariate_shift(60.0, 25.0, True, "temozolomide", effects, names)
         - covariate_shift(60.0, 25.0, False, None, effects, names))
    assert c[names.index("marrow_recovery_days")] > 0
    assert np.count_nonzero(c) == 1


def test_clinical_features_follow_the_site_tables():
    rng = np.random.default_rng(2)
    eso = [draw_clinical("esophagus", rng) for _ in range(400)]
    male = np.mean([c.sex == "M" for c in eso])
    assert abs(male - DEMOGRAPHICS["esophagus"].p_male) < 0.07
    assert abs(np.median([c.age for c in eso]) - 64) < 2
    alc = np.array([c.baseline_alc for c in eso])
    assert 1.5 < np.median(alc) < 1.9 and alc.min() >= 0.4
    h = {s: np.mean([c.height_cm for c in eso if c.sex == s]) for s in "MF"}
    assert h["M"] - h["F"] > 8
    assert {draw_clinical("breast", rng).sex for _ in range(50)} == {"F"}
    assert {draw_clinical("prostate", rng, sex_of_site="M").sex for _ in range(20)} == {"M"}


def test_vertebral_dose_matters_beyond_the_marrow_dvh():
    """Same marrow DVH, different location: only the image can tell them apart."""
    ph = site_phantom("esophagus", spacing_mm=(SPACING,) * 3)
    marrow = ph["bone_marrow"]
    whole = dose_drivers(np.where(marrow, 40.0, 0.0).astype(np.float32), ph)
    assert whole["vertebral_marrow_v30"] == 1.0 and whole["marrow_v20"] == 1.0
    vert = _posterior_midline(marrow, ph["body"], ph.grid)
    n_vert = int(vert.sum())
    assert 0 < n_vert < 0.5 * marrow.sum()
    other = np.flatnonzero(marrow & ~vert)[:n_vert]
    d_vert, d_other = np.zeros((2,) + marrow.shape, np.float32)
    d_vert[vert] = 40.0
    d_other.ravel()[other] = 40.0
    a, b = dose_drivers(d_vert, ph), dose_drivers(d_other, ph)
    assert a["marrow_v20"] == pytest.approx(b["marrow_v20"])  # identical marrow DVH
    assert a["vertebral_marrow_v30"] == 1.0 and b["vertebral_marrow_v30"] == 0.0
    slow = PARAM_NAMES.index("slow_recovery_days")
    assert dose_shift(a)[slow] > dose_shift(b)[slow]


def test_realistic_lymphopenia_rates(paired_memory):
    """DESIGN.md 1: grade 4 in 20-60% of photon esophagus/lung patients; particles lower it.

    24 patients give about +-0.1 sampling error on the pooled photon rate, hence 0.2-0.7. The
    default (recirculation) truth spares less with particles than published (oesophagus G4
    proton/photon 0.39-0.44; issue 14's particle-ratio check misses), so only the direction and
    a clear gap are asserted here, not the published ratio.
    """
    t = paired_memory.truth
    g4 = t.assign(g4=t["grade"] == 4).groupby("modality")["g4"].mean()
    assert 0.2 <= g4["photon"] <= 0.7, f"photon G4 rate {g4['photon']:.2f}"
    assert g4["proton"] <= 0.8 * g4["photon"], f"proton G4 rate {g4['proton']:.2f}"


def test_bad_arguments_are_input_errors(tmp_path):
    with pytest.raises(InputError) as err:
        simulate_cohort(2, "nowhere", "photon", out_dir=tmp_path, progress=False)
    assert err.value.field == "site"
    with pytest.raises(InputError, match="modalities"):
        simulate_cohort(2, "lung", "gamma", out_dir=tmp_path, progress=False)
    with pytest.raises(InputError, match="out_dir"):
        simulate_cohort(2, "lung", "photon", progress=False)
    with pytest.raises(InputError, match="positive"):
        simulate_cohort(0, "lung", "photon", write_volumes=False, progress=False)


def test_cli_writes_a_tiny_cohort(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["simulate-cohort", "--n", "2", "--sites", "lung", "--modalities",
                 "photon,carbon", "--seed", "1", "--out", str(out), "--spacing-mm", "10",
                 "--particles", "1000", "--no-trajectories", "--quiet"])
    assert code == 0
    assert "SIMULATED" in capsys.readouterr().out
    cohort = load_cohort(out)
    assert [p.modality for p in cohort.plans] == ["photon", "carbon"], "unpaired: alternating"
    assert not (out / "trajectories.parquet").exists()
