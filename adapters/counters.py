"""RedisCounters: the failed-attempt counters (R4) in Redis, the production implementation of
`authsvc.ports.Counters` (the embedded default is `SqlCounters`, authsvc.store.counters):
attempts are reserved before they are evaluated and settled after (authsvc/domain/lockout.py)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import redis

from authsvc.domain.lockout import Decision, Failure


def new_attempt() -> str:
    return secrets.token_hex(8)


class RedisCounters:
    """Counters in Redis, one hash per key: `f` (decided failures), `lu` (locked until, epoch
    microseconds; absent when not locked) and one field `p:<attempt>` per reservation in
    flight, holding when it lapses. Every operation is one Lua script, so it is atomic across
    all instances sharing the Redis. Time comes from the caller (`now`), never from Redis, so
    the decision is the same as `lockout.consume`/`lockout.fail` at any instant. Each key
    expires `lock_minutes` + 1 day after its last counted attempt, so abandoned keys go away.
    An unreachable Redis raises (redis.exceptions.ConnectionError): the caller fails closed."""

    PREFIX = "authsvc:c:"
    IDLE_TTL_S = 24 * 3600

    # KEYS[1] key; ARGV now_us, max_failures, lock_until_us (now + lock period), ttl_s,
    # attempt id, reservation lapses at (us). Lapsed reservations are dropped first.
    # Returns {allowed, failures, locked_until_us or nil, auto_unlocked, busy}.
    _CONSUME = """
    local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
    local all = redis.call('HGETALL', KEYS[1])
    local f, lu, live, auto = 0, false, 0, 0
    for i = 1, #all, 2 do
      local k, v = all[i], all[i + 1]
      if k == 'f' then
        f = tonumber(v)
      elseif k == 'lu' then
        lu = v
      elseif string.sub(k, 1, 2) == 'p:' then
        if tonumber(v) <= now then
          redis.call('HDEL', KEYS[1], k)
        else
          live = live + 1
        end
      end
    end
    if lu then
      if now < tonumber(lu) then
        return {0, f, lu, 0, 0}
      end
      f, lu, auto = 0, false, 1
      redis.call('HDEL', KEYS[1], 'lu')
    end
    local allowed, busy = 1, 0
    if f >= max then
      allowed, lu = 0, ARGV[3]
      redis.call('HSET', KEYS[1], 'lu', lu)
    elseif f + live >= max then
      allowed, busy = 0, 1
    else
      redis.call('HSET', KEYS[1], 'p:' .. ARGV[5], ARGV[6])
    end
    redis.call('HSET', KEYS[1], 'f', tostring(f))
    redis.call('EXPIRE', KEYS[1], ARGV[4])
    return {allowed, f, lu, auto, busy}
    """
    # KEYS[1] key; ARGV now_us, max_failures, lock_until_us, ttl_s, attempt id.
    # Returns {failures, locked_until_us or nil, locks_now}.
    _FAIL = """
    redis.call('HDEL', KEYS[1], 'p:' .. ARGV[5])
    local st = redis.call('HMGET', KEYS[1], 'f', 'lu')
    local f, lu, locks = (tonumber(st[1]) or 0) + 1, st[2], 0
    if not (lu and tonumber(ARGV[1]) < tonumber(lu)) then
      lu = false
      if f >= tonumber(ARGV[2]) then
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
    return {f, lu, locks}
    """
    # A hash emptied by HDEL is removed by Redis itself: releasing creates nothing.
    _RELEASE = """
    return redis.call('HDEL', KEYS[1], 'p:' .. ARGV[1])
    """
    _SUCCEED = """
    return redis.call('HDEL', KEYS[1], 'f', 'lu')
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
    redis.call('DEL', KEYS[1])
    local locked = 0
    if st[2] and tonumber(st[2]) > tonumber(ARGV[1]) then
      locked = 1
    end
    return {tonumber(st[1]) or 0, locked}
    """

    def __init__(self, client: redis.Redis, prefix: str = PREFIX, pending_seconds: int = 30) -> None:
        self._r = client
        self._prefix = prefix
        self._pending = timedelta(seconds=pending_seconds)
        self._consume = client.register_script(self._CONSUME)
        self._fail = client.register_script(self._FAIL)
        self._release = client.register_script(self._RELEASE)
        self._succeed = client.register_script(self._SUCCEED)
        self._peek = client.register_script(self._PEEK)
        self._reset = client.register_script(self._RESET)

    def _key(self, key: str) -> str:
        return self._prefix + key

    def _ttl(self, lock_minutes: int) -> int:
        return lock_minutes * 60 + self.IDLE_TTL_S

    def consume(self, key: str, now: datetime, max_failures: int, lock_minutes: int) -> Decision:
        until = now + timedelta(minutes=lock_minutes)
        attempt = new_attempt()
        allowed, failures, locked_until, auto, busy = self._consume(
            keys=[self._key(key)], args=[_us(now), max_failures, _us(until), self._ttl(lock_minutes),
                                         attempt, _us(now + self._pending)])
        return Decision(bool(allowed), int(failures), _from_us(locked_until), bool(auto), bool(busy),
                        attempt if allowed else "")

    def fail(self, key: str, attempt: str, now: datetime, max_failures: int,
             lock_minutes: int) -> Failure:
        until = now + timedelta(minutes=lock_minutes)
        failures, locked_until, locks = self._fail(
            keys=[self._key(key)], args=[_us(now), max_failures, _us(until), self._ttl(lock_minutes),
                                         attempt])
        return Failure(int(failures), _from_us(locked_until), bool(locks))

    def release(self, key: str, attempt: str) -> None:
        self._release(keys=[self._key(key)], args=[attempt])

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
