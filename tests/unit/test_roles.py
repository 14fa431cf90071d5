"""R8/R22: roles and least privilege."""

import pytest

from authsvc.domain.errors import DomainError, Forbidden
from authsvc.domain.roles import Actor, Perm, Role, parse_role

ADMIN_PERMS = set(Perm)


def actor(*roles):
    return Actor("someone", frozenset(roles))


@pytest.mark.parametrize("role", [Role.USER, Role.DATA_MANAGER])
def test_user_and_data_manager_have_no_administrative_permission(role):
    for perm in ADMIN_PERMS:
        assert not actor(role).can(perm)
        with pytest.raises(Forbidden):
            actor(role).require(perm)


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


def test_parse_role():
    assert parse_role("system_admin") is Role.SYSTEM_ADMIN
    for bad in ("admin", "SYSTEM_ADMIN", "", "system_admin "):
        with pytest.raises(DomainError) as exc:
            parse_role(bad)
        assert exc.value.code == "role_unknown"
