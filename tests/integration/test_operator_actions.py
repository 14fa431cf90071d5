"""Operators' actions on one account and on contracts (R7, R24): resetting a second factor
(TOTP, security keys, the palm) and changing a contract's period — scoped, audited, and
effective at the next request. Real services on SQLite."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from authsvc.domain import logon_flow as lf
from authsvc.domain.errors import DomainError, Forbidden, NotFound
from authsvc.domain.roles import Actor, Role
from authsvc.services import accounts, logon, operators
from authsvc.services.sessions import Client
from authsvc.store.models import VeinEnrolment
from tests.conftest import AGENCY, COMPANY
from tests.integration.support import CHOSEN, add_contract, events, totp_worker

PW = CHOSEN[0]
ADMIN_A = Actor("adm-a", frozenset({Role.SYSTEM_ADMIN}), company=COMPANY)
ADMIN_B = Actor("adm-b", frozenset({Role.SYSTEM_ADMIN}), company="別会社株式会社")
CLIENT = Client("T-1", "10.0.0.5")


@pytest.fixture
def deps(sqlite_deps, operator, account_admin):
    d = sqlite_deps
    add_contract(d, operator)
    totp_worker(d, operator, account_admin, PW)
    return d


def test_a_lost_authenticator_is_reset_and_the_user_enrols_again(deps):
    assert logon.begin(deps, "kato", PW, CLIENT).step is lf.Step.SECOND_FACTOR
    with pytest.raises(NotFound):  # another company's administrator: as for an unknown ID
        operators.reset_factor(deps, ADMIN_B, "kato", "totp", "紛失")
    operators.reset_factor(deps, ADMIN_A, "kato", "totp", "スマートフォン紛失")
    assert logon.begin(deps, "kato", PW, CLIENT).step is lf.Step.REGISTER  # nothing left but a palm
    [done] = [e for e in events(deps, "account.reset_factor") if e.result == "ok"]
    assert done.data == {"factor": "totp", "removed": 1, "reason": "スマートフォン紛失"}
    with pytest.raises(NotFound) as again:
        operators.reset_factor(deps, ADMIN_A, "kato", "totp", "二度目")
    assert again.value.code == "factor_not_enrolled"
    with pytest.raises(DomainError):
        operators.reset_factor(deps, ADMIN_A, "kato", "password", "x")


def test_a_palm_is_reset_for_the_person(deps, clock):
    with deps.uow() as uow:
        acc = uow.account("kato")
        uow.add(VeinEnrolment(person_id=acc.person_id, template="sealed", reader_id="R-1",
                              enrolled_by="staff", enrolled_at=clock.now(), disabled_at=clock.now()))
        uow.commit()
    with pytest.raises(Forbidden):  # not one's own
        operators.reset_factor(deps, Actor("kato", frozenset({Role.SYSTEM_ADMIN}), company=COMPANY),
                               "kato", "vein")
    operators.reset_factor(deps, ADMIN_A, "kato", "vein", "失敗で無効化のため再登録")
    with deps.uow(read_only=True) as uow:
        assert uow.biometrics.enrolment_of(uow.account("kato").person_id) is None


def test_the_agency_changes_a_contracts_period_and_logon_follows(deps, clock):
    with pytest.raises(Forbidden):  # a company's administrator cannot
        accounts.change_contract_period(deps, ADMIN_A, "C-2026-001", clock.now().date(), None)
    later = clock.now().date() + timedelta(days=30)
    accounts.change_contract_period(deps, AGENCY, "C-2026-001", later, None, "開始延期")
    assert logon.begin(deps, "kato", PW, CLIENT) == logon.FAILED  # not started yet
    [change] = [e for e in events(deps, "contract.period") if e.result == "ok"]
    assert change.data["starts_on"] == later.isoformat() and change.data["reason"] == "開始延期"
    with pytest.raises(DomainError):
        accounts.change_contract_period(deps, AGENCY, "C-2026-001", later, date(2026, 1, 1))
