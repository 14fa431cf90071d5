"""RedisSessions: server-side sessions (R16) in Redis, the production implementation of
`authsvc.ports.SessionStore` (the embedded default is `SqlSessions`, authsvc.store.sessions),
so any instance can serve any request and a logoff, a lock or a revoked account ends sessions
on the server at once. Sessions are keyed by the token's SHA-256, never the token itself."""

from __future__ import annotations

import json
from typing import Any

import redis

from authsvc.domain.tokens import session_id


class RedisSessions:
    """A session is a string key `s:<sid>` (JSON of its user and data) expiring with the session;
    each user has an index set `u:<user>` of session ids. The index may hold stale ids (ended,
    expired or re-assigned sessions); readers check every entry against its session."""

    INDEX_MIN_TTL_S = 24 * 3600

    # KEYS[1] the session, KEYS[2] the user's index (absent for no user);
    # ARGV record, ttl_s, sid, index ttl_s. The index is never made to expire before a session in it.
    _PUT = """
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
    if KEYS[2] then
      redis.call('SADD', KEYS[2], ARGV[3])
      if redis.call('TTL', KEYS[2]) < tonumber(ARGV[4]) then
        redis.call('EXPIRE', KEYS[2], ARGV[4])
      end
    end
    """
    # KEYS[1] the session, KEYS[2] the user's index; ARGV user id, sid. Ends the session if it is
    # still that user's, and drops it from the index in the same step; returns 1 when it ended one.
    _END_IF_OWNED = """
    local raw = redis.call('GET', KEYS[1])
    local ended = 0
    if raw and cjson.decode(raw)['user_id'] == ARGV[1] then
      redis.call('DEL', KEYS[1])
      ended = 1
    end
    redis.call('SREM', KEYS[2], ARGV[2])
    return ended
    """
    # Same keys and arguments: drops the id from the index unless it is still that user's session.
    _DROP_IF_STALE = """
    local raw = redis.call('GET', KEYS[1])
    if raw and cjson.decode(raw)['user_id'] == ARGV[1] then
      return 0
    end
    redis.call('SREM', KEYS[2], ARGV[2])
    return 1
    """

    def __init__(self, client: redis.Redis, prefix: str = "authsvc:") -> None:
        self._r = client
        self._p = prefix
        self._put = client.register_script(self._PUT)
        self._end_if_owned = client.register_script(self._END_IF_OWNED)
        self._drop_if_stale = client.register_script(self._DROP_IF_STALE)

    def _skey(self, sid: str) -> str:
        return f"{self._p}s:{sid}"

    def _ukey(self, user_id: str) -> str:
        return f"{self._p}u:{user_id}"

    def put(self, token: str, data: dict[str, Any], user_id: str | None, ttl_s: int) -> None:
        sid = session_id(token)
        record = json.dumps({"user_id": user_id, "data": data})
        keys = [self._skey(sid)] + ([self._ukey(user_id)] if user_id else [])
        self._put(keys=keys, args=[record, ttl_s, sid, max(ttl_s, self.INDEX_MIN_TTL_S)])

    def _load(self, sid: str) -> dict[str, Any] | None:
        raw = self._r.get(self._skey(sid))
        return None if raw is None else dict(json.loads(raw))

    def _members(self, user_id: str) -> list[str]:
        return [m.decode() if isinstance(m, bytes) else str(m) for m in self._r.smembers(self._ukey(user_id))]

    def get(self, token: str) -> dict[str, Any] | None:
        rec = self._load(session_id(token))
        return None if rec is None else dict(rec["data"])

    def take(self, token: str) -> dict[str, Any] | None:
        # GETDEL: atomic; the user's index may keep the id, which readers treat as stale
        raw = self._r.getdel(self._skey(session_id(token)))
        return None if raw is None else dict(json.loads(raw)["data"])

    def delete(self, token: str) -> None:
        self.delete_id(session_id(token))

    def of_user(self, user_id: str) -> dict[str, dict[str, Any]]:
        out = {}
        for sid in self._members(user_id):
            rec = self._load(sid)
            if rec is None or rec["user_id"] != user_id:
                # atomically, so a session put for the user meanwhile is not dropped from the index
                self._drop_if_stale(keys=[self._skey(sid), self._ukey(user_id)], args=[user_id, sid])
                continue
            out[sid] = rec["data"]
        return out

    def delete_id(self, sid: str) -> None:
        rec = self._load(sid)
        self._r.delete(self._skey(sid))
        if rec and rec.get("user_id"):
            self._r.srem(self._ukey(rec["user_id"]), sid)

    def delete_user(self, user_id: str) -> int:
        """Ends the sessions the index lists, each one checked and ended atomically; the index
        itself is never deleted wholesale, so a session put meanwhile stays listed (and is ended
        by the next call) instead of living on unlisted."""
        ended = 0
        for sid in self._members(user_id):
            ended += int(self._end_if_owned(keys=[self._skey(sid), self._ukey(user_id)], args=[user_id, sid]))
        return ended
