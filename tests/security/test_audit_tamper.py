"""The audit log is tamper-evident (R22): editing, deleting, reordering, truncating or
re-chaining rows straight in the database is found by `audit.verify`, which names the first bad
row; and every action's audit event lives and dies with the action's own transaction."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from itertools import pairwise

import pytest
from sqlalchemy import text

from authsvc.domain import audit as chain
from authsvc.domain import logon_flow as lf
from authsvc.domain.errors import DomainError, Forbidden, NotFound, OutOfScope
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, accounts, audit
from authsvc.services import alerts as inbox
from authsvc.store.uow import AuditUnavailable
from tests.conftest import AGENCY
from tests.integration.support import (
    CHOSEN,
    active_account,
    add_contract,
    audit_count,
    dump_all,
    events,
    password_step,
    row_counts,
    sql,
)

pytestmark = pytest.mark.backends("sqlite", "postgres")  # the production shape is the point here


def busy_day(deps: Deps, operator, account_admin) -> int:
    """A realistic mix of actions; returns the number of audit events written."""
    add_contract(deps, operator)
    alice = active_account(deps, account_admin, operator, "alice").initial_password
    accounts.create_account(deps, account_admin, "bob", "山田 一郎", "C-2026-001", "user")
    password_step(deps, "alice", CHOSEN[0], terminal="T-1", source="10.1.1.1")
    password_step(deps, "alice", alice, terminal="T-1", source="10.1.1.1")
    password_step(deps, "ghost", CHOSEN[1])
    accounts.suspend(deps, account_admin, "alice", reason="調査")
    accounts.resume(deps, account_admin, "alice")
    accounts.update_account(deps, account_admin, "bob", name="山田 二郎")
    n = audit_count(deps)
    assert n >= 10
    result = audit.verify(deps)
    assert result.ok and result.checked == n, result.problem
    return n


def rows(deps: Deps) -> list[dict]:
    with deps.uow() as uow:
        return list(uow.audit_rows())


def expect_problem(deps: Deps, seq: int) -> None:
    result = audit.verify(deps)
    assert not result.ok
    assert result.problem is not None and result.problem.seq == seq, str(result.problem)
    assert f"seq {seq}" in str(result.problem)


def test_untouched_log_verifies(deps, operator, account_admin):
    n = busy_day(deps, operator, account_admin)
    assert [r["seq"] for r in rows(deps)] == list(range(1, n + 1))
    assert all(r["ts"].endswith("+09:00") for r in rows(deps))


@pytest.mark.parametrize("column", ["result", "actor", "detail", "ts", "subject"])
def test_modified_field_is_found(deps, operator, account_admin, column):
    busy_day(deps, operator, account_admin)
    target = next(r for r in rows(deps) if r["result"] == "failed")["seq"]
    value = {"result": "ok", "actor": "nobody", "detail": "{}", "ts": "2020-01-01T00:00:00+09:00",
             "subject": "someone-else"}[column]
    sql(deps, f"UPDATE audit_events SET {column} = :v WHERE seq = :s", v=value, s=target)
    expect_problem(deps, target)


@pytest.mark.parametrize("mac", [None, "", "0" * 64, "é" * 32], ids=["null", "empty", "zeros",
                                                                    "non-ascii"])
def test_tampered_row_signature_is_found(deps, operator, account_admin, mac):
    n = busy_day(deps, operator, account_admin)
    sql(deps, "UPDATE audit_events SET mac = :m WHERE seq = :s", m=mac, s=n - 1)
    expect_problem(deps, n - 1)


def test_tampered_head_signature_is_found(deps, operator, account_admin):
    n = busy_day(deps, operator, account_admin)
    sql(deps, "UPDATE audit_head SET mac = :m", m="é" * 32)
    expect_problem(deps, n)


def test_deleted_middle_row_is_found(deps, operator, account_admin):
    n = busy_day(deps, operator, account_admin)
    middle = n // 2
    sql(deps, "DELETE FROM audit_events WHERE seq = :s", s=middle)
    expect_problem(deps, middle)


def test_reordered_rows_are_found(deps, operator, account_admin):
    n = busy_day(deps, operator, account_admin)
    a, b = 3, n - 2
    sql(deps, "UPDATE audit_events SET seq = -1 WHERE seq = :a", a=a)
    sql(deps, "UPDATE audit_events SET seq = :a WHERE seq = :b", a=a, b=b)
    sql(deps, "UPDATE audit_events SET seq = :b WHERE seq = -1", b=b)
    expect_problem(deps, a)


def test_truncated_tail_is_found(deps, operator, account_admin):
    n = busy_day(deps, operator, account_admin)
    sql(deps, "DELETE FROM audit_events WHERE seq = :s", s=n)
    expect_problem(deps, n)
    sql(deps, "DELETE FROM audit_events WHERE seq >= :s", s=n - 3)
    expect_problem(deps, n - 3)


def test_truncated_tail_with_rewound_head_is_found(deps, operator, account_admin):
    """Delete the newest rows and point the head at the new last row, reusing any signature
    found in the database: without the key no valid head can be made."""
    n = busy_day(deps, operator, account_admin)
    before = rows(deps)
    last = before[n - 3]
    sql(deps, "DELETE FROM audit_events WHERE seq > :s", s=last["seq"])
    stored_macs = [m for (m,) in _select(deps, "SELECT mac FROM audit_head")]
    stored_macs += [v for r in before for k, v in r.items() if k == "mac" and v]
    for mac in stored_macs:
        sql(deps, "UPDATE audit_head SET seq = :s, hash = :h, mac = :m",
            s=last["seq"], h=last["hash"], m=mac)
        assert not audit.verify(deps).ok


def _select(deps: Deps, statement: str) -> list[tuple]:
    with deps.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(statement))]


def rechain(deps: Deps, start: int, change: Callable[[dict], None], move_head: bool) -> None:
    """Rewrite row `start` and re-link every later row with valid chain hashes, as an
    attacker who knows the algorithm but not the key would."""
    everything = rows(deps)
    prev = everything[start - 2]["hash"] if start > 1 else chain.GENESIS
    with deps.engine.begin() as conn:
        for row in everything[start - 1:]:
            fields = {k: row[k] for k in chain.FIELDS}
            if row["seq"] == start:
                change(fields)
            digest = chain.chain_hash(prev, fields)
            conn.execute(
                text("UPDATE audit_events SET actor = :actor, subject = :subject, "
                     "result = :result, detail = :detail, prev_hash = :p, hash = :h "
                     "WHERE seq = :seq"),
                {**fields, "p": prev, "h": digest},
            )
            prev = digest
        if move_head:
            conn.execute(text("UPDATE audit_head SET hash = :h"), {"h": prev})


@pytest.mark.parametrize("move_head", [True, False], ids=["head-moved", "head-kept"])
def test_rechained_log_is_found_at_the_first_rewritten_row(
    deps, operator, account_admin, move_head
):

    n = busy_day(deps, operator, account_admin)
    target = next(r for r in rows(deps) if r["result"] == "failed")["seq"]
    assert target < n - 1

    def whitewash(fields: dict) -> None:
        fields["result"], fields["detail"] = "ok", "{}"

    rechain(deps, target, whitewash, move_head)
    # the forgery is internally consistent: only the key can tell
    forged = rows(deps)
    for prev, row in pairwise(forged):
        assert row["prev_hash"] == prev["hash"] == chain.chain_hash(prev["prev_hash"], prev)
    expect_problem(deps, target)


def test_deleting_the_head_is_found_and_stops_the_log(deps, operator, account_admin):
    busy_day(deps, operator, account_admin)
    sql(deps, "DELETE FROM audit_head")
    expect_problem(deps, 1)
    before = row_counts(deps)
    with pytest.raises(AuditUnavailable):
        accounts.suspend(deps, account_admin, "alice")
    assert row_counts(deps) == before
    assert accounts.show(deps, AGENCY, "alice").status == "active"


# ---- the audit event shares the action's transaction ------------------------------------


def test_refused_actions_leave_nothing_but_their_refusal(deps, clock, operator, account_admin):
    """A rule's refusal (a wrong state, a duplicate, an unknown value or ID) writes nothing. A
    refused use of privileges (no right, another company's record, one's own account, a role
    above one's own) changes nothing either, and leaves exactly one `refused` event with its
    real reason, written in a transaction of its own (004 第8 1(2); before the tenancy change
    such refusals left no row at all)."""
    busy_day(deps, operator, account_admin)
    accounts.delete(deps, account_admin, "bob")
    active_account(deps, account_admin, operator, "acctadm", name="管理 一郎", role="account_admin")
    other = Actor("tasha", frozenset({Role.ACCOUNT_ADMIN}), terminal="console-9", company="他社株式会社")
    audit.seal(deps)  # PostgreSQL: what is committed is in the chain before the snapshot
    before, head = row_counts(deps), _select(deps, "SELECT seq, hash, mac FROM audit_head")
    outside = [line for line in dump_all(deps).splitlines()
               if not line.startswith(("audit_events.", "audit_head.", "audit_writers.", "alerts."))]
    ordinary = [
        lambda: accounts.approve_identifier(deps, operator, "alice"),        # not pending
        lambda: accounts.resume(deps, account_admin, "alice"),               # already active
        lambda: accounts.create_account(deps, account_admin, "bob", "x", "C-2026-001", "user"),
        lambda: accounts.create_account(deps, account_admin, "alice", "x", "C-2026-001", "user"),
        lambda: accounts.update_account(deps, account_admin, "alice", role="emperor"),
        lambda: accounts.create_contract(deps, operator, "C-2026-001", "dup", clock.now().date(),
                                         None),
        lambda: accounts.suspend(deps, other, "nobody-here"),                # unknown ID
    ]
    for refuse in ordinary:
        with pytest.raises(DomainError) as refused:
            refuse()
        assert not isinstance(refused.value, Forbidden | OutOfScope)
    assert row_counts(deps) == before
    assert _select(deps, "SELECT seq, hash, mac FROM audit_head") == head

    privileged = [  # (the call, the error the caller sees, action, subject, recorded reason)
        (lambda: accounts.approve_identifier(deps, account_admin, "alice"),
         Forbidden, "forbidden", "identifier.approve", "alice", "forbidden"),
        (lambda: accounts.create_contract(deps, account_admin, "C-9", "会社", clock.now().date(), None),
         Forbidden, "forbidden", "contract.create", "C-9", "forbidden"),
        (lambda: accounts.suspend(deps, other, "alice"),  # answered like the unknown ID above
         OutOfScope, "account_not_found", "account.suspend", "alice", "other_company"),
        (lambda: accounts.suspend(deps, account_admin, "acctadm"),
         Forbidden, "own_account", "account.suspend", "acctadm", "own_account"),
        (lambda: accounts.update_account(deps, account_admin, "alice", role="agency_operator"),
         Forbidden, "role_not_assignable", "account.update", "alice", "role_not_assignable"),
    ]
    for refuse, error, code, *_ in privileged:
        with pytest.raises(error) as refused:
            refuse()
        assert refused.value.code == code
    # another company's account is answered exactly as an unknown ID (no enumeration)
    with pytest.raises(NotFound) as unknown:
        accounts.suspend(deps, other, "nobody-here")
    with pytest.raises(NotFound) as foreign:
        accounts.suspend(deps, other, "alice")
    assert (foreign.value.code, foreign.value.params) == (unknown.value.code, {"user_id": "alice"})
    assert foreign.value.message("en") == unknown.value.message("en").replace("nobody-here", "alice")

    n = len(privileged) + 1  # the second refusal on another company's record
    recorded = [e for e in events(deps) if e.seq > head[0][0]]
    assert [(e.actor, e.action, e.subject, e.result, e.data) for e in recorded] == [
        (actor, action, subject, "refused", {"reason": reason})
        for actor, (*_, action, subject, reason) in zip(
            ["acctadm", "acctadm", "tasha", "acctadm", "acctadm"], privileged, strict=True)
    ] + [("tasha", "account.suspend", "alice", "refused", {"reason": "other_company"})]
    # nothing else changed: every other table row for row, the log and the alert inbox (R25:
    # each refused use of privileges is an alert) only by the refusals
    assert row_counts(deps) == {**before, "audit_events": before["audit_events"] + n,
                                "alerts": before["alerts"] + n}
    assert [line for line in dump_all(deps).splitlines()
            if not line.startswith(("audit_events.", "audit_head.", "audit_writers.", "alerts."))] == outside
    assert [a["detail"]["reason"] for a in reversed(inbox.inbox(deps, AGENCY))] == [
        reason for *_, reason in privileged] + ["other_company"]
    assert _select(deps, "SELECT seq FROM audit_head") == [(head[0][0] + n,)]
    assert accounts.show(deps, AGENCY, "alice").status == "active"
    assert accounts.show(deps, AGENCY, "alice").role == "user"
    assert audit.verify(deps).ok


def _install_failing_trigger(deps: Deps, table: str, when_sql: str, deferred: bool) -> None:
    if deps.engine.dialect.name == "postgresql":
        sql(deps, "CREATE OR REPLACE FUNCTION authsvc_test_fail() RETURNS trigger "
                  "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$")
        kind = ("CONSTRAINT TRIGGER", "DEFERRABLE INITIALLY DEFERRED") if deferred else (
            "TRIGGER", "")
        sql(deps, f"CREATE {kind[0]} authsvc_test_fail AFTER INSERT OR UPDATE ON {table} "
                  f"{kind[1]} FOR EACH ROW WHEN ({when_sql}) "
                  "EXECUTE FUNCTION authsvc_test_fail()")
    else:
        for op in ("INSERT", "UPDATE"):
            sql(deps, f"CREATE TRIGGER authsvc_test_fail_{op.lower()} AFTER {op} ON {table} "
                      f"WHEN {when_sql} BEGIN SELECT RAISE(ABORT, 'injected failure'); END")


def _drop_failing_trigger(deps: Deps, table: str) -> None:
    if deps.engine.dialect.name == "postgresql":
        sql(deps, f"DROP TRIGGER authsvc_test_fail ON {table}")
    else:
        for op in ("insert", "update"):
            sql(deps, f"DROP TRIGGER authsvc_test_fail_{op}")


def test_failed_audit_write_fails_the_action(deps, operator, account_admin):
    """R22: if the log cannot be written, the action fails (and changes nothing)."""
    busy_day(deps, operator, account_admin)
    _install_failing_trigger(deps, "audit_events", "NEW.action = 'account.suspend'",
                             deferred=False)
    before = row_counts(deps)
    with pytest.raises(Exception, match="injected failure"):
        accounts.suspend(deps, account_admin, "alice")
    assert row_counts(deps) == before
    assert accounts.show(deps, AGENCY, "alice").status == "active"
    _drop_failing_trigger(deps, "audit_events")
    accounts.suspend(deps, account_admin, "alice")
    assert accounts.show(deps, AGENCY, "alice").status == "suspended"
    assert audit.verify(deps).ok


ALERT = "ALERT audit log cannot be written"


def alerts(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "authsvc.audit" and r.levelno == logging.CRITICAL]


def test_failed_audit_write_raises_an_alert(deps, caplog, operator, account_admin):
    """R22: an audit insert that fails is reported to operators at CRITICAL on `authsvc.audit`,
    and the action it belongs to fails without leaving anything behind."""
    caplog.set_level(logging.INFO, logger="authsvc.audit")
    busy_day(deps, operator, account_admin)
    password_step(deps, "alice", CHOSEN[3])
    with pytest.raises(DomainError):  # an ordinary refusal is no alert
        accounts.resume(deps, account_admin, "alice")
    assert alerts(caplog) == []

    suspensions = len(events(deps, "account.suspend"))
    _install_failing_trigger(deps, "audit_events", "NEW.action = 'account.suspend'",
                             deferred=False)
    try:
        before, head = row_counts(deps), _select(deps, "SELECT seq, hash, mac FROM audit_head")
        with pytest.raises(Exception, match="injected failure"):
            accounts.suspend(deps, account_admin, "alice", reason="調査")
        [alert] = alerts(caplog)
        assert alert.getMessage().startswith(ALERT)
        assert "account.suspend" in alert.getMessage()
        assert row_counts(deps) == before
        assert _select(deps, "SELECT seq, hash, mac FROM audit_head") == head
        assert accounts.show(deps, AGENCY, "alice").status == "active"
        assert len(events(deps, "account.suspend")) == suspensions
        assert audit.verify(deps).ok
        # other actions still write their events
        accounts.update_account(deps, account_admin, "alice", role="staff")
    finally:
        _drop_failing_trigger(deps, "audit_events")
    # once the log can be written again, so is this action
    accounts.suspend(deps, account_admin, "alice")
    assert len(events(deps, "account.suspend")) == suspensions + 1
    assert len(alerts(caplog)) == 1
    assert audit.verify(deps).ok


def test_failed_audit_write_of_a_logon_raises_an_alert(deps, caplog, operator, account_admin):
    """The logon path too: the attempt's audit event cannot be written, so it is not recorded
    as a success (nor its throttle reset), and operators are alerted."""
    caplog.set_level(logging.INFO, logger="authsvc.audit")
    add_contract(deps, operator)
    initial = active_account(deps, account_admin, operator, "alice").initial_password
    _install_failing_trigger(deps, "audit_events", "NEW.action = 'logon.password'",
                             deferred=False)
    try:
        before = row_counts(deps)
        with pytest.raises(Exception, match="injected failure"):
            password_step(deps, "alice", initial)
        [alert] = alerts(caplog)
        assert alert.getMessage().startswith(ALERT) and "logon.password" in alert.getMessage()
        assert accounts.show(deps, AGENCY, "alice").first_used_at is None
        # only the consumed attempt (committed before the check, R4) stays: never the event
        assert events(deps, "logon.password") == []
        assert {k: v for k, v in row_counts(deps).items() if k != "logon_throttle"} \
            == {k: v for k, v in before.items() if k != "logon_throttle"}
    finally:
        _drop_failing_trigger(deps, "audit_events")
    assert audit.verify(deps).ok
    assert password_step(deps, "alice", initial).step is lf.Step.CHANGE_PASSWORD


def test_missing_audit_head_raises_an_alert(deps, caplog, operator, account_admin):
    caplog.set_level(logging.INFO, logger="authsvc.audit")
    busy_day(deps, operator, account_admin)
    sql(deps, "DELETE FROM audit_head")
    with pytest.raises(AuditUnavailable):
        accounts.suspend(deps, account_admin, "alice")
    [alert] = alerts(caplog)
    assert alert.getMessage().startswith(ALERT)


def test_failure_after_the_audit_insert_rolls_the_event_back(deps, operator, account_admin):
    """The event is inserted, then the transaction fails (at commit on PostgreSQL, with a
    deferred trigger; on the head update on SQLite): neither the action nor its event stay."""
    busy_day(deps, operator, account_admin)
    head = _select(deps, "SELECT seq FROM audit_head")[0][0]
    if deps.engine.dialect.name == "postgresql":
        _install_failing_trigger(deps, "audit_events", "NEW.action = 'account.delete'",
                                 deferred=True)
        table = "audit_events"
    else:
        _install_failing_trigger(deps, "audit_head", f"NEW.seq = {head + 1}", deferred=False)
        table = "audit_head"
    before = row_counts(deps)
    with pytest.raises(Exception, match="injected failure"):
        accounts.delete(deps, account_admin, "alice")
    assert row_counts(deps) == before
    assert events(deps, "account.delete") == []
    assert accounts.show(deps, AGENCY, "alice").status == "active"
    assert audit.verify(deps).ok
    _drop_failing_trigger(deps, table)
    accounts.delete(deps, account_admin, "alice")
    assert len(events(deps, "account.delete", "alice")) == 1
    assert audit.verify(deps).ok


def test_concurrent_create_fails_midway_without_audit(make_deps, operator, account_admin):
    """PostgreSQL: another transaction takes the same new identifier while a create is under
    way; the create fails with identifier_in_use after writing its rows, and none stay."""
    deps = make_deps("postgres")
    busy_day(deps, operator, account_admin)
    before = row_counts(deps)
    outcome: dict[str, BaseException | object] = {}
    with deps.engine.connect() as rival:
        rival.execute(text(
            "INSERT INTO identifiers (value, kind, holder_id, assigned_by, assigned_at) "
            "VALUES ('racer', 'device', 424242, 'rival', now())"))

        def create() -> None:
            try:
                outcome["result"] = accounts.create_account(deps, account_admin, "racer",
                                                            "競争 者", "C-2026-001", "user")
            except BaseException as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=create)
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive(), outcome  # blocked on the rival's uncommitted identifier
        rival.commit()
    worker.join(timeout=30)
    assert not worker.is_alive()
    error = outcome.get("error")
    assert isinstance(error, DomainError) and error.code == "identifier_in_use", outcome
    after = row_counts(deps)
    assert after == {**before, "identifiers": before["identifiers"] + 1}
    assert events(deps, "account.create", "racer") == []
    assert audit.verify(deps).ok
