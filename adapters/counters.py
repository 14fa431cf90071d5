"""Failed-attempt counters (R4) behind one small interface: `consume` decides and records an
attempt atomically *before* the password is checked, so parallel attempts through any number of
workers or instances never get more than N evaluations. Implementations: `SqlCounters`
(authsvc.store.counters; the embedded default, exact across processes on one database) and
`RedisCounters` (production)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis

from authsvc.domain.lockout import Decision


class Counters(Protocol):
    def consume(self, key: str, now: datetime, max_failures: int, lock_minutes: int) -> Decision:
        """Count one attempt for `key` (or refuse it while locked), as one atomic step."""
        ...

    def refund(self, key: str, max_failures: int) -> None:
        """One factor of a logon succeeded: give its attempt back (lockout.refund)."""
        ...

    def succeed(self, key: str) -> None:
        """A completed logon: the count and any provisional lock are cleared."""
        ...

    def peek(self, key: str, now: datetime) -> tuple[int, datetime | None]:
        """(consumed attempts, locked_until while the lock is in force, else None)."""
        ...

    def reset(self, key: str, now: datetime) -> tuple[int, bool]:
        """An operator's unlock: clears the key; returns (failures it had, whether it was locked)."""
        ...


class RedisCounters:
    """Counters in Redis, one hash per key: `f` (consumed attempts) and `lu` (locked until, epoch
    microseconds; absent when not locked). Every operation is one Lua script, so it is atomic
    across all instances sharing the Redis. Time comes from the caller (`now`), never from Redis,
    so the decision is the same as `lockout.consume`/`lockout.refund` at any instant. Each key
    expires `lock_minutes` + 1 day after its last counted attempt, so abandoned keys go away.
    An unreachable Redis raises (redis.exceptions.ConnectionError): the caller fails closed."""

    PREFIX = "authsvc:c:"
    IDLE_TTL_S = 24 * 3600

    # KEYS[1] key; ARGV now_us, max_failures, lock_until_us (now + lock period), ttl_s.
    # Returns {allowed, failures, locked_until_us or nil, auto_unlocked, locks_now}.
    _CONSUME = """
    local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
    local st = redis.call('HMGET', KEYS[1], 'f', 'lu')
    local f, lu, auto = tonumber(st[1]) or 0, st[2], 0
    if lu then
      if now < tonumber(lu) then
        return {0, f, lu, 0, 0}
      end
      f, lu, auto = 0, false, 1
    end
    local allowed, locks = 1, 0
    if f >= max then
      allowed, lu = 0, ARGV[3]
    else
      f = f + 1
      if f >= max then
        lu, locks = ARGV[3], 1
      end
    end
    redis.call('HSET', KEYS[1], 'f', tostring(f))
    if lu then
      redis.call('HSET', KEYS[1], 'lu', lu)
    else
      redis.call('HDEL', KEYS[1], 'lu')
    end
    redis.call('EXPIRE', KEYS[1], ARGV[4])
    return {allowed, f, lu, auto, locks}
    """
    # ARGV max_failures. A key that was never counted stays absent.
    _REFUND = """
    local st = redis.call('HMGET', KEYS[1], 'f', 'lu')
    if not st[1] then
      return -1
    end
    local f = math.max(0, tonumber(st[1]) - 1)
    redis.call('HSET', KEYS[1], 'f', tostring(f))
    if f < tonumber(ARGV[1]) then
      redis.call('HDEL', KEYS[1], 'lu')
    end
    return f
    """
    _SUCCEED = """
    return redis.call('DEL', KEYS[1])
    """
    # ARGV now_us. Returns {failures, locked_until_us or nil}; a lapsed lock reads as none.
    _PEEK = """
    local st = redis.call('HMGET', KEYS[1], 'f', 'lu')
    if st[2] and tonumber(st[2]) <= tonumber(ARGV[1]) then
      return {0, false}
    end
    return {tonumber(st[1]) or 0, st[2]}
    """
    # ARGV now_us. Returns {failures it had, 1 when a lock was in force}.
    _RESET = """
    local st = redis.call('HMGET', KEYS[1], 'f', 'lu')
    if not st[1] then
      return {0, 0}
    end
    redis.call('DEL', KEYS[1])
    local locked = 0
    if st[2] and tonumber(st[2]) > tonumber(ARGV[1]) then
      locked = 1
    end
    return {tonumber(st[1]), locked}
    """

    def __init__(self, client: redis.Redis, prefix: str = PREFIX) -> None:
        self._r = client
        self._prefix = prefix
        self._consume = client.register_script(self._CONSUME)
        self._refund = client.register_script(self._REFUND)
        self._succeed = client.register_script(self._SUCCEED)
        self._peek = client.register_script(self._PEEK)
        self._reset = client.register_script(self._RESET)

    def _key(self, key: str) -> str:
        return self._prefix + key

    def consume(self, key: str, now: datetime, max_failures: int, lock_minutes: int) -> Decision:
        until = now + timedelta(minutes=lock_minutes)
        ttl_s = lock_minutes * 60 + self.IDLE_TTL_S
        allowed, failures, locked_until, auto, locks = self._consume(
            keys=[self._key(key)], args=[_us(now), max_failures, _us(until), ttl_s])
        return Decision(bool(allowed), int(failures), _from_us(locked_until), bool(auto), bool(locks))

    def refund(self, key: str, max_failures: int) -> None:
        self._refund(keys=[self._key(key)], args=[max_failures])

    def succeed(self, key: str) -> None:
        self._succeed(keys=[self._key(key)])

    def peek(self, key: str, now: datetime) -> tuple[int, datetime | None]:
        failures, locked_until = self._peek(keys=[self._key(key)], args=[_us(now)])
        return int(failures), _from_us(locked_until)

    def reset(self, key: str, now: datetime) -> tuple[int, bool]:
        failures, locked = self._reset(keys=[self._key(key)], args=[_us(now)])
        return int(failures), bool(locked)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _us(when: datetime) -> str:
    """Epoch microseconds as a decimal string (exact; Lua numbers are doubles, exact below 2**53)."""
    if when.tzinfo is None:
        raise ValueError("naive datetime passed to the counters")
    return str((when - _EPOCH) // _US)


def _from_us(raw: bytes | str | None) -> datetime | None:
    return None if raw is None else _EPOCH + int(raw) * _US
