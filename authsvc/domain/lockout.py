"""The lockout decision (R4, R5): an attempt is consumed *before* the password is checked, so
parallel attempts can never exceed the limit; the N-th consumed attempt provisionally locks,
and only a success lifts that lock. Failures are counted per submitted identifier, whether or
not an account exists, so an unknown ID locks exactly like a real one."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

UNKNOWN_PREFIX = "unknown:"


def throttle_key(submitted: str | None, secret: bytes, is_known: Callable[[str], bool]) -> str:
    """The key failures are counted under, which is also the subject the audit log names.

    A known identifier is its own key (case-insensitive). Anything else -- an unknown ID, or a
    password typed into the ID field by mistake -- is kept only as a keyed pseudonym, so no
    clear-text secret is ever stored (R2), while it still locks exactly like a real ID (R5).
    Bounded in size, and storable whatever an attacker submits (NUL, lone surrogates)."""
    folded = (submitted or "").strip().casefold()
    storable = len(folded) <= 64 and not any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in folded)
    if storable and folded and is_known(folded):
        return folded
    mac = hmac.new(secret, b"throttle:" + folded.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return UNKNOWN_PREFIX + mac.hexdigest()[:40]


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


def refund(failures: int, locked_until: datetime | None, max_failures: int) -> tuple[int, datetime | None]:
    """A factor succeeded but the logon is not complete yet: give back the attempt it consumed
    (and the provisional lock it may have set), without forgiving earlier failures -- so
    knowing the password does not buy unlimited guesses at the second factor."""
    failures = max(0, failures - 1)
    return failures, (locked_until if failures >= max_failures else None)
