"""R3/R5: argon2id hashing, the dummy hash for unknown users, re-hashing on new parameters."""

import statistics
import time

import pytest
from argon2 import Type, extract_parameters

from adapters.hashing import Hasher

LOW = {"time_cost": 1, "memory_cost_kib": 1024, "parallelism": 1}
PASSWORD = "Gz7!mK2#pLq9"


@pytest.fixture(scope="module")
def hasher():
    return Hasher(**LOW)


def test_hash_is_argon2id_with_the_configured_parameters(hasher):
    stored = hasher.hash(PASSWORD)
    assert stored.startswith("$argon2id$")
    params = extract_parameters(stored)
    assert params.type is Type.ID
    assert (params.time_cost, params.memory_cost, params.parallelism) == (1, 1024, 1)
    assert PASSWORD not in stored


def test_each_hash_has_its_own_salt(hasher):
    assert hasher.hash(PASSWORD) != hasher.hash(PASSWORD)


def test_verify_true_for_the_right_password_false_otherwise(hasher):
    stored = hasher.hash(PASSWORD)
    assert hasher.verify(stored, PASSWORD) is True
    assert hasher.verify(stored, PASSWORD + "x") is False
    assert hasher.verify(stored, PASSWORD.lower()) is False
    assert hasher.verify(stored, "") is False


def test_verify_of_a_corrupt_stored_hash_is_false_not_an_error(hasher):
    assert hasher.verify("not-a-hash", PASSWORD) is False
    assert hasher.verify("$argon2id$v=19$m=1024,t=1,p=1$broken", PASSWORD) is False


def test_unknown_user_never_verifies(hasher):
    assert hasher.verify(None, PASSWORD) is False
    assert hasher.verify(None, "") is False


def test_unknown_user_is_verified_against_a_dummy_with_the_same_parameters():
    """The dummy path really runs argon2, on a hash as costly as a real one (R5)."""
    hasher = Hasher(**LOW)
    seen = []

    class Spy:
        def __init__(self, inner):
            self.inner = inner

        def verify(self, stored, password):
            seen.append(stored)
            return self.inner.verify(stored, password)

        def check_needs_rehash(self, stored):
            return self.inner.check_needs_rehash(stored)

    hasher._ph = Spy(hasher._ph)
    assert hasher.verify(None, PASSWORD) is False
    assert len(seen) == 1
    dummy = seen[0]
    assert dummy.startswith("$argon2id$")
    assert not hasher.needs_rehash(dummy)  # same parameters as every stored hash
    assert Hasher(time_cost=2, memory_cost_kib=1024, parallelism=1).needs_rehash(dummy)


def test_the_dummy_secret_itself_does_not_log_in():
    hasher = Hasher(**LOW)
    secret = "known-dummy-secret"
    hasher._dummy = hasher._ph.hash(secret)
    assert hasher.verify(None, secret) is False


def test_unknown_user_costs_about_the_same_time_as_a_wrong_password():
    hasher = Hasher(time_cost=1, memory_cost_kib=8192, parallelism=1)
    stored = hasher.hash(PASSWORD)

    def ratio():
        known, unknown = [], []
        for _ in range(21):  # interleaved, so drift on a busy machine hits both alike
            t = time.perf_counter()
            hasher.verify(stored, "wrong password")
            known.append(time.perf_counter() - t)
            t = time.perf_counter()
            hasher.verify(None, "wrong password")
            unknown.append(time.perf_counter() - t)
        return statistics.median(unknown) / statistics.median(known)

    # Without the dummy the ratio would be ~0.001; allow a few tries against a noisy machine.
    ratios = []
    for _ in range(3):
        ratios.append(ratio())
        if 0.5 <= ratios[-1] <= 2.0:
            break
    assert 0.5 <= ratios[-1] <= 2.0, ratios


def test_full_width_and_ascii_forms_verify_against_each_other(hasher):
    full_width = "ＧＺ７！ｍＫ２＃ｐＬｑ９"
    ascii_form = "GZ7!mK2#pLq9"
    assert hasher.verify(hasher.hash(full_width), ascii_form)
    assert hasher.verify(hasher.hash(ascii_form), full_width)
    assert hasher.verify(hasher.hash("Gz7!me\u0301K2#"), "Gz7!méK2#")  # composed vs decomposed


def test_a_lone_surrogate_is_a_plain_mismatch(hasher):
    """A JSON body can carry "\\ud800"; that must be a failed logon, not a crash."""
    stored = hasher.hash(PASSWORD)
    assert hasher.verify(stored, PASSWORD + "\ud800") is False
    assert hasher.verify(None, "\ud800") is False


@pytest.mark.parametrize(
    "changed",
    [{"time_cost": 2}, {"memory_cost_kib": 2048}, {"parallelism": 2}, {"hash_len": 64},
     {"salt_len": 32}],
)
def test_needs_rehash_when_parameters_change(changed):
    old = Hasher(**LOW)
    stored = old.hash(PASSWORD)
    assert not old.needs_rehash(stored)
    new = Hasher(**{**LOW, **changed})
    assert new.needs_rehash(stored)
    assert new.verify(stored, PASSWORD)  # the old hash still logs in, then gets upgraded
    assert not new.needs_rehash(new.hash(PASSWORD))
