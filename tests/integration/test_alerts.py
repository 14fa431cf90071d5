"""The alert inbox (R25): a lockout storm, one ID on two terminals at once, a refused use of
privileges and a failed audit verification each raise an alert; a company reads and
acknowledges only its own (the agency all), and acknowledging is audited. Real services on
SQLite."""

from __future__ import annotations

import pyotp
import pytest

from authsvc.domain import logon_flow as lf
from authsvc.domain.errors import DomainError, NotFound
from authsvc.domain.roles import Actor, Role
from authsvc.services import accounts, alerts, audit, logon, totp
from authsvc.services.passwords import change_password
from authsvc.services.sessions import Client
from tests.conftest import AGENCY, COMPANY
from tests.integration.support import CHOSEN, active_account, add_contract, events, password_step, sql

ADMIN_A = Actor("adm-a", frozenset({Role.SYSTEM_ADMIN}), company=COMPANY)
ADMIN_B = Actor("adm-b", frozenset({Role.SYSTEM_ADMIN}), company="別会社株式会社")


@pytest.fixture
def deps(make_deps, operator, account_admin):
    d = make_deps("sqlite", lockout={"max_failures": 2},
                  alerts={"lock_storm_accounts": 3, "lock_storm_minutes": 10},
                  mfa={"second_factors": ["totp"]})
    add_contract(d, operator)
    add_contract(d, operator, "C-B", "別会社株式会社")
    for uid in ("usr1", "usr2", "usr3", "usr4"):
        active_account(d, account_admin, operator, uid)
        change_password(d, Actor(uid), uid, CHOSEN[0])
    return d


def kinds(deps, actor=AGENCY) -> list[str]:
    return [a["kind"] for a in alerts.inbox(deps, actor)]


def test_a_lockout_storm_raises_one_alert_per_window(deps, clock):
    for uid in ("usr1", "usr2"):
        for _ in range(2):
            password_step(deps, uid, "Wrong#pass99")
    assert "lockout_storm" not in kinds(deps)  # two accounts locked: below the threshold
    for uid in ("usr3", "usr4"):
        for _ in range(2):
            password_step(deps, uid, "Wrong#pass99")
    assert kinds(deps).count("lockout_storm") == 1  # the third lock raised it, the fourth not again
    clock.advance(minutes=deps.settings.lockout.lock_minutes + 1)  # locks lapsed, a new window
    for uid in ("usr1", "usr2", "usr3"):
        for _ in range(2):
            password_step(deps, uid, "Wrong#pass99")
    assert kinds(deps).count("lockout_storm") == 2


def test_one_id_on_two_terminals_at_once_is_suspected(deps, clock):
    made = totp.begin_enrolment(deps, Actor("usr1"), "usr1")
    totp.confirm_enrolment(deps, Actor("usr1"), "usr1", pyotp.TOTP(made.secret).at(clock.now()))

    def log_on(terminal: str) -> logon.State:
        client = Client(terminal, "10.0.0.5")
        state = logon.begin(deps, "usr1", CHOSEN[0], client)
        clock.advance(seconds=30)
        return logon.totp_step(deps, state.token, pyotp.TOTP(made.secret).at(clock.now()), client)

    assert log_on("T-1").step is lf.Step.DONE
    assert log_on("T-1").step is lf.Step.DONE  # the same terminal again: nothing to suspect
    assert "shared_id_suspected" not in kinds(deps)
    assert log_on("T-2").step is lf.Step.DONE  # T-1's session was in use a minute ago
    [alert] = [a for a in alerts.inbox(deps, ADMIN_A) if a["kind"] == "shared_id_suspected"]
    assert alert["subject"] == "usr1" and alert["detail"]["terminals"] == ["T-1", "T-2"]
    clock.advance(minutes=deps.settings.sessions.idle_minutes + 1)
    assert log_on("T-3").step is lf.Step.DONE  # T-2 idle long since: a move, not a share
    assert kinds(deps).count("shared_id_suspected") == 1


def test_a_refused_use_of_privileges_goes_to_the_actors_company(deps):
    with pytest.raises(NotFound):
        accounts.suspend(deps, ADMIN_B, "usr1", "試行")
    [alert] = alerts.inbox(deps, ADMIN_B)
    assert (alert["kind"], alert["subject"], alert["detail"]["reason"]) == (
        "privilege_refused", "usr1", "other_company")
    assert alerts.inbox(deps, ADMIN_A) == []  # not company A's to read
    with pytest.raises(NotFound):
        alerts.acknowledge(deps, ADMIN_A, alert["id"])
    done = alerts.acknowledge(deps, ADMIN_B, alert["id"])
    assert done["acknowledged_by"] == "adm-b" and alerts.inbox(deps, ADMIN_B) == []
    assert len(alerts.inbox(deps, ADMIN_B, open_only=False)) == 1
    assert [(e.actor, e.result) for e in events(deps, "alert.acknowledge")] == [
        ("adm-a", "refused"), ("adm-b", "ok")]


def test_a_failed_audit_verification_raises_an_alert(deps):
    audit.checkpoint(deps, AGENCY, adopt=True)
    sql(deps, "UPDATE audit_events SET actor = 'someone-else' WHERE seq = 2")
    result = audit.checkpoint(deps, AGENCY)
    assert result.problem is not None
    [alert] = [a for a in alerts.inbox(deps, AGENCY) if a["kind"] == "audit_verification_failed"]
    assert alert["company"] is None  # the agency's inbox


def test_reading_the_inbox_needs_the_right(deps):
    with pytest.raises(DomainError):
        alerts.inbox(deps, Actor("usr1", frozenset({Role.USER}), company=COMPANY))
