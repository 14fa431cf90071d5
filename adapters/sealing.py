"""AES-256-GCM sealing of secrets at rest (TOTP secrets, palm templates, registration
evidence: R15), with a key ring kept outside the database: the first key seals, every key
opens, so keys can be rotated by putting a new one first and re-sealing at leisure.

The technology behind the `Sealer` port (authsvc/ports.py). Its error, `SealError`, is the
port's and lives in the domain (authsvc/domain/errors.py): this adapter raises it and services
catch it from there, never importing this module. It is re-exported here for callers that
hold the adapter itself (bootstrap, the tests)."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from authsvc.domain.errors import SealError

__all__ = ["SealError", "Sealer"]


class Sealer:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys or any(len(k) != 32 for _, k in keys):
            raise ValueError("the key ring needs at least one 32-byte key")
        self._primary = keys[0][0]
        self._keys = {kid: AESGCM(k) for kid, k in keys}

    def seal(self, plaintext: bytes, aad: bytes) -> str:
        """`aad` binds the value to its place (say b"totp:42"), so a sealed value copied to
        another row does not open there."""
        nonce = os.urandom(12)
        ct = self._keys[self._primary].encrypt(nonce, plaintext, aad)
        return f"v1.{self._primary}.{base64.urlsafe_b64encode(nonce + ct).decode()}"

    def open(self, sealed: str, aad: bytes) -> bytes:
        try:
            version, kid, body = sealed.split(".", 2)
            raw = base64.urlsafe_b64decode(body.encode())
            if version != "v1" or kid not in self._keys or len(raw) < 12 + 16:
                raise SealError("unknown format or key")
            return self._keys[kid].decrypt(raw[:12], raw[12:], aad)
        except (ValueError, InvalidTag) as exc:
            raise SealError("sealed value cannot be opened") from exc

    def needs_reseal(self, sealed: str) -> bool:
        return not sealed.startswith(f"v1.{self._primary}.")
