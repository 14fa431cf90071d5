"""Alerts (R25; 004 第8 2(1)イ): what the operators must look at now — a refused use of
privileges, a lockout storm, a duplicate palm, a replayed sample, an audit-verification
failure, one ID on two terminals at once — goes to the company's inbox (and the agency's) and
to the operators' log; a person acknowledges it, audited."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from authsvc.domain.calendar import jst_iso
from authsvc.domain.errors import Forbidden, NotFound
from authsvc.domain.roles import Actor, Perm
from authsvc.services import Deps, guard
from authsvc.store.models import Alert
from authsvc.store.uow import UnitOfWork

log = logging.getLogger("authsvc.alerts")
KINDS = ("privilege_refused", "lockout_storm", "duplicate_person", "replayed_sample",
         "audit_verification_failed", "shared_id_suspected", "registration_stopped",
         "client_locked", "oidc_logout_failed", "oidc_code_replayed", "directory_sync_stopped",
         "audit_export_backlog", "clock_offset", "clock_unchecked")


def note(uow: UnitOfWork, now: datetime, kind: str, subject: str, company: str | None,
         **detail: Any) -> None:
    """Raise an alert inside the caller's transaction (it stands or falls with what it reports)."""
    log.warning("ALERT %s %s (%s) %s", kind, subject[:100], company or "agency",
                json.dumps(detail, ensure_ascii=False, default=str)[:500])
    uow.alerts.add(Alert(company=company or None, kind=kind, subject=subject[:100],
                         detail=json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str),
                         raised_at=now))


def raise_alert(deps: Deps, kind: str, subject: str, company: str | None, **detail: Any) -> None:
    """Raise an alert in a transaction of its own."""
    with deps.uow() as uow:
        note(uow, deps.clock.now(), kind, subject, company, **detail)
        uow.commit()


def lock_storm(uow: UnitOfWork, deps: Deps, now: datetime) -> None:
    """After an account locked: when `alerts.lock_storm_accounts` locked within
    `alerts.lock_storm_minutes`, one alert per window (not one per further lock)."""
    pol = deps.settings.alerts
    since = now - timedelta(minutes=pol.lock_storm_minutes)
    if (uow.alerts.events_since("account.lock", jst_iso(since)) >= pol.lock_storm_accounts  # this one too
            and not uow.alerts.recent("lockout_storm", since)):
        note(uow, now, "lockout_storm", "-", None, minutes=pol.lock_storm_minutes,
             threshold=pol.lock_storm_accounts)


def _view(a: Alert) -> dict[str, Any]:
    return {"id": a.id, "company": a.company, "kind": a.kind, "subject": a.subject,
            "detail": json.loads(a.detail), "raised_at": jst_iso(a.raised_at),
            "acknowledged_by": a.acknowledged_by,
            "acknowledged_at": jst_iso(a.acknowledged_at) if a.acknowledged_at else None}


@guard.audited("alert.read", None)
def inbox(deps: Deps, actor: Actor, open_only: bool = True, limit: int = 200) -> list[dict[str, Any]]:
    """The alerts of the actor's company, newest first (an agency operator: every alert)."""
    actor.require(Perm.READ_AUDIT)
    if not actor.everywhere and not actor.company:
        return []
    with deps.uow(read_only=True) as uow:
        return [_view(a) for a in uow.alerts.inbox(actor.company, actor.everywhere, open_only,
                                                   max(1, min(limit, 1000)))]


@guard.audited("alert.acknowledge", "alert_id")
def acknowledge(deps: Deps, actor: Actor, alert_id: int) -> dict[str, Any]:
    """A person has looked at the alert and acts on it (audited): never a service client."""
    actor.require(Perm.READ_AUDIT)
    if actor.process:
        raise Forbidden()
    now = deps.clock.now()
    with deps.uow() as uow:
        found = uow.alerts.get(alert_id, lock=True)
        if found is None:
            raise NotFound("alert_not_found", alert=alert_id)
        guard.check(actor, Perm.READ_AUDIT, found.company, "alert_not_found", alert=alert_id)
        if found.acknowledged_at is None:
            found.acknowledged_by, found.acknowledged_at = actor.id, now
            uow.audit(now, actor, "alert.acknowledge", str(alert_id), kind=found.kind,
                      about=found.subject)
        result = _view(found)
        uow.commit()
    return result
