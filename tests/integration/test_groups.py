"""Groups (R8, R10, R24): a company's groups with a factor policy per group; membership is an
access-right change, requested and approved by two people of the company and audited; a
group allowing only palm vein refuses a TOTP logon. Real services on SQLite."""

from __future__ import annotations

import pytest

from authsvc.domain import logon_flow as lf
from authsvc.domain.errors import DomainError, Forbidden, NotFound
from authsvc.domain.roles import Actor, Role
from authsvc.services import groups, logon
from authsvc.services.sessions import Client
from tests.conftest import COMPANY
from tests.integration.support import CHOSEN, add_contract, events, totp_worker

PW = CHOSEN[0]
ACCT = Actor("acct-a", frozenset({Role.ACCOUNT_ADMIN}), company=COMPANY)
DATA = Actor("data-a", frozenset({Role.DATA_MANAGER}), company=COMPANY)
ADMIN = Actor("adm-a", frozenset({Role.SYSTEM_ADMIN}), company=COMPANY)
OTHER = Actor("adm-b", frozenset({Role.SYSTEM_ADMIN}), company="別会社株式会社")
CLIENT = Client("T-1", "10.0.0.5")


@pytest.fixture
def deps(sqlite_deps, operator, account_admin):
    d = sqlite_deps
    add_contract(d, operator)
    add_contract(d, operator, "C-B", "別会社株式会社")
    totp_worker(d, operator, account_admin, PW)
    return d


def test_a_group_allowing_only_palm_vein_refuses_a_totp_logon(deps):
    assert logon.begin(deps, "kato", PW, CLIENT).options == ("totp",)  # the deployment's default
    groups.create(deps, ACCT, "設計部", ["vein"], ["dsg-files"])
    groups.request_member(deps, ACCT, "設計部", "kato")
    assert logon.begin(deps, "kato", PW, CLIENT).options == ("totp",)  # requested: not yet
    groups.approve_member(deps, DATA, "設計部", "kato")
    state = logon.begin(deps, "kato", PW, CLIENT)
    assert "totp" not in state.options and state.step is lf.Step.REGISTER  # palm, not TOTP
    assert logon.totp_step(deps, state.token, "123456", CLIENT).refused
    [approved] = events(deps, "group.approve", "kato")
    assert approved.actor == "data-a" and approved.data["requested_by"] == "acct-a"


def test_membership_needs_a_second_person_and_leaving_takes_effect_at_once(deps):
    groups.create(deps, ADMIN, "運用", ["totp", "vein"])
    groups.request_member(deps, ADMIN, "運用", "kato")
    with pytest.raises(Forbidden) as same:
        groups.approve_member(deps, ADMIN, "運用", "kato")
    assert same.value.code == "four_eyes"
    groups.approve_member(deps, DATA, "運用", "kato")
    assert groups.list_groups(deps, ADMIN)[0].members[0]["approved_by"] == "data-a"
    groups.remove_member(deps, ACCT, "運用", "kato")
    assert groups.list_groups(deps, ADMIN)[0].members == []
    assert [e.data["reason"] for e in events(deps, "group.approve") if e.result == "refused"] == [
        "four_eyes"]


def test_another_company_neither_sees_nor_changes_a_group(deps):
    groups.create(deps, ACCT, "設計部", ["vein"])
    assert groups.list_groups(deps, OTHER) == []
    for attempt in (lambda: groups.request_member(deps, OTHER, "設計部", "kato"),
                    lambda: groups.set_policy(deps, OTHER, "設計部", ["totp"]),
                    lambda: groups.approve_member(deps, OTHER, "設計部", "kato")):
        with pytest.raises(NotFound):
            attempt()
    # naming the other company does not help a company's administrator
    with pytest.raises(NotFound):
        groups.set_policy(deps, OTHER, "設計部", ["totp"], company=COMPANY)
    assert groups.list_groups(deps, ADMIN)[0].factors == ["vein"]


def test_a_policy_needs_a_second_factor_and_changes_are_audited(deps):
    with pytest.raises(DomainError):
        groups.create(deps, ACCT, "空", [])
    with pytest.raises(DomainError):
        groups.create(deps, ACCT, "不明", ["password"])
    groups.create(deps, ACCT, "設計部", ["vein"])
    with pytest.raises(Forbidden):  # an account administrator does not change access rights
        groups.set_policy(deps, ACCT, "設計部", ["totp"])
    groups.set_policy(deps, DATA, "設計部", ["vein", "totp"])
    [change] = [e for e in events(deps, "group.policy") if e.result == "ok"]
    assert change.data["before"]["factors"] == ["vein"] and change.data["factors"] == ["totp", "vein"]
