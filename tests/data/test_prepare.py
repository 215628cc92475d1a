"""Stale-data guards: a generated cohort or a split file is reused only for the settings that
made it; otherwise it is regenerated (a generated cohort) or refused with the fix."""

import json
from dataclasses import replace

import pytest

from lymphonet.data.config import CohortConfig
from lymphonet.data.prepare import COHORT_RECORD, ensure_cohort, fold_roles
from lymphonet.errors import InputError

TINY = CohortConfig(n=4, sites=("esophagus",), modalities=("photon",), seed=0, spacing_mm=16.0,
                    particles=200)


def _manifest(root):
    return (root / "cohort" / "manifest.csv").read_text()


def test_generated_cohort_is_reused_only_for_its_own_settings(tmp_path):
    root = ensure_cohort(TINY, tmp_path)
    assert json.loads((root / COHORT_RECORD).read_text())["n"] == 4
    first = _manifest(tmp_path)
    stamp = (root / "manifest.csv").stat().st_mtime_ns
    assert ensure_cohort(TINY, tmp_path) == root
    assert (root / "manifest.csv").stat().st_mtime_ns == stamp  # reused, not rewritten
    ensure_cohort(replace(TINY, seed=1), tmp_path)  # the config now describes another cohort
    assert json.loads((root / COHORT_RECORD).read_text())["seed"] == 1
    assert _manifest(tmp_path) != first  # regenerated, never silently reused


def test_unrecorded_cohort_folder_is_refused(tmp_path):
    (tmp_path / "cohort").mkdir()
    (tmp_path / "cohort" / "manifest.csv").write_text("patient_id\n")
    with pytest.raises(InputError, match="does not say which cohort settings"):
        ensure_cohort(TINY, tmp_path)


def test_user_cohort_path_must_exist(tmp_path):
    with pytest.raises(InputError, match="not found"):
        ensure_cohort(replace(TINY, path=str(tmp_path / "nowhere")), tmp_path)


def test_fold_roles():
    train, val, test = fold_roles([0, 1, 2, 0, 1, 2, 2], test_fold=0, val_fold=1)
    assert (train, val, test) == ([2, 5, 6], [1, 4], [0, 3])
    with pytest.raises(InputError, match="must differ"):
        fold_roles([0, 1, 2], 1, 1)
    with pytest.raises(InputError, match="empty fold role"):
        fold_roles([0, 1, 1], 0, 1)
