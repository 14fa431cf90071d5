"""R4/R5: the lockout decision (consume before check) and the throttle key (R2: an unknown
identifier, which may be a password typed into the ID field, is kept only as a keyed pseudonym)."""

import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authsvc.domain.lockout import UNKNOWN_PREFIX, Failure, consume, fail, throttle_key

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
    """`attempts` attempts one after the other, each reserved and then failing; returns every
    (decision, failure or None when refused)."""
    out = []
    for _ in range(attempts):
        d = consume(failures, 0, locked_until, now, max_failures, MINUTES)
        f = None
        if d.allowed:
            f = fail(d.failures, d.locked_until, now, max_failures, MINUTES)
            failures, locked_until = f.failures, f.locked_until
        else:
            failures, locked_until = d.failures, d.locked_until
        out.append((d, f))
    return out


def test_n_attempts_are_evaluated_then_refused():
    steps = run(N + 3)
    assert [d.allowed for d, _ in steps] == [True] * N + [False] * 3
    assert [f.failures for _, f in steps[:N]] == list(range(1, N + 1))


def test_the_nth_decided_failure_sets_the_lock():
    steps = run(N)
    assert [f.locks_now for _, f in steps] == [False] * (N - 1) + [True]
    assert all(f.locked_until is None for _, f in steps[:-1])
    assert steps[-1][1].locked_until == NOW + timedelta(minutes=MINUTES)


@pytest.mark.parametrize("max_failures", [1, 3, 10])
def test_limit_follows_the_configured_number(max_failures):
    steps = run(max_failures + 1, max_failures=max_failures)
    assert sum(d.allowed for d, _ in steps) == max_failures
    assert steps[max_failures - 1][1].locks_now


def test_attempts_in_flight_take_the_remaining_allowance_without_counting():
    """Reserved but undecided attempts hold a place each: never more than N evaluations at
    once, and none of them is a failure until it is decided."""
    for failures in range(N):
        for in_flight in range(N + 2):
            d = consume(failures, in_flight, None, NOW, N, MINUTES)
            assert d.allowed == (failures + in_flight < N)
            assert d.busy == (failures + in_flight >= N)
            assert d.failures == failures and d.locked_until is None  # nothing counted


def test_a_lapsed_reservation_counts_for_nothing():
    """A worker died between reserving and deciding: after the reservation lapses the account
    has exactly the failures it had, however often that happens."""
    for _ in range(3 * N):
        d = consume(0, 0, None, NOW, N, MINUTES)  # the lapsed reservations are not in flight
        assert d.allowed and d.failures == 0


def test_refused_while_locked_without_changing_the_lock():
    until = NOW + timedelta(minutes=MINUTES)
    for offset in (timedelta(0), timedelta(minutes=1), timedelta(minutes=MINUTES) - timedelta(
            microseconds=1)):
        d = consume(N, 0, until, NOW + offset, N, MINUTES)
        assert not d.allowed
        assert d.locked_until == until  # a refused attempt does not extend the lock
        assert d.failures == N
        assert not d.auto_unlocked and not d.busy


def test_refused_while_locked_even_with_a_low_count():
    # an operator-set lock holds whatever the count says
    d = consume(0, 0, NOW + timedelta(minutes=5), NOW, N, MINUTES)
    assert not d.allowed


def test_after_the_period_the_lock_lifts_by_itself():
    until = NOW + timedelta(minutes=MINUTES)
    d = consume(N, 0, until, until, N, MINUTES)  # exactly at the end of the period
    assert d.allowed
    assert d.auto_unlocked
    assert d.failures == 0  # the count restarted
    assert d.locked_until is None
    later = consume(N, 0, until, until + timedelta(days=3), N, MINUTES)
    assert later.allowed and later.auto_unlocked


def test_after_an_auto_unlock_the_full_allowance_applies_again():
    locked = run(N)[-1][1]
    after = locked.locked_until + timedelta(seconds=1)
    steps = run(N + 1, locked.failures, locked.locked_until, now=after)
    assert steps[0][0].auto_unlocked
    assert [d.allowed for d, _ in steps] == [True] * N + [False]
    assert steps[N - 1][1].locks_now


def test_a_full_count_without_a_lock_is_refused_and_locked():
    d = consume(N, 0, None, NOW, N, MINUTES)
    assert not d.allowed
    assert d.locked_until == NOW + timedelta(minutes=MINUTES)


def test_a_failure_decided_while_locked_counts_but_does_not_extend_the_lock():
    until = NOW + timedelta(minutes=1)
    f = fail(N, until, NOW, N, MINUTES)
    assert f == Failure(N + 1, until, False)


def test_a_known_identifier_is_its_own_key_in_any_ascii_case():
    assert key("Tanaka") == key("TANAKA") == key("tanaka") == "tanaka"
    assert key("STRASSE") == "strasse"
    assert key("tanaka") != key("tanaka2") == "tanaka2"
    assert key("a" * 64) == "a" * 64  # the longest identifier


@pytest.mark.parametrize("look_alike", [
    "tana\u212aa",      # KELVIN SIGN, which casefold() makes "k"
    "\u017ftra\u017f\u017fe",  # LATIN SMALL LETTER LONG S for "s"
    "stra\u00dfe",      # sharp s, which casefold() makes "ss"
    "tanaka\u00a0",     # a trailing no-break space, which strip() removes
    "  tanaka\t", "tanaka ", " tanaka",  # ASCII white space is not part of an ID either
    "ｔａｎａｋａ",      # full-width letters, which NFKC would map to ASCII
    "tanak\u0430",      # CYRILLIC SMALL LETTER A
    "tanaka\u200b",     # ZERO WIDTH SPACE
])
def test_a_look_alike_never_reaches_the_account_and_counts_as_unknown(look_alike):
    """Identifiers are ASCII by rule (R6): anything else is an unknown ID, and the database
    is never even asked about it."""
    assert throttle_key(look_alike, SECRET, never_asked) == key(look_alike)
    assert PSEUDONYM.fullmatch(key(look_alike))
    assert key(look_alike) != key("tanaka")


def test_the_predicate_is_asked_about_the_canonical_form_only():
    asked: list[str] = []

    def is_known(folded):
        asked.append(folded)
        return True

    assert throttle_key("TaNaKa", SECRET, is_known) == "tanaka"
    assert PSEUDONYM.fullmatch(throttle_key("STRAßE", SECRET, is_known))
    assert PSEUDONYM.fullmatch(throttle_key(" tanaka ", SECRET, is_known))
    assert asked == ["tanaka"]


def test_an_unknown_identifier_becomes_a_keyed_pseudonym():
    ghost = key("Ghost.User")
    assert PSEUDONYM.fullmatch(ghost)
    assert ghost == expected_pseudonym("ghost.user")
    assert "ghost" not in ghost
    # case-insensitive and deterministic, so an unknown ID still locks like a real one (R5)
    assert key("GHOST.user") == ghost
    assert key(" ghost.user ") != ghost  # white space is not an identifier's: another ID
    assert key("ghost.user2") != ghost


@pytest.mark.parametrize("typed", ["Kx7#vQm2pLz9", "Tr4wNb8sYc6x", "ＡＢｃ１２３＃ｘｙｚ", "パスワード1234!"])
def test_a_password_typed_into_the_id_field_never_appears_in_the_key(typed):
    pseudonym = key(typed)
    assert PSEUDONYM.fullmatch(pseudonym)
    for form in {typed, typed.lower(), typed.casefold(), typed.strip().casefold(), typed[:6].lower()}:
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
def test_key_is_bounded_case_insensitive_in_ascii_and_storable(submitted, is_known):
    k = throttle_key(submitted, SECRET, is_known)
    assert len(k) <= 64 or PSEUDONYM.fullmatch(k)
    ascii_lower = "".join(c.lower() if c.isascii() else c for c in submitted)
    assert k == throttle_key(ascii_lower, SECRET, is_known)
    k.encode("utf-8")  # a lone surrogate (from a JSON body) must not reach the database
    assert "\x00" not in k
    assert (k == submitted.lower() and submitted.isascii()) or PSEUDONYM.fullmatch(k)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(), min_size=1, max_size=200))
def test_unknown_input_never_appears_in_the_key(submitted):
    k = throttle_key(submitted, SECRET, unknown)
    assert PSEUDONYM.fullmatch(k)  # nothing of the input but 40 hex digits of a keyed MAC
    folded = submitted.lower()
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
