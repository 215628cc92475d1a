from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def breast_boost() -> Path:
    case = SHARED / "dicom" / "breast-boost"
    if not case.exists():
        pytest.skip(f"real DICOM case not found at {case} (../shared/data is absent)")
    return case


@pytest.fixture
def openkbp_case() -> Path:
    case = SHARED / "openkbp" / "pt_1"
    if not case.exists():
        pytest.skip(f"OpenKBP case not found at {case} (../shared/data is absent)")
    return case
