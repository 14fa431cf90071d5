"""Shared fixtures. Backends are real: SQLite files and a PostgreSQL database created for the
run. A missing PostgreSQL fails the tests that need it; nothing is skipped silently."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

from adapters.clock import FixedClock
from authsvc.bootstrap import build
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps
from authsvc.settings import Settings, load_settings
from authsvc.store.models import Base
from tests.backends import PG_ADMIN_URL, REDIS_TEST_URL

COMPANY = "防衛産業株式会社"  # the company of the default test contract
# Reads the tests make to check state (not an actor under test): an agency operator sees all.
AGENCY = Actor("agency-check", frozenset({Role.AGENCY_OPERATOR}))

# Cheap argon2 for speed; the rules under test do not depend on the cost.
FAST_ARGON2 = {"time_cost": 1, "memory_cost_kib": 1024, "parallelism": 1}
START = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)


def make_settings(instance_dir: str, url: str = "", **sections: dict) -> Settings:
    overrides: dict = {"paths": {"instance_dir": instance_dir}, "database": {"url": url},
                       "argon2": dict(FAST_ARGON2),
                       # palm vein (the default) plus the possession factors a group may allow
                       "mfa": {"second_factors": ["vein", "totp", "webauthn"]},
                       # R12's terminal proof is off unless a test asks for it: most tests log on
                       # with TOTP or WebAuthn and no terminal agent (tests/*/test_terminal*.py: on)
                       "devices": {"require_terminal": False}}
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_settings(overrides, environ={})


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    name = f"authsvc_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(f"PostgreSQL is required at {PG_ADMIN_URL} (set AUTHSVC_TEST_PG): {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


def _truncate_pg(deps: Deps) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with deps.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database a test runs on: the embedded default (SQLite), and PostgreSQL as well
    where the production shape is the point -- a test or module marked
    `@pytest.mark.backends("sqlite", "postgres")` (contracts of the store, concurrency,
    migrations, tampering straight in the database)."""
    return request.param


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        metafunc.parametrize("backend", marker.args if marker else ("sqlite",), indirect=True)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """The schema migrated once per test run; each test's SQLite database starts as a copy."""
    folder = tmp_path_factory.mktemp("template") / "instance"
    deps = build(make_settings(str(folder)))
    deps.engine.dispose()
    return folder / "authsvc.db"


@pytest.fixture
def make_deps(tmp_path, clock, request) -> Iterator:
    """Build Deps on a backend ("sqlite" or "postgres") with optional config sections."""
    built: list[Deps] = []

    def factory(backend: str = "sqlite", **sections: dict) -> Deps:
        url = request.getfixturevalue("pg_url") if backend == "postgres" else ""
        if backend == "sqlite" and not sections.get("database", {}).get("url"):
            db = tmp_path / "instance" / "authsvc.db"
            if not db.exists():
                db.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(request.getfixturevalue("sqlite_template"), db)
        sections = _with_test_redis(request, sections)
        deps = build(make_settings(str(tmp_path / "instance"), url, **sections), clock=clock)
        if backend == "postgres":
            _truncate_pg(deps)
        built.append(deps)
        return deps

    yield factory
    for deps in built:
        if deps.sequencer is not None:  # its thread must not seal the next test's events
            deps.sequencer.close()
        deps.engine.dispose()


@pytest.fixture
def deps(make_deps, backend) -> Deps:
    """Deps on each real backend in turn (integration tests run on SQLite and PostgreSQL)."""
    return make_deps(backend)


@pytest.fixture
def sqlite_deps(make_deps) -> Deps:
    return make_deps("sqlite")


@pytest.fixture
def operator() -> Actor:
    """An agency operator: contracts, approvals and maintenance for every company."""
    return Actor("ops1", frozenset({Role.AGENCY_OPERATOR}), terminal="console-1", source="127.0.0.1")


@pytest.fixture
def account_admin() -> Actor:
    """The account administrator of the tests' default company (tests/integration/support.py)."""
    return Actor("acctadm", frozenset({Role.ACCOUNT_ADMIN}), terminal="console-2",
                 company=COMPANY)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis (db 15, or one per xdist worker). A Redis that does not answer fails
    the tests that need it."""
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required at {REDIS_TEST_URL} (set AUTHSVC_TEST_REDIS; "
                    f"scripts/test-backends starts it): {exc}")
    finally:
        client.close()
    return REDIS_TEST_URL


def clear_redis(url: str, pattern: str) -> None:
    """Delete the keys matching `pattern` (not FLUSHDB: other runs may share the database)."""
    with redis.Redis.from_url(url) as client:
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)


def _with_test_redis(request: pytest.FixtureRequest, sections: dict) -> dict:
    """make_deps(counters={"backend": "redis"}) / sessions=...: Redis-backed deps use the test
    Redis (redis_service_db) unless the test names its own `redis={"url": ...}`."""
    uses_redis = any(sections.get(name, {}).get("backend") == "redis" for name in ("counters", "sessions"))
    if not uses_redis or "url" in sections.get("redis", {}):
        return sections
    url = request.getfixturevalue("redis_service_db")
    return {**sections, "redis": {**sections.get("redis", {}), "url": url}}


@pytest.fixture
def redis_service_db(redis_url: str) -> str:
    """The test Redis with the service's key namespace (authsvc:*) cleared, once per test, so
    every instance a test builds shares one empty store."""
    clear_redis(redis_url, "authsvc:*")
    return redis_url


@pytest.fixture
def slapd() -> Iterator:
    """A real OpenLDAP slapd on a free loopback port, seeded (tests/ldap_support.py: Slapd,
    seed); its folder and process are gone after the test. slapd missing fails the test."""
    from tests.ldap_support import Slapd, seed
    with Slapd() as server:
        yield seed(server)


@pytest.fixture
def slapd_tls() -> Iterator:
    """As `slapd`, with TLS: StartTLS on `url`, LDAPS on `ldaps_url`, `ca_file`, `wrong_ca_file()`."""
    from tests.ldap_support import Slapd, seed
    with Slapd(tls=True) as server:
        yield seed(server)
