"""Server-side session storage (R16) behind one small interface, so any instance can serve any
request and a logoff, a lock or a revoked account ends sessions on the server at once.
Tokens are random; stores key sessions by the token's SHA-256, never the token itself.
Implementations: `RedisSessions` (production) and `SqlSessions` (authsvc.store.sessions)."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any, Protocol

import redis


def new_token() -> str:
    return secrets.token_urlsafe(32)


def session_id(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class SessionStore(Protocol):
    def put(self, token: str, data: dict[str, Any], user_id: str | None, ttl_s: int) -> None: ...
    def get(self, token: str) -> dict[str, Any] | None: ...
    def delete(self, token: str) -> None: ...
    def of_user(self, user_id: str) -> dict[str, dict[str, Any]]:
        """The user's live sessions, by session id (the token's hash)."""
        ...
    def delete_id(self, sid: str) -> None: ...
    def delete_user(self, user_id: str) -> int: ...


class RedisSessions:
    def __init__(self, client: redis.Redis, prefix: str = "authsvc:") -> None:
        self._r = client
        self._p = prefix

    def _skey(self, sid: str) -> str:
        return f"{self._p}s:{sid}"

    def _ukey(self, user_id: str) -> str:
        return f"{self._p}u:{user_id}"

    def put(self, token: str, data: dict[str, Any], user_id: str | None, ttl_s: int) -> None:
        sid = session_id(token)
        pipe = self._r.pipeline(transaction=True)
        pipe.set(self._skey(sid), json.dumps({"user_id": user_id, "data": data}), ex=ttl_s)
        if user_id:
            pipe.sadd(self._ukey(user_id), sid)
            pipe.expire(self._ukey(user_id), max(ttl_s, 24 * 3600))
        pipe.execute()

    def _load(self, sid: str) -> dict[str, Any] | None:
        raw = self._r.get(self._skey(sid))
        return None if raw is None else dict(json.loads(raw))

    def get(self, token: str) -> dict[str, Any] | None:
        rec = self._load(session_id(token))
        return None if rec is None else dict(rec["data"])

    def delete(self, token: str) -> None:
        self.delete_id(session_id(token))

    def of_user(self, user_id: str) -> dict[str, dict[str, Any]]:
        out = {}
        for raw_sid in self._r.smembers(self._ukey(user_id)):
            sid = raw_sid.decode() if isinstance(raw_sid, bytes) else str(raw_sid)
            rec = self._load(sid)
            if rec is None or rec["user_id"] != user_id:
                self._r.srem(self._ukey(user_id), sid)
                continue
            out[sid] = rec["data"]
        return out

    def delete_id(self, sid: str) -> None:
        rec = self._load(sid)
        self._r.delete(self._skey(sid))
        if rec and rec.get("user_id"):
            self._r.srem(self._ukey(rec["user_id"]), sid)

    def delete_user(self, user_id: str) -> int:
        sids = list(self.of_user(user_id))
        for sid in sids:
            self._r.delete(self._skey(sid))
        self._r.delete(self._ukey(user_id))
        return len(sids)
