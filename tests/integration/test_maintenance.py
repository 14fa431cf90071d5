"""The maintenance job on the real backends: inactivity (R6) and the end of access after the
contract's data-cleanup period of 14 business days (R7)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from authsvc.domain import logon_flow as lf
from authsvc.domain.calendar import JST
from authsvc.domain.errors import DomainError, Forbidden
from authsvc.services import accounts, logon, maintenance
from tests.conftest import AGENCY
from tests.integration.support import active_account, add_contract, events, password_step, set_time

FAILED = logon.FAILED


def test_unused_account_is_disabled_after_the_period(deps, clock, operator, account_admin):
    add_contract(deps, operator)
    approved_at = clock.now()
    initial = active_account(deps, account_admin, operator, "idle").initial_password
    period = timedelta(days=deps.settings.identifiers.disable_after_days)

    set_time(clock, approved_at + period - timedelta(days=1))
    assert maintenance.run(deps, operator).disabled == []
    set_time(clock, approved_at + period - timedelta(seconds=1))
    assert maintenance.run(deps, operator).disabled == []
    assert accounts.show(deps, AGENCY, "idle").status == "active"
    assert events(deps, "account.disable") == []

    set_time(clock, approved_at + period)
    report = maintenance.run(deps, operator)
    assert report.disabled == ["idle"] and report.expired == []
    assert accounts.show(deps, AGENCY, "idle").status == "disabled"
    [ev] = events(deps, "account.disable", "idle")
    assert ev.actor == operator.id
    assert ev.data["reason"] == "inactive"
    assert ev.data["days"] == deps.settings.identifiers.disable_after_days
    assert datetime.fromisoformat(ev.data["last_used"]) == approved_at
    # disabled: logon refused; running again changes nothing
    assert password_step(deps, "idle", initial) == FAILED
    assert events(deps, "logon.password", "idle")[-1].data["reason"] == "status_disabled"
    assert maintenance.run(deps, operator).disabled == []
    assert len(events(deps, "account.disable")) == 1
    # an operator may bring it back; it then counts from the resumption
    accounts.resume(deps, account_admin, "idle")
    assert password_step(deps, "idle", initial).step is lf.Step.CHANGE_PASSWORD


def test_unused_account_is_refused_at_logon_before_maintenance_runs(
    deps, clock, operator, account_admin
):
    """R6, fail closed: past the inactivity period an account that the job has not disabled yet
    is refused at logon all the same (one generic answer; the reason audited for operators)."""
    add_contract(deps, operator)
    approved_at = clock.now()
    period = timedelta(days=deps.settings.identifiers.disable_after_days)
    issued = {uid: active_account(deps, account_admin, operator, uid).initial_password
              for uid in ("day-early", "second-early", "idle", "idle-wrong")}

    # the day before, and the very last moment: still usable (each logon is a fresh use)
    set_time(clock, approved_at + period - timedelta(days=1))
    assert password_step(deps, "day-early", issued["day-early"]).step is lf.Step.CHANGE_PASSWORD
    set_time(clock, approved_at + period - timedelta(microseconds=1))
    assert password_step(deps, "second-early", issued["second-early"]).step is lf.Step.CHANGE_PASSWORD

    set_time(clock, approved_at + period)
    assert password_step(deps, "idle", issued["idle"], terminal="T-5") == FAILED
    assert password_step(deps, "idle-wrong", "Wr0ng#Passw0rd") == FAILED
    for uid in ("idle", "idle-wrong"):
        [ev] = events(deps, "logon.password", uid)
        assert (ev.result, ev.data["reason"]) == ("failed", "inactive"), uid
        assert accounts.show(deps, AGENCY, uid).status == "active"  # the job has not run
        assert accounts.show(deps, AGENCY, uid).last_used_at is None
    assert events(deps, "logon.password", "idle")[0].terminal == "T-5"
    # the accounts used recently are unaffected, at the same moment
    assert password_step(deps, "day-early", issued["day-early"]).step is lf.Step.CHANGE_PASSWORD
    assert password_step(deps, "second-early", issued["second-early"]).step is lf.Step.CHANGE_PASSWORD
    # the job then disables exactly the idle ones, and an operator's resumption counts as use
    assert sorted(maintenance.run(deps, operator).disabled) == ["idle", "idle-wrong"]
    accounts.resume(deps, account_admin, "idle")
    assert password_step(deps, "idle", issued["idle"]).step is lf.Step.CHANGE_PASSWORD


def test_inactivity_follows_the_configured_period(make_deps, backend, clock, operator,
                                                  account_admin):
    deps = make_deps(backend, identifiers={"disable_after_days": 7})
    add_contract(deps, operator)
    start = clock.now()
    initial = active_account(deps, account_admin, operator, "weekly").initial_password
    set_time(clock, start + timedelta(days=6))
    assert password_step(deps, "weekly", initial).step is lf.Step.CHANGE_PASSWORD
    set_time(clock, start + timedelta(days=12))  # 6 days after the last use
    assert password_step(deps, "weekly", initial).step is lf.Step.CHANGE_PASSWORD
    set_time(clock, start + timedelta(days=19))  # 7 days after it
    assert password_step(deps, "weekly", initial) == FAILED
    assert events(deps, "logon.password", "weekly")[-1].data["reason"] == "inactive"


def test_recent_logon_keeps_an_account_active(deps, clock, operator, account_admin):
    add_contract(deps, operator)
    start = clock.now()
    busy = active_account(deps, account_admin, operator, "busy").initial_password
    active_account(deps, account_admin, operator, "idle")
    period = timedelta(days=deps.settings.identifiers.disable_after_days)

    set_time(clock, start + timedelta(days=60))
    assert password_step(deps, "busy", busy).step is lf.Step.CHANGE_PASSWORD
    set_time(clock, start + period)
    assert maintenance.run(deps, operator).disabled == ["idle"]
    assert accounts.show(deps, AGENCY, "busy").status == "active"
    set_time(clock, start + timedelta(days=60) + period)
    assert maintenance.run(deps, operator).disabled == ["busy"]


def test_pending_and_suspended_accounts_are_not_disabled(deps, clock, operator, account_admin):
    add_contract(deps, operator)
    accounts.create_account(deps, account_admin, "waiting", "待ち 人", "C-2026-001", "user")
    active_account(deps, account_admin, operator, "paused")
    accounts.suspend(deps, account_admin, "paused")
    clock.advance(days=deps.settings.identifiers.disable_after_days * 2)
    assert maintenance.run(deps, operator).disabled == []
    assert accounts.show(deps, AGENCY, "waiting").status == "pending"
    assert accounts.show(deps, AGENCY, "paused").status == "suspended"


def test_only_privileged_actors_run_maintenance(deps, account_admin):
    with pytest.raises(Forbidden):
        maintenance.run(deps, account_admin)


# Contract ends Friday 2026-04-24. The 14 business days after it skip Golden Week:
# 4/29 昭和の日, 5/3 (Sunday) 憲法記念日, 5/4 みどりの日, 5/5 こどもの日, 5/6 振替休日,
# and the weekends: 4/27 4/28 4/30 5/1 5/7 5/8 5/11-5/15 5/18 5/19 5/20 -> last day 5/20.
CONTRACT_END = date(2026, 4, 24)
LAST_CLEANUP_DAY = date(2026, 5, 20)
WITHOUT_HOLIDAYS = date(2026, 5, 14)  # what counting weekends only would give


def test_access_ends_after_14_business_days_excluding_holidays(
    deps, clock, operator, account_admin
):
    assert deps.settings.accounts.cleanup_business_days == 14
    add_contract(deps, operator, "C-GW", starts_on=date(2026, 4, 1), ends_on=CONTRACT_END)
    initial = active_account(deps, account_admin, operator, "gwuser", contract="C-GW").initial_password
    assert password_step(deps, "gwuser", initial).step is lf.Step.CHANGE_PASSWORD
    end = datetime.combine(LAST_CLEANUP_DAY + timedelta(days=1), time(0), JST)
    assert datetime.fromisoformat(accounts.show(deps, AGENCY, "gwuser").access_ends_at) == end

    # the day after the contract, and the day a weekends-only count would have ended it
    for day in (CONTRACT_END + timedelta(days=1), WITHOUT_HOLIDAYS + timedelta(days=1)):
        set_time(clock, datetime.combine(day, time(12), JST))
        assert maintenance.run(deps, operator).expired == []
        assert password_step(deps, "gwuser", initial).step is lf.Step.CHANGE_PASSWORD

    # the last second of the last cleanup day: still active
    set_time(clock, end - timedelta(microseconds=1))
    assert maintenance.run(deps, operator).expired == []
    assert accounts.show(deps, AGENCY, "gwuser").status == "active"
    assert password_step(deps, "gwuser", initial).step is lf.Step.CHANGE_PASSWORD

    # midnight JST: access has ended even before the job runs
    set_time(clock, end)
    assert password_step(deps, "gwuser", initial) == FAILED
    assert events(deps, "logon.password", "gwuser")[-1].data["reason"] == "contract_ended"
    report = maintenance.run(deps, operator)
    assert report.expired == ["gwuser"] and report.disabled == []
    view = accounts.show(deps, AGENCY, "gwuser")
    assert view.status == "expired"
    assert datetime.fromisoformat(view.revoked_at) == end
    [ev] = events(deps, "account.expire", "gwuser")
    assert ev.data["status_from"] == "active"
    assert datetime.fromisoformat(ev.data["access_ended"]) == end

    clock.advance(days=1)
    assert password_step(deps, "gwuser", initial) == FAILED
    assert events(deps, "logon.password", "gwuser")[-1].data["reason"] == "status_expired"
    for action in (accounts.resume, accounts.reset_password):
        with pytest.raises(DomainError):
            action(deps, account_admin, "gwuser")
    assert maintenance.run(deps, operator).expired == []


def test_open_ended_contracts_never_expire(deps, clock, operator, account_admin):
    add_contract(deps, operator, "OPS", ends_on=None)
    initial = active_account(deps, account_admin, operator, "ops9", contract="OPS")
    for _ in range(3):
        clock.advance(days=80)
        assert password_step(deps, "ops9", initial.initial_password).step is lf.Step.CHANGE_PASSWORD
        assert maintenance.run(deps, operator).expired == []
    assert accounts.show(deps, AGENCY, "ops9").access_ends_at is None
