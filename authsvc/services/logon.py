"""The password step of a logon (R2, R4, R5, R9). One generic failure for every reason; the
real reason goes to the audit log for operators. The multi-factor state machine that follows
this step is built on top of it (issue [2 of 8])."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from authsvc.domain import identifiers, lockout
from authsvc.domain.lifecycle import Status
from authsvc.domain.roles import Actor
from authsvc.services import Deps
from authsvc.services.accounts import access_end, last_use
from authsvc.store.models import Account


class Outcome(StrEnum):
    FAILED = "failed"                                      # the one answer an attacker sees
    # R2: after an initial password only the change is reachable
    PASSWORD_CHANGE_REQUIRED = "password_change_required"  # noqa: S105
    PASSWORD_OK = "password_ok"  # noqa: S105 (next: the second factor)


@dataclass(frozen=True)
class PasswordStep:
    outcome: Outcome
    user_id: str | None = None  # only set when the password step succeeded


def start(deps: Deps, user_id: str, password: str, terminal: str = "", source: str = "") -> PasswordStep:
    pol = deps.settings.lockout
    now = deps.clock.now()
    with deps.uow(read_only=True) as uow:
        key = lockout.throttle_key(user_id, deps.audit_key, lambda k: uow.identifier(k) is not None)
        acc = None if key.startswith(lockout.UNKNOWN_PREFIX) else uow.account(key)
        stored = acc.password_hash if acc else None
    actor = Actor(id=key, terminal=terminal, source=source)
    # 1. consume an attempt, atomically and before any hashing: exact under concurrency (R4)
    decision = deps.counters.consume(key, now, pol.max_failures, pol.lock_minutes)
    if decision.auto_unlocked or not decision.allowed:
        with deps.uow() as uow:
            if decision.auto_unlocked:
                uow.audit(now, actor, "account.auto_unlock", key)
            if not decision.allowed:
                uow.audit(now, actor, "logon.password", key, "refused", reason="locked")
            uow.commit()
        if not decision.allowed:
            return PasswordStep(Outcome.FAILED)
    # 2. verify (a dummy hash when the account is unknown: same work, same time, R5)
    matched = deps.hasher.verify(stored, password)
    # 3. record the outcome
    with deps.uow() as uow:
        acc = uow.account(key, lock=True) if acc else None
        reason = _refusal(deps, acc, matched, now)
        if reason is None:
            assert acc is not None
            acc.first_used_at = acc.first_used_at or now
            acc.last_used_at = now
            if acc.password_hash and deps.hasher.needs_rehash(acc.password_hash):
                acc.password_hash = deps.hasher.hash(password)  # R3: transparent upgrade
            outcome = (Outcome.PASSWORD_CHANGE_REQUIRED if acc.must_change_password
                       else Outcome.PASSWORD_OK)
            uow.audit(now, actor, "logon.password", acc.user_id, "ok", next=outcome.value)
            uow.commit()
            deps.counters.succeed(key)
            return PasswordStep(outcome, acc.user_id)
        uow.audit(now, actor, "logon.password", key, "failed", reason=reason,
                  failures=decision.failures)
        if decision.locks_now:
            uow.audit(now, actor, "account.lock", key, failures=decision.failures,
                      locked_until=decision.locked_until.isoformat() if decision.locked_until else None)
        uow.commit()
    return PasswordStep(Outcome.FAILED)


def _refusal(deps: Deps, acc: Account | None, matched: bool, now: datetime) -> str | None:
    """The operator-only reason a logon is refused, or None when it may proceed."""
    if acc is None:
        return "unknown_user"
    if acc.status != Status.ACTIVE:
        return f"status_{acc.status}"
    ends = access_end(deps, acc.contract)
    if ends is not None and now >= ends:
        return "contract_ended"
    if identifiers.is_inactive(last_use(acc), now, deps.settings.identifiers.disable_after_days):
        return "inactive"  # fail closed even before the maintenance job has disabled it
    if not matched:
        return "wrong_password"
    return None
