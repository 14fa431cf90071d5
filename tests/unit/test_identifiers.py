"""R6: identifier syntax, no reassignment inside the reuse window, inactivity."""

from datetime import UTC, datetime, timedelta

import pytest

from authsvc.domain.errors import DomainError
from authsvc.domain.identifiers import canonical, check_assignable, is_inactive, reusable_from
from authsvc.domain.messages import text

NOW = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Tanaka", "tanaka"),
        ("TANAKA.Taro", "tanaka.taro"),
        ("abc", "abc"),  # shortest
        ("a1_", "a1_"),
        ("9-to-5", "9-to-5"),
        ("A" * 64, "a" * 64),  # longest
        ("svc-sync.ldap", "svc-sync.ldap"),
    ],
)
def test_canonical_accepts_and_lower_cases(given, expected):
    assert canonical(given) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "", "ab", "a" * 65, "ab c", " abc", "abc ", "abc\n", "abc\x00", "tab\tx",
        ".abc", "-abc", "_abc", "../etc", "a/b", "a\\b", "../../etc/passwd",
        "' OR 1=1", "abc'--", "a;drop", "<script>", "x@example.com", "a%2e%2e",
        "田中太郎", "tänaka", "ｔａｎａｋａ", "abc１", "\u212aato",  # Kelvin sign looks like K
    ],
)
def test_canonical_rejects_bad_syntax(bad):
    with pytest.raises(DomainError) as exc:
        canonical(bad)
    assert exc.value.code == "identifier_invalid"


@pytest.mark.parametrize("not_text", [None, 123, b"tanaka", ["tanaka"]])
def test_canonical_rejects_non_strings(not_text):
    with pytest.raises(DomainError):
        canonical(not_text)


def test_in_use_identifier_is_not_assignable():
    with pytest.raises(DomainError) as exc:
        check_assignable("tanaka", NOW, holder_active=True, released_at=None, reuse_after_days=365)
    assert exc.value.code == "identifier_in_use"
    assert "tanaka" in exc.value.message("en")


def test_never_used_identifier_is_assignable():
    check_assignable("tanaka", NOW, holder_active=False, released_at=None, reuse_after_days=365)


def test_released_identifier_is_reserved_until_the_window_has_passed():
    released = NOW - timedelta(days=100)
    with pytest.raises(DomainError) as exc:
        check_assignable("tanaka", NOW, False, released, 365)
    err = exc.value
    assert err.code == "identifier_reserved"
    until = reusable_from(released, 365)
    assert until == released + timedelta(days=365)
    assert err.params["until"] == until.date().isoformat()
    assert until.date().isoformat() in err.message("en")
    assert "{" not in err.message("ja")


def test_reuse_window_boundary():
    released = NOW - timedelta(days=365)
    check_assignable("tanaka", NOW, False, released, 365)  # exactly at the end: free
    with pytest.raises(DomainError):
        check_assignable("tanaka", NOW - timedelta(microseconds=1), False, released, 365)
    check_assignable("tanaka", NOW + timedelta(days=1), False, released, 365)


def test_reuse_window_follows_the_configuration():
    released = NOW - timedelta(days=10)
    check_assignable("tanaka", NOW, False, released, 10)
    with pytest.raises(DomainError):
        check_assignable("tanaka", NOW, False, released, 11)
    check_assignable("tanaka", NOW, False, NOW, 0)


def test_inactivity_boundary():
    assert not is_inactive(NOW - timedelta(days=90) + timedelta(seconds=1), NOW, 90)
    assert is_inactive(NOW - timedelta(days=90), NOW, 90)
    assert is_inactive(NOW - timedelta(days=400), NOW, 90)
    assert not is_inactive(NOW, NOW, 90)
    assert is_inactive(NOW - timedelta(days=30), NOW, 30)


def test_identifier_messages_exist_in_both_languages():
    for code in ("identifier_invalid", "identifier_in_use", "identifier_reserved"):
        ja = text(code, "ja", user_id="tanaka", until="2027-01-01")
        en = text(code, "en", user_id="tanaka", until="2027-01-01")
        assert ja != en
