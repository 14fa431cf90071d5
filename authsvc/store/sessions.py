"""SqlSessions: server-side sessions in the `sessions` table (the embedded default)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from authsvc.domain.tokens import session_id
from authsvc.store.db import read_session
from authsvc.store.models import SessionRow


class SqlSessions:
    def __init__(self, sessions: sessionmaker[Session], now: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._now = now

    def put(self, token: str, data: dict[str, Any], user_id: str | None, ttl_s: int) -> None:
        sid, now = session_id(token), self._now()
        with self._sessions.begin() as db:
            row = db.get(SessionRow, sid)
            if row is None:
                row = SessionRow(id=sid)
                db.add(row)
            row.user_id, row.data = user_id, json.dumps(data)
            row.expires_at = now + timedelta(seconds=ttl_s)
            db.execute(delete(SessionRow).where(SessionRow.expires_at <= now))  # tidy up

    def get(self, token: str) -> dict[str, Any] | None:
        with read_session(self._sessions) as db:
            row = db.get(SessionRow, session_id(token))
            if row is None or row.expires_at <= self._now():
                return None
            return dict(json.loads(row.data))

    def take(self, token: str) -> dict[str, Any] | None:
        """DELETE ... RETURNING: of concurrent takers exactly one gets the row."""
        with self._sessions.begin() as db:
            row = db.execute(delete(SessionRow).where(SessionRow.id == session_id(token))
                             .returning(SessionRow.data, SessionRow.expires_at)).first()
            if row is None or row.expires_at <= self._now():
                return None
            return dict(json.loads(row.data))

    def delete(self, token: str) -> None:
        self.delete_id(session_id(token))

    def of_user(self, user_id: str) -> dict[str, dict[str, Any]]:
        with read_session(self._sessions) as db:
            rows = db.scalars(select(SessionRow).where(
                SessionRow.user_id == user_id, SessionRow.expires_at > self._now()))
            return {r.id: dict(json.loads(r.data)) for r in rows}

    def delete_id(self, sid: str) -> None:
        with self._sessions.begin() as db:
            db.execute(delete(SessionRow).where(SessionRow.id == sid))

    def delete_user(self, user_id: str) -> int:
        """Ends every session of the user; returns how many were still live."""
        with self._sessions.begin() as db:
            live = db.execute(delete(SessionRow).where(
                SessionRow.user_id == user_id, SessionRow.expires_at > self._now())).rowcount
            db.execute(delete(SessionRow).where(SessionRow.user_id == user_id))
            return live
