"""Back-channel logout ([8 of 12], OpenID Connect Back-Channel Logout 1.0): when a session ends
here (logoff, idle lock, an operator ends it, the account is suspended, locked or leaves), every
relying party that was given tokens in it is told with a signed logout token, and those tokens
are revoked. Deliveries go through an outbox in the database: retried with a doubling delay,
and an alert when a relying party cannot be reached.

Sessions are read through services/sessions.py, which imports this module lazily when a session
ends; so this module imports it lazily too (no import cycle)."""

from __future__ import annotations

import logging
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from authsvc.domain.calendar import jst_iso
from authsvc.domain.relying_party import Registration
from authsvc.domain.roles import Actor, Perm
from authsvc.services import Deps, alerts, guard
from authsvc.store.models import OidcLogout

if TYPE_CHECKING:
    from authsvc.services.oidc import RelyingParty

log = logging.getLogger("authsvc.oidc")

EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_SECONDS = 120


def end_all(deps: Deps, user_id: str, reason: str) -> int:
    """End every session of `user_id` now (R16) and tell the relying parties; how many ended."""
    n = deps.sessions.delete_user(user_id)
    ended(deps, user_id, reason)
    return n


def ended(deps: Deps, user_id: str, reason: str, deliver_now: bool = True) -> int:
    """Grants of `user_id` whose session is no longer live are revoked, and a logout is owed to
    each relying party (with a logout endpoint) that held one; returns how many are owed. The
    deliveries start at once, in the background (the outbox keeps them if this process dies)."""
    from authsvc.services import sessions

    with deps.uow(read_only=True) as uow:
        refs = {g.session_ref for g in uow.oidc.live(user_id)}
    if not refs:
        return 0  # the common case: nobody relied on this user's sessions
    dead = {ref for ref in refs if sessions.live(deps, user_id, ref) is None}
    if not dead:
        return 0
    now = deps.clock.now()
    owed = 0
    with deps.uow() as uow:
        told: set[tuple[str, str]] = set()
        for g in uow.oidc.live(user_id):
            if g.session_ref not in dead:
                continue
            g.revoked_at, g.revoked_reason = now, reason[:32]
            if (g.client_id, g.session_ref) in told:
                continue
            told.add((g.client_id, g.session_ref))
            row = uow.service_clients.by_identifier(g.client_id)
            if row is None or not Registration.from_json(row.oidc).backchannel_logout_uri:
                continue
            uow.oidc.add_logout(OidcLogout(client_id=g.client_id, user_id=user_id, session_ref=g.session_ref,
                                           issuer=g.issuer, reason=reason[:32], created_at=now, attempts=0,
                                           next_at=now))
            owed += 1
        uow.audit(now, SYSTEM, "oidc.session_ended", user_id, reason=reason[:32],
                  clients=sorted({c for c, _ in told}), sessions=len(dead))
        uow.commit()
    if owed and deliver_now:
        threading.Thread(target=deliver, args=(deps,), name="backchannel-logout", daemon=True).start()
    return owed


def sweep(deps: Deps) -> int:
    """Find the sessions that ended without a request noticing (an idle lock, the absolute end)
    and tell their relying parties; run on a schedule (`authsvc oidc sweep`, maintenance)."""
    with deps.uow(read_only=True) as uow:
        users = sorted({g.user_id for g in uow.oidc.live()})
    owed = sum(ended(deps, u, "session_expired", deliver_now=False) for u in users)
    deliver(deps)
    return owed


def forget_codes(deps: Deps) -> int:
    """Authorization codes expired long enough ago (an hour) that no replay of them can matter."""
    with deps.uow() as uow:
        n = uow.oidc.forget_codes(deps.clock.now() - timedelta(hours=1))
        uow.commit()
    return n


SYSTEM = Actor(id="system:oidc", terminal="", source="")  # who the back-channel's events name


def logout_token(deps: Deps, rp: RelyingParty, user_id: str, session_ref: str, iss: str) -> str:
    """The signed logout token (Back-Channel Logout 1.0 §2.4): no nonce, the event, sub and sid."""
    from authsvc.services import oidc

    now = int(deps.clock.now().timestamp())
    claims: dict[str, Any] = {"iss": iss, "aud": rp.client_id, "iat": now, "exp": now + LOGOUT_TOKEN_SECONDS,
                              "jti": secrets.token_urlsafe(16), "events": {EVENT: {}}, "sid": session_ref}
    with deps.uow(read_only=True) as uow:
        acc = uow.account(user_id)
        if acc is not None:
            claims["sub"] = oidc.subject(deps, rp, acc.user_id.lower(), acc.created_at)
    return oidc.sign(deps, claims, typ="logout+jwt")


_delivering = threading.Lock()


def deliver(deps: Deps) -> tuple[int, int]:
    """Try every logout that is due; (delivered, failed) of this run. One run at a time in a
    process; a relying party that fails is tried again after a doubling delay and, after
    `oidc.logout_attempts` tries, given up on with an alert to its company's operators."""
    if not _delivering.acquire(blocking=False):
        return 0, 0  # another thread is delivering; it will see these too
    try:
        return _deliver(deps)
    finally:
        _delivering.release()


def _deliver(deps: Deps) -> tuple[int, int]:
    pol = deps.settings.oidc
    delivered = failed = 0
    with deps.uow(read_only=True) as uow:
        due = [(o.id, o.client_id, o.user_id, o.session_ref, o.issuer)
               for o in uow.oidc.due_logouts(deps.clock.now())]
    from authsvc.services import oidc

    for logout_id, client_id, user_id, ref, iss in due:
        rp = oidc.relying_party(deps, client_id, any_state=True)
        uri = rp.registration.backchannel_logout_uri if rp else ""
        error = _post(uri, logout_token(deps, rp, user_id, ref, iss),
                      pol.logout_timeout_seconds) if rp and uri else "no_endpoint"
        now = deps.clock.now()
        with deps.uow() as uow:
            o = uow.oidc.logout(logout_id, lock=True)
            if o is None or o.delivered_at is not None or o.given_up_at is not None:
                continue
            o.attempts += 1
            if error is None:
                o.delivered_at = now
                delivered += 1
                uow.audit(now, SYSTEM, "oidc.logout_delivered", user_id, client=client_id,
                          attempts=o.attempts)
            else:
                failed += 1
                o.last_error = error[:200]
                o.next_at = now + timedelta(seconds=pol.logout_retry_seconds * 2 ** (o.attempts - 1))
                if o.attempts >= pol.logout_attempts or error == "no_endpoint":
                    o.given_up_at = now
                    uow.audit(now, SYSTEM, "oidc.logout_failed", user_id, "failed",
                              client=client_id, attempts=o.attempts, error=error[:200])
                    alerts.note(uow, now, "oidc_logout_failed", client_id, rp.company if rp else None,
                                user=user_id, attempts=o.attempts, error=error[:200])
            uow.commit()
    return delivered, failed


def _post(uri: str, token: str, timeout: int) -> str | None:
    """POST the logout token (form-encoded); None when the relying party answered 200 or 204,
    else what went wrong. No redirect is followed (the spec forbids it)."""
    body = urllib.parse.urlencode({"logout_token": token}).encode()
    req = urllib.request.Request(uri, data=body, method="POST",  # noqa: S310 (https, or loopback http)
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "Cache-Control": "no-store"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return None if resp.status in (200, 204) else f"http_{resp.status}"
    except urllib.error.HTTPError as exc:
        return f"http_{exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return type(exc).__name__ + ": " + str(getattr(exc, "reason", exc))[:150]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@guard.audited("oidc.logouts", None)
def logouts(deps: Deps, actor: Actor, limit: int = 100) -> list[dict[str, Any]]:
    """The newest logouts owed to the relying parties the actor manages (their company's; the
    agency's: all), and how their delivery stands."""
    actor.require(Perm.MANAGE_CLIENTS)
    with deps.uow(read_only=True) as uow:
        out = []
        for o in uow.oidc.logouts(limit):
            row = uow.service_clients.by_identifier(o.client_id)
            if row is None or not actor.reaches(row.company):
                continue
            out.append({"id": o.id, "client": o.client_id, "user": o.user_id, "reason": o.reason,
                        "attempts": o.attempts, "created_at": _iso(o.created_at),
                        "delivered_at": _iso(o.delivered_at), "given_up_at": _iso(o.given_up_at),
                        "last_error": o.last_error})
        return out


def _iso(moment: datetime | None) -> str | None:
    return jst_iso(moment) if moment else None
