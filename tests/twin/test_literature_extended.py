"""The extended published-cohort table assembled for the physiological kinetics core."""

from __future__ import annotations

import re

from lymphonet.twin.literature_table import DATA_DIR, load_table

EXTENDED = DATA_DIR / "literature_cohorts_extended.csv"


def test_extended_table_loads_and_has_the_breadth_the_calibration_needs():
    table = load_table(EXTENDED)
    studies = table["id"].str.split("_").str[0]
    assert len(table) >= 40 and studies.nunique() >= 20 and table["site"].nunique() >= 8
    assert {"photon", "proton"} <= set(table["modality"])
    assert set(table["chemo"]) >= {"none", "concurrent"}
    assert table["n_fractions"].nunique() >= 6  # several fractionations
    assert table["source"].str.len().min() > 10  # a journal citation on every row
    assert table["doi_or_pmid"].notna().mean() > 0.8
    # photon / particle pairs from one study, for the modality check
    paired = table.assign(study=studies).groupby("study")["modality"].nunique()
    assert (paired > 1).sum() >= 4
    # every study is documented in the markdown beside it
    text = re.sub(r"[^a-z0-9\n]", "", EXTENDED.with_suffix(".md").read_text().lower())
    for study in studies.unique():
        name, year = re.match(r"([a-z\-]+)(\d{4})", study).groups()
        assert re.search(rf"{name.replace('-', '')}[^\n]{{0,30}}{year}", text), study
