"""R4/R5: the lockout decision (consume before check) and the throttle key (R2: an unknown
identifier, which may be a password typed into the ID field, is kept only as a keyed pseudonym)."""

import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authsvc.domain.lockout import UNKNOWN_PREFIX, consume, throttle_key

NOW = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
N = 5
MINUTES = 30
SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))
PSEUDONYM = re.compile(r"unknown:[0-9a-f]{40}")
KNOWN = frozenset({"tanaka", "tanaka2", "strasse", "a" * 64})


def key(submitted, known=KNOWN, secret=SECRET):
    """The throttle key with a fixed secret and a fixed set of known (case-folded) IDs."""
    return throttle_key(submitted, secret, lambda k: k in known)


def known(_folded):
    return True


def unknown(_folded):
    return False


def never_asked(folded):
    raise AssertionError(f"the predicate must not be consulted for {folded!r}")


def expected_pseudonym(folded, secret=SECRET):
    """The documented construction: HMAC-SHA256(secret, "throttle:" + folded), 40 hex."""
    mac = hmac.new(secret, b"throttle:" + folded.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return UNKNOWN_PREFIX + mac.hexdigest()[:40]


def run(attempts, failures=0, locked_until=None, now=NOW, max_failures=N):
    """Consume `attempts` attempts in a row (all failing), returning every decision."""
    decisions = []
    for _ in range(attempts):
        d = consume(failures, locked_until, now, max_failures, MINUTES)
        decisions.append(d)
        failures, locked_until = d.failures, d.locked_until
    return decisions


def test_n_attempts_are_evaluated_then_refused():
    decisions = run(N + 3)
    assert [d.allowed for d in decisions] == [True] * N + [False] * 3
    assert [d.failures for d in decisions[:N]] == list(range(1, N + 1))


def test_the_nth_attempt_sets_the_lock():
    decisions = run(N)
    assert [d.locks_now for d in decisions] == [False] * (N - 1) + [True]
    assert all(d.locked_until is None for d in decisions[:-1])
    assert decisions[-1].locked_until == NOW + timedelta(minutes=MINUTES)


@pytest.mark.parametrize("max_failures", [1, 3, 10])
def test_limit_follows_the_configured_number(max_failures):
    decisions = run(max_failures + 1, max_failures=max_failures)
    assert sum(d.allowed for d in decisions) == max_failures
    assert decisions[max_failures - 1].locks_now


def test_refused_while_locked_without_changing_the_lock():
    until = NOW + timedelta(minutes=MINUTES)
    for offset in (timedelta(0), timedelta(minutes=1), timedelta(minutes=MINUTES) - timedelta(
            microseconds=1)):
        d = consume(N, until, NOW + offset, N, MINUTES)
        assert not d.allowed
        assert d.locked_until == until  # a refused attempt does not extend the lock
        assert d.failures == N
        assert not d.auto_unlocked and not d.locks_now


def test_refused_while_locked_even_with_a_low_count():
    # an operator-set or provisional lock holds whatever the count says
    d = consume(0, NOW + timedelta(minutes=5), NOW, N, MINUTES)
    assert not d.allowed


def test_after_the_period_the_lock_lifts_by_itself():
    until = NOW + timedelta(minutes=MINUTES)
    d = consume(N, until, until, N, MINUTES)  # exactly at the end of the period
    assert d.allowed
    assert d.auto_unlocked
    assert d.failures == 1  # the count restarted, and this attempt is counted
    assert d.locked_until is None
    later = consume(N, until, until + timedelta(days=3), N, MINUTES)
    assert later.allowed and later.auto_unlocked


def test_after_an_auto_unlock_the_full_allowance_applies_again():
    locked = run(N)[-1]
    after = locked.locked_until + timedelta(seconds=1)
    decisions = run(N + 1, locked.failures, locked.locked_until, now=after)
    assert decisions[0].auto_unlocked
    assert [d.allowed for d in decisions] == [True] * N + [False]
    assert decisions[N - 1].locks_now


def test_a_full_count_without_a_lock_is_refused_and_locked():
    d = consume(N, None, NOW, N, MINUTES)
    assert not d.allowed
    assert d.locked_until == NOW + timedelta(minutes=MINUTES)


def test_a_known_identifier_is_its_own_key_in_any_case():
    assert key("Tanaka") == key("TANAKA") == key("  tanaka\t") == "tanaka"
    assert key("STRASSE") == key("straße") == "strasse"  # full Unicode case folding
    assert key("tanaka") != key("tanaka2") == "tanaka2"
    assert key("a" * 64) == "a" * 64  # the longest storable identifier


def test_the_predicate_is_asked_about_the_case_folded_form():
    asked: list[str] = []

    def is_known(folded):
        asked.append(folded)
        return True

    assert throttle_key("  TaNaKa ", SECRET, is_known) == "tanaka"
    assert throttle_key("STRAßE", SECRET, is_known) == "strasse"
    assert asked == ["tanaka", "strasse"]


def test_an_unknown_identifier_becomes_a_keyed_pseudonym():
    ghost = key("Ghost.User")
    assert PSEUDONYM.fullmatch(ghost)
    assert ghost == expected_pseudonym("ghost.user")
    assert "ghost" not in ghost
    # case-insensitive and deterministic, so an unknown ID still locks like a real one (R5)
    assert key("GHOST.user") == key(" ghost.user ") == ghost
    assert key("ghost.user2") != ghost


@pytest.mark.parametrize("typed", ["Kx7#vQm2pLz9", "Tr4wNb8sYc6x", "ＡＢｃ１２３＃ｘｙｚ", "パスワード1234!"])
def test_a_password_typed_into_the_id_field_never_appears_in_the_key(typed):
    pseudonym = key(typed)
    assert PSEUDONYM.fullmatch(pseudonym)
    for form in {typed, typed.lower(), typed.casefold(), typed.strip().casefold()}:
        assert form not in pseudonym
    assert typed.casefold()[:6] not in pseudonym


def test_different_secrets_give_different_pseudonyms():
    assert key("ghost", secret=SECRET) != key("ghost", secret=OTHER_SECRET)
    assert key("ghost", secret=OTHER_SECRET) == expected_pseudonym("ghost", OTHER_SECRET)
    # without the secret the pseudonym cannot be recomputed from a guessed ID
    assert key("ghost") != UNKNOWN_PREFIX + hashlib.sha256(b"throttle:ghost").hexdigest()[:40]
    assert key("ghost") != UNKNOWN_PREFIX + hashlib.sha256(b"ghost").hexdigest()[:40]


def test_an_unknown_identifier_that_becomes_known_switches_to_the_plain_key():
    registry: set[str] = set()
    before = key("Newbie", known=registry)
    assert PSEUDONYM.fullmatch(before)
    registry.add("newbie")
    assert key("Newbie", known=registry) == key("NEWBIE", known=registry) == "newbie"
    registry.discard("newbie")
    assert key("newbie", known=registry) == before


def test_empty_and_none_are_one_pseudonym_without_asking():
    assert throttle_key("", SECRET, never_asked) == throttle_key(None, SECRET, never_asked)
    assert throttle_key("  \t", SECRET, never_asked) == throttle_key("", SECRET, never_asked)
    assert throttle_key("", SECRET, never_asked) == expected_pseudonym("")


@pytest.mark.parametrize("submitted", ["a" * 65, "x" * 1_000_000, "tanaka\x00", "\x00",
                                       "ab\ud800", "\udfff", "tanaka\x00" + "z" * 100])
def test_unstorable_input_is_a_pseudonym_even_if_the_predicate_says_known(submitted):
    # the predicate queries the database: never with a NUL (PostgreSQL refuses it), a lone
    # surrogate (not encodable) or more than an identifier can hold
    assert PSEUDONYM.fullmatch(throttle_key(submitted, SECRET, never_asked))
    assert PSEUDONYM.fullmatch(throttle_key(submitted, SECRET, known))


def test_long_input_is_bounded():
    assert key("a" * 64) == "a" * 64
    long_key = key("a" * 65)
    assert long_key != "a" * 65
    assert len(long_key) == len(UNKNOWN_PREFIX) + 40
    assert len(key("x" * 1_000_000)) == len(UNKNOWN_PREFIX) + 40


def test_long_inputs_stay_distinct_and_case_insensitive():
    a, b = "A" * 100, "A" * 99 + "B"
    assert key(a) != key(b)
    assert key(a) == key(a.lower())
    assert key(a) == key(a)  # deterministic


def test_a_submitted_pseudonym_never_collides_with_itself():
    hashed = key("z" * 200)
    assert key(hashed) != hashed
    assert throttle_key(hashed, SECRET, unknown) != hashed


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(), max_size=200),  # st.characters() includes lone surrogates
       st.sampled_from([known, unknown]))
def test_key_is_bounded_case_insensitive_and_storable(submitted, is_known):
    k = throttle_key(submitted, SECRET, is_known)
    assert len(k) <= 64 or PSEUDONYM.fullmatch(k)
    assert k == throttle_key(submitted.casefold(), SECRET, is_known)
    k.encode("utf-8")  # a lone surrogate (from a JSON body) must not reach the database
    assert "\x00" not in k
    assert k == submitted.strip().casefold() or PSEUDONYM.fullmatch(k)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(), min_size=1, max_size=200))
def test_unknown_input_never_appears_in_the_key(submitted):
    k = throttle_key(submitted, SECRET, unknown)
    assert PSEUDONYM.fullmatch(k)  # nothing of the input but 40 hex digits of a keyed MAC
    folded = submitted.strip().casefold()
    if len(folded) >= 8:
        assert folded not in k.removeprefix("unknown:")  # the prefix is not from the input


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="ascii"), max_size=200), st.sampled_from([known, unknown]))
def test_ascii_key_ignores_case(submitted, is_known):
    assert throttle_key(submitted.upper(), SECRET, is_known) \
        == throttle_key(submitted.lower(), SECRET, is_known)


def test_lone_surrogates_give_a_storable_key_and_stay_distinct():
    keys = [throttle_key(s, SECRET, is_known) for is_known in (known, unknown)
            for s in ("ab\ud800", "ab\ud801", "x" * 70 + "\ud800", "x" * 70 + "\ud801")]
    for k in keys:
        k.encode("utf-8")
        assert PSEUDONYM.fullmatch(k)
    assert len(set(keys[:4])) == 4
