"""Pseudonyms (HMAC-SHA256), the secret file and redaction."""

from __future__ import annotations

import hashlib
import hmac
import stat

import pytest

from lymphonet.errors import InputError
from lymphonet.ingest.pseudonym import (
    Pseudonymizer,
    Redactor,
    identifier_replacements,
    load_or_create_secret,
    write_mapping,
)

KEY = b"k" * 32


def test_patient_pseudonym_is_the_keyed_hash_of_rfc2104():
    expected = hmac.new(KEY, b"patient:MRN-001", hashlib.sha256).hexdigest()[:16]
    assert Pseudonymizer(KEY).patient("MRN-001") == "P" + expected
    # the standard library's HMAC agrees with the textbook construction
    # H((K ^ opad) || H((K ^ ipad) || m)) for a key shorter than the 64-byte block
    block = KEY.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block) + b"patient:MRN-001").digest()
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block) + inner).hexdigest()
    assert outer[:16] == expected


def test_pseudonyms_are_stable_keyed_and_whitespace_insensitive():
    a, b = Pseudonymizer(KEY), Pseudonymizer(KEY)
    assert a.patient("007") == b.patient(" 007 ")
    assert a.patient("007") != a.patient("7")  # ids are text: leading zeros matter
    assert a.patient("007") != Pseudonymizer(b"x" * 32).patient("007")
    p1, p2 = a.plan("007", "1.2.3"), a.plan("007", "1.2.4")
    assert p1 != p2 and p1.startswith(a.patient("007") + "-") and p1 == b.plan("007", "1.2.3")
    with pytest.raises(InputError):
        Pseudonymizer(b"short")


def test_secret_is_generated_private_and_reused(tmp_path):
    path = tmp_path / "keys" / "secret.key"
    first = load_or_create_secret(path, out_dir=tmp_path / "cohort")
    assert len(first) == 64 and int(first, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path, out_dir=tmp_path / "cohort") == first
    with pytest.raises(InputError, match="not found"):
        load_or_create_secret(tmp_path / "absent.key", create=False)


def test_secret_and_mapping_inside_the_cohort_are_refused(tmp_path):
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    with pytest.raises(InputError) as err:
        load_or_create_secret(cohort / "sub" / "secret.key", out_dir=cohort)
    assert err.value.field == "secret_file"
    assert not (cohort / "sub" / "secret.key").exists()
    with pytest.raises(InputError) as err:
        write_mapping(cohort / "map.csv", {"a": "Px"}, out_dir=cohort)
    assert err.value.field == "mapping_file"
    written = write_mapping(tmp_path / "map.csv", {"MRN-1": "P1"}, out_dir=cohort)
    assert written.read_text().splitlines() == ["original_patient_id,patient_id", "MRN-1,P1"]


def test_redactor_replaces_identifiers_case_insensitively():
    red = Redactor(identifier_replacements("MRN-77", "Pabc", ["Doeberitz", "Janelle"],
                                           ["19510317"]))
    text = red("/exports/DOEBERITZ_janelle_MRN-77/rt/19510317.dcm and MRN-778")
    assert text == "/exports/[name]_[name]_Pabc/rt/[redacted].dcm and Pabc8"
    assert Redactor()("unchanged") == "unchanged"
    red.update({"MRN-778": "Pdef"})  # the longer identifier wins
    assert red("MRN-778") == "Pdef"
