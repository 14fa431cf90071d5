"""R8/R22/R24: roles, least privilege, and which company's records an actor reaches."""

import pytest

from authsvc.domain.errors import DomainError, Forbidden
from authsvc.domain.roles import (
    HUMAN_ONLY,
    SCOPES,
    Actor,
    Perm,
    Role,
    Scope,
    company_key,
    parse_role,
    parse_scopes,
    scope_grants,
)

# What only the agency may do, whoever else holds every other right (R24). (Registration
# evidence is the agency's too, but by account: registration._agency, not by this table.)
AGENCY_ONLY = {Perm.MANAGE_CONTRACTS, Perm.RUN_MAINTENANCE}

# The rights table, written out here on its own so that any change to
# authsvc/domain/roles.py:GRANTS fails a test.
EXPECTED = {
    Role.AGENCY_OPERATOR: set(Perm),
    Role.SYSTEM_ADMIN: set(Perm) - AGENCY_ONLY - {Perm.CHECK_APPLICATIONS, Perm.APPROVE_APPLICATIONS,
                                                  Perm.MANAGE_ROSTERS},
    Role.ACCOUNT_ADMIN: {Perm.READ_ACCOUNTS, Perm.MANAGE_ACCOUNTS, Perm.UNLOCK, Perm.END_SESSIONS,
                         Perm.MANAGE_CLIENTS},
    Role.STAFF: {Perm.READ_ACCOUNTS, Perm.READ_AUDIT, Perm.UNLOCK, Perm.END_SESSIONS,
                 Perm.ENROL_BIOMETRICS, Perm.READ_EVIDENCE},
    Role.DATA_MANAGER: {Perm.APPROVE_ACCESS},
    Role.USER: set(),
    Role.PROCURING_OFFICE: {Perm.READ_APPLICATIONS, Perm.CHECK_APPLICATIONS, Perm.MANAGE_ROSTERS},
}


def actor(*roles, company=""):
    return Actor("someone", frozenset(roles), company=company)


def test_the_table_names_every_role():
    assert set(EXPECTED) == set(Role)


@pytest.mark.parametrize("role", list(Role))
def test_each_role_has_exactly_its_rights(role):
    granted = {p for p in Perm if actor(role).can(p)}
    assert granted == EXPECTED[role]
    for perm in set(Perm) - EXPECTED[role]:
        with pytest.raises(Forbidden):
            actor(role).require(perm)


def test_a_system_administrator_has_no_agency_only_right():
    adm = actor(Role.SYSTEM_ADMIN, company="防衛産業株式会社")
    for perm in AGENCY_ONLY:
        assert not adm.can(perm), perm
        with pytest.raises(Forbidden):
            adm.require(perm)
    # ...and every other right of a company's administration (but the steps above the companies
    # of a usage application: the procuring office's check and rosters, the agency's approval)
    assert all(adm.can(p) for p in EXPECTED[Role.SYSTEM_ADMIN])


def test_only_the_agency_operator_has_the_agency_only_rights():
    for perm in AGENCY_ONLY:
        assert {r for r in Role if actor(r).can(perm)} == {Role.AGENCY_OPERATOR}, perm


def test_user_has_no_permission():
    for perm in Perm:
        assert not actor(Role.USER).can(perm)
        with pytest.raises(Forbidden):
            actor(Role.USER).require(perm)


def test_data_manager_only_approves_access_to_their_data():
    mgr = actor(Role.DATA_MANAGER)
    assert mgr.can(Perm.APPROVE_ACCESS)
    for perm in set(Perm) - {Perm.APPROVE_ACCESS}:
        assert not mgr.can(perm)
        with pytest.raises(Forbidden):
            mgr.require(perm)


def test_only_system_admin_and_agency_operator_approve_identifiers():
    approvers = {r for r in Role if actor(r).can(Perm.APPROVE_IDENTIFIERS)}
    assert approvers == {Role.SYSTEM_ADMIN, Role.AGENCY_OPERATOR}


def test_only_system_admin_staff_and_agency_operator_read_the_audit_log():
    readers = {r for r in Role if actor(r).can(Perm.READ_AUDIT)}
    assert readers == {Role.SYSTEM_ADMIN, Role.STAFF, Role.AGENCY_OPERATOR}


def test_account_admin_manages_accounts_but_does_not_approve_or_maintain():
    adm = actor(Role.ACCOUNT_ADMIN)
    assert adm.can(Perm.MANAGE_ACCOUNTS) and adm.can(Perm.UNLOCK)
    for perm in (Perm.APPROVE_IDENTIFIERS, Perm.READ_AUDIT, Perm.MANAGE_CONTRACTS,
                 Perm.RUN_MAINTENANCE):
        assert not adm.can(perm)


def test_staff_cannot_manage_accounts():
    assert not actor(Role.STAFF).can(Perm.MANAGE_ACCOUNTS)


def test_require_raises_forbidden_and_passes_when_permitted():
    with pytest.raises(Forbidden) as exc:
        actor(Role.ACCOUNT_ADMIN).require(Perm.APPROVE_IDENTIFIERS)
    assert exc.value.code == "forbidden"
    actor(Role.SYSTEM_ADMIN).require(Perm.APPROVE_IDENTIFIERS)  # no error


def test_an_actor_without_roles_can_do_nothing():
    nobody = Actor("svc-x")
    assert not any(nobody.can(p) for p in Perm)


def test_several_roles_combine():
    both = actor(Role.ACCOUNT_ADMIN, Role.STAFF)
    assert both.can(Perm.MANAGE_ACCOUNTS) and both.can(Perm.READ_AUDIT)
    assert not both.can(Perm.APPROVE_IDENTIFIERS)


def test_actor_fields_in_order():
    a = Actor("sato", frozenset({Role.SYSTEM_ADMIN}), "CONSOLE-1", "10.0.0.9", "防衛産業株式会社")
    assert (a.id, a.terminal, a.source, a.company) == (
        "sato", "CONSOLE-1", "10.0.0.9", "防衛産業株式会社")
    assert Actor("x").company == ""


# ---- which company's records an actor reaches (R24) -----------------------------------------


def test_the_agency_operator_reaches_every_company_and_none():
    ops = actor(Role.AGENCY_OPERATOR)
    assert ops.everywhere
    for company in ("防衛産業株式会社", "別会社株式会社", "DSG運用", "", None):
        assert ops.reaches(company)


def test_a_company_administrator_reaches_only_their_company():
    for role in (Role.SYSTEM_ADMIN, Role.ACCOUNT_ADMIN, Role.STAFF):
        adm = actor(role, company="防衛産業株式会社")
        assert not adm.everywhere
        assert adm.reaches("防衛産業株式会社")
        assert not adm.reaches("別会社株式会社")
        # what belongs to no company (a terminal serving every company) is the agency's
        assert not adm.reaches(None) and not adm.reaches("")


def test_company_names_compare_after_normalisation():
    adm = actor(Role.SYSTEM_ADMIN, company="ＡＢＣ  Trading")
    assert adm.reaches("abc trading") and adm.reaches(" ABC Trading ")
    assert not adm.reaches("ABC Tradings")
    assert company_key("ＡＢＣ  Trading") == company_key("abc trading") == "abc trading"
    assert company_key(None) == company_key("") == ""


def test_an_actor_with_no_company_and_no_agency_role_reaches_nothing():
    for role in (Role.SYSTEM_ADMIN, Role.ACCOUNT_ADMIN, Role.STAFF, Role.USER):
        lost = actor(role)
        for company in ("防衛産業株式会社", "", None):
            assert not lost.reaches(company)
    assert not Actor("svc-x").reaches("防衛産業株式会社")


def test_only_administrators_of_accounts_manage_service_clients():
    assert {r for r in Role if actor(r).can(Perm.MANAGE_CLIENTS)} == {
        Role.AGENCY_OPERATOR, Role.SYSTEM_ADMIN, Role.ACCOUNT_ADMIN}


# ---- service clients' scopes (R6) -----------------------------------------------------------

# The scopes table, written out on its own like the rights table above.
EXPECTED_SCOPES = {
    Scope.ACCOUNTS_READ: {Perm.READ_ACCOUNTS},
    Scope.ACCOUNTS_WRITE: {Perm.READ_ACCOUNTS, Perm.MANAGE_ACCOUNTS, Perm.UNLOCK, Perm.END_SESSIONS},
    Scope.DIRECTORY_SYNC: {Perm.READ_ACCOUNTS, Perm.MANAGE_ACCOUNTS},
    Scope.AUDIT_READ: {Perm.READ_AUDIT},
    Scope.DEVICES_WRITE: {Perm.MANAGE_DEVICES},
}
APPROVALS = {Perm.APPROVE_IDENTIFIERS, Perm.APPROVE_ACCESS, Perm.APPROVE_REMOTE,
             Perm.MANAGE_CONTRACTS, Perm.RUN_MAINTENANCE}


def test_each_scope_grants_exactly_its_rights():
    assert set(SCOPES) == set(Scope) == set(EXPECTED_SCOPES)
    for scope, perms in EXPECTED_SCOPES.items():
        assert set(SCOPES[scope]) == perms == set(scope_grants([scope])), scope
    assert [s.value for s in Scope] == ["accounts:read", "accounts:write", "directory:sync",
                                        "audit:read", "devices:write"]


def test_no_scope_grants_an_approval_or_a_human_only_right():
    assert APPROVALS <= HUMAN_ONLY
    assert {Perm.MANAGE_CLIENTS, Perm.ENROL_BIOMETRICS, Perm.READ_EVIDENCE} <= HUMAN_ONLY
    for scope in Scope:
        assert not SCOPES[scope] & HUMAN_ONLY, scope
    assert not scope_grants(list(Scope)) & HUMAN_ONLY


def svc(*scopes, role=Role.SYSTEM_ADMIN, company="防衛産業株式会社"):
    return Actor("svc:sync-a", frozenset({role}), company=company, grants=scope_grants(scopes))


def test_a_service_client_can_exactly_what_its_scopes_give_within_its_ceiling():
    for scope in Scope:
        granted = {p for p in Perm if svc(scope).can(p)}
        assert granted == EXPECTED_SCOPES[scope], scope
        for perm in set(Perm) - granted:
            with pytest.raises(Forbidden):
                svc(scope).require(perm)
    assert svc(Scope.ACCOUNTS_READ).process and not actor(Role.SYSTEM_ADMIN).process
    # the roles are the ceiling: grants never add what the roles do not give
    bounded = Actor("svc:x", frozenset({Role.ACCOUNT_ADMIN}), grants=frozenset(Perm))
    assert {p for p in Perm if bounded.can(p)} == EXPECTED[Role.ACCOUNT_ADMIN]
    assert not any(Actor("svc:x", grants=frozenset(Perm)).can(p) for p in Perm)
    assert not any(Actor("svc:x", frozenset({Role.AGENCY_OPERATOR}), grants=frozenset()).can(p)
                   for p in Perm)


def test_a_service_client_reaches_exactly_what_its_ceiling_reaches():
    company = svc(Scope.ACCOUNTS_READ)
    assert not company.everywhere and company.reaches("防衛産業株式会社")
    assert not company.reaches("別会社株式会社") and not company.reaches(None)
    agency = svc(Scope.ACCOUNTS_READ, role=Role.AGENCY_OPERATOR, company="")
    assert agency.everywhere and agency.reaches("別会社株式会社") and agency.reaches(None)
    assert not agency.can(Perm.MANAGE_ACCOUNTS) and not agency.can(Perm.RUN_MAINTENANCE)


def test_parse_scopes():
    assert parse_scopes(["audit:read", "accounts:read", "audit:read"]) == (
        Scope.ACCOUNTS_READ, Scope.AUDIT_READ)
    for bad, code in (([], "client_scopes_required"), ("accounts:read", "client_scopes_required"),
                      (None, "client_scopes_required"), (["accounts:admin"], "client_scope_unknown"),
                      (["ACCOUNTS:READ"], "client_scope_unknown"), ([1], "client_scope_unknown")):
        with pytest.raises(DomainError) as exc:
            parse_scopes(bad)
        assert exc.value.code == code, bad


def test_parse_role():
    assert parse_role("system_admin") is Role.SYSTEM_ADMIN
    assert parse_role("agency_operator") is Role.AGENCY_OPERATOR
    for bad in ("admin", "SYSTEM_ADMIN", "", "system_admin "):
        with pytest.raises(DomainError) as exc:
            parse_role(bad)
        assert exc.value.code == "role_unknown"
