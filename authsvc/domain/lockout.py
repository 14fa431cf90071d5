"""The lockout decision (R4, R5). An attempt reserves one of the remaining attempts *before*
the password (or factor) is checked, so parallel attempts can never exceed the limit; its
outcome then settles the reservation: a failure counts (the N-th locks), a success gives it
back. A reservation whose outcome is never decided (a worker died, Redis stalled) lapses after
a short time instead of counting, so an outage never leaves phantom failures, and every lock
follows a decided failure, which is audited before it is counted. Failures are counted per
submitted identifier, whether or not an account exists, so an unknown ID locks exactly like
a real one."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from authsvc.domain import identifiers

UNKNOWN_PREFIX = "unknown:"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def throttle_key(submitted: str | None, secret: bytes, is_known: Callable[[str], bool]) -> str:
    """The key failures are counted under, which is also the subject the audit log names.

    A known identifier is its own canonical form. Identifiers are ASCII by rule (R6): input
    that is not an identifier's syntax exactly -- a look-alike such as KELVIN SIGN for `k`,
    a long s for `s`, a no-break space -- is never matched to an account, and is counted like
    any unknown ID. An unknown ID, or a password typed into the ID field by mistake, is kept
    only as a keyed pseudonym, so no clear-text secret is ever stored (R2), while it still
    locks exactly like a real ID (R5). ASCII letters compare case-insensitively, nothing else
    is folded. Bounded in size, and storable whatever an attacker submits (NUL, surrogates)."""
    text = submitted if isinstance(submitted, str) else ""
    canonical = identifiers.canonical_or_none(text)
    if canonical is not None and is_known(canonical):
        return canonical
    folded = text.translate(_ASCII_LOWER)
    mac = hmac.new(secret, b"throttle:" + folded.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return UNKNOWN_PREFIX + mac.hexdigest()[:40]


@dataclass(frozen=True)
class Decision:
    allowed: bool            # may this attempt be evaluated at all
    failures: int            # decided failures before this attempt
    locked_until: datetime | None
    auto_unlocked: bool      # a lapsed lock was lifted by this attempt
    busy: bool = False       # refused: every remaining attempt is being evaluated right now
    attempt: str = ""        # the reservation to settle with `fail` or `release`


@dataclass(frozen=True)
class Failure:
    failures: int            # decided failures after this one
    locked_until: datetime | None
    locks_now: bool          # this failure set the lock


def consume(
    failures: int,
    in_flight: int,
    locked_until: datetime | None,
    now: datetime,
    max_failures: int,
    lock_minutes: int,
) -> Decision:
    """May one more attempt be evaluated? `in_flight` counts the live reservations of attempts
    being evaluated now; when allowed, the caller's store adds one more."""
    auto_unlocked = False
    if locked_until is not None:
        if now < locked_until:
            return Decision(False, failures, locked_until, False)
        failures, locked_until, auto_unlocked = 0, None, True
    if failures >= max_failures:  # defensive: a full count without a lock (a lowered limit)
        return Decision(False, failures, now + timedelta(minutes=lock_minutes), auto_unlocked)
    if failures + in_flight >= max_failures:
        return Decision(False, failures, None, auto_unlocked, busy=True)
    return Decision(True, failures, None, auto_unlocked)


def fail(failures: int, locked_until: datetime | None, now: datetime, max_failures: int,
         lock_minutes: int) -> Failure:
    """A reserved attempt failed: it counts, and the N-th decided failure locks."""
    failures += 1
    if locked_until is not None and now < locked_until:
        return Failure(failures, locked_until, False)
    if failures >= max_failures:
        return Failure(failures, now + timedelta(minutes=lock_minutes), True)
    return Failure(failures, None, False)

