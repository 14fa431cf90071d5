"""The OpenID provider's signing keys as files outside the database: one JSON file a key in a
folder of their own (owner-only), the newest signs, and a replaced key stays in the JWKS until
the tokens it signed have expired. JOSE by joserfc, the JOSE library of Authlib (its OIDC
grants sign with it; `authlib.jose` is deprecated)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import Key, generate_key, import_key

log = logging.getLogger("authsvc.oidc")

# RFC 9864 prefers the fully-specified "Ed25519", which relying parties do not know yet.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

ALGORITHMS: dict[str, tuple[str, Any]] = {  # alg -> (key type, curve or RSA size)
    "ES256": ("EC", "P-256"),
    "EdDSA": ("OKP", "Ed25519"),
    "RS256": ("RSA", 3072),
}
# a retired key stays published this much longer than the token lifetime: clock skew at the RPs
GRACE = timedelta(minutes=5)


@dataclass(frozen=True)
class KeyInfo:
    """One signing key, as an operator may see it: never the key material."""

    kid: str
    alg: str
    created: datetime
    published: bool


@dataclass(frozen=True)
class _Stored:
    kid: str
    alg: str
    created: datetime
    jwk: dict[str, Any]  # the private JWK


class KeyRing:
    """`folder` None keeps the keys in memory (tests). `now` is the clock."""

    def __init__(self, folder: Path | None, alg: str, rotate_days: int, token_minutes: int,
                 now: Callable[[], datetime]) -> None:
        if alg not in ALGORITHMS:
            raise ValueError(f"unsupported signing algorithm {alg!r}")
        self.folder = Path(folder) if folder is not None else None
        self.alg = alg
        self.rotate_after = timedelta(days=rotate_days)
        self.keep_after = timedelta(minutes=token_minutes) + GRACE
        self._now = now
        self._memory: dict[str, _Stored] = {}
        self._memory_secret: dict[str, bytes] = {}
        self._lock = threading.Lock()

    # ---- storage -------------------------------------------------------------------------

    def _load(self) -> list[_Stored]:
        """Every key, oldest first."""
        if self.folder is None:
            found = list(self._memory.values())
        else:
            found = []
            for path in self.folder.glob("*.json") if self.folder.is_dir() else ():
                try:
                    raw = json.loads(path.read_text(encoding="utf-8"))
                    found.append(_Stored(raw["kid"], raw["alg"], datetime.fromisoformat(raw["created"]),
                                         raw["jwk"]))
                except (OSError, ValueError, KeyError, TypeError):
                    log.warning("oidc: unreadable signing key file %s skipped", path.name)
        return sorted(found, key=lambda k: (k.created, k.kid))

    def _save(self, key: _Stored) -> None:
        if self.folder is None:
            self._memory[key.kid] = key
            return
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = self.folder / f"{key.kid}.json"
        partial = self.folder / f"{key.kid}.json.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"kid": key.kid, "alg": key.alg, "created": key.created.isoformat(),
                       "jwk": key.jwk}, fh)
        os.replace(partial, final)  # other processes never read half a key

    def _new(self) -> _Stored:
        keys = self._load()
        now = self._now()
        if keys and now <= keys[-1].created:  # the newest signs: never tie with the one it replaces
            now = keys[-1].created + timedelta(microseconds=1)
        kid = f"{now:%Y%m%d}-{secrets.token_hex(6)}"
        kty, size = ALGORITHMS[self.alg]
        key: Key = generate_key(kty, size, parameters={"kid": kid, "alg": self.alg, "use": "sig"},
                                private=True)
        stored = _Stored(kid, self.alg, now, dict(key.as_dict(private=True)))
        self._save(stored)
        log.info("oidc: signing key %s (%s) created", kid, self.alg)
        return stored

    def _published(self, keys: list[_Stored], now: datetime) -> list[bool]:
        """The newest key, and each older one until its successor has been signing for longer
        than a token lives (plus GRACE)."""
        return [i == len(keys) - 1 or now - keys[i + 1].created < self.keep_after
                for i in range(len(keys))]

    def _current(self) -> _Stored:
        with self._lock:
            keys = self._load()
            newest = keys[-1] if keys else None
            if (newest is None or newest.alg != self.alg
                    or self._now() - newest.created >= self.rotate_after):
                newest = self._new()
            return newest

    # ---- the port --------------------------------------------------------------------------

    def current(self) -> KeyInfo:
        """The key that signs now: created on first use, replaced when `rotate_days` old or when
        the configured algorithm changed."""
        k = self._current()
        return KeyInfo(k.kid, k.alg, k.created, True)

    def rotate(self) -> KeyInfo:
        """A new key signs from now on; the old one stays published until its tokens expire."""
        with self._lock:
            k = self._new()
        return KeyInfo(k.kid, k.alg, k.created, True)

    def inventory(self) -> list[KeyInfo]:
        """Every key kept, newest first, and whether the JWKS publishes it."""
        keys = self._load()
        flags = self._published(keys, self._now())
        return [KeyInfo(k.kid, k.alg, k.created, p) for k, p in reversed(list(zip(keys, flags, strict=True)))]

    def published(self) -> list[dict[str, Any]]:
        """The public JWKs still needed (the JWKS), newest first: no private parameter ever."""
        self._current()  # a JWKS is never empty
        keys = self._load()
        flags = self._published(keys, self._now())
        return [dict(import_key(k.jwk).as_dict(private=False))
                for k, p in reversed(list(zip(keys, flags, strict=True))) if p]

    def sign(self, claims: Mapping[str, Any], typ: str = "JWT") -> str:
        """A compact JWS (a JWT) of `claims` under the current key, its `kid` in the header."""
        k = self._current()
        return jwt.encode({"alg": k.alg, "kid": k.kid, "typ": typ}, dict(claims), import_key(k.jwk),
                          algorithms=[k.alg])

    def subject_key(self) -> bytes:
        """The secret that derives the subjects relying parties are given (pairwise ones differ
        per client): made once, kept with the keys, never rotated (a subject must not change)."""
        with self._lock:
            if self.folder is None:
                if "subject" not in self._memory_secret:
                    self._memory_secret["subject"] = secrets.token_bytes(32)
                return self._memory_secret["subject"]
            path = self.folder / "subject.key"
            if not path.exists():
                self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                partial = self.folder / f".subject.{secrets.token_hex(4)}"
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="ascii") as fh:
                    fh.write(secrets.token_hex(32))
                try:
                    os.link(partial, path)  # the first process to make it wins; others read it
                except FileExistsError:
                    pass
                finally:
                    partial.unlink()
            return bytes.fromhex(path.read_text(encoding="ascii").strip())
