"""Queries of groups and their members (R8): a company's groups, memberships requested and
approved, and the factor policies that bind an account."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authsvc.store.models import Account, Group, GroupMember


class Groups:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, group: Group) -> bool:
        """Insert a group (flushed, so it has its id); False when the company already has a
        group of that name (the unique index settles a race; only the insert is undone)."""
        try:
            with self._s.begin_nested():
                self._s.add(group)
                self._s.flush()
        except IntegrityError:
            return False
        return True

    def named(self, company: str, name: str, lock: bool = False) -> Group | None:
        q = select(Group).where(Group.company == company, Group.name == name)
        return self._s.scalars(q.with_for_update() if lock else q).first()

    def of_company(self, company: str | None) -> list[Group]:
        """The company's groups by name (None: every company's, by company and name)."""
        q = select(Group).order_by(Group.company, Group.name)
        return list(self._s.scalars(q if company is None else q.where(Group.company == company)))

    def member(self, group_id: int, account_id: int, lock: bool = False) -> GroupMember | None:
        q = select(GroupMember).where(GroupMember.group_id == group_id,
                                      GroupMember.account_id == account_id)
        return self._s.scalars(q.with_for_update() if lock else q).first()

    def members(self, group_id: int) -> list[tuple[GroupMember, str]]:
        """The group's members and requested members with their user IDs, by user ID."""
        q = (select(GroupMember, Account.user_id).join(Account, Account.id == GroupMember.account_id)
             .where(GroupMember.group_id == group_id).order_by(Account.user_id))
        return [(m, uid) for m, uid in self._s.execute(q)]

    def add_member(self, member: GroupMember) -> None:
        self._s.add(member)
        self._s.flush()

    def remove_member(self, member: GroupMember) -> None:
        self._s.delete(member)
        self._s.flush()

    def factor_policies(self, account_id: int) -> list[tuple[str, ...]]:
        """The second factors each group the account is an approved member of allows."""
        q = (select(Group.factors).join(GroupMember, GroupMember.group_id == Group.id)
             .where(GroupMember.account_id == account_id, GroupMember.approved_at.is_not(None)))
        return [tuple(json.loads(f)) for f in self._s.scalars(q)]

    def memberships(self, account_id: int) -> list[Group]:
        """The groups the account is an approved member of, by name."""
        q = (select(Group).join(GroupMember, GroupMember.group_id == Group.id)
             .where(GroupMember.account_id == account_id, GroupMember.approved_at.is_not(None))
             .order_by(Group.name))
        return list(self._s.scalars(q))
