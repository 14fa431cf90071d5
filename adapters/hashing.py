"""argon2id password hashing with parameters from config, a dummy hash for unknown users,
and transparent re-hashing when the parameters change (R3, R5).

The technology behind the `PasswordHasher` port (authsvc/ports.py); the password's
normalisation before hashing is the domain's (authsvc/domain/passwords.py)."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from authsvc.domain.passwords import normalize


def _encode(password: str) -> bytes:
    # "surrogatepass": a lone surrogate (possible from a JSON body) must give a plain mismatch
    # after the same argon2 work, not a UnicodeEncodeError; valid text encodes as plain UTF-8.
    return normalize(password).encode("utf-8", "surrogatepass")


class Hasher:
    def __init__(
        self,
        time_cost: int,
        memory_cost_kib: int,
        parallelism: int,
        hash_len: int = 32,
        salt_len: int = 16,
    ) -> None:
        self._ph = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            hash_len=hash_len,
            salt_len=salt_len,
            type=Type.ID,
        )
        # Verified against when the account does not exist, so an unknown user costs the
        # same argon2 work as a known one (R5).
        self._dummy = self._ph.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        return self._ph.hash(_encode(password))

    def verify(self, stored: str | None, password: str) -> bool:
        """True when `password` matches `stored`; with no stored hash, burn the same work."""
        try:
            return self._ph.verify(stored or self._dummy, _encode(password)) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._ph.check_needs_rehash(stored)
