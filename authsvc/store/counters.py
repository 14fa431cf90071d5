"""SqlCounters: the failed-attempt counters in the `logon_throttle` table. Each call is one
short transaction under a row lock, so counting is exact across threads, processes and
instances sharing the database (and `authsvc user unlock` reaches a running server). The
reservations in flight are a small JSON object on the row: attempt id -> when it lapses."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from adapters.counters import new_attempt
from authsvc.domain import lockout
from authsvc.store.db import read_session
from authsvc.store.models import LogonThrottle


def _pending(row: LogonThrottle) -> dict[str, float]:
    return dict(json.loads(row.pending or "{}"))


class SqlCounters:
    def __init__(self, sessions: sessionmaker[Session], pending_seconds: int = 30) -> None:
        self._sessions = sessions
        self._pending = timedelta(seconds=pending_seconds)

    def _row(self, session: Session, key: str) -> LogonThrottle:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(insert(LogonThrottle).values(key=key, failures=0, pending="{}")
                        .on_conflict_do_nothing())
        q = select(LogonThrottle).where(LogonThrottle.key == key).with_for_update()
        return session.scalars(q).one()

    def consume(self, key: str, now: datetime, max_failures: int, lock_minutes: int) -> lockout.Decision:
        with self._sessions.begin() as session:
            row = self._row(session, key)
            live = {a: t for a, t in _pending(row).items() if t > now.timestamp()}
            decision = lockout.consume(row.failures, len(live), row.locked_until, now, max_failures,
                                       lock_minutes)
            if decision.allowed:
                decision = replace(decision, attempt=new_attempt())
                live[decision.attempt] = (now + self._pending).timestamp()
            row.failures, row.locked_until = decision.failures, decision.locked_until
            row.pending = json.dumps(live)
        return decision

    def fail(self, key: str, attempt: str, now: datetime, max_failures: int,
             lock_minutes: int) -> lockout.Failure:
        with self._sessions.begin() as session:
            row = self._row(session, key)
            failure = lockout.fail(row.failures, row.locked_until, now, max_failures, lock_minutes)
            row.failures, row.locked_until = failure.failures, failure.locked_until
            live = _pending(row)
            live.pop(attempt, None)
            row.pending = json.dumps(live)
        return failure

    def release(self, key: str, attempt: str) -> None:
        with self._sessions.begin() as session:
            row = session.get(LogonThrottle, key, with_for_update=True)
            if row is not None:
                live = _pending(row)
                if live.pop(attempt, None) is not None:
                    row.pending = json.dumps(live)

    def succeed(self, key: str) -> None:
        with self._sessions.begin() as session:
            row = session.get(LogonThrottle, key, with_for_update=True)
            if row is not None:
                row.failures, row.locked_until = 0, None

    def peek(self, key: str, now: datetime) -> tuple[int, datetime | None]:
        with read_session(self._sessions) as session:
            row = session.get(LogonThrottle, key)
            if row is None:
                return 0, None
            if row.locked_until is not None and row.locked_until <= now:
                return 0, None  # lapsed: lifted at the next attempt
            return row.failures, row.locked_until

    def reset(self, key: str, now: datetime) -> tuple[int, bool]:
        with self._sessions.begin() as session:
            row = session.get(LogonThrottle, key, with_for_update=True)
            if row is None:
                return 0, False
            before = (row.failures, bool(row.locked_until and row.locked_until > now))
            row.failures, row.locked_until, row.pending = 0, None, "{}"
            return before
