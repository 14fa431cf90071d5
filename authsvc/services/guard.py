"""The administrative guard (R8, R24; 004 第8 1(2)): who may do what to which company's
records, and every refused use of an administrative function written to the audit log and
raised as an alert for the actor's company (R25)."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from authsvc.domain import identifiers
from authsvc.domain.errors import Forbidden, NotFound, OutOfScope
from authsvc.domain.roles import Actor, Perm
from authsvc.services import Deps

if TYPE_CHECKING:
    from authsvc.store.models import Account
    from authsvc.store.uow import UnitOfWork

log = logging.getLogger("authsvc.guard")
F = TypeVar("F", bound=Callable[..., Any])


def check(actor: Actor, perm: Perm, company: str | None, not_found: str, /, *,
          own: str | None = None, **params: Any) -> None:
    """Raise unless `actor` may `perm` on something of `company`. Another company's record
    answers like an unknown one (`not_found` with `params`: no enumeration across companies);
    `own` is the user ID of the account acted on, when nobody may act on their own."""
    actor.require(perm)
    if not actor.reaches(company):
        raise OutOfScope(not_found, **params)
    target = identifiers.canonical_or_none(own) if own is not None else None
    if target is not None and target == identifiers.canonical_or_none(actor.id):
        raise Forbidden("own_account")


def account(uow: UnitOfWork, actor: Actor, perm: Perm, user_id: str, *, own_ok: bool = False,
            lock: bool = True) -> Account:
    """The account `actor` may `perm`: NotFound for an unknown ID, and the same answer for
    another company's (`check`); never their own unless `own_ok`."""
    acc = uow.account(identifiers.canonical(user_id), lock=lock)
    if acc is None:
        raise NotFound("account_not_found", user_id=user_id)
    check(actor, perm, acc.contract.company, "account_not_found",
          own=None if own_ok else acc.user_id, user_id=user_id)
    return acc


def audited(action: str, subject: str | None = "user_id") -> Callable[[F], F]:
    """Decorate an administrative use case `fn(deps, actor, ...)`: when it refuses the actor
    (Forbidden, or another company's record), the refusal is recorded with its real reason in
    a transaction of its own (the action's own rolled back: nothing changed), then re-raised."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(deps: Deps, actor: Actor, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(deps, actor, *args, **kwargs)
            except (Forbidden, OutOfScope) as exc:
                bound = signature.bind_partial(deps, actor, *args, **kwargs).arguments
                refused(deps, actor, action, str(bound.get(subject, "-")) if subject else "-",
                        getattr(exc, "reason", None) or exc.code)
                raise

        return wrapper  # type: ignore[return-value]

    return decorate


def refused(deps: Deps, actor: Actor, action: str, subject: str, reason: str) -> None:
    """Record a refused use of privileges (and tell the operators' log)."""
    from authsvc.services import alerts  # (alerts' own use cases are guarded by this module)

    log.warning("refused %s on %s by %s: %s", action, subject[:100], actor.id[:100], reason)
    now = deps.clock.now()
    with deps.uow() as uow:
        uow.audit(now, actor, action, subject[:100], "refused", reason=reason)
        alerts.note(uow, now, "privilege_refused", subject, actor.company or None, action=action,
                    actor=actor.id[:100], reason=reason)
        uow.commit()
