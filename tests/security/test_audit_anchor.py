"""The audit chain's anchor outside the database ([5 of 12] items 1 and 2): erasing the whole
log, writing a saved head back over a truncated log, or restoring the whole database from an
old backup is found by `audit verify`, in the embedded default (SQLite, one process) and on
PostgreSQL with several instances, each with its own checkpoint folder; an erased log stops
every audited action; an operator's acceptance of a legitimate restore is itself audited."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from authsvc.bootstrap import build
from authsvc.cli import main
from authsvc.domain.errors import DomainError, Forbidden
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, accounts, audit
from authsvc.store.uow import AuditUnavailable
from tests.conftest import AGENCY, COMPANY, make_settings
from tests.integration.support import CHOSEN, active_account, add_contract, events, password_step, sql

pytestmark = pytest.mark.backends("sqlite", "postgres")  # the production shape is the point here

EVERY = {"audit": {"checkpoint_seconds": 0}}  # anchor at every audited action


def activity(deps: Deps, actor: Actor, admin: Actor, user: str) -> None:
    active_account(deps, admin, actor, user)
    password_step(deps, user, CHOSEN[1])
    accounts.suspend(deps, admin, user, reason="check")
    audit.seal(deps)  # PostgreSQL: as the sequencer leaves it a moment later


def table(deps: Deps, name: str) -> list[dict]:
    audit.seal(deps)
    with deps.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {name}"))]


def put_back(deps: Deps, saved_events: list[dict], saved_head: list[dict]) -> None:
    """What a restore of the audit tables from a backup (or an attacker with the database)
    leaves: exactly the saved rows, nothing else."""
    with deps.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events"))
        conn.execute(text("DELETE FROM audit_head"))
        for row in saved_events:
            cols = ", ".join(row)
            conn.execute(text(f"INSERT INTO audit_events ({cols}) VALUES "
                              f"({', '.join(':' + c for c in row)})"), row)
        for row in saved_head:
            conn.execute(text("INSERT INTO audit_head (id, seq, hash, mac) VALUES (:id, :seq, :hash, :mac)"),
                         row)


def problem(deps: Deps) -> str | None:
    found = audit.verify(deps).problem
    return None if found is None else found.reason


@pytest.fixture
def agency_operator() -> Actor:
    """Who investigates and accepts a lost or restored log: maintenance is the agency's alone
    (a company's system administrator has no RUN_MAINTENANCE: see below)."""
    return Actor("ops1", frozenset({Role.AGENCY_OPERATOR}))


def test_erasing_the_whole_log_is_found_and_stops_the_service(make_deps, backend, operator,
                                                              account_admin, agency_operator):
    deps = make_deps(backend, **EVERY)
    add_contract(deps, operator)
    activity(deps, operator, account_admin, "alice")
    assert problem(deps) is None
    sql(deps, "DELETE FROM audit_events")
    sql(deps, "DELETE FROM audit_head")
    assert problem(deps) == "rolled_back"  # was: "0 rows, chain intact"
    # no new chain quietly starts at 1: every audited action is refused
    with pytest.raises(AuditUnavailable):
        accounts.resume(deps, account_admin, "alice")
    assert accounts.show(deps, AGENCY, "alice").status == "suspended"
    # the operators investigate, then accept the loss: itself the first event of the new chain
    lost = audit.accept_rollback(deps, agency_operator, "INC-1: log table dropped by mistake")
    assert lost["restored_head"] == 0 and lost["anchored_seq"] > 0
    assert problem(deps) is None
    accounts.resume(deps, account_admin, "alice")
    first = events(deps)[0]
    assert (first.seq, first.action, first.result) == (1, "audit.rollback_accepted", "alert")
    assert first.data["reason"] == "INC-1: log table dropped by mistake"
    assert problem(deps) is None


def test_a_saved_head_written_back_is_found(make_deps, backend, operator, account_admin, agency_operator):
    """Save the head (a backup is enough), let the log grow, delete the events after the saved
    head and write it back: the head's own signature is valid, the anchor is not reached."""
    deps = make_deps(backend, **EVERY)
    add_contract(deps, operator)
    activity(deps, operator, account_admin, "alice")
    saved_events, saved_head = table(deps, "audit_events"), table(deps, "audit_head")
    activity(deps, operator, account_admin, "bob")
    put_back(deps, saved_events, saved_head)
    result = audit.verify(deps)
    assert result.problem is not None and result.problem.reason == "rolled_back"
    assert result.problem.seq == saved_head[0]["seq"] + 1  # the first missing row
    with pytest.raises(Forbidden):
        audit.accept_rollback(deps, Actor("staff1", frozenset({Role.STAFF}), company=COMPANY),
                              "no right")
    with pytest.raises(Forbidden):  # nor a company's system administrator: the agency's alone
        audit.accept_rollback(deps, Actor("sato", frozenset({Role.SYSTEM_ADMIN}), company=COMPANY),
                              "no right")
    assert problem(deps) == "rolled_back"


def test_a_restore_from_an_old_backup_with_activity_after_it_is_found(
        make_deps, backend, operator, account_admin, agency_operator):
    """The whole database restored from an old backup, and the service running on: the chain
    grows past the anchor again, but with other rows (`diverged`), until accepted."""
    deps = make_deps(backend, **EVERY)
    add_contract(deps, operator)
    activity(deps, operator, account_admin, "alice")
    backup = {t: table(deps, t) for t in ("audit_events", "audit_head")}
    activity(deps, operator, account_admin, "bob")
    activity(deps, operator, account_admin, "carol")
    put_back(deps, backup["audit_events"], backup["audit_head"])
    activity(deps, operator, account_admin, "dave")
    activity(deps, operator, account_admin, "erin")
    # the service anchored its new branch (checkpoints at every action here), past the old
    # anchor's sequence: the older checkpoints it contradicts still bind
    assert audit.verify(deps).anchor.seq > backup["audit_head"][0]["seq"]
    assert problem(deps) == "diverged"
    with pytest.raises(DomainError) as refused:
        audit.accept_rollback(deps, agency_operator, "   ")
    assert refused.value.code == "audit_reason_required"
    audit.accept_rollback(deps, agency_operator, "restore after disk failure, ticket 42")
    assert problem(deps) is None
    activity(deps, operator, account_admin, "frank")
    assert problem(deps) is None
    # a second, unaccepted rollback after the acceptance is found again
    saved = {t: table(deps, t) for t in ("audit_events", "audit_head")}
    activity(deps, operator, account_admin, "gina")
    put_back(deps, saved["audit_events"], saved["audit_head"])
    assert problem(deps) == "rolled_back"


def test_the_embedded_default_restored_from_a_copy_of_its_instance_folder(
        tmp_path, make_deps, operator, account_admin):
    """SQLite: the whole instance folder (database and keys) copied aside and copied back. The
    checkpoints live beside it, not in it, so the restore does not take them back too."""
    deps = make_deps("sqlite")  # the default interval; the process's last head is flushed at exit
    instance = deps.settings.instance_path
    assert deps.settings.checkpoint_path.parent == instance.resolve().parent
    assert not deps.settings.checkpoint_path.is_relative_to(instance.resolve())
    add_contract(deps, operator)
    activity(deps, operator, account_admin, "alice")
    deps.engine.dispose()
    shutil.copytree(instance, tmp_path / "backup")
    activity(deps, operator, account_admin, "bob")
    deps.checkpointer.flush()  # what the process does at exit
    deps.engine.dispose()
    shutil.rmtree(instance)
    shutil.copytree(tmp_path / "backup", instance)
    assert problem(deps) == "rolled_back"


def test_every_instance_of_a_postgres_deployment_finds_a_rollback(tmp_path, make_deps, clock,
                                                                   operator, account_admin):
    """Several instances, one PostgreSQL database, each instance its own checkpoint folder (a
    local volume): a rollback of the shared database is found from every one of them."""
    first = make_deps("postgres", **EVERY)
    url = first.settings.database.url
    others = []
    for i in (1, 2):  # the same keys on every instance, as in production
        shutil.copytree(first.settings.instance_path, tmp_path / f"node{i}" / "instance")
        others.append(build(make_settings(str(tmp_path / f"node{i}" / "instance"), url, **EVERY),
                            clock=clock))
    try:
        add_contract(first, operator)
        activity(first, operator, account_admin, "alice")
        saved = {t: table(first, t) for t in ("audit_events", "audit_head")}
        for i, node in enumerate(others):
            activity(node, operator, account_admin, f"user{i}")  # each anchors what it wrote
        assert all(problem(d) is None for d in (first, *others))
        put_back(first, saved["audit_events"], saved["audit_head"])
        for node in others:
            assert problem(node) == "rolled_back"
        # the first instance's own checkpoints reach past the rollback point only if its
        # sequencer happened to seal the others' events (any instance seals every committed
        # event): its folder may or may not see it; the others' always do
        assert problem(first) in (None, "rolled_back")
    finally:
        for node in others:
            node.engine.dispose()


def test_a_forged_or_foreign_checkpoint_line_is_reported(make_deps, operator, account_admin):
    deps = make_deps("sqlite", **EVERY)
    add_contract(deps, operator)
    folder = deps.settings.checkpoint_path
    files = sorted(folder.glob("checkpoints-*.jsonl"))
    assert files
    with files[-1].open("a") as fh:
        fh.write('{"seq": 1, "hash": "00", "at": "2026-01-01T00:00:00+00:00", "kind": "head", '
                 '"mac": "forged"}\n')
    result = audit.verify(deps)
    assert result.problem is not None and result.problem.reason == "checkpoint"
    assert result.bad_lines == (f"{files[-1].name}:{len(files[-1].read_text().splitlines())}",)


def test_a_missing_anchor_is_refused_until_an_operator_adopts_one(make_deps, operator,
                                                                  account_admin, agency_operator):
    deps = make_deps("sqlite")
    add_contract(deps, operator)
    shutil.rmtree(deps.settings.checkpoint_path)  # the folder was moved, or lost
    assert problem(deps) == "unanchored"
    assert audit.checkpoint(deps, agency_operator).problem.reason == "unanchored"  # not without --adopt
    assert audit.checkpoint(deps, agency_operator, adopt=True).ok
    assert [e.action for e in events(deps)][-1] == "audit.checkpoint_adopted"
    assert problem(deps) is None


def test_the_command_line_says_what_happened_and_what_to_do(tmp_path):
    env = {"AUTHSVC__PATHS__INSTANCE_DIR": str(tmp_path / "instance"), "AUTHSVC__DATABASE__URL": "",
           "AUTHSVC__ARGON2__TIME_COST": "1", "AUTHSVC__ARGON2__MEMORY_COST_KIB": "1024",
           "AUTHSVC__ARGON2__PARALLELISM": "1", "AUTHSVC__AUDIT__CHECKPOINT_SECONDS": "0",
           "AUTHSVC_LANG": "en"}
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    run("contract", "create", "C-1", "--company", "株式会社テスト", "--start", "2026-04-01")
    assert "chain intact, anchored at seq" in run("audit", "verify")
    deps = build(make_settings(str(tmp_path / "instance"), "", **EVERY))
    saved = {t: table(deps, t) for t in ("audit_events", "audit_head")}
    run("contract", "create", "C-2", "--company", "株式会社テスト", "--start", "2026-04-01")
    put_back(deps, saved["audit_events"], saved["audit_head"])
    deps.engine.dispose()
    out = run("audit", "verify", code=1)
    assert "shorter than its checkpoint" in out and "accept-rollback" in out
    run("audit", "accept-rollback", code=64)  # --reason is required (a usage error)
    run("audit", "accept-rollback", "--reason", "restored backup, ticket 7")
    assert "chain intact" in run("audit", "verify")
    assert "audit.rollback_accepted" in run("audit", "show", "--limit", "1")
