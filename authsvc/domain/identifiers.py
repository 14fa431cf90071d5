"""Identifier rules (R6): syntax, no reassignment within the reuse window, inactivity."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from authsvc.domain.errors import DomainError

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,63}")


def canonical(user_id: str) -> str:
    """User IDs compare case-insensitively: `Tanaka` and `tanaka` are one identifier."""
    if not isinstance(user_id, str) or not _ID.fullmatch(user_id):
        raise DomainError("identifier_invalid")
    return user_id.lower()


def canonical_or_none(value: object) -> str | None:
    """The canonical form, or None for anything that cannot be an identifier (for checks that
    answer "no" rather than raise, such as a factor verification)."""
    try:
        return canonical(value)  # type: ignore[arg-type]
    except DomainError:
        return None


def reusable_from(released_at: datetime, reuse_after_days: int) -> datetime:
    return released_at + timedelta(days=reuse_after_days)


def check_assignable(
    user_id: str,
    now: datetime,
    holder_active: bool,
    released_at: datetime | None,
    reuse_after_days: int,
) -> None:
    """Raise unless `user_id` may be given to a new account or device now."""
    if holder_active:
        raise DomainError("identifier_in_use", user_id=user_id)
    if released_at is not None:
        until = reusable_from(released_at, reuse_after_days)
        if now < until:
            raise DomainError("identifier_reserved", user_id=user_id, until=until.date().isoformat())


def is_inactive(last_used: datetime, now: datetime, disable_after_days: int) -> bool:
    return now - last_used >= timedelta(days=disable_after_days)
