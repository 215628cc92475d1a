from lymphonet.errors import GeometryError, InputError


def test_message_names_patient_file_and_field():
    err = InputError("must be > 0", patient="P7", file="manifest.csv", field="baseline_alc")
    text = str(err)
    assert "P7" in text and "manifest.csv" in text and "baseline_alc" in text
    assert text.endswith("must be > 0")


def test_with_context_fills_only_missing_parts():
    err = GeometryError("grid mismatch", field="FrameOfReferenceUID")
    full = err.with_context(patient="P1", file="rtss.dcm", field="other")
    assert isinstance(full, GeometryError)
    assert full.field == "FrameOfReferenceUID" and full.patient == "P1" and full.file == "rtss.dcm"
    assert isinstance(full, ValueError)
