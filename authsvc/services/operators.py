"""The operators' view of one account (R9, R16, R24): its page — state and the real lock or
refusal reasons, factors, live sessions, logon history with reasons — and ending all of its
sessions; scoped to the operator's company like every administrative read and write."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from authsvc.domain import identifiers
from authsvc.domain.errors import DomainError, NotFound
from authsvc.domain.roles import Actor, Perm
from authsvc.services import Deps, accounts, backchannel, guard, sessions


@dataclass(frozen=True)
class AccountPage:
    account: accounts.AccountView
    factors: tuple[str, ...]          # the second factors enrolled: vein, totp, webauthn
    sessions: list[dict[str, Any]]    # live sessions, newest first
    history: list[dict[str, Any]]     # logons with the real reason of each refusal

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "account": self.account.to_dict(), "factors": list(self.factors)}


@guard.audited("account.read")
def page(deps: Deps, actor: Actor, user_id: str, history_limit: int = 50) -> AccountPage:
    """Everything an operator needs to answer "why can't I log on?" for one account."""
    actor.require(Perm.READ_ACCOUNTS)
    with deps.uow(read_only=True) as uow:
        acc = guard.account(uow, actor, Perm.READ_ACCOUNTS, user_id, own_ok=True, lock=False)
        view = accounts.view(deps, uow, acc)
        factors = uow.enrolled_factors(acc.id, acc.person_id)
    key = identifiers.canonical(view.user_id)
    return AccountPage(view, tuple(factors), sessions.sessions_of(deps, key),
                       sessions.history(deps, view.user_id, history_limit, with_reason=True))


@guard.audited("account.end_sessions")
def end_sessions(deps: Deps, actor: Actor, user_id: str, reason: str = "") -> int:
    """End every session of the account now (R16); the number ended."""
    actor.require(Perm.END_SESSIONS)
    with deps.uow(read_only=True) as uow:
        shown = guard.account(uow, actor, Perm.END_SESSIONS, user_id, lock=False).user_id
    ended = backchannel.end_all(deps, identifiers.canonical(shown), "ended_by_operator")
    with deps.uow() as uow:
        uow.audit(deps.clock.now(), actor, "account.end_sessions", shown, ended=ended,
                  reason=" ".join((reason or "").split())[:200])
        uow.commit()
    return ended


FACTORS = ("totp", "webauthn", "vein")


@guard.audited("account.reset_factor")
def reset_factor(deps: Deps, actor: Actor, user_id: str, factor: str, reason: str = "") -> None:
    """Take a second factor away from the account (lost phone, lost key, a palm to register
    again, or one disabled after failures): TOTP and security keys are removed (the user enrols
    again at the next logon); the palm, the person's, is removed for every account of the
    person, who registers it again."""
    actor.require(Perm.MANAGE_ACCOUNTS)
    if factor not in FACTORS:
        raise DomainError("factor_unknown", factor=str(factor)[:20])
    now = deps.clock.now()
    with deps.uow() as uow:
        acc = guard.account(uow, actor, Perm.MANAGE_ACCOUNTS, user_id)
        removed = 0
        if factor == "totp":
            cred = uow.credentials.totp_of(acc.id)
            removed = int(cred is not None) + uow.credentials.drop_pending_totp(
                identifiers.canonical(acc.user_id))
            if cred is not None:
                uow.credentials.remove_totp(cred)
        elif factor == "webauthn":
            for cred in uow.credentials.webauthn_of(acc.id, lock=True):
                uow.credentials.remove_webauthn(cred)
                removed += 1
        else:  # the person's palm: registered again (in person, or remotely with consent)
            palm = uow.biometrics.enrolment_of(acc.person_id, lock=True)
            if palm is not None:
                uow.biometrics.remove(palm)
                removed = 1
        if not removed:
            raise NotFound("factor_not_enrolled", factor=factor)
        uow.audit(now, actor, "account.reset_factor", acc.user_id, factor=factor, removed=removed,
                  reason=" ".join((reason or "").split())[:200])
        uow.commit()
    # a factor gone: log on again
    backchannel.end_all(deps, identifiers.canonical(acc.user_id), "factor_reset")
