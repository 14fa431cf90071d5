"""Failed-attempt counters (R4) behind one small interface: `consume` decides and records an
attempt atomically *before* the password is checked, so parallel attempts through any number of
workers or instances never get more than N evaluations. Implementations: `SqlCounters`
(authsvc.store.counters; the embedded default, exact across processes on one database) and
`RedisCounters` (production)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from authsvc.domain.lockout import Decision


class Counters(Protocol):
    def consume(self, key: str, now: datetime, max_failures: int, lock_minutes: int) -> Decision:
        """Count one attempt for `key` (or refuse it while locked), as one atomic step."""
        ...

    def refund(self, key: str, max_failures: int) -> None:
        """One factor of a logon succeeded: give its attempt back (lockout.refund)."""
        ...

    def succeed(self, key: str) -> None:
        """A completed logon: the count and any provisional lock are cleared."""
        ...

    def peek(self, key: str, now: datetime) -> tuple[int, datetime | None]:
        """(consumed attempts, locked_until while the lock is in force, else None)."""
        ...

    def reset(self, key: str, now: datetime) -> tuple[int, bool]:
        """An operator's unlock: clears the key; returns (failures it had, whether it was locked)."""
        ...


class RedisCounters:
    """Counters in Redis; each call is one atomic Lua script (written in issue [2 of 8])."""

    def __init__(self, client: object) -> None:
        self._r = client

    def consume(self, key: str, now: datetime, max_failures: int, lock_minutes: int) -> Decision:
        raise NotImplementedError

    def refund(self, key: str, max_failures: int) -> None:
        raise NotImplementedError

    def succeed(self, key: str) -> None:
        raise NotImplementedError

    def peek(self, key: str, now: datetime) -> tuple[int, datetime | None]:
        raise NotImplementedError

    def reset(self, key: str, now: datetime) -> tuple[int, bool]:
        raise NotImplementedError
