"""When an account may log on, beyond its state (R7, R17, R26): a contract that has not started,
a leaver (logon ends at the departure, the maintenance job revokes everything within
accounts.revocation_hours, the identifier enters its reuse window), remote access approved in
advance with a period, and a maintenance account's window. Real services on SQLite."""

from __future__ import annotations

from datetime import date, timedelta

import pyotp
import pytest

from authsvc.domain import logon_flow as lf
from authsvc.domain.errors import DomainError, Forbidden
from authsvc.domain.roles import Actor, Role
from authsvc.services import accounts, logon, maintenance, sessions
from authsvc.services.passwords import change_password
from authsvc.services.sessions import Client
from tests.conftest import AGENCY, COMPANY
from tests.integration.support import CHOSEN, active_account, add_contract, events, password_step, totp_worker

PW = CHOSEN[0]
SECRETS: dict[int, str] = {}  # each test's TOTP secret of kato, by its deps
REMOTE = Client("T-9", "203.0.113.7", remote=True)
ADMIN_A = Actor("adm-a", frozenset({Role.SYSTEM_ADMIN}), company=COMPANY)
ADMIN_B = Actor("adm-b", frozenset({Role.SYSTEM_ADMIN}), company="別会社株式会社")


@pytest.fixture
def worker(sqlite_deps, operator, account_admin):
    deps = sqlite_deps
    add_contract(deps, operator)
    SECRETS[id(deps)] = totp_worker(deps, operator, account_admin, PW)
    return deps


INSIDE = Client("T-1", "10.0.0.5")


def full_logon(deps, client: Client = INSIDE) -> logon.State:
    """Password, then a TOTP code of the next time step (each code counts once)."""
    state = logon.begin(deps, "kato", PW, client)
    if state.failed:
        return state
    deps.clock.advance(seconds=30)
    return logon.totp_step(deps, state.token, pyotp.TOTP(SECRETS[id(deps)]).at(deps.clock.now()), client)


def last_reason(deps) -> str:
    return [e.data.get("reason", "") for e in events(deps, "logon.password", "kato")][-1]


def test_a_contract_that_has_not_started_refuses_logon(sqlite_deps, operator, account_admin, clock):
    add_contract(sqlite_deps, operator, starts_on=clock.now().date() + timedelta(days=10))
    initial = active_account(sqlite_deps, account_admin, operator, "early").initial_password
    assert password_step(sqlite_deps, "early", initial) == logon.FAILED
    assert [e.data["reason"] for e in events(sqlite_deps, "logon.password", "early")] == [
        "contract_not_started"]
    clock.advance(days=10)
    assert password_step(sqlite_deps, "early", initial).step is lf.Step.CHANGE_PASSWORD


def test_a_leaver_loses_logon_at_departure_and_everything_within_the_revocation_time(worker, clock):
    deps = worker
    opened = full_logon(deps)
    assert opened.step is lf.Step.DONE
    accounts.record_departure(deps, ADMIN_A, "kato", clock.now() + timedelta(hours=2), "退職")
    assert full_logon(deps).step is lf.Step.DONE  # still employed for two hours
    clock.advance(hours=2)
    assert full_logon(deps) == logon.FAILED and last_reason(deps) == "departed"
    assert sessions.current(deps, opened.token) is None  # the live session ended with it
    # the scheduled job revokes within accounts.revocation_hours (it runs hourly, say)
    clock.advance(hours=deps.settings.accounts.revocation_hours - 1)
    report = maintenance.run(deps, AGENCY)
    assert report.revoked == ["kato"]
    with deps.uow(read_only=True) as uow:  # the identifier is released: find the row itself
        [acc] = uow.accounts(status="deleted")
        assert acc.user_id == "kato" and acc.revoked_at == clock.now()
        assert acc.password_hash is None and uow.credentials.totp_of(acc.id) is None
        ident = uow.identifier("kato")
        assert ident.holder_id is None and ident.released_at == clock.now()
    [revoked] = events(deps, "account.revoke", "kato")
    assert revoked.data["returns"] == ["id_card", "operation_manual"]
    # R6: the identifier is not given to anyone else inside the reuse window
    with pytest.raises(DomainError) as refused:
        accounts.create_account(deps, ADMIN_A, "kato", "加藤 二郎", "C-2026-001", "user")
    assert refused.value.code == "identifier_reserved"


def test_a_departure_in_the_past_takes_effect_now(worker, clock):
    accounts.record_departure(worker, ADMIN_A, "kato", clock.now() - timedelta(days=3))
    assert accounts.show(worker, AGENCY, "kato").leaves_at is not None
    assert full_logon(worker) == logon.FAILED and last_reason(worker) == "departed"


def test_only_the_companys_administrators_record_a_departure(worker, clock):
    with pytest.raises(DomainError) as refused:
        accounts.record_departure(worker, ADMIN_B, "kato", clock.now())
    assert refused.value.code == "account_not_found"
    assert full_logon(worker).step is lf.Step.DONE
    with pytest.raises(Forbidden):
        accounts.record_departure(worker, Actor("kato", frozenset({Role.SYSTEM_ADMIN}), company=COMPANY),
                                  "kato", clock.now())
    assert [e.data["reason"] for e in events(worker, "account.departure")] == ["other_company",
                                                                               "own_account"]


def test_remote_access_needs_approval_in_advance_with_a_period(worker, clock):
    assert full_logon(worker, REMOTE) == logon.FAILED and last_reason(worker) == "remote_not_approved"
    until = clock.now().date() + timedelta(days=1)
    accounts.approve_remote(worker, ADMIN_A, "kato", until, "出張")
    opened = full_logon(worker, REMOTE)
    assert opened.step is lf.Step.DONE
    clock.advance(days=2)  # the approval's last day is over
    assert sessions.current(worker, opened.token) is None
    assert full_logon(worker, REMOTE) == logon.FAILED
    assert full_logon(worker).step is lf.Step.DONE  # from inside nothing changes
    with pytest.raises(DomainError):
        accounts.approve_remote(worker, ADMIN_A, "kato", date(2020, 1, 1))  # not in the past


def test_a_maintenance_account_lives_only_inside_its_window(worker, clock):
    opens, closes = clock.now() + timedelta(hours=1), clock.now() + timedelta(hours=3)
    accounts.set_window(worker, ADMIN_A, "kato", opens, closes, "保守作業 #42")
    assert full_logon(worker) == logon.FAILED and last_reason(worker) == "outside_window"
    clock.advance(hours=1)
    opened = full_logon(worker)
    assert opened.step is lf.Step.DONE
    clock.advance(hours=2)  # the window closes: the session ends at once
    assert sessions.current(worker, opened.token) is None
    assert full_logon(worker) == logon.FAILED
    with pytest.raises(Forbidden):  # an account administrator cannot open windows
        accounts.set_window(worker, Actor("acct", frozenset({Role.ACCOUNT_ADMIN}), company=COMPANY),
                            "kato", opens, closes)


def test_every_action_of_a_maintenance_account_is_flagged(sqlite_deps, operator, account_admin, clock):
    from authsvc.services import console_gate

    add_contract(sqlite_deps, operator)
    active_account(sqlite_deps, account_admin, operator, "vendor-admin", role="account_admin")
    change_password(sqlite_deps, Actor("vendor-admin"), "vendor-admin", PW)
    active_account(sqlite_deps, account_admin, operator, "worker")
    accounts.set_window(sqlite_deps, ADMIN_A, "vendor-admin", clock.now(), clock.now() + timedelta(hours=4),
                        "保守作業 #7")
    assert password_step(sqlite_deps, "vendor-admin", PW).step is not None
    [logged_on] = [e for e in events(sqlite_deps, "logon.password", "vendor-admin") if e.result == "ok"]
    assert logged_on.data["maintenance_account"] is True
    vendor = console_gate.actor_of(sqlite_deps, "vendor-admin")
    assert vendor is not None and vendor.maintenance
    accounts.suspend(sqlite_deps, vendor, "worker", "作業のため")
    [acted] = events(sqlite_deps, "account.suspend", "worker")
    assert acted.data["maintenance_account"] is True
    clock.advance(hours=4)  # the window closed: no more administration either
    assert console_gate.actor_of(sqlite_deps, "vendor-admin") is None
