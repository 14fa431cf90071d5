"""The device registry (R6, R12) where the database matters: the race of two registrations of
one key, the command line on a real instance, migration 0005. The service's rules over the
in-memory fakes: tests/unit/test_device_service.py."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from authsvc.domain.errors import DomainError
from authsvc.services import devices
from tests.conftest import AGENCY


def new_key() -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private, base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.backends("sqlite", "postgres")  # concurrency: the production shape is the point
def test_parallel_registrations_of_one_key_under_two_ids(deps, operator):
    """The database decides (a unique index on the key's fingerprint): of registrations racing
    with one key under different IDs, exactly one succeeds."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    _, key = new_key()
    ids = [f"RACE-{i}" for i in range(4)]
    start = threading.Barrier(len(ids))

    def register(device_id):
        start.wait(timeout=30)
        try:
            return devices.register(deps, operator, device_id, key).device_id
        except DomainError as exc:
            return exc.code

    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        results = list(pool.map(register, ids))
    winners = [r for r in results if r in ids]
    assert len(winners) == 1, results
    assert sorted(r for r in results if r not in ids) == ["device_key_in_use"] * (len(ids) - 1)
    assert [d.device_id for d in devices.list_devices(deps, AGENCY)] == winners


def test_the_command_line_refuses_a_revoked_key(deps, tmp_path):
    """`authsvc device register T-3B --public-key <T-3's key>` answers the refusal, exit 1."""
    from click.testing import CliRunner

    from authsvc.cli import main

    env = {"AUTHSVC__PATHS__INSTANCE_DIR": deps.settings.paths.instance_dir,
           "AUTHSVC__DATABASE__URL": deps.settings.database_url, "AUTHSVC_LANG": "en"}
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    contract = ["contract", "create", "C-7", "--company", "東和 精機", "--start", "2026-04-01"]
    run(*contract)
    _, key = new_key()
    run("device", "register", "T-3", "--public-key", key, "--company", "東和  精機")
    listed = run("device", "list").output
    assert "T-3\tterminal\tactive\t東和 精機" in listed
    run("device", "revoke", "T-3", "--reason", "lost")
    refused = run("device", "register", "T-3B", "--public-key", key, code=1)
    assert "retired when device T-3 was revoked" in refused.output
    as_json = run("device", "register", "T-3B", "--public-key", key, "--json", code=1)
    assert '"error": "device_key_revoked"' in as_json.output
    run("device", "register", "T-4", "--public-key", new_key()[1], "--company", "no such company", code=1)
    assert "T-3B" not in run("device", "list").output

@pytest.fixture
def empty_engine(backend, tmp_path):
    """An engine on an empty database of the backend (its own PostgreSQL database)."""
    import uuid

    from sqlalchemy import create_engine, text

    from authsvc.store.db import make_engine
    from tests.conftest import PG_ADMIN_URL

    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
        return
    name = f"authsvc_mig_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_migration_0005_keeps_the_oldest_holder_of_a_duplicated_key(empty_engine, caplog):
    """A database from before 0005 may hold a key twice: the revoked T-3's key registered again
    as T-3B, one active key under two IDs. The oldest row keeps the key; newer ones are revoked
    ("duplicate key"), their identifiers released, and the migration says so."""
    import hashlib
    import logging
    from datetime import UTC, datetime, timedelta

    from alembic import command
    from sqlalchemy import insert, select

    from authsvc.store.db import alembic_config
    from authsvc.store.models import Device, Identifier

    command.upgrade(alembic_config(empty_engine), "0004")
    t0 = datetime(2026, 4, 1, tzinfo=UTC)
    k1, k2, k3 = (bytes([n]) * 32 for n in (1, 2, 3))
    rows = [  # (id, device ID, key, status, registered)
        (1, "T-3", k1, "revoked", t0), (2, "T-3B", k1, "active", t0 + timedelta(days=2)),
        (3, "TWIN-A", k2, "active", t0 + timedelta(days=1)),
        (4, "TWIN-B", k2, "suspended", t0 + timedelta(days=3)),
        (5, "SOLO", k3, "active", t0)]
    with empty_engine.begin() as conn:
        for pk, device_id, key, status, at in rows:
            conn.execute(insert(Device.__table__).values(
                id=pk, device_id=device_id, kind="terminal", public_key=key, description="", status=status,
                registered_by="ops", registered_at=at, status_changed_at=at, reason=""))
            conn.execute(insert(Identifier.__table__).values(
                value=device_id.lower(), kind="device", holder_id=None if status == "revoked" else pk,
                assigned_by="ops", assigned_at=at, approved_by="ops", approved_at=at,
                released_at=at if status == "revoked" else None))
    caplog.set_level(logging.WARNING, logger="authsvc.migrations")
    command.upgrade(alembic_config(empty_engine), "head")
    with empty_engine.connect() as conn:
        got = {r.device_id: (r.status, r.reason, r.key_fingerprint) for r in conn.execute(select(
            Device.device_id, Device.status, Device.reason, Device.key_fingerprint))}
        held = {r.value: r.holder_id for r in conn.execute(select(Identifier.value, Identifier.holder_id))}
    fp = {k: hashlib.sha256(k).hexdigest() for k in (k1, k2, k3)}
    assert got == {"T-3": ("revoked", "", fp[k1]), "T-3B": ("revoked", "duplicate key", None),
                   "TWIN-A": ("active", "", fp[k2]), "TWIN-B": ("revoked", "duplicate key", None),
                   "SOLO": ("active", "", fp[k3])}
    assert held == {"t-3": None, "t-3b": None, "twin-a": 3, "twin-b": None, "solo": 5}
    assert "T-3B (key of T-3)" in caplog.text and "TWIN-B (key of TWIN-A)" in caplog.text
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), empty_engine.begin() as conn:  # the index holds from now on
        conn.execute(Device.__table__.update().where(Device.id == 2).values(key_fingerprint=fp[k1]))
