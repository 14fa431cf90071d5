"""The one place that builds the adapters and keys from config. Nothing connects at import."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from adapters.clock import Clock, SystemClock
from authsvc.domain.hashing import Hasher
from authsvc.services import Deps
from authsvc.settings import Settings
from authsvc.store.db import check_current, make_engine, migrate, session_factory
from authsvc.store.uow import UnitOfWork


def instance_key(settings: Settings, name: str, env: str) -> bytes:
    """A 32-byte key from the environment (hex) or the instance folder, created on first use
    with owner-only permissions. Keys live outside the database (R15, R22)."""
    if os.environ.get(env):
        return bytes.fromhex(os.environ[env])
    path = Path(settings.instance_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        key = secrets.token_bytes(32)
        fh.write(key.hex())
    return key


def build(settings: Settings, clock: Clock | None = None, upgrade: bool = True) -> Deps:
    """Services from config. `upgrade` migrates the schema (the embedded default and the CLI);
    without it the schema must already be current (instances behind gunicorn)."""
    engine = make_engine(settings.database_url)
    if upgrade:
        migrate(engine)
    else:
        check_current(engine)
    sessions = session_factory(engine)
    audit_key = instance_key(settings, "audit.key", "AUTHSVC_AUDIT_KEY")
    a = settings.argon2
    hasher = Hasher(a.time_cost, a.memory_cost_kib, a.parallelism, a.hash_len, a.salt_len)
    return Deps(
        settings=settings,
        uow=lambda: UnitOfWork(sessions, audit_key),
        clock=clock or SystemClock(),
        hasher=hasher,
        audit_key=audit_key,
        engine=engine,
    )
