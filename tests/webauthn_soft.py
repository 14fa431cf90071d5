"""A minimal software WebAuthn authenticator *and* browser for tests.

`SoftAuthenticator.create(options)` / `.get(options)` take the `publicKey` options in the
WebAuthn Level 3 JSON form (what the server hands to `parseCreationOptionsFromJSON` /
`parseRequestOptionsFromJSON`) and return what `PublicKeyCredential.toJSON()` gives in a
browser: base64url strings without padding, attestation "none", ES256 keys (P-256, DER
signatures), a per-credential sign counter. Every field an attacker controls can be overridden
(origin, RP ID, challenge, type, flags, counter, signing key, user handle), so tests can build
exactly the bad response they need. It uses `cryptography` and a hand-written CBOR encoder,
not the server library, so it does not share the server's parsing code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT, ED = 0x01, 0x04, 0x40, 0x80
ES256 = -7


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cbor(value: Any) -> bytes:
    """Canonical CBOR for the few types WebAuthn needs: int, bytes, str, list, dict."""

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for extra, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
            if n < 1 << (8 * struct.calcsize(fmt)):
                return bytes([major << 5 | extra]) + struct.pack(fmt, n)
        raise ValueError("too large")

    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        items = sorted(((cbor(k), cbor(v)) for k, v in value.items()),
                       key=lambda kv: (len(kv[0]), kv[0]))
        return head(5, len(value)) + b"".join(k + v for k, v in items)
    raise TypeError(type(value))


def cose_es256(public_key: ec.EllipticCurvePublicKey) -> dict[int, Any]:
    numbers = public_key.public_numbers()
    return {1: 2, 3: ES256, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}


def client_data(type_: str, challenge: str, origin: str, **extra: Any) -> bytes:
    """clientDataJSON as a browser serialises it (compact, in this member order)."""
    return json.dumps({"type": type_, "challenge": challenge, "origin": origin,
                       "crossOrigin": False, **extra}, separators=(",", ":")).encode()


@dataclass
class SoftCredential:
    credential_id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes | None
    sign_count: int = 0


@dataclass
class SoftAuthenticator:
    """Holds credentials; `counter_step` 0 imitates authenticators without a sign counter."""

    origin: str = "http://localhost:8080"
    counter_step: int = 1
    aaguid: bytes = b"\0" * 16
    credentials: list[SoftCredential] = field(default_factory=list)

    # ---- navigator.credentials.create -------------------------------------------------------

    def create(
        self, options: dict[str, Any], *, origin: str | None = None, rp_id: str | None = None,
        challenge: str | None = None, type_: str = "webauthn.create", flags: int = UP | UV | AT,
        credential_id: bytes | None = None, client_extra: dict[str, Any] | None = None,
        cose_key: dict[int, Any] | None = None,
    ) -> dict[str, Any]:
        """A registration response (RegistrationResponseJSON) for `options`. Refuses, as a
        browser would, when one of the authenticator's credentials is in excludeCredentials.
        `cose_key` declares another public key than the one the authenticator holds."""
        excluded = {unb64u(d["id"]) for d in options.get("excludeCredentials") or []}
        if any(c.credential_id in excluded for c in self.credentials) and credential_id is None:
            raise RuntimeError("InvalidStateError: authenticator already registered")
        assert {"type": "public-key", "alg": ES256} in options["pubKeyCredParams"]
        rp = rp_id or options["rp"]["id"]
        key = ec.generate_private_key(ec.SECP256R1())
        cred_id = credential_id if credential_id is not None else os.urandom(32)
        handle = unb64u(options["user"]["id"])
        cred = SoftCredential(cred_id, key, options["rp"]["id"], handle)
        cose = cbor(cose_key if cose_key is not None else cose_es256(key.public_key()))
        attested = self.aaguid + struct.pack(">H", len(cred_id)) + cred_id + cose
        auth_data = hashlib.sha256(rp.encode()).digest() + struct.pack(">BI", flags, 0) + attested
        cdata = client_data(type_, options["challenge"] if challenge is None else challenge,
                            self.origin if origin is None else origin,
                            **(client_extra or {}))
        att_obj = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        self.credentials.append(cred)
        spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        return {
            "id": b64u(cred_id),
            "rawId": b64u(cred_id),
            "type": "public-key",
            "authenticatorAttachment": "cross-platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64u(cdata),
                "attestationObject": b64u(att_obj),
                "authenticatorData": b64u(auth_data),
                "transports": ["usb"],
                "publicKey": b64u(spki),
                "publicKeyAlgorithm": ES256,
            },
        }

    # ---- navigator.credentials.get ----------------------------------------------------------

    def get(
        self, options: dict[str, Any], *, origin: str | None = None, rp_id: str | None = None,
        challenge: str | None = None, type_: str = "webauthn.get", flags: int = UP | UV,
        counter: int | None = None, sign_with: ec.EllipticCurvePrivateKey | None = None,
        credential: SoftCredential | None = None, user_handle: bytes | str | None = "stored",
        client_extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An assertion (AuthenticationResponseJSON) by the first credential in allowCredentials
        the authenticator holds (or by `credential`, ignoring allowCredentials)."""
        if credential is None:
            allowed = [unb64u(d["id"]) for d in options.get("allowCredentials") or []]
            held = [c for c in self.credentials if c.credential_id in allowed]
            if not held:
                raise RuntimeError("NotAllowedError: no matching credential")
            credential = held[0]
        if counter is None:
            credential.sign_count += self.counter_step
            counter = credential.sign_count
        rp = rp_id or options.get("rpId") or credential.rp_id
        auth_data = hashlib.sha256(rp.encode()).digest() + struct.pack(">BI", flags, counter)
        cdata = client_data(type_, options["challenge"] if challenge is None else challenge,
                            self.origin if origin is None else origin,
                            **(client_extra or {}))
        signature = (sign_with or credential.key).sign(
            auth_data + hashlib.sha256(cdata).digest(), ec.ECDSA(hashes.SHA256()))
        handle = credential.user_handle if user_handle == "stored" else user_handle
        return {
            "id": b64u(credential.credential_id),
            "rawId": b64u(credential.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "cross-platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64u(cdata),
                "authenticatorData": b64u(auth_data),
                "signature": b64u(signature),
                "userHandle": b64u(handle) if isinstance(handle, bytes) else None,
            },
        }
