"""In-memory fakes of our own ports (authsvc/ports.py), for fast service-level tests. Each one
runs the same contract tests as the real implementations (tests/integration/test_counters.py,
test_session_stores.py), so a test over a fake means what it would over Redis or SQL."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from authsvc.domain import lockout
from authsvc.domain.audit import Checkpoint
from authsvc.domain.tokens import new_token, session_id


class MemoryCounters:
    """`authsvc.ports.Counters` in a dict, one lock for every operation."""

    def __init__(self, pending_seconds: int = 30) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[int, datetime | None, dict[str, datetime]]] = {}
        self._pending = timedelta(seconds=pending_seconds)

    def consume(self, key: str, now: datetime, max_failures: int, lock_minutes: int) -> lockout.Decision:
        with self._lock:
            failures, locked_until, flight = self._keys.get(key, (0, None, {}))
            live = {a: t for a, t in flight.items() if t > now}
            decision = lockout.consume(failures, len(live), locked_until, now, max_failures, lock_minutes)
            if decision.allowed:
                decision = replace(decision, attempt=new_token()[:16])
                live[decision.attempt] = now + self._pending
            self._keys[key] = (decision.failures, decision.locked_until, live)
            return decision

    def fail(self, key: str, attempt: str, now: datetime, max_failures: int,
             lock_minutes: int) -> lockout.Failure:
        with self._lock:
            failures, locked_until, flight = self._keys.get(key, (0, None, {}))
            failure = lockout.fail(failures, locked_until, now, max_failures, lock_minutes)
            flight.pop(attempt, None)
            self._keys[key] = (failure.failures, failure.locked_until, flight)
            return failure

    def release(self, key: str, attempt: str) -> None:
        with self._lock:
            if key in self._keys:
                self._keys[key][2].pop(attempt, None)

    def succeed(self, key: str) -> None:
        with self._lock:
            if key in self._keys:
                self._keys[key] = (0, None, self._keys[key][2])

    def peek(self, key: str, now: datetime) -> tuple[int, datetime | None]:
        with self._lock:
            failures, locked_until, _ = self._keys.get(key, (0, None, {}))
            if locked_until is not None and locked_until <= now:
                return 0, None
            return failures, locked_until

    def reset(self, key: str, now: datetime) -> tuple[int, bool]:
        with self._lock:
            failures, locked_until, _ = self._keys.pop(key, (0, None, {}))
            return failures, bool(locked_until and locked_until > now)


class MemorySessions:
    """`authsvc.ports.SessionStore` in a dict, keyed by the token's hash like the real ones;
    time from the given clock function."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[str | None, str, datetime]] = {}  # sid -> user, JSON, expiry

    def _live(self, sid: str) -> tuple[str | None, str, datetime] | None:
        row = self._rows.get(sid)
        return row if row is not None and row[2] > self._now() else None

    def put(self, token: str, data: dict[str, Any], user_id: str | None, ttl_s: int) -> None:
        with self._lock:
            expires = self._now() + timedelta(seconds=ttl_s)
            self._rows[session_id(token)] = (user_id, json.dumps(data), expires)

    def get(self, token: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._live(session_id(token))
            return None if row is None else dict(json.loads(row[1]))

    def take(self, token: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._live(session_id(token))
            self._rows.pop(session_id(token), None)
            return None if row is None else dict(json.loads(row[1]))

    def delete(self, token: str) -> None:
        self.delete_id(session_id(token))

    def of_user(self, user_id: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {sid: dict(json.loads(row[1])) for sid in list(self._rows)
                    if (row := self._live(sid)) is not None and row[0] == user_id}

    def delete_id(self, sid: str) -> None:
        with self._lock:
            self._rows.pop(sid, None)

    def delete_user(self, user_id: str) -> int:
        with self._lock:
            mine = [sid for sid, row in self._rows.items() if row[0] == user_id]
            live = sum(1 for sid in mine if self._live(sid) is not None)
            for sid in mine:
                del self._rows[sid]
            return live

    def dump(self) -> str:
        with self._lock:
            return repr(copy.deepcopy(self._rows))


class MemoryCheckpoints:
    """`authsvc.ports.CheckpointStore` in a list (signed like the file store)."""

    folder = "memory"

    def __init__(self, key: bytes, now: Callable[[], datetime]) -> None:
        self._key, self._now, self.lines = key, now, []

    def append(self, seq: int, head_hash: str, kind: str = "head",
               at: datetime | None = None) -> Checkpoint:
        cp = Checkpoint(seq, head_hash, (at or self._now()).isoformat(timespec="microseconds"),
                        kind).signed(self._key)
        self.lines.append(cp)
        return cp

    def read(self) -> tuple[list[Checkpoint], list[str]]:
        return list(self.lines), []
