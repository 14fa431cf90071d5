"""WebAuthn as a second factor (R10, R11, R12) on python-fido2 2.x: registration of security
keys and platform authenticators, assertion checking, listing and removal.

Design:

* **JSON form.** Options are the `publicKey` member in the WebAuthn Level 3 JSON form (binary
  values as unpadded base64url strings), ready for `PublicKeyCredential.parseCreationOptionsFromJSON`
  / `parseRequestOptionsFromJSON`; responses are what `credential.toJSON()` gives. Before fido2
  sees a response it must pass a strict shape check here: a dict of known members, strict
  base64url, bounded sizes (`_LIMITS`), `id == rawId`, `type == "public-key"`; only the members
  fido2 needs are passed on. Anything else is refused without parsing CBOR or JSON.
* **State is server-side.** fido2's state (the challenge) lives in a `challenges` row, purpose
  "webauthn_register" / "webauthn_auth", subject the canonical user ID, expiring after
  `CHALLENGE_MINUTES`. The row is taken (DELETE ... RETURNING) and that deletion is committed
  *before* the response is checked, so a challenge is single-use even when its response is
  refused, and concurrent submissions of one response get exactly one chance (R11).
* **Origins and RP.** The origin in clientDataJSON must be exactly one of
  `settings.webauthn.origins` (string equality: scheme, host and port; no sub-domains, no
  trailing slash), and `crossOrigin` must not be true (no iframes); the RP ID hash must be that
  of `settings.webauthn.rp_id`. User verification is required at registration and at logon.
* **Algorithms.** ES256, EdDSA, ES384, ES512, PS256, RS256 (no secp256k1, no experimental
  ones); a registered key of another algorithm, or a key that does not load, is refused.
  Attestation is "none": any attestation statement a browser still sends is ignored (the
  security key population is not vetted by attestation; R12 devices are vetted elsewhere).
* **User handle.** `user.id` is HMAC-SHA-256(audit key, "webauthn-user:<account row id>"): opaque,
  stable, not the user ID and never reused by a later holder of the identifier. An assertion
  that carries a userHandle must carry this one.
* **Sign counter.** A counter that does not increase, when the stored or the received one is
  non-zero, means a cloned authenticator: refused and audited "webauthn.counter_regressed"
  (the credential stays registered; an operator decides). Counter and last use are updated
  under a row lock, so two assertions cannot both move the counter past each other.
* **Unknown users (R5).** `authentication_options` for an unknown identifier, an account that is
  not active, or an account without credentials answers with the same members and one
  credential descriptor of 64 bytes derived from HMAC(audit key, subject): stable across calls,
  so repeating the request does not tell real from invented. Its challenge row (subject: the
  canonical ID, or the keyed `unknown:` pseudonym so unknown IDs are never stored in clear) is
  marked as a decoy and holds a different random challenge than the one sent: it can never
  succeed, even if the account registers a credential meanwhile.
* **Who may act.** Registration is the account holder's own (the actor's id is the user ID);
  removal is the holder's or an account manager's (`Perm.MANAGE_ACCOUNTS`). `authenticate`
  neither counts attempts nor audits success: the logon state machine does both. Failures of
  `register` are audited "webauthn.register_failed" with a short reason.
* **Key material** never goes to the audit log or logs: audit details carry the credential name
  and the first 8 bytes of the credential ID in hex.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import unicodedata
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from fido2.cose import ES256, ES384, ES512, PS256, RS256, CoseKey, EdDSA
from fido2.server import Fido2Server
from fido2.utils import websafe_encode
from fido2.webauthn import (
    AttestationConveyancePreference,
    AttestedCredentialData,
    AuthenticationResponse,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialType,
    PublicKeyCredentialUserEntity,
    RegistrationResponse,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from authsvc.domain import identifiers, lockout
from authsvc.domain.calendar import jst_iso
from authsvc.domain.errors import DomainError, Forbidden, NotFound
from authsvc.domain.lifecycle import Status
from authsvc.domain.roles import Actor, Perm
from authsvc.services import Deps, guard
from authsvc.store.models import Account, WebauthnCredential

log = logging.getLogger(__name__)

PURPOSE_REGISTER = "webauthn_register"
PURPOSE_AUTH = "webauthn_auth"
CHALLENGE_MINUTES = 5
TIMEOUT_MS = CHALLENGE_MINUTES * 60 * 1000
MAX_CREDENTIALS = 10
NAME_MAX = 64
ID_PREFIX_BYTES = 8  # what lists and audit details show of a credential ID
ALGORITHMS = (ES256, EdDSA, ES384, ES512, PS256, RS256)
DECOY_ID_BYTES = 64

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_HEX = re.compile(r"[0-9a-fA-F]{8,2048}")
# Upper bounds, in base64url characters, for every binary member of a response.
_LIMITS = {
    "id": 1366,                  # a credential ID has at most 1023 bytes
    "clientDataJSON": 4096,
    "attestationObject": 32768,  # room for a packed attestation with certificates
    "authenticatorData": 4096,
    "signature": 2048,           # RSA-4096 signatures are 683 characters
    "userHandle": 88,            # at most 64 bytes
}
_UV_REQUIRED = UserVerificationRequirement.REQUIRED


class _Refused(Exception):
    """A response failed a check; `reason` is a short code for the audit log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---- helpers ------------------------------------------------------------------------------


def _server(deps: Deps) -> Fido2Server:
    w = deps.settings.webauthn
    allowed = tuple(w.origins)

    def verify_origin(origin: object) -> bool:
        return isinstance(origin, str) and origin in allowed

    server = Fido2Server(
        PublicKeyCredentialRpEntity(name=w.rp_name, id=w.rp_id),
        attestation=AttestationConveyancePreference.NONE,
        verify_origin=verify_origin,
    )
    server.timeout = TIMEOUT_MS
    server.allowed_algorithms = [
        PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY, alg=cls.ALGORITHM)
        for cls in ALGORITHMS
    ]
    return server


def _user_handle(deps: Deps, account_id: int) -> bytes:
    return hmac.new(deps.audit_key, b"webauthn-user:%d" % account_id, hashlib.sha256).digest()


def _decoy_id(deps: Deps, subject: str) -> bytes:
    mac = hmac.new(deps.audit_key, b"webauthn-decoy:" + subject.encode(), hashlib.sha512).digest()
    return mac[:DECOY_ID_BYTES]


def _hex_prefix(credential_id: bytes) -> str:
    return credential_id[:ID_PREFIX_BYTES].hex()


def _json(options: Mapping[str, Any]) -> dict[str, Any]:
    """fido2's Mapping view of the options as plain JSON types (a deep copy)."""
    return dict(json.loads(json.dumps(dict(options))))


def _require_self(actor: Actor, key: str) -> None:
    if actor.id.lower() != key:
        raise Forbidden()


def _active(acc: Account | None) -> bool:
    return acc is not None and acc.status == Status.ACTIVE


def _clean_name(name: object, existing: int) -> str:
    if name is None or name == "":
        return f"WebAuthn {existing + 1}"
    if not isinstance(name, str) or len(name) > 4 * NAME_MAX:
        raise DomainError("webauthn_name_invalid", max_length=NAME_MAX)
    name = unicodedata.normalize("NFC", name).strip()
    if not name:
        return f"WebAuthn {existing + 1}"
    if len(name) > NAME_MAX or any(unicodedata.category(c)[0] == "C" for c in name):
        raise DomainError("webauthn_name_invalid", max_length=NAME_MAX)
    return name


def _b64(value: object, member: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > _LIMITS[member] or not _B64URL.fullmatch(value):
        raise _Refused(f"malformed:{member}")
    if len(value) % 4 == 1:  # not a possible length of unpadded base64
        raise _Refused(f"malformed:{member}")
    return value


def _shape(credential: object, members: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """The response reduced to what fido2 needs, after strict checks of types, base64url and
    sizes; extra members a browser adds (transports, publicKey, ...) are dropped."""
    if not isinstance(credential, Mapping):
        raise _Refused("malformed:credential")
    raw_id = _b64(credential.get("rawId"), "id")
    if credential.get("id") != raw_id or not raw_id:
        raise _Refused("malformed:id")
    if credential.get("type") != "public-key":
        raise _Refused("malformed:type")
    response = credential.get("response")
    if not isinstance(response, Mapping):
        raise _Refused("malformed:response")
    out: dict[str, Any] = {}
    for member in members:
        out[member] = _b64(response.get(member), member)
    for member in optional:
        value = _b64(response.get(member), member, optional=True)
        if value:
            out[member] = value
    extensions = credential.get("clientExtensionResults", {})
    if extensions is not None and not isinstance(extensions, Mapping):
        raise _Refused("malformed:clientExtensionResults")
    return {"id": raw_id, "rawId": raw_id, "type": "public-key", "response": out}


def _check_client_data(client_data: Any) -> None:
    """What fido2 leaves out: a response from a cross-origin iframe is refused."""
    data = json.loads(bytes(client_data))
    if not isinstance(data, Mapping) or data.get("crossOrigin") not in (None, False) \
            or "topOrigin" in data:
        raise _Refused("cross_origin")


def _usable_key(key: CoseKey) -> bool:
    """The algorithm is one we offered, and the key loads (probing it with a dummy signature
    gives InvalidSignature for a good key, another error for a broken one)."""
    if type(key).ALGORITHM not in {cls.ALGORITHM for cls in ALGORITHMS}:
        return False
    try:
        key.verify(b"webauthn key probe", b"\x30\x06\x02\x01\x01\x02\x01\x01")
    except InvalidSignature:
        return True
    except Exception:
        return False
    return False  # a dummy signature verified: not a real key


def _take(deps: Deps, cid: object, purpose: str, subject: str) -> dict[str, Any] | None:
    """Consume the challenge in its own committed transaction: single use whatever follows."""
    if not isinstance(cid, str):
        return None
    with deps.uow() as uow:
        data = uow.take_challenge(cid, purpose, subject, deps.clock.now())
        uow.commit()
    return data


# ---- registration -------------------------------------------------------------------------


def registration_options(deps: Deps, user_id: str) -> tuple[str, dict[str, Any]]:
    """Options for `navigator.credentials.create` (the `publicKey` member, JSON form) and the id
    of the challenge that holds fido2's state. The account must exist and be active."""
    key = identifiers.canonical(user_id)
    now = deps.clock.now()
    server = _server(deps)
    with deps.uow() as uow:
        acc = uow.account(key)
        if not _active(acc):
            raise NotFound("account_not_found", user_id=user_id)
        assert acc is not None
        existing = uow.credentials.webauthn_of(acc.id)
        if len(existing) >= MAX_CREDENTIALS:
            raise DomainError("webauthn_too_many", max=MAX_CREDENTIALS)
        options, state = server.register_begin(
            PublicKeyCredentialUserEntity(
                id=_user_handle(deps, acc.id), name=acc.user_id, display_name=acc.person.name),
            [PublicKeyCredentialDescriptor(type=PublicKeyCredentialType.PUBLIC_KEY, id=c.credential_id)
             for c in existing],
            resident_key_requirement=ResidentKeyRequirement.DISCOURAGED,
            user_verification=_UV_REQUIRED,
        )
        cid = uow.put_challenge(PURPOSE_REGISTER, key,
                                {"challenge": state["challenge"], "account_id": acc.id},
                                now + timedelta(minutes=CHALLENGE_MINUTES))
        uow.commit()
    return cid, _json(options["publicKey"])


def _verify_registration(deps: Deps, state: dict[str, Any], credential: object) -> AttestedCredentialData:
    shaped = _shape(credential, ("clientDataJSON", "attestationObject"))
    try:
        parsed = RegistrationResponse.from_dict(shaped)
    except Exception:
        raise _Refused("malformed:parse") from None
    _check_client_data(parsed.response.client_data)
    try:
        auth_data = _server(deps).register_complete(
            {"challenge": state["challenge"], "user_verification": _UV_REQUIRED}, parsed)
    except Exception as exc:
        raise _Refused("rejected:" + str(exc)[:80]) from None
    cred = auth_data.credential_data
    if cred is None or not auth_data.is_attested():
        raise _Refused("no_credential_data")
    if not hmac.compare_digest(cred.credential_id, parsed.raw_id):
        raise _Refused("id_mismatch")
    if not _usable_key(cred.public_key):
        raise _Refused("key_unusable")
    return cred


def register(
    deps: Deps, actor: Actor, user_id: str, challenge_id: str, credential: dict[str, Any],
    name: str = "",
) -> None:
    """Check the response to `registration_options` and store the credential. Any failure
    (bad, replayed or expired challenge, wrong origin or RP, malformed JSON, a credential ID
    already registered) is DomainError("webauthn_invalid"); a bad name is
    DomainError("webauthn_name_invalid") and leaves the challenge usable."""
    key = identifiers.canonical(user_id)
    _require_self(actor, key)
    now = deps.clock.now()
    with deps.uow(read_only=True) as uow:
        acc = uow.account(key)
        account_id = acc.id if acc is not None else None
        count = len(uow.credentials.webauthn_of(acc.id)) if acc is not None else 0
    name = _clean_name(name, count)  # before the challenge is taken: the user may correct it
    state = _take(deps, challenge_id, PURPOSE_REGISTER, key)
    try:
        if state is None:
            raise _Refused("challenge")
        if account_id is None or state.get("account_id") != account_id:
            raise _Refused("account")
        cred = _verify_registration(deps, state, credential)
    except _Refused as refused:
        _register_failed(deps, actor, key, refused.reason)
        raise DomainError("webauthn_invalid") from None
    cred_hex = _hex_prefix(cred.credential_id)
    try:
        with deps.uow() as uow:
            acc = uow.account(key, lock=True)
            if not _active(acc) or acc is None or acc.id != state["account_id"]:
                raise _Refused("account")
            if len(uow.credentials.webauthn_of(acc.id)) >= MAX_CREDENTIALS:
                raise _Refused("too_many")
            if not uow.credentials.add_webauthn(WebauthnCredential(
                    account_id=acc.id, credential_id=cred.credential_id, credential_data=bytes(cred),
                    sign_count=0, name=name, created_at=now, last_used_at=None)):
                raise _Refused("duplicate")  # registered before, or concurrently
            uow.audit(now, actor, "webauthn.registered", acc.user_id, name=name, credential=cred_hex,
                      alg=type(cred.public_key).ALGORITHM)
            uow.commit()
    except _Refused as refused:
        _register_failed(deps, actor, key, refused.reason)
        raise DomainError("webauthn_invalid") from None


def _register_failed(deps: Deps, actor: Actor, key: str, reason: str) -> None:
    with deps.uow() as uow:
        uow.audit(deps.clock.now(), actor, "webauthn.register_failed", key, "failed",
                  reason=reason)
        uow.commit()


# ---- authentication -----------------------------------------------------------------------


def authentication_options(deps: Deps, user_id: str) -> tuple[str, dict[str, Any]]:
    """Options for `navigator.credentials.get` (the `publicKey` member, JSON form) and the id
    of the challenge. An unknown or inactive account, or one without credentials, gets options
    of the same shape with an invented descriptor and a challenge that never succeeds (R5)."""
    now = deps.clock.now()
    server = _server(deps)
    with deps.uow() as uow:
        key = identifiers.canonical_or_none(user_id)
        acc = uow.account(key) if key else None
        creds = uow.credentials.webauthn_of(acc.id) if acc is not None and _active(acc) else []
        if acc is None:
            # never store an unknown identifier in clear (decision 15)
            subject = lockout.throttle_key(str(user_id), deps.audit_key, lambda _k: False)
        else:
            subject = key or ""
        decoy = not creds
        ids = [c.credential_id for c in creds] or [_decoy_id(deps, subject)]
        options, state = server.authenticate_begin(
            [PublicKeyCredentialDescriptor(type=PublicKeyCredentialType.PUBLIC_KEY, id=i) for i in ids],
            user_verification=_UV_REQUIRED,
        )
        data: dict[str, Any] = {"challenge": state["challenge"], "account_id": acc.id if acc else None}
        if decoy:  # the challenge sent out is not the one kept: nothing can answer it
            data = {"challenge": websafe_encode(secrets.token_bytes(32)), "account_id": None,
                    "decoy": True}
        cid = uow.put_challenge(PURPOSE_AUTH, subject, data, now + timedelta(minutes=CHALLENGE_MINUTES))
        uow.commit()
    return cid, _json(options["publicKey"])


def authenticate(
    deps: Deps, user_id: str, challenge_id: str, credential: dict[str, Any],
    actor: Actor | None = None,
) -> bool:
    """True iff `credential` is a valid assertion, by one of the account's credentials, for the
    challenge `challenge_id` (consumed whatever the outcome). Never raises for bad input.
    `actor` (terminal, source) is only used to audit a regressed sign counter."""
    key = identifiers.canonical_or_none(user_id)
    if key is None:
        return False
    state = _take(deps, challenge_id, PURPOSE_AUTH, key)
    if state is None or state.get("decoy") or state.get("account_id") is None:
        return False
    try:
        shaped = _shape(credential, ("clientDataJSON", "authenticatorData", "signature"),
                        optional=("userHandle",))
        parsed = AuthenticationResponse.from_dict(shaped)
        _check_client_data(parsed.response.client_data)
    except Exception:
        return False
    now = deps.clock.now()
    with deps.uow() as uow:
        acc = uow.account(key)
        if not _active(acc) or acc is None or acc.id != state["account_id"]:
            return False
        handle = parsed.response.user_handle
        if handle is not None and not hmac.compare_digest(handle, _user_handle(deps, acc.id)):
            return False
        rows = {r.credential_id: r for r in uow.credentials.webauthn_of(acc.id)}
        try:
            stored = [AttestedCredentialData(r.credential_data) for r in rows.values()]
            matched = _server(deps).authenticate_complete(
                {"challenge": state["challenge"], "user_verification": _UV_REQUIRED}, stored, parsed)
        except Exception:
            return False
        row = uow.credentials.webauthn_for_use(rows[matched.credential_id].id)
        if row is None:  # removed meanwhile
            return False
        received = parsed.response.authenticator_data.counter
        if (received or row.sign_count) and received <= row.sign_count:
            uow.audit(now, actor or Actor(key), "webauthn.counter_regressed", acc.user_id, "refused",
                      credential=_hex_prefix(row.credential_id), name=row.name,
                      stored=row.sign_count, received=received)
            uow.commit()
            log.warning("WebAuthn sign counter did not increase for %s (possible clone)", acc.user_id)
            return False
        row.sign_count = received
        row.last_used_at = now
        uow.commit()
    return True


# ---- management ---------------------------------------------------------------------------


def has_credentials(deps: Deps, user_id: str) -> bool:
    key = identifiers.canonical_or_none(user_id)
    if key is None:
        return False
    with deps.uow(read_only=True) as uow:
        acc = uow.account(key)
        return acc is not None and bool(uow.credentials.webauthn_of(acc.id))


def list_credentials(deps: Deps, user_id: str) -> list[dict[str, Any]]:
    """The account's credentials, oldest first: id (hex of the first 8 bytes of the credential
    ID, what `remove_credential` takes), name, created_at and last_used_at (JST ISO or None)."""
    key = identifiers.canonical(user_id)
    with deps.uow(read_only=True) as uow:
        acc = uow.account(key)
        if acc is None:
            raise NotFound("account_not_found", user_id=user_id)
        return [{
            "id": _hex_prefix(c.credential_id),
            "name": c.name,
            "created_at": jst_iso(c.created_at),
            "last_used_at": jst_iso(c.last_used_at) if c.last_used_at else None,
        } for c in uow.credentials.webauthn_of(acc.id)]


@guard.audited("webauthn.remove")
def remove_credential(deps: Deps, actor: Actor, user_id: str, credential_hex_prefix: str) -> None:
    """Remove the one credential of the account whose ID starts with the given hex (at least 8
    digits); the holder or an account manager. None matches: NotFound("webauthn_not_found");
    several: DomainError("webauthn_ambiguous")."""
    key = identifiers.canonical(user_id)
    if actor.id.lower() != key:
        actor.require(Perm.MANAGE_ACCOUNTS)
    prefix = credential_hex_prefix if isinstance(credential_hex_prefix, str) else ""
    if not _HEX.fullmatch(prefix):
        raise NotFound("webauthn_not_found")
    prefix = prefix.lower()
    now = deps.clock.now()
    with deps.uow() as uow:
        acc = uow.account(key, lock=True)
        if acc is None:
            raise NotFound("account_not_found", user_id=user_id)
        if actor.id.lower() != key:  # an account manager of the holder's company
            guard.check(actor, Perm.MANAGE_ACCOUNTS, acc.contract.company, "account_not_found",
                        user_id=user_id)
        found = [c for c in uow.credentials.webauthn_of(acc.id, lock=True)
                 if c.credential_id.hex().startswith(prefix)]
        if not found:
            raise NotFound("webauthn_not_found")
        if len(found) > 1:
            raise DomainError("webauthn_ambiguous")
        cred = found[0]
        uow.credentials.remove_webauthn(cred)
        uow.audit(now, actor, "webauthn.removed", acc.user_id, name=cred.name,
                  credential=_hex_prefix(cred.credential_id))
        uow.commit()

