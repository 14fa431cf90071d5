"""Shared fixtures. Backends are real: SQLite files and a PostgreSQL database created for the
run. A missing PostgreSQL fails the tests that need it; nothing is skipped silently."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from adapters.clock import FixedClock
from authsvc.bootstrap import build
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps
from authsvc.settings import Settings, load_settings
from authsvc.store.models import Base

PG_ADMIN_URL = os.environ.get(
    "AUTHSVC_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# Cheap argon2 for speed; the rules under test do not depend on the cost.
FAST_ARGON2 = {"time_cost": 1, "memory_cost_kib": 1024, "parallelism": 1}
START = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)


def make_settings(instance_dir: str, url: str = "", **sections: dict) -> Settings:
    overrides: dict = {"paths": {"instance_dir": instance_dir}, "database": {"url": url},
                       "argon2": dict(FAST_ARGON2)}
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


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_deps(tmp_path, clock, request) -> Iterator:
    """Build Deps on a backend ("sqlite" or "postgres") with optional config sections."""
    built: list[Deps] = []

    def factory(backend: str = "sqlite", **sections: dict) -> Deps:
        url = request.getfixturevalue("pg_url") if backend == "postgres" else ""
        deps = build(make_settings(str(tmp_path / "instance"), url, **sections), clock=clock)
        if backend == "postgres":
            _truncate_pg(deps)
        built.append(deps)
        return deps

    yield factory
    for deps in built:
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
    return Actor("ops1", frozenset({Role.SYSTEM_ADMIN}), terminal="console-1", source="127.0.0.1")


@pytest.fixture
def account_admin() -> Actor:
    return Actor("acctadm", frozenset({Role.ACCOUNT_ADMIN}), terminal="console-2")
