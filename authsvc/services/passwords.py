"""A user's own new password (R1, R3): the rule, the history of the last N, the forced change
after an initial password (R2); and the rule check administrators use to explain it."""

from __future__ import annotations

from authsvc.domain import identifiers, passwords
from authsvc.domain.errors import NotFound, PasswordRejected
from authsvc.domain.lifecycle import Status
from authsvc.domain.roles import Actor
from authsvc.services import Deps
from authsvc.store.models import PasswordHistory


def check_candidate(deps: Deps, candidate: str, user_id: str | None = None) -> list[str]:
    """The codes of every rule the candidate breaks (empty: accepted). Logs nothing of it."""
    names: tuple[str, ...] = ()
    if user_id:
        with deps.uow() as uow:
            acc = uow.account(identifiers.canonical(user_id))
            if acc is None:
                raise NotFound("account_not_found", user_id=user_id)
            names = (acc.person.name,)
    return passwords.violations(candidate, deps.rule, user_id, names,
                                is_breached=deps.blocklist.is_breached)


def change_password(deps: Deps, actor: Actor, user_id: str, new_password: str) -> None:
    """Set the account's own new password. The caller has just authenticated `user_id`
    (the logon's password step, or the session's re-authentication)."""
    now = deps.clock.now()
    with deps.uow() as uow:
        acc = uow.account(identifiers.canonical(user_id))
        if acc is None or acc.status != Status.ACTIVE:
            raise NotFound("account_not_found", user_id=user_id)
        name = acc.person.name
        account_id = acc.id
        recent = [h.hash for h in uow.password_history(account_id, deps.settings.password.history)]
    normalized = passwords.check(new_password, deps.rule, user_id, (name,),
                                 is_breached=deps.blocklist.is_breached)
    if any(deps.hasher.verify(h, normalized) for h in recent):
        raise PasswordRejected(["pw_reused"], history=deps.settings.password.history)
    hashed = deps.hasher.hash(normalized)
    with deps.uow() as uow:
        acc = uow.account(identifiers.canonical(user_id), lock=True)
        if acc is None or acc.id != account_id:
            raise NotFound("account_not_found", user_id=user_id)
        acc.password_hash, acc.must_change_password, acc.password_changed_at = hashed, False, now
        uow.add(PasswordHistory(account_id=acc.id, hash=hashed, created_at=now))
        uow.audit(now, actor, "password.change", acc.user_id)
        uow.commit()
