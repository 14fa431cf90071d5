"""WebAuthn as a second factor (R10, R11, R12) as a service, over the in-memory fakes
(tests/fakes.py), driven by a software authenticator that answers the way a browser's
`credential.toJSON()` does. What needs a real database (one assertion or registration
submitted many times at once): tests/integration/test_webauthn.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from adapters.clock import FixedClock
from authsvc.domain.errors import DomainError, Forbidden, NotFound
from authsvc.domain.roles import Actor
from authsvc.services import Deps, accounts
from authsvc.services import webauthn as wa
from authsvc.store.models import Challenge, WebauthnCredential
from tests.fakes import fake_deps
from tests.integration.support import active_account, add_contract, events
from tests.webauthn_soft import AT, UP, UV, SoftAuthenticator, b64u, cbor, unb64u
from tests.webauthn_support import ALICE, enrol, login


@pytest.fixture
def deps(clock: FixedClock) -> Deps:
    return fake_deps(clock)


BOB = Actor("bob")
ORIGIN = "http://localhost:8080"


@pytest.fixture
def users(deps, operator, account_admin) -> Deps:
    """Approved accounts alice, bob and carol (three different people)."""
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "alice", name="田中 太郎")
    active_account(deps, account_admin, operator, "bob", name="佐藤 花子")
    active_account(deps, account_admin, operator, "carol", name="鈴木 一郎")
    return deps


def stored(deps: Deps) -> list[SimpleNamespace]:
    """The stored credentials as plain snapshots (rows detach when the unit of work ends)."""
    rows = sorted(deps.uow.db.rows(WebauthnCredential), key=lambda r: r.id)
    return [SimpleNamespace(account_id=r.account_id, credential_id=r.credential_id,
                            sign_count=r.sign_count, name=r.name, created_at=r.created_at,
                            last_used_at=r.last_used_at) for r in rows]


def without_challenges(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k != "challenges"}


def refused(fn: Callable[[], object]) -> None:
    with pytest.raises(DomainError) as err:
        fn()
    assert err.value.code == "webauthn_invalid"


# ---- the whole flow -------------------------------------------------------------------------


def test_register_then_authenticate(users, clock):
    deps = users
    cid, options = wa.registration_options(deps, "alice")
    # the options a page hands to PublicKeyCredential.parseCreationOptionsFromJSON
    assert options["rp"] == {"name": "Defense Security Gateway", "id": "localhost"}
    assert options["user"]["name"] == "alice" and options["user"]["displayName"] == "田中 太郎"
    assert b"alice" not in unb64u(options["user"]["id"]) and len(unb64u(options["user"]["id"])) == 32
    assert len(unb64u(options["challenge"])) == 32
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none" and options["excludeCredentials"] == []
    algs = [p["alg"] for p in options["pubKeyCredParams"]]
    assert -7 in algs and -47 not in algs  # ES256 yes, secp256k1 no
    assert options["timeout"] == 300_000
    json.dumps(options)  # plain JSON types only

    auth = SoftAuthenticator()
    response = auth.create(options)
    wa.register(deps, ALICE, "alice", cid, response, name="YubiKey 5")
    [row] = stored(deps)
    assert row.credential_id == auth.credentials[0].credential_id and row.sign_count == 0
    assert wa.has_credentials(deps, "alice") and not wa.has_credentials(deps, "bob")
    [ev] = events(deps, "webauthn.registered", "alice")
    assert (ev.actor, ev.terminal, ev.data["name"]) == ("alice", "T-01", "YubiKey 5")
    assert ev.data["credential"] == row.credential_id[:8].hex() and ev.data["alg"] == -7

    cid, options = wa.authentication_options(deps, "Alice")  # IDs are case-insensitive
    assert options["rpId"] == "localhost" and options["userVerification"] == "required"
    assert [d["id"] for d in options["allowCredentials"]] == [response["id"]]
    clock.advance(minutes=1)
    assert wa.authenticate(deps, "alice", cid, auth.get(options)) is True
    [row] = stored(deps)
    assert row.sign_count == 1 and row.last_used_at == clock.now()
    [listed] = wa.list_credentials(deps, "alice")
    assert listed == {"id": row.credential_id[:8].hex(), "name": "YubiKey 5",
                      "created_at": "2026-04-01T09:00:00.000000+09:00",
                      "last_used_at": "2026-04-01T09:01:00.000000+09:00"}
    # a second registration excludes the key already registered (the browser refuses)
    _cid, options = wa.registration_options(deps, "alice")
    assert [d["id"] for d in options["excludeCredentials"]] == [response["id"]]
    with pytest.raises(RuntimeError, match="InvalidStateError"):
        auth.create(options)


def test_audit_and_tables_hold_no_key_material(users):
    deps = users
    auth = SoftAuthenticator()
    response = enrol(deps, auth)
    numbers = auth.credentials[0].key.public_key().public_numbers()
    x = numbers.x.to_bytes(32, "big")
    full_id = auth.credentials[0].credential_id
    details = " ".join(e.detail for e in events(deps))
    for secret in (x.hex(), b64u(x), full_id.hex(), response["id"], response["response"]["publicKey"]):
        assert secret not in details
    assert login(deps, auth)


def test_an_authenticator_without_a_counter_still_works(users):
    deps = users
    auth = SoftAuthenticator(counter_step=0)
    enrol(deps, auth)
    assert login(deps, auth) and login(deps, auth)
    assert stored(deps)[0].sign_count == 0


# ---- replay and challenge binding (R11) -----------------------------------------------------


def test_a_registration_response_is_accepted_once(users):
    deps = users
    cid, options = wa.registration_options(deps, "alice")
    response = SoftAuthenticator().create(options)
    wa.register(deps, ALICE, "alice", cid, response)
    refused(lambda: wa.register(deps, ALICE, "alice", cid, response))
    # nor under a fresh challenge: it was signed for the old one
    cid2, _ = wa.registration_options(deps, "alice")
    refused(lambda: wa.register(deps, ALICE, "alice", cid2, response))
    assert len(stored(deps)) == 1
    assert [e.data["reason"] for e in events(deps, "webauthn.register_failed", "alice")] == [
        "challenge", "rejected:Wrong challenge in response."]


def test_a_credential_id_cannot_be_registered_twice(users):
    deps = users
    auth = SoftAuthenticator()
    first = enrol(deps, auth)
    same_id = unb64u(first["id"])
    cid, options = wa.registration_options(deps, "alice")
    refused(lambda: wa.register(deps, ALICE, "alice", cid,
                                SoftAuthenticator().create(options, credential_id=same_id)))
    cid, options = wa.registration_options(deps, "bob")
    refused(lambda: wa.register(deps, BOB, "bob", cid,
                                SoftAuthenticator().create(options, credential_id=same_id)))
    with deps.uow() as uow:
        alice = uow.account("alice")
        assert alice is not None
        assert [c.account_id for c in stored(deps)] == [alice.id]
    assert [e.data["reason"] for e in events(deps, "webauthn.register_failed")] == ["duplicate"] * 2
    assert login(deps, auth)  # the first registration is intact


def test_an_assertion_is_accepted_once(users):
    deps = users
    auth = SoftAuthenticator()
    enrol(deps, auth)
    cid, options = wa.authentication_options(deps, "alice")
    assertion = auth.get(options)
    assert wa.authenticate(deps, "alice", cid, assertion) is True
    assert wa.authenticate(deps, "alice", cid, assertion) is False
    cid2, _ = wa.authentication_options(deps, "alice")
    assert wa.authenticate(deps, "alice", cid2, assertion) is False  # signed for another challenge


def test_an_assertion_for_challenge_a_is_refused_under_challenge_b(users):
    deps = users
    auth = SoftAuthenticator()
    enrol(deps, auth)
    cid_a, options_a = wa.authentication_options(deps, "alice")
    cid_b, options_b = wa.authentication_options(deps, "alice")
    for_a, for_b = auth.get(options_a), auth.get(options_b)
    assert wa.authenticate(deps, "alice", cid_b, for_a) is False
    assert wa.authenticate(deps, "alice", cid_b, for_b) is False  # B was used up by the failure
    assert wa.authenticate(deps, "alice", cid_a, for_a) is True


def test_expired_challenges_are_refused(users, clock):
    deps = users
    auth = SoftAuthenticator()
    cid, options = wa.registration_options(deps, "alice")
    response = auth.create(options)
    clock.advance(minutes=6)
    refused(lambda: wa.register(deps, ALICE, "alice", cid, response))
    assert stored(deps) == []
    cid, options = wa.registration_options(deps, "alice")
    response = auth.create(options)
    clock.advance(minutes=4)
    wa.register(deps, ALICE, "alice", cid, response)  # within five minutes

    cid, options = wa.authentication_options(deps, "alice")
    assertion = auth.get(options)
    clock.advance(minutes=6)
    assert wa.authenticate(deps, "alice", cid, assertion) is False
    cid, options = wa.authentication_options(deps, "alice")
    assertion = auth.get(options)
    clock.advance(minutes=4, seconds=59)
    assert wa.authenticate(deps, "alice", cid, assertion) is True


def test_a_challenge_is_bound_to_its_purpose_and_user(users):
    deps = users
    auth = SoftAuthenticator()
    enrol(deps, auth)
    enrol(deps, SoftAuthenticator(), "bob")
    # a registration challenge does not serve a logon, nor one user's challenge another's
    cid, options = wa.registration_options(deps, "alice")
    assert wa.authenticate(deps, "alice", cid, auth.get(options, credential=auth.credentials[0],
                                                         type_="webauthn.get")) is False
    cid, options = wa.authentication_options(deps, "alice")
    assert wa.authenticate(deps, "bob", cid, auth.get(options)) is False
    assert login(deps, auth)


# ---- what the response must prove -----------------------------------------------------------

BAD_ORIGINS = ["http://evil.example", "http://localhost:9999", "https://localhost:8080",
               "http://localhost:8080/", "http://sub.localhost:8080", "null", ""]


@pytest.mark.parametrize("origin", BAD_ORIGINS)
def test_registration_from_another_origin_is_refused(users, origin):
    deps = users
    cid, options = wa.registration_options(deps, "alice")
    response = SoftAuthenticator().create(options, origin=origin)
    refused(lambda: wa.register(deps, ALICE, "alice", cid, response))
    assert stored(deps) == []
    enrol(deps, SoftAuthenticator())  # the configured origin works


@pytest.mark.parametrize("origin", BAD_ORIGINS)
def test_assertion_from_another_origin_is_refused(users, origin):
    deps = users
    auth = SoftAuthenticator()
    enrol(deps, auth)
    assert login(deps, auth, origin=origin) is False
    assert login(deps, auth) is True


def test_a_second_configured_origin_is_accepted(clock, operator, account_admin):
    deps = fake_deps(clock, webauthn={"origins": [ORIGIN, "https://dsg.example.jp"]})
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "alice")
    auth = SoftAuthenticator(origin="https://dsg.example.jp")
    enrol(deps, auth)
    assert login(deps, auth) and login(deps, auth, origin=ORIGIN)
    assert login(deps, auth, origin="https://evil.example.jp") is False


BAD_REGISTRATIONS: dict[str, dict[str, Any]] = {
    "wrong rp id hash": {"rp_id": "evil.example"},
    "type webauthn.get": {"type_": "webauthn.get"},
    "no user verification": {"flags": UP | AT},
    "no user presence": {"flags": UV | AT},
    "no attested credential data": {"flags": UP | UV},
    "cross-origin iframe": {"client_extra": {"crossOrigin": True}},
    "top origin": {"client_extra": {"topOrigin": "http://evil.example"}},
    "challenge not ours": {"challenge": b64u(b"x" * 32)},
}


@pytest.mark.parametrize("bad", BAD_REGISTRATIONS.values(), ids=BAD_REGISTRATIONS.keys())
def test_bad_registrations_are_refused(users, bad):
    deps = users
    cid, options = wa.registration_options(deps, "alice")
    response = SoftAuthenticator().create(options, **bad)
    refused(lambda: wa.register(deps, ALICE, "alice", cid, response))
    assert stored(deps) == []
    enrol(deps, SoftAuthenticator())


def test_registered_id_must_be_the_attested_one(users):
    deps = users
    cid, options = wa.registration_options(deps, "alice")
    response = SoftAuthenticator().create(options)
    response["id"] = response["rawId"] = b64u(b"another credential id")
    refused(lambda: wa.register(deps, ALICE, "alice", cid, response))
    assert stored(deps) == []


BAD_ASSERTIONS: dict[str, dict[str, Any]] = {
    "wrong rp id hash": {"rp_id": "evil.example"},
    "type webauthn.create": {"type_": "webauthn.create"},
    "no user verification": {"flags": UP},
    "no user presence": {"flags": UV},
    "signed by another key": {"sign_with": ec.generate_private_key(ec.SECP256R1())},
    "challenge not ours": {"challenge": b64u(b"x" * 32)},
    "cross-origin iframe": {"client_extra": {"crossOrigin": True}},
    "top origin": {"client_extra": {"topOrigin": "http://evil.example"}},
    "another user's handle": {"user_handle": b"\x01" * 32},
}


@pytest.mark.parametrize("bad", BAD_ASSERTIONS.values(), ids=BAD_ASSERTIONS.keys())
def test_bad_assertions_are_refused(users, bad):
    deps = users
    auth = SoftAuthenticator()
    enrol(deps, auth)
    assert login(deps, auth, **bad) is False
    assert stored(deps)[0].sign_count == 0 and stored(deps)[0].last_used_at is None
    assert login(deps, auth) is True


@pytest.mark.parametrize("with_handle", [True, False], ids=["with-user-handle", "no-user-handle"])
def test_a_credential_of_one_user_does_not_log_on_another(users, with_handle):
    deps = users
    alice_key, bob_key = SoftAuthenticator(), SoftAuthenticator()
    enrol(deps, alice_key, "alice")
    enrol(deps, bob_key, "bob")
    cid, options = wa.authentication_options(deps, "bob")
    forged = alice_key.get(options, credential=alice_key.credentials[0],
                           user_handle="stored" if with_handle else None)
    assert wa.authenticate(deps, "bob", cid, forged) is False
    assert login(deps, bob_key, "bob") and login(deps, alice_key, "alice")


def test_an_inactive_account_cannot_authenticate(users, account_admin):
    deps = users
    auth = SoftAuthenticator()
    enrol(deps, auth)
    cid, options = wa.authentication_options(deps, "alice")
    assertion = auth.get(options)
    accounts.suspend(deps, account_admin, "alice")
    assert wa.authenticate(deps, "alice", cid, assertion) is False
    _cid, options = wa.authentication_options(deps, "alice")
    assert options["allowCredentials"][0]["id"] != b64u(auth.credentials[0].credential_id)
    accounts.resume(deps, account_admin, "alice")
    assert login(deps, auth)


# ---- sign counter (cloned authenticators) ---------------------------------------------------


def test_a_counter_that_does_not_increase_is_refused_and_audited(users):
    deps = users
    auth = SoftAuthenticator()
    enrol(deps, auth)
    assert login(deps, auth, counter=5) is True
    cid, options = wa.authentication_options(deps, "alice")
    assert wa.authenticate(deps, "alice", cid, auth.get(options, counter=5), actor=ALICE) is False
    assert login(deps, auth, counter=3) is False
    assert stored(deps)[0].sign_count == 5
    evs = events(deps, "webauthn.counter_regressed", "alice")
    assert [(e.result, e.data["stored"], e.data["received"]) for e in evs] == [
        ("refused", 5, 5), ("refused", 5, 3)]
    assert evs[0].terminal == "T-01"
    assert evs[0].data["credential"] == auth.credentials[0].credential_id[:8].hex()
    assert login(deps, auth, counter=6) is True


def test_a_counter_falling_back_to_zero_is_refused(users):
    deps = users
    auth = SoftAuthenticator(counter_step=0)
    enrol(deps, auth)
    assert login(deps, auth) is True            # 0 after 0: no counter, accepted
    assert login(deps, auth, counter=7) is True
    assert login(deps, auth) is False           # 0 after 7
    assert len(events(deps, "webauthn.counter_regressed")) == 1


# ---- malformed input ------------------------------------------------------------------------

HUGE = "A" * 5_000_000


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def mutate(c: dict[str, Any]) -> Any:
        *parents, last = path.split(".")
        target = c
        for p in parents:
            target = target[p]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
        return c
    return mutate


_DELETE = object()
_NOT_JSON = b64u(b"\xff\xfe not json")
_LIST_JSON = b64u(b"[1, 2, 3]")

COMMON_MUTATIONS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "None": lambda c: None,
    "a string": lambda c: json.dumps(c),
    "a list": lambda c: [c],
    "a number": lambda c: 42,
    "empty object": lambda c: {},
    "no response": _set("response", _DELETE),
    "response a list": _set("response", []),
    "response a string": _set("response", "x"),
    "no rawId": _set("rawId", _DELETE),
    "no id": _set("id", _DELETE),
    "id differs from rawId": _set("id", b64u(b"other")),
    "rawId padded": lambda c: c | {"id": c["id"] + "=", "rawId": c["rawId"] + "="},
    "rawId standard base64": lambda c: c | {"id": "ab+/cd", "rawId": "ab+/cd"},
    "rawId a number": lambda c: c | {"id": 5, "rawId": 5},
    "rawId huge": lambda c: c | {"id": HUGE, "rawId": HUGE},
    "type missing": _set("type", _DELETE),
    "type other": _set("type", "password"),
    "no clientDataJSON": _set("response.clientDataJSON", _DELETE),
    "clientDataJSON not base64": _set("response.clientDataJSON", "!!!not*base64!!!"),
    "clientDataJSON a number": _set("response.clientDataJSON", 123),
    "clientDataJSON an object": _set("response.clientDataJSON", {"type": "webauthn.get"}),
    "clientDataJSON not JSON": _set("response.clientDataJSON", _NOT_JSON),
    "clientDataJSON a JSON list": _set("response.clientDataJSON", _LIST_JSON),
    "clientDataJSON huge": _set("response.clientDataJSON", HUGE),
    "clientDataJSON impossible length": _set("response.clientDataJSON", "AAAAA"),
    "clientDataJSON empty": _set("response.clientDataJSON", ""),
    "clientExtensionResults a list": _set("clientExtensionResults", [1]),
}

ASSERTION_MUTATIONS: dict[str, Callable[[dict[str, Any]], Any]] = COMMON_MUTATIONS | {
    "no authenticatorData": _set("response.authenticatorData", _DELETE),
    "authenticatorData truncated": lambda c: _set(
        "response.authenticatorData", c["response"]["authenticatorData"][:20])(c),
    "authenticatorData huge": _set("response.authenticatorData", HUGE),
    "authenticatorData a list": _set("response.authenticatorData", [1, 2, 3]),
    "no signature": _set("response.signature", _DELETE),
    "signature empty": _set("response.signature", ""),
    "signature huge": _set("response.signature", HUGE),
    "signature not base64": _set("response.signature", "%%%%"),
    "userHandle a number": _set("response.userHandle", 5),
    "userHandle huge": _set("response.userHandle", HUGE),
}


@pytest.mark.parametrize("mutate", ASSERTION_MUTATIONS.values(), ids=ASSERTION_MUTATIONS.keys())
def test_malformed_assertions_are_false_without_writes(users, mutate):
    deps = users
    auth = SoftAuthenticator()
    enrol(deps, auth)
    before = without_challenges(deps.uow.db.counts())
    cid, options = wa.authentication_options(deps, "alice")
    assert wa.authenticate(deps, "alice", cid, mutate(auth.get(options))) is False
    assert without_challenges(deps.uow.db.counts()) == before
    assert stored(deps)[0].sign_count == 0
    assert login(deps, auth) is True  # counter 2 > 0: the failed attempt changed nothing


def _auth_data_without_at(c: dict[str, Any]) -> dict[str, Any]:
    att = c["response"]["attestationObject"]
    raw = unb64u(att)
    # rebuild with authData cut to the 37-byte header but the AT flag still set
    auth_data = unb64u(c["response"]["authenticatorData"])[:37]
    c["response"]["attestationObject"] = b64u(cbor({"fmt": "none", "attStmt": {}, "authData": auth_data}))
    assert raw != unb64u(c["response"]["attestationObject"])
    return c


REGISTRATION_MUTATIONS: dict[str, Callable[[dict[str, Any]], Any]] = COMMON_MUTATIONS | {
    "no attestationObject": _set("response.attestationObject", _DELETE),
    "attestationObject not CBOR": _set("response.attestationObject", b64u(b"\xff" * 40)),
    "attestationObject a CBOR list": _set("response.attestationObject", b64u(cbor([1, 2]))),
    "attestationObject without authData": _set(
        "response.attestationObject", b64u(cbor({"fmt": "none", "attStmt": {}}))),
    "attestationObject truncated": lambda c: _set(
        "response.attestationObject", c["response"]["attestationObject"][:60])(c),
    "attestationObject huge": _set("response.attestationObject", HUGE),
    "attestationObject a number": _set("response.attestationObject", 7),
    "authData cut after the header": _auth_data_without_at,
}


@pytest.mark.parametrize("mutate", REGISTRATION_MUTATIONS.values(), ids=REGISTRATION_MUTATIONS.keys())
def test_malformed_registrations_are_refused_and_store_nothing(users, mutate):
    deps = users
    cid, options = wa.registration_options(deps, "alice")
    response = SoftAuthenticator().create(options)
    refused(lambda: wa.register(deps, ALICE, "alice", cid, mutate(response)))
    assert stored(deps) == []
    [ev] = events(deps, "webauthn.register_failed", "alice")
    assert ev.result == "failed" and ev.data["reason"]
    enrol(deps, SoftAuthenticator())


def _k1_key() -> dict[int, Any]:
    """A genuine secp256k1 public key as COSE ES256K (-47): valid, but not an algorithm offered."""
    numbers = ec.generate_private_key(ec.SECP256K1()).public_key().public_numbers()
    return {1: 2, 3: -47, -1: 8, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}


def _off_curve_key() -> dict[int, Any]:
    """An ES256 key whose point is not on P-256."""
    return {1: 2, 3: -7, -1: 1, -2: b"\x01" * 32, -3: b"\x02" * 32}


def _declared_as_k1() -> dict[int, Any]:
    """A P-256 point declared as ES256K: it does not load."""
    numbers = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    return {1: 2, 3: -47, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}


@pytest.mark.parametrize("make_key", [_k1_key, _off_curve_key, _declared_as_k1],
                         ids=["es256k", "off-curve", "p256-as-es256k"])
def test_an_unusable_or_unoffered_key_is_refused(users, make_key):
    deps = users
    cid, options = wa.registration_options(deps, "alice")
    response = SoftAuthenticator().create(options, cose_key=make_key())
    refused(lambda: wa.register(deps, ALICE, "alice", cid, response))
    assert stored(deps) == []
    assert events(deps, "webauthn.register_failed")[0].data["reason"] == "key_unusable"


@pytest.mark.parametrize("challenge_id", [None, 123, "", "x" * 10_000, ["a"], {"a": 1}])
def test_malformed_challenge_ids(users, challenge_id):
    deps = users
    auth = SoftAuthenticator()
    cid, options = wa.registration_options(deps, "alice")
    response = auth.create(options)
    refused(lambda: wa.register(deps, ALICE, "alice", challenge_id, response))
    wa.register(deps, ALICE, "alice", cid, response)
    cid, options = wa.authentication_options(deps, "alice")
    assertion = auth.get(options)
    assert wa.authenticate(deps, "alice", challenge_id, assertion) is False
    assert wa.authenticate(deps, "alice", cid, assertion) is True


@pytest.mark.parametrize("user_id", [None, 5, "", "no such user!", "x" * 10_000, "alice\x00"])
def test_malformed_user_ids_on_authenticate(users, user_id):
    deps = users
    auth = SoftAuthenticator()
    enrol(deps, auth)
    cid, options = wa.authentication_options(deps, "alice")
    assertion = auth.get(options)
    assert wa.authenticate(deps, user_id, cid, assertion) is False
    cid, options = wa.authentication_options(deps, user_id)  # plausible options, no error
    assert len(options["allowCredentials"]) == 1
    assert wa.authenticate(deps, user_id, cid, assertion) is False


# ---- unknown users (R5) ---------------------------------------------------------------------


def test_options_for_unknown_users_look_like_real_ones(users):
    deps = users
    enrol(deps, SoftAuthenticator())
    _cid, real = wa.authentication_options(deps, "alice")
    for user in ("nobody-x7", "carol", "invalid id!"):
        cid, fake = wa.authentication_options(deps, user)
        assert isinstance(cid, str) and len(cid) == 43
        assert fake.keys() == real.keys()
        assert {k: v for k, v in fake.items() if k not in ("challenge", "allowCredentials")} == {
            k: v for k, v in real.items() if k not in ("challenge", "allowCredentials")}
        [desc] = fake["allowCredentials"]
        assert desc.keys() == real["allowCredentials"][0].keys() and desc["type"] == "public-key"
        assert len(unb64u(desc["id"])) == 64 and len(unb64u(fake["challenge"])) == 32
        # the same answer each time: repeating the request tells nothing
        _cid2, again = wa.authentication_options(deps, user)
        assert again["allowCredentials"] == fake["allowCredentials"]
        assert again["challenge"] != fake["challenge"]
    _c, other = wa.authentication_options(deps, "nobody-y8")
    assert other["allowCredentials"] != wa.authentication_options(deps, "nobody-x7")[1]["allowCredentials"]
    # an unknown identifier is not stored in clear, not even as a challenge subject
    assert "nobody-x7" not in deps.uow.db.dump() and "invalid id!" not in deps.uow.db.dump()
    subjects = {c.subject for c in deps.uow.db.rows(Challenge)}
    assert "carol" in subjects and any(s.startswith("unknown:") for s in subjects)


def test_an_answer_to_a_decoy_challenge_never_succeeds(users):
    deps = users
    cid, decoy = wa.authentication_options(deps, "carol")  # no credential yet: a decoy
    auth = SoftAuthenticator()
    enrol(deps, auth, "carol")
    # carol now has a key and signs exactly the challenge she was sent
    answer = auth.get(decoy, credential=auth.credentials[0])
    assert wa.authenticate(deps, "carol", cid, answer) is False
    assert login(deps, auth, "carol") is True


def test_unknown_user_authenticate_is_false_and_quiet(users):
    deps = users
    auth = SoftAuthenticator()
    enrol(deps, auth)
    cid, options = wa.authentication_options(deps, "nobody-x7")
    answer = auth.get(options, credential=auth.credentials[0])
    before = without_challenges(deps.uow.db.counts())
    assert wa.authenticate(deps, "nobody-x7", cid, answer) is False
    assert without_challenges(deps.uow.db.counts()) == before


# ---- management -----------------------------------------------------------------------------


def test_only_the_holder_registers(users):
    deps = users
    cid, options = wa.registration_options(deps, "alice")
    response = SoftAuthenticator().create(options)
    with pytest.raises(Forbidden):
        wa.register(deps, BOB, "alice", cid, response)
    wa.register(deps, ALICE, "alice", cid, response)  # the challenge was not consumed
    assert len(stored(deps)) == 1


def test_registration_needs_an_active_account(users, account_admin):
    deps = users
    with pytest.raises(NotFound):
        wa.registration_options(deps, "nobody-x7")
    cid, options = wa.registration_options(deps, "alice")
    response = SoftAuthenticator().create(options)
    accounts.suspend(deps, account_admin, "alice")
    with pytest.raises(NotFound):
        wa.registration_options(deps, "alice")
    refused(lambda: wa.register(deps, ALICE, "alice", cid, response))
    assert stored(deps) == []


@pytest.mark.parametrize("name", ["x" * 65, "bad\nname", "tab\there", "\u202eevil", 5])
def test_a_bad_name_is_refused_and_the_challenge_kept(users, name):
    deps = users
    cid, options = wa.registration_options(deps, "alice")
    response = SoftAuthenticator().create(options)
    with pytest.raises(DomainError) as err:
        wa.register(deps, ALICE, "alice", cid, response, name=name)
    assert err.value.code == "webauthn_name_invalid" and stored(deps) == []
    wa.register(deps, ALICE, "alice", cid, response, name="  会社のキー  ")
    assert wa.list_credentials(deps, "alice")[0]["name"] == "会社のキー"


def test_default_names_and_the_credential_limit(users):
    deps = users
    for _ in range(wa.MAX_CREDENTIALS):
        enrol(deps, SoftAuthenticator())
    assert [c["name"] for c in wa.list_credentials(deps, "alice")][:3] == [
        "WebAuthn 1", "WebAuthn 2", "WebAuthn 3"]
    with pytest.raises(DomainError) as err:
        wa.registration_options(deps, "alice")
    assert err.value.code == "webauthn_too_many"


def test_remove_a_credential(users, account_admin):
    deps = users
    first, second = SoftAuthenticator(), SoftAuthenticator()
    enrol(deps, first, name="one")
    enrol(deps, second, name="two")
    listed = wa.list_credentials(deps, "alice")
    assert [c["name"] for c in listed] == ["one", "two"]
    with pytest.raises(Forbidden):
        wa.remove_credential(deps, BOB, "alice", listed[0]["id"])
    with pytest.raises(NotFound):
        wa.remove_credential(deps, ALICE, "alice", "00000000")
    with pytest.raises(NotFound):
        wa.remove_credential(deps, ALICE, "alice", "abc")  # too short to name a credential
    with pytest.raises(NotFound):
        wa.remove_credential(deps, BOB, "bob", listed[0]["id"])  # not bob's
    wa.remove_credential(deps, ALICE, "alice", listed[0]["id"].upper())
    # no longer offered, and refused when presented anyway
    with pytest.raises(RuntimeError, match="NotAllowedError"):
        login(deps, first)
    assert login(deps, first, credential=first.credentials[0]) is False
    assert login(deps, second) is True
    wa.remove_credential(deps, account_admin, "alice", listed[1]["id"])
    assert not wa.has_credentials(deps, "alice")
    assert login(deps, second, credential=second.credentials[0]) is False
    evs = events(deps, "webauthn.removed", "alice")
    assert [(e.actor, e.data["name"], e.data["credential"]) for e in evs] == [
        ("alice", "one", listed[0]["id"]), ("acctadm", "two", listed[1]["id"])]


def test_an_ambiguous_prefix_removes_nothing(users):
    deps = users
    for tail in (b"\x01", b"\x02"):
        cid, options = wa.registration_options(deps, "alice")
        response = SoftAuthenticator().create(options, credential_id=b"\xab\xcd\xef\x01" * 4 + tail)
        wa.register(deps, ALICE, "alice", cid, response)
    with pytest.raises(DomainError) as err:
        wa.remove_credential(deps, ALICE, "alice", "abcdef01")
    assert err.value.code == "webauthn_ambiguous" and len(stored(deps)) == 2
    wa.remove_credential(deps, ALICE, "alice", ("abcdef01" * 4) + "02")
    assert len(stored(deps)) == 1


def test_listing_needs_a_known_account(users):
    with pytest.raises(NotFound):
        wa.list_credentials(users, "nobody-x7")
    assert wa.list_credentials(users, "alice") == []
    assert wa.has_credentials(users, "nobody-x7") is False
    assert wa.has_credentials(users, "invalid id!") is False
