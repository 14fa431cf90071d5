"""Sessions (R8, R16, R9): where a request comes from, the session behind a token as the session
rules find it now (domain/session.py), the user's own actions on their sessions (lock, log
off, end another one), their list and the logon history, and whether an account may still
log on at all. The logon that opens a session is services/logon.py."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from authsvc.domain import identifiers, network
from authsvc.domain import logon_flow as lf
from authsvc.domain import session as sess
from authsvc.domain.calendar import JST, jst_iso
from authsvc.domain.lifecycle import Status
from authsvc.domain.roles import Actor
from authsvc.domain.tokens import session_id
from authsvc.services import Deps
from authsvc.services.accounts import access_end, last_use
from authsvc.store.models import Account

# The surfaces a session belongs to (R8): the user's pages, and the administrators' console,
# reached only by a logon of its own with fresh MFA; a session of one is no use on the other.
USER, CONSOLE = sess.USER, sess.CONSOLE


@dataclass(frozen=True)
class SessionView:
    sid: str
    user_id: str
    factors: tuple[str, ...]
    created_at: float
    last_seen: float
    locked: bool
    remote: bool
    terminal: str
    source: str
    unlocking: lf.Flow | None = field(default=None)
    surface: str = USER

    def may_administer(self, approved_remote: tuple[str, ...]) -> bool:
        """The gate of the admin surface (R8, R17): an unlocked MFA session, and from outside
        the internal networks only for users approved in advance."""
        return not self.locked and network.may_administer(self.remote, self.user_id, approved_remote)


@dataclass(frozen=True)
class Client:
    """Where a request comes from: terminal (user agent or terminal id), source address, and
    whether that address is outside the internal networks (R17)."""

    terminal: str = ""
    source: str = ""
    remote: bool = False

    def actor(self, who: str) -> Actor:
        return Actor(id=who[:100] or "-", terminal=self.terminal[:100], source=self.source[:100])


def refusal(deps: Deps, acc: Account | None, now: datetime, remote: bool = False) -> str | None:
    """The operator-only reason an account may not log on (or go on using a session) now, or
    None when it may: its state, its contract's period (R7), a departure (R7), a maintenance
    account's window (R26), remote access without approval in advance (R17), disuse (R6)."""
    if acc is None:
        return "unknown_user"
    if acc.status != Status.ACTIVE:
        return f"status_{acc.status}"
    today = now.astimezone(JST).date()
    if today < acc.contract.starts_on:
        return "contract_not_started"
    ends = access_end(deps, acc.contract)
    if ends is not None and now >= ends:
        return "contract_ended"
    if acc.leaves_at is not None and now >= acc.leaves_at:
        return "departed"
    if acc.window_ends_at is not None and not (acc.window_starts_at or now) <= now < acc.window_ends_at:
        return "outside_window"
    if remote and (acc.remote_until is None or today > acc.remote_until):
        return "remote_not_approved"
    if identifiers.is_inactive(last_use(acc), now, deps.settings.identifiers.disable_after_days):
        return "inactive"  # fail closed even before the maintenance job has disabled it
    return None


def may_logon(deps: Deps, user_id: str, now: datetime, remote: bool = False) -> bool:
    with deps.uow(read_only=True) as uow:
        return refusal(deps, uow.account(user_id), now, remote) is None


def display_name(deps: Deps, user_id: str) -> str:
    """The name of the account holding `user_id`, as the user's own pages greet them; the ID
    itself when the account has no name (or no longer exists)."""
    with deps.uow(read_only=True) as uow:
        acc = uow.account(identifiers.canonical(user_id))
        return (acc.person.name if acc is not None else "") or user_id


def ttl(deps: Deps, data: dict[str, Any]) -> int:
    return max(1, int(float(data["created_at"]) + deps.settings.sessions.absolute_hours * 3600
                      - time_now(deps)))


def time_now(deps: Deps) -> float:
    return deps.clock.now().timestamp()

def store(deps: Deps, token: str, data: dict[str, Any]) -> None:
    """Keep a pending logon (no owner, the logon's lifetime) or a session (its user's, until
    its absolute end) under `token`."""
    if data.get("kind") == "logon":
        deps.sessions.put(token, data, None, deps.settings.mfa.logon_minutes * 60)
    else:
        deps.sessions.put(token, data, data["user_id"], ttl(deps, data))




def _lifetime(deps: Deps) -> sess.Lifetime:
    pol = deps.settings.sessions
    return sess.Lifetime(pol.idle_minutes, pol.absolute_hours)


def _record(deps: Deps, token: str | None) -> sess.Record | None:
    return sess.Record.of(deps.sessions.get(token)) if token and isinstance(token, str) else None


def current(deps: Deps, token: str | None, surface: str = USER) -> SessionView | None:
    """The session behind `token` on `surface`, as the session rules find it now (ended,
    locked after idling, or as it was: domain/session.py); None when there is none, or its
    account may no longer log on."""
    rec = _record(deps, token)
    if rec is None or rec.surface != surface:
        return None
    assert token is not None
    found = sess.seen(rec, time_now(deps), _lifetime(deps))
    if found is None or not may_logon(deps, rec.user_id, deps.clock.now(), found.remote):
        deps.sessions.delete(token)
        ended(deps, rec.user_id, "session_expired" if found is None else "account_refused")
        return None
    if found != rec:
        store(deps, token, found.data())  # R16: idle too long: locked until MFA again
        ended(deps, rec.user_id, "idle")
    flow = lf.Flow.from_dict(found.flow) if found.flow else None
    return SessionView(session_id(token), found.user_id, found.factors, found.created_at,
                       found.last_seen, found.locked, found.remote, found.terminal, found.source,
                       flow, surface)


def live(deps: Deps, user_id: str, ref: str) -> sess.Record | None:
    """The user's session named `ref` while relying parties may rely on it ([8 of 12]): not
    ended, not locked (by its user, or by idling: R16), its account still allowed to log on."""
    now = time_now(deps)
    for data in deps.sessions.of_user(user_id).values():
        rec = sess.Record.of(data)
        if rec is None or rec.ref != ref or not ref or rec.surface != USER:
            continue
        found = sess.seen(rec, now, _lifetime(deps))
        if found is None or found.locked or not may_logon(deps, user_id, deps.clock.now(), found.remote):
            return None
        return found
    return None


def ended(deps: Deps, user_id: str, reason: str) -> None:
    """Sessions of `user_id` ended or locked: the relying parties that relied on them are told
    (back-channel logout, [8 of 12]), and what they were issued dies with them."""
    from authsvc.services import backchannel  # it reads sessions through this module

    backchannel.ended(deps, user_id, reason)


def touch(deps: Deps, token: str) -> None:
    """Activity on an unlocked session moves its idle clock."""
    rec = _record(deps, token)
    if rec is not None and not rec.locked:
        store(deps, token, replace(rec, last_seen=time_now(deps)).data())


def lock(deps: Deps, token: str, client: Client) -> bool:
    """The user leaves the desk (R16): the session stays, but needs MFA to continue."""
    rec = _record(deps, token)
    if rec is None or rec.surface != USER:
        return False
    store(deps, token, replace(rec, locked=True, flow=None).data())
    now = deps.clock.now()
    with deps.uow() as uow:
        uow.audit(now, client.actor(rec.user_id), "session.lock", rec.user_id)
        uow.commit()
    ended(deps, rec.user_id, "locked")
    return True


def logoff(deps: Deps, token: str, client: Client) -> None:
    """Ends the session on the server at once (R16)."""
    data = deps.sessions.get(token) if token else None
    deps.sessions.delete(token) if token else None
    if data and data.get("user_id"):
        now = deps.clock.now()
        with deps.uow() as uow:
            uow.audit(now, client.actor(data["user_id"]), "session.logoff", data["user_id"])
            uow.commit()
        ended(deps, data["user_id"], "logoff")


def end_session(deps: Deps, token: str, sid: str, client: Client) -> bool:
    """The user ends one of their own sessions (another terminal, say)."""
    view = current(deps, token)
    if view is None or view.locked or sid not in deps.sessions.of_user(view.user_id):
        return False
    deps.sessions.delete_id(sid)
    now = deps.clock.now()
    with deps.uow() as uow:
        uow.audit(now, client.actor(view.user_id), "session.end", view.user_id, session=sid[:12])
        uow.commit()
    ended(deps, view.user_id, "logoff")
    return True


def sessions_of(deps: Deps, user_id: str) -> list[dict[str, Any]]:
    out = []
    for sid, d in deps.sessions.of_user(user_id).items():
        rec = sess.Record.of(d)
        if rec is None:
            continue
        out.append({"sid": sid, "surface": rec.surface, "created_at": jst_iso(_dt(rec.created_at)),
                    "last_seen": jst_iso(_dt(rec.last_seen)), "locked": rec.locked,
                    "remote": rec.remote, "terminal": rec.terminal, "source": rec.source})
    return sorted(out, key=lambda s: s["created_at"], reverse=True)


def history(deps: Deps, user_id: str, limit: int = 50, with_reason: bool = False) -> list[dict[str, Any]]:
    """The account's logon history (R9); the real reason only for operators."""
    with deps.uow(read_only=True) as uow:
        rows = uow.logon_history(identifiers.canonical(user_id), limit)
        return [{"at": jst_iso(r.at), "step": r.step, "result": r.result, "factors": r.factors,
                 "terminal": r.terminal, "source": r.source, "remote": r.remote,
                 **({"reason": r.reason} if with_reason else {})} for r in rows]


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
