"""Backups and restores as docs/operators.md describes them (issue 16): the database (SQLite
through Python's sqlite3 backup API; PostgreSQL with pg_dump and pg_restore), the keys of the
instance folder and the audit checkpoints outside the database.

- Restored from an older backup while the newer checkpoints are kept, the service works at once
  (accounts, passwords, sealed TOTP secrets) and `audit verify` reports `rolled_back`: the
  anchor outside the database sees that events are gone. An agency operator accepts the
  restore (`audit accept-rollback`), and verification passes from then on.
- A consistent backup (checkpoints copied first, then the database and the keys) restored on a
  new host verifies at once.
- With several instances, each accepts the restore in its own checkpoint folder; a restore
  without its audit key never verifies.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import create_engine, text

from authsvc.bootstrap import build
from authsvc.domain import logon_flow as lf
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, accounts, alerts, audit, logon
from authsvc.services.passwords import change_password
from authsvc.services.sessions import Client
from tests.backends import PG_ADMIN_URL
from tests.conftest import AGENCY, make_settings
from tests.integration.support import (
    CHOSEN,
    active_account,
    add_contract,
    events,
    password_step,
    ready,
    totp_worker,
)

EVERY = {"checkpoint_seconds": 0}  # anchor at every audited action: the rollback is certain
KEYS = ("audit.key", "data.key", "secret.key")  # secret.key exists once the web app has started
INSIDE = Client("T-1", "10.0.0.5")


@pytest.fixture
def agency_operator() -> Actor:
    """Accepting a restored log is maintenance: the agency's alone."""
    return Actor("ops1", frozenset({Role.AGENCY_OPERATOR}))


@pytest.fixture
def rebuild(clock) -> Iterator[Callable[..., Deps]]:
    """`build()` on a restored instance folder, as the service does at its next start (the
    schema is current: no migration is asked for); closed at the end of the test."""
    built: list[Deps] = []

    def factory(instance: Path, url: str = "", **audit_section: str | int) -> Deps:
        settings = make_settings(str(instance), url, audit={**EVERY, **audit_section})
        deps = build(settings, clock=clock, upgrade=False)
        built.append(deps)
        return deps

    yield factory
    for deps in built:
        close(deps)


def close(deps: Deps) -> None:
    """What stopping the service does: the last head anchored, the connections closed."""
    if deps.checkpointer is not None:
        deps.checkpointer.flush()
    if deps.sequencer is not None:
        deps.sequencer.close()
    deps.engine.dispose()


def activity(deps: Deps, operator: Actor, admin: Actor, user: str) -> None:
    """An account of `user` with a chosen password, and a logon's password step."""
    ready(deps, admin, operator, user, CHOSEN[1])
    assert not password_step(deps, user, CHOSEN[1], "T-1", "10.0.0.5").failed


def totp_logon(deps: Deps, user: str, password: str, secret: str) -> logon.State:
    """Password, then the TOTP code of the next time step (each code counts once)."""
    state = logon.begin(deps, user, password, INSIDE)
    if state.failed:
        return state
    deps.clock.advance(seconds=30)
    return logon.totp_step(deps, state.token, pyotp.TOTP(secret).at(deps.clock.now()), INSIDE)


def problem(deps: Deps) -> str | None:
    found = audit.verify(deps).problem
    return None if found is None else found.reason


def head_seq(deps: Deps) -> int:
    audit.seal(deps)
    with deps.uow(read_only=True) as uow:
        head = uow.audit_head()
        return head.seq if head is not None else 0


# ---- the backup, as docs/operators.md gives it -------------------------------------------------


def copy_keys(instance: Path, dest: Path) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in KEYS:
        if (instance / name).exists():
            shutil.copy2(instance / name, dest / name)
            copied.append(name)
    return copied


def sqlite_backup(deps: Deps, dest: Path) -> None:
    """Checkpoints first (so none names an event the database copy lacks), then the database
    with the sqlite3 backup API (a consistent copy while the service writes; WAL included),
    then the keys."""
    shutil.copytree(deps.settings.checkpoint_path, dest / "checkpoints")
    (dest / "instance").mkdir(parents=True)
    source = sqlite3.connect(deps.settings.instance_path / "authsvc.db")
    target = sqlite3.connect(dest / "instance" / "authsvc.db")
    try:
        with target:
            source.backup(target)
    finally:
        source.close()
        target.close()
    assert {"audit.key", "data.key"} <= set(copy_keys(deps.settings.instance_path, dest / "instance"))


def sqlite_restore(backup: Path, instance: Path) -> None:
    """The backup's database and keys into `instance` (emptied first), with the backup API."""
    if instance.exists():
        shutil.rmtree(instance)
    instance.mkdir(parents=True)
    source = sqlite3.connect(backup / "instance" / "authsvc.db")
    target = sqlite3.connect(instance / "authsvc.db")
    try:
        with target:
            source.backup(target)
    finally:
        source.close()
        target.close()
    copy_keys(backup / "instance", instance)


# ---- SQLite, the embedded default -------------------------------------------------------------


def test_a_restore_from_an_older_backup_works_and_the_audit_anchor_sees_the_lost_events(
        tmp_path, make_deps, rebuild, operator, account_admin, agency_operator):
    deps = make_deps("sqlite", audit=EVERY)
    instance = deps.settings.instance_path
    add_contract(deps, operator)
    secret = totp_worker(deps, operator, account_admin, CHOSEN[0])  # kato: password and TOTP
    activity(deps, operator, account_admin, "alice")
    assert problem(deps) is None
    backed_up = head_seq(deps)
    sqlite_backup(deps, tmp_path / "backup")

    # after the backup: a new account, a changed password, more logons
    activity(deps, operator, account_admin, "bob")
    change_password(deps, Actor("alice"), "alice", CHOSEN[2])
    assert totp_logon(deps, "kato", CHOSEN[0], secret).step is lf.Step.DONE
    assert head_seq(deps) > backed_up
    close(deps)  # the service stopped for the restore

    # restored over the old instance folder; the checkpoint folder beside it is kept
    sqlite_restore(tmp_path / "backup", instance)
    restored = rebuild(instance)
    assert restored.settings.checkpoint_path == deps.settings.checkpoint_path

    # the anchor outside the database saw events the restored log does not hold
    result = audit.verify(restored)
    assert result.problem is not None and result.problem.reason == "rolled_back"
    assert result.anchor is not None and result.anchor.seq > backed_up
    # the scheduled verification (`audit verify`, `maintenance run`) alerts the operators' inbox
    assert not audit.checkpoint(restored, agency_operator).ok
    assert "audit_verification_failed" in [a["kind"] for a in alerts.inbox(restored, AGENCY)]

    # the service works on the restored data: the backup's accounts and passwords, its keys
    assert {a.user_id for a in accounts.list_accounts(restored, AGENCY)} >= {"kato", "alice"}
    assert not password_step(restored, "alice", CHOSEN[1]).failed  # the password of the backup
    assert password_step(restored, "alice", CHOSEN[2]).failed      # the later change is gone
    assert password_step(restored, "bob", CHOSEN[1]).failed        # so is the later account
    # the TOTP secret, sealed with data.key, opens: the key ring came back with the database
    assert totp_logon(restored, "kato", CHOSEN[0], secret).step is lf.Step.DONE
    # recording went on after the restore: behind its anchor, or past it on another branch
    assert problem(restored) in ("rolled_back", "diverged")

    # the operators accept the restore: audited, and verification binds to the restored chain
    lost = audit.accept_rollback(restored, agency_operator, "restore test")
    assert lost["found"] in ("rolled_back", "diverged") and lost["anchored_seq"] > backed_up
    assert problem(restored) is None
    accepted = events(restored, "audit.rollback_accepted")
    assert [(e.actor, e.result, e.data["reason"]) for e in accepted] == [("ops1", "alert", "restore test")]
    activity(restored, operator, account_admin, "carol")  # the service goes on, anchored again
    assert problem(restored) is None
    assert audit.checkpoint(restored, agency_operator).ok


def test_a_consistent_backup_restored_on_a_new_host_verifies_at_once(
        tmp_path, make_deps, rebuild, operator, account_admin):
    """Database, keys and checkpoints from one backup (the whole host lost): nothing is
    behind its anchor, so verification passes without an acceptance."""
    deps = make_deps("sqlite", audit=EVERY)
    add_contract(deps, operator)
    secret = totp_worker(deps, operator, account_admin, CHOSEN[0])
    activity(deps, operator, account_admin, "alice")
    issued = active_account(deps, account_admin, operator, "newbie")  # still on its initial password
    sqlite_backup(deps, tmp_path / "backup")
    close(deps)

    host = tmp_path / "new-host"
    sqlite_restore(tmp_path / "backup", host / "instance")
    shutil.copytree(tmp_path / "backup" / "checkpoints", host / "instance-checkpoints")
    restored = rebuild(host / "instance")
    assert restored.settings.checkpoint_path.resolve() == (host / "instance-checkpoints").resolve()

    assert problem(restored) is None
    assert audit.verify(restored).anchor is not None  # anchored by the copied checkpoints
    assert not password_step(restored, "alice", CHOSEN[1]).failed
    assert password_step(restored, "newbie", issued.initial_password).step is lf.Step.CHANGE_PASSWORD
    assert totp_logon(restored, "kato", CHOSEN[0], secret).step is lf.Step.DONE
    assert problem(restored) is None


def test_a_restore_without_its_audit_key_does_not_verify(tmp_path, make_deps, rebuild, operator,
                                                          account_admin):
    """The keys are part of the backup: with a new audit key the restored log does not verify
    (and cannot be made to: the audit key cannot be replaced without re-signing the log)."""
    deps = make_deps("sqlite", audit=EVERY)
    add_contract(deps, operator)
    activity(deps, operator, account_admin, "alice")
    sqlite_backup(deps, tmp_path / "backup")
    close(deps)

    host = tmp_path / "new-host"
    sqlite_restore(tmp_path / "backup", host / "instance")
    (host / "instance" / "audit.key").unlink()  # the key was not restored: a new one is made
    restored = rebuild(host / "instance")
    found = audit.verify(restored).problem
    assert found is not None and found.reason in ("forged", "head")


def test_each_instance_accepts_the_restore_in_its_own_checkpoint_folder(
        tmp_path, make_deps, rebuild, operator, account_admin, agency_operator):
    """Two instances on one database, each anchoring to a checkpoint folder of its own: the
    acceptance writes its `rollback` checkpoint where it runs, so it is run on each instance
    that reports the rollback (docs/operators.md)."""
    deps = make_deps("sqlite", audit=EVERY)
    instance = deps.settings.instance_path
    second = rebuild(instance, checkpoint_dir=str(tmp_path / "node2-checkpoints"))
    add_contract(deps, operator)
    activity(deps, operator, account_admin, "alice")
    sqlite_backup(deps, tmp_path / "backup")
    activity(second, operator, account_admin, "bob")  # both folders anchor past the backup
    activity(deps, operator, account_admin, "carol")
    close(second)
    close(deps)

    sqlite_restore(tmp_path / "backup", instance)
    first = rebuild(instance)
    second = rebuild(instance, checkpoint_dir=str(tmp_path / "node2-checkpoints"))
    assert problem(first) == "rolled_back" and problem(second) == "rolled_back"
    audit.accept_rollback(first, agency_operator, "restore test, instance 1")
    assert problem(first) is None
    assert problem(second) in ("rolled_back", "diverged")  # its own folder still binds it
    audit.accept_rollback(second, agency_operator, "restore test, instance 2")
    assert problem(first) is None and problem(second) is None


# ---- PostgreSQL: pg_dump and pg_restore -------------------------------------------------------


def libpq(url: str) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore take it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def new_database() -> Iterator[str]:
    """An empty PostgreSQL database to restore into, dropped at the end."""
    name = f"authsvc_restore_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_postgresql_restored_with_pg_restore_into_a_new_database(
        tmp_path, make_deps, rebuild, new_database, operator, account_admin, agency_operator):
    deps = make_deps("postgres", audit=EVERY)
    add_contract(deps, operator)
    activity(deps, operator, account_admin, "alice")
    backed_up = head_seq(deps)  # sealed: the sequencer has chained every committed event
    dump = tmp_path / "authsvc.dump"
    subprocess.run(["pg_dump", "--format=custom", "--no-owner", f"--file={dump}",
                    libpq(deps.settings.database_url)], check=True, capture_output=True, timeout=120)
    copy_keys(deps.settings.instance_path, tmp_path / "backup" / "instance")

    activity(deps, operator, account_admin, "bob")
    assert head_seq(deps) > backed_up
    checkpoints = deps.settings.checkpoint_path
    close(deps)

    # a new database on the same host (or a new server); the instance's keys; the checkpoint
    # folder of the instance kept where it is
    subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={libpq(new_database)}",
                    str(dump)], check=True, capture_output=True, timeout=120)
    instance = tmp_path / "restored" / "instance"
    copy_keys(tmp_path / "backup" / "instance", instance)
    restored = rebuild(instance, new_database, checkpoint_dir=str(checkpoints))

    assert not password_step(restored, "alice", CHOSEN[1]).failed
    assert password_step(restored, "bob", CHOSEN[1]).failed
    assert problem(restored) == "rolled_back"
    audit.accept_rollback(restored, agency_operator, "restore test (PostgreSQL)")
    assert problem(restored) is None
    activity(restored, operator, account_admin, "carol")
    assert problem(restored) is None
