"""Queries of the alert inbox (R25): alerts raised for a company's operators (or the agency's)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from authsvc.store.models import Alert, AuditEvent


class Alerts:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, alert: Alert) -> None:
        self._s.add(alert)
        self._s.flush()

    def get(self, alert_id: int, lock: bool = False) -> Alert | None:
        q = select(Alert).where(Alert.id == alert_id)
        return self._s.scalars(q.with_for_update() if lock else q).first()

    def inbox(self, company: str | None, everywhere: bool, open_only: bool, limit: int) -> list[Alert]:
        """Newest first: the company's alerts (every company's and the agency's for `everywhere`)."""
        q = select(Alert).order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit)
        if not everywhere:
            q = q.where(Alert.company == company)
        if open_only:
            q = q.where(Alert.acknowledged_at.is_(None))
        return list(self._s.scalars(q))

    def recent(self, kind: str, since: datetime) -> int:
        """How many alerts of `kind` were raised since `since`."""
        return self._s.scalar(select(func.count(Alert.id)).where(Alert.kind == kind,
                                                                 Alert.raised_at >= since)) or 0

    def events_since(self, action: str, since_ts: str) -> int:
        """How many audit events of `action` were written at or after `since_ts` (ISO, JST)."""
        return self._s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == action, AuditEvent.ts >= since_ts)) or 0
