"""Groups (R8, R10, R24): a company's groups, each with the DSG services its members may use and
the second factors a member's logon may use; membership is an access-right change (003 6①),
requested by one administrator and approved by another, every step audited."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from authsvc.domain import identifiers
from authsvc.domain.calendar import jst_iso
from authsvc.domain.errors import DomainError, Forbidden, NotFound, OutOfScope
from authsvc.domain.logon_flow import FACTORS
from authsvc.domain.roles import Actor, Perm
from authsvc.services import Deps, backchannel, guard
from authsvc.store.models import Account, Group, GroupMember
from authsvc.store.uow import UnitOfWork


@dataclass(frozen=True)
class GroupView:
    company: str
    name: str
    factors: list[str]
    services: list[str]
    members: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _name(value: str) -> str:
    value = unicodedata.normalize("NFKC", value or "").strip()
    if not 1 <= len(value) <= 100 or any(unicodedata.category(c).startswith("C") for c in value):
        raise DomainError("group_name_invalid")
    return value


def _factors(values: list[str]) -> list[str]:
    """At least one second factor, each a known one (the password is always the first)."""
    second = [f for f in FACTORS if f != "password"]
    chosen = [f for f in second if f in set(values or [])]
    if not chosen or len(chosen) != len(set(values or [])):
        raise DomainError("group_factors_invalid", factors=", ".join(second))
    return chosen


def _services(values: list[str]) -> list[str]:
    names = sorted({" ".join(str(v).split())[:100] for v in values or [] if str(v).strip()})
    if len(names) > 100:
        raise DomainError("group_services_invalid")
    return names


def _company(actor: Actor, company: str | None, not_found: str, /, **params: Any) -> str:
    """The company the group is (to be) of: the one named, else the actor's own. Another
    company's answers like an unknown one (R24)."""
    chosen = company or actor.company
    if not chosen:
        raise DomainError("group_company_required")
    if not actor.reaches(chosen):
        raise OutOfScope(not_found, **params)
    return chosen


def _group(uow: UnitOfWork, actor: Actor, perm: Perm, company: str | None, name: str,
           lock: bool = False) -> Group:
    found = uow.groups.named(_company(actor, company, "group_not_found", group=name), _name(name),
                             lock=lock)
    if found is None:
        raise NotFound("group_not_found", group=name)
    guard.check(actor, perm, found.company, "group_not_found", group=name)
    return found


def _membership(uow: UnitOfWork, g: Group, user_id: str) -> tuple[Account, GroupMember]:
    """The account and its membership (requested or approved) of the group, locked."""
    acc = uow.account(identifiers.canonical(user_id))
    member = uow.groups.member(g.id, acc.id, lock=True) if acc is not None else None
    if acc is None or member is None:
        raise NotFound("group_member_not_found", user_id=user_id, group=g.name)
    return acc, member


def _view(uow: UnitOfWork, g: Group) -> GroupView:
    members = [{"user_id": uid, "requested_by": m.requested_by, "approved_by": m.approved_by,
                "approved_at": jst_iso(m.approved_at) if m.approved_at else None}
               for m, uid in uow.groups.members(g.id)]
    return GroupView(g.company, g.name, json.loads(g.factors), json.loads(g.services), members)


@guard.audited("group.create", "name")
def create(deps: Deps, actor: Actor, name: str, factors: list[str], services: list[str] | None = None,
           company: str | None = None) -> GroupView:
    actor.require(Perm.MANAGE_ACCOUNTS)
    now = deps.clock.now()
    chosen = _company(actor, company, "contract_company_unknown", company=company)
    group = Group(company=chosen, name=_name(name), factors=json.dumps(_factors(factors)),
                  services=json.dumps(_services(services or [])), created_by=actor.id, created_at=now)
    with deps.uow() as uow:
        if group.company not in {c.company for c in uow.contracts()}:
            raise NotFound("contract_company_unknown", company=group.company)
        if not uow.groups.add(group):
            raise DomainError("group_exists", group=group.name)
        uow.audit(now, actor, "group.create", group.name, company=group.company,
                  factors=json.loads(group.factors), services=json.loads(group.services))
        result = _view(uow, group)
        uow.commit()
    return result


@guard.audited("group.policy", "name")
def set_policy(deps: Deps, actor: Actor, name: str, factors: list[str] | None = None,
               services: list[str] | None = None, company: str | None = None) -> GroupView:
    """Change what a group's members may use: an access-right change, audited before and after."""
    actor.require(Perm.APPROVE_ACCESS)
    now = deps.clock.now()
    with deps.uow() as uow:
        g = _group(uow, actor, Perm.APPROVE_ACCESS, company, name, lock=True)
        before = {"factors": json.loads(g.factors), "services": json.loads(g.services)}
        if factors is not None:
            g.factors = json.dumps(_factors(factors))
        if services is not None:
            g.services = json.dumps(_services(services))
        uow.audit(now, actor, "group.policy", g.name, company=g.company, before=before,
                  factors=json.loads(g.factors), services=json.loads(g.services))
        result = _view(uow, g)
        uow.commit()
    return result


@guard.audited("group.request", "user_id")
def request_member(deps: Deps, actor: Actor, name: str, user_id: str,
                   company: str | None = None) -> GroupView:
    """Ask for an account of the group's company to join the group (effective once approved)."""
    actor.require(Perm.MANAGE_ACCOUNTS)
    now = deps.clock.now()
    with deps.uow() as uow:
        g = _group(uow, actor, Perm.MANAGE_ACCOUNTS, company, name, lock=True)
        _request(uow, actor, g, user_id, now)
        result = _view(uow, g)
        uow.commit()
    return result


def _request(uow: UnitOfWork, actor: Actor, g: Group, user_id: str, now: datetime) -> None:
    acc = uow.account(identifiers.canonical(user_id))
    if acc is None or not actor.reaches(acc.contract.company) or acc.contract.company != g.company:
        raise NotFound("account_not_found", user_id=user_id)
    if uow.groups.member(g.id, acc.id) is not None:
        raise DomainError("group_member_exists", user_id=acc.user_id, group=g.name)
    uow.groups.add_member(GroupMember(group_id=g.id, account_id=acc.id, requested_by=actor.id,
                                      requested_at=now))
    uow.audit(now, actor, "group.request", acc.user_id, group=g.name, company=g.company)


@guard.audited("group.request", "name")
def request_members(deps: Deps, actor: Actor, name: str, user_ids: list[str], company: str | None = None,
                    batch: int = 500) -> int:
    """`request_member` for many accounts (a directory sync's group), a batch per transaction;
    returns how many were requested."""
    actor.require(Perm.MANAGE_ACCOUNTS)
    done = 0
    for start in range(0, len(user_ids), batch):
        now = deps.clock.now()
        with deps.uow() as uow:
            g = _group(uow, actor, Perm.MANAGE_ACCOUNTS, company, name, lock=True)
            for user_id in user_ids[start:start + batch]:
                _request(uow, actor, g, user_id, now)
            uow.commit()
        done += len(user_ids[start:start + batch])
    return done


@guard.audited("group.approve", "user_id")
def approve_member(deps: Deps, actor: Actor, name: str, user_id: str,
                   company: str | None = None) -> GroupView:
    """A data manager or system administrator of the company approves a requested membership;
    never the one who requested it, never for their own account."""
    actor.require(Perm.APPROVE_ACCESS)
    now = deps.clock.now()
    with deps.uow() as uow:
        g = _group(uow, actor, Perm.APPROVE_ACCESS, company, name, lock=True)
        acc, member = _membership(uow, g, user_id)
        guard.check(actor, Perm.APPROVE_ACCESS, g.company, "group_not_found", own=acc.user_id,
                    group=name)
        if member.approved_at is not None:
            raise DomainError("group_member_exists", user_id=acc.user_id, group=g.name)
        if member.requested_by == actor.id:
            raise Forbidden("four_eyes")
        member.approved_by, member.approved_at = actor.id, now
        uow.audit(now, actor, "group.approve", acc.user_id, group=g.name, company=g.company,
                  requested_by=member.requested_by)
        result = _view(uow, g)
        uow.commit()
    # new rights: log on again
    backchannel.end_all(deps, identifiers.canonical(acc.user_id), "rights_changed")
    return result


@guard.audited("group.remove", "user_id")
def remove_member(deps: Deps, actor: Actor, name: str, user_id: str, company: str | None = None) -> GroupView:
    """Take an account out of a group (at once: removing rights needs no second person)."""
    actor.require(Perm.MANAGE_ACCOUNTS)
    now = deps.clock.now()
    with deps.uow() as uow:
        g = _group(uow, actor, Perm.MANAGE_ACCOUNTS, company, name, lock=True)
        acc, member = _membership(uow, g, user_id)
        uow.groups.remove_member(member)
        uow.audit(now, actor, "group.remove", acc.user_id, group=g.name, company=g.company)
        result = _view(uow, g)
        uow.commit()
    backchannel.end_all(deps, identifiers.canonical(acc.user_id), "rights_changed")
    return result


def list_groups(deps: Deps, actor: Actor, company: str | None = None) -> list[GroupView]:
    """The groups of the actor's company (an agency operator: of every company, or the one named)."""
    actor.require(Perm.READ_ACCOUNTS)
    with deps.uow(read_only=True) as uow:
        wanted = company if actor.everywhere else actor.company
        if not actor.everywhere and not wanted:
            return []
        return [_view(uow, g) for g in uow.groups.of_company(wanted or None)]
