"""Account states and the transitions between them (R6, R7)."""

from __future__ import annotations

from enum import StrEnum

from authsvc.domain.errors import DomainError


class Status(StrEnum):
    PENDING = "pending"        # identifier assigned, awaiting a system administrator's approval
    ACTIVE = "active"
    SUSPENDED = "suspended"    # by an operator; resumable
    DISABLED = "disabled"      # unused for too long (R6); an operator may resume it
    EXPIRED = "expired"        # contract period and cleanup period are over
    DELETED = "deleted"        # identifier released (tombstone kept); final


# action -> the states it may start from, and the state it leads to
TRANSITIONS: dict[str, tuple[frozenset[Status], Status]] = {
    "approve": (frozenset({Status.PENDING}), Status.ACTIVE),
    "suspend": (frozenset({Status.ACTIVE, Status.DISABLED}), Status.SUSPENDED),
    "resume": (frozenset({Status.SUSPENDED, Status.DISABLED}), Status.ACTIVE),
    "disable": (frozenset({Status.ACTIVE}), Status.DISABLED),
    "expire": (frozenset({Status.PENDING, Status.ACTIVE, Status.SUSPENDED, Status.DISABLED}),
               Status.EXPIRED),
    "delete": (frozenset(set(Status) - {Status.DELETED}), Status.DELETED),
}


def transition(current: Status, action: str) -> Status:
    allowed, target = TRANSITIONS[action]
    if current not in allowed:
        raise DomainError("bad_transition", status=current.value, action=action)
    return target


def holds_identifier(status: Status) -> bool:
    """Every state but DELETED keeps the identifier bound to its account."""
    return status is not Status.DELETED
