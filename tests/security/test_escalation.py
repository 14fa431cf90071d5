"""Privilege escalation: a user's session, or a role without the permission, reaches no
administrative function, and a refused attempt writes nothing (R8)."""

from __future__ import annotations

from datetime import date

import pytest

from authsvc.domain.errors import Forbidden
from authsvc.domain.roles import Actor, Role
from authsvc.services import accounts, audit, maintenance, totp, webauthn
from tests.integration.support import active_account, add_contract, row_counts

ADMIN_CALLS = {
    "create_contract": lambda d, a: accounts.create_contract(d, a, "C-X", "X", date(2026, 4, 1), None),
    "create_account": lambda d, a: accounts.create_account(d, a, "mallory2", "M", "C-2026-001",
                                                           "system_admin"),
    "approve_identifier": lambda d, a: accounts.approve_identifier(d, a, "victim"),
    "update_account_role": lambda d, a: accounts.update_account(d, a, "victim", role="system_admin"),
    "suspend": lambda d, a: accounts.suspend(d, a, "victim"),
    "resume": lambda d, a: accounts.resume(d, a, "victim"),
    "delete": lambda d, a: accounts.delete(d, a, "victim"),
    "reset_password": lambda d, a: accounts.reset_password(d, a, "victim"),
    "unlock": lambda d, a: accounts.unlock(d, a, "victim"),
    "audit_events": lambda d, a: audit.events(d, a),
    "maintenance": lambda d, a: maintenance.run(d, a),
    "totp_enrol_for_another": lambda d, a: totp.begin_enrolment(d, a, "victim"),
    "webauthn_register_for_another": lambda d, a: webauthn.register(d, a, "victim", "x", {}, ""),
    "totp_remove_another": lambda d, a: totp.remove(d, a, "victim"),
}


@pytest.mark.parametrize("role", [Role.USER, Role.DATA_MANAGER])
@pytest.mark.parametrize("call", sorted(ADMIN_CALLS))
def test_users_reach_no_administrative_function(deps, operator, account_admin, role, call):
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "victim")
    mallory = Actor("mallory", frozenset({role}), terminal="t", source="203.0.113.5")
    before = row_counts(deps)
    with pytest.raises(Forbidden):
        ADMIN_CALLS[call](deps, mallory)
    assert row_counts(deps) == before


def test_an_account_administrator_cannot_approve_or_grant_itself_more(deps, operator, account_admin):
    add_contract(deps, operator)
    accounts.create_account(deps, account_admin, "newadmin", "新 管理者", "C-2026-001", "system_admin")
    with pytest.raises(Forbidden):
        accounts.approve_identifier(deps, account_admin, "newadmin")  # only system administrators
    assert accounts.show(deps, "newadmin").status == "pending"  # a role is nothing until approved


def test_the_api_offers_no_administrative_route(make_deps):
    from authsvc.web import create_app

    app = create_app(deps=make_deps("sqlite"))
    rules = [r.rule for r in app.url_map.iter_rules()]
    assert not [r for r in rules if any(w in r for w in ("admin", "user", "account", "audit", "unlock/"))]
