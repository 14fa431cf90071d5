"""The lockout decision (R4, R5): an attempt is consumed *before* the password is checked, so
parallel attempts can never exceed the limit; the N-th consumed attempt provisionally locks,
and only a success lifts that lock. Keys are the submitted identifier, whether or not an
account exists, so an unknown ID locks exactly like a real one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta


def throttle_key(submitted: str) -> str:
    """Case-insensitive and bounded in size, whatever an attacker submits."""
    folded = (submitted or "").strip().casefold()
    if len(folded) <= 64:
        return folded
    return "sha256:" + hashlib.sha256(folded.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Decision:
    allowed: bool            # may this attempt be evaluated at all
    failures: int            # consumed attempts after this one
    locked_until: datetime | None
    auto_unlocked: bool      # a lapsed lock was lifted by this attempt
    locks_now: bool          # this attempt is the last one before the lock


def consume(
    failures: int,
    locked_until: datetime | None,
    now: datetime,
    max_failures: int,
    lock_minutes: int,
) -> Decision:
    auto_unlocked = False
    if locked_until is not None:
        if now < locked_until:
            return Decision(False, failures, locked_until, False, False)
        failures, locked_until, auto_unlocked = 0, None, True
    if failures >= max_failures:  # defensive: a full count without a lock
        return Decision(False, failures, now + timedelta(minutes=lock_minutes), auto_unlocked, False)
    failures += 1
    if failures >= max_failures:
        return Decision(True, failures, now + timedelta(minutes=lock_minutes), auto_unlocked, True)
    return Decision(True, failures, None, auto_unlocked, False)
