"""The one place that builds the adapters and keys from config. Nothing connects at import."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

import redis
from sqlalchemy.exc import ArgumentError

from adapters.blocklist import BadPasswordsBlocklist
from adapters.checkpoints import Checkpointer, FileCheckpoints
from adapters.clock import SystemClock
from adapters.counters import RedisCounters
from adapters.directory import LdapDirectory, load_sources
from adapters.directory.config import DirectoryConfigError
from adapters.hashing import Hasher
from adapters.holidays import JpHolidays
from adapters.oidc_keys import KeyRing
from adapters.sealing import Sealer
from adapters.sessions import RedisSessions
from adapters.vein import LshReplayCheck, open_reader
from authsvc.faults import safe_url
from authsvc.ports import Clock, Counters, SessionStore
from authsvc.services import Deps
from authsvc.settings import ConfigError, Settings
from authsvc.store.audit_chain import Sequencer
from authsvc.store.counters import SqlCounters
from authsvc.store.db import check_current, make_engine, migrate, session_factory
from authsvc.store.sessions import SqlSessions
from authsvc.store.uow import UnitOfWork

KEY_BYTES = 32  # the audit, CSRF and data keys: 256 bits


def instance_key(settings: Settings, name: str, env: str) -> bytes:
    """A 32-byte key from the environment (hex) or the instance folder, created on first use
    with owner-only permissions. Keys live outside the database (R15, R22)."""
    if os.environ.get(env):
        return key_from_hex(os.environ[env], env)
    path = Path(settings.instance_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_from_hex(path.read_text().strip(), str(path))
    with os.fdopen(fd, "w") as fh:
        key = secrets.token_bytes(32)
        fh.write(key.hex())
    return key


def build(settings: Settings, clock: Clock | None = None, upgrade: bool = True) -> Deps:
    """Services from config. `upgrade` migrates the schema (the embedded default and the CLI);
    without it the schema must already be current (instances behind gunicorn)."""
    try:
        engine = make_engine(settings.database_url)
    except (ArgumentError, ImportError) as exc:  # an unknown scheme or a driver not installed
        raise ConfigError(f"config: database.url is not a database URL this service can use "
                          f"({safe_url(settings.database_url)}: {type(exc).__name__})") from None
    if upgrade:
        migrate(engine)
    else:
        check_current(engine)
    sessions = session_factory(engine)
    audit_key = instance_key(settings, "audit.key", "AUTHSVC_AUDIT_KEY")
    if os.environ.get("AUTHSVC_SECRET_KEY"):  # the web's key: a bad one stops every start, the CLI's too
        key_from_hex(os.environ["AUTHSVC_SECRET_KEY"], "AUTHSVC_SECRET_KEY")
    a = settings.argon2
    hasher = Hasher(a.time_cost, a.memory_cost_kib, a.parallelism, a.hash_len, a.salt_len)
    clock = clock or SystemClock()
    redis_client = None
    if "redis" in (settings.counters.backend, settings.sessions.backend):
        try:
            redis_client = redis.Redis.from_url(settings.redis.url, socket_timeout=5,
                                                socket_connect_timeout=5)  # connects on first use
        except ValueError as exc:
            raise ConfigError(f"config: redis.url {safe_url(settings.redis.url)!r} is not a Redis URL "
                              f"({exc})") from None
    pending = settings.lockout.pending_seconds
    counters: Counters = (RedisCounters(redis_client, f"{settings.redis.prefix}c:", pending)
                          if redis_client and settings.counters.backend == "redis"
                          else SqlCounters(sessions, pending))
    session_store: SessionStore = (RedisSessions(redis_client, settings.redis.prefix) if redis_client and
                                   settings.sessions.backend == "redis"
                                   else SqlSessions(sessions, clock.now))
    checkpointer = Checkpointer(FileCheckpoints(settings.checkpoint_path, audit_key),
                                settings.audit.checkpoint_seconds)
    sequencer = Sequencer(sessions, audit_key, checkpointer, inline=engine.dialect.name == "sqlite")
    return Deps(
        settings=settings,
        uow=lambda read_only=False, snapshot=False: UnitOfWork(sessions, audit_key, read_only,
                                                              checkpointer, snapshot, sequencer),
        checkpointer=checkpointer,
        sequencer=sequencer,
        clock=clock,
        hasher=hasher,
        audit_key=audit_key,
        engine=engine,
        counters=counters,
        sessions=session_store,
        sealer=Sealer(data_keys(settings)),
        vein=open_reader(settings.vein.reader, unit_id=None, min_quality=settings.vein.min_quality),
        replay=LshReplayCheck(audit_key),
        holidays=JpHolidays(),
        blocklist=BadPasswordsBlocklist(),
        signing_keys=signing_keys(settings, clock),
        directories=directories(settings),
    )


def directories(settings: Settings) -> Callable[[str], LdapDirectory | None]:
    """The directory of a company, as `directory.sources_file` configures it (checked now, at
    start-up: a broken file stops the service rather than the first sync)."""
    try:
        config = load_sources(settings.directory.sources_file)
    except DirectoryConfigError as exc:
        raise ConfigError(f"config: {exc}") from None

    def of(company: str) -> LdapDirectory | None:
        source = config.of(company)
        return LdapDirectory(source) if source is not None else None

    return of


def signing_keys(settings: Settings, clock: Clock) -> KeyRing:
    """The OpenID provider's key ring in `oidc.key_dir` (a key is made on first use)."""
    o = settings.oidc
    return KeyRing(settings.oidc_key_path, o.signing_alg, o.rotate_days, o.id_token_minutes, clock.now)


def data_keys(settings: Settings) -> list[tuple[str, bytes]]:
    """The key ring that seals secrets at rest: AUTHSVC_DATA_KEYS="k2:hex,k1:hex" (first seals,
    all open), or instance/data.key with one `kid:hex` per line, created on first use."""
    raw = os.environ.get("AUTHSVC_DATA_KEYS")
    if not raw:
        path = Path(settings.instance_path) / "data.key"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(f"k1:{secrets.token_bytes(32).hex()}\n")
        except FileExistsError:
            pass
        raw = ",".join(path.read_text().split())
    where = "AUTHSVC_DATA_KEYS" if os.environ.get("AUTHSVC_DATA_KEYS") else \
        str(Path(settings.instance_path) / "data.key")
    ring = []
    for item in raw.split(","):
        kid, sep, hexkey = item.strip().partition(":")
        if not sep or not kid:
            raise ConfigError(f"config: {where} must be a list of kid:hex keys "
                              '(e.g. "k2:<64 hex digits>,k1:<64 hex digits>")')
        ring.append((kid, key_from_hex(hexkey, f"{where} ({kid})", exact=True)))
    return ring


def key_from_hex(value: str, where: str, exact: bool = False) -> bytes:
    """A key written as hex: at least (`exact`: exactly) 32 bytes, else a ConfigError naming
    where it came from (never the value)."""
    try:
        key = bytes.fromhex(value.strip())
    except ValueError:
        raise ConfigError(f"config: {where} is not a hex key (64 hex digits: 32 bytes)") from None
    if len(key) < KEY_BYTES or (exact and len(key) != KEY_BYTES):
        need = "exactly" if exact else "at least"
        raise ConfigError(f"config: {where} is {len(key)} bytes; a key needs {need} {KEY_BYTES} "
                          f"bytes ({2 * KEY_BYTES} hex digits)")
    return key
