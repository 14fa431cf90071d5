"""Conformance of the failed-attempt counters (R4, R5): `SqlCounters` on SQLite and PostgreSQL and
`RedisCounters` on a real Redis behave exactly like the decision functions in
`authsvc.domain.lockout`, are exact under concurrency from one or several instances, and a
dead Redis raises instead of allowing (the caller fails closed)."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
import redis

from adapters.clock import FixedClock
from adapters.counters import Counters, RedisCounters
from authsvc.domain import lockout
from authsvc.domain.lockout import Decision
from authsvc.services import accounts
from authsvc.store.counters import SqlCounters
from authsvc.store.db import make_engine, session_factory
from tests.conftest import clear_redis
from tests.integration.support import active_account, add_contract, events

N, LOCK = 5, 30  # max failures, lock minutes
JST = timezone(timedelta(hours=9))


class Store:
    """One counters store shared by any number of service instances (`instance()`)."""

    def __init__(self, name: str, first: Counters, another: Callable[[], Counters]) -> None:
        self.name = name
        self.first = first
        self._another = another

    def instance(self) -> Counters:
        """The counters as another service instance sees them: its own engine or client."""
        return self._another()


@pytest.fixture(params=["sql-sqlite", "sql-postgres", "redis"])
def store(request, make_deps) -> Iterator[Store]:
    cleanups: list[Callable[[], None]] = []
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = f"test:{uuid.uuid4().hex}:c:"  # outside the service's namespace (authsvc:*)

        def another() -> Counters:
            client = redis.Redis.from_url(url, socket_timeout=10, max_connections=300)
            cleanups.append(client.close)
            return RedisCounters(client, prefix=prefix)

        clear_redis(url, prefix + "*")
        cleanups.append(lambda: clear_redis(url, prefix + "*"))
        yield Store(request.param, another(), another)
    else:
        deps = make_deps(request.param.removeprefix("sql-"))
        assert isinstance(deps.counters, SqlCounters)

        def another() -> Counters:
            engine = make_engine(deps.settings.database_url)
            cleanups.append(engine.dispose)
            return SqlCounters(session_factory(engine))

        yield Store(request.param, deps.counters, another)
    for cleanup in reversed(cleanups):
        cleanup()


@pytest.fixture
def counters(store: Store) -> Counters:
    return store.first


def fail(counters: Counters, key: str, now: datetime, times: int, max_failures: int = N) -> list[Decision]:
    return [counters.consume(key, now, max_failures, LOCK) for _ in range(times)]


# -- behaviour ------------------------------------------------------------------------------

def test_n_attempts_are_allowed_then_refused_without_counting(counters, clock):
    now = clock.now()
    until = now + timedelta(minutes=LOCK)
    assert fail(counters, "alice", now, N) == [
        Decision(True, 1, None, False, False),
        Decision(True, 2, None, False, False),
        Decision(True, 3, None, False, False),
        Decision(True, 4, None, False, False),
        Decision(True, 5, until, False, True),  # the N-th provisionally locks
    ]
    # while locked no attempt is even evaluated, and refused attempts are not counted
    refused = Decision(False, N, until, False, False)
    assert fail(counters, "alice", now + timedelta(minutes=10), 3) == [refused] * 3
    assert counters.peek("alice", now) == (N, until)


def test_the_nth_attempt_locks_provisionally(counters, clock):
    now = clock.now()
    fail(counters, "alice", now, N - 1)
    assert counters.peek("alice", now) == (N - 1, None)
    last = counters.consume("alice", now, N, LOCK)
    assert last.allowed and last.locks_now and last.locked_until == now + timedelta(minutes=LOCK)
    assert counters.peek("alice", now) == (N, now + timedelta(minutes=LOCK))
    assert not counters.consume("alice", now, N, LOCK).allowed


def test_refund_lifts_the_provisional_lock_but_keeps_earlier_failures(counters, clock):
    now = clock.now()
    fail(counters, "alice", now, N)          # the N-th attempt's factor turns out right
    counters.refund("alice", N)
    assert counters.peek("alice", now) == (N - 1, None)
    # knowing the password does not buy more guesses: the next attempt locks again
    until = now + timedelta(minutes=LOCK)
    assert counters.consume("alice", now, N, LOCK) == Decision(True, N, until, False, True)
    assert not counters.consume("alice", now, N, LOCK).allowed


def test_refund_below_the_limit_gives_back_one_attempt_and_never_goes_negative(counters, clock):
    now = clock.now()
    fail(counters, "alice", now, 2)
    counters.refund("alice", N)
    assert counters.peek("alice", now) == (1, None)
    counters.refund("alice", N)
    counters.refund("alice", N)
    assert counters.peek("alice", now) == (0, None)
    assert counters.consume("alice", now, N, LOCK).failures == 1
    counters.refund("nobody", N)  # a key never counted stays empty
    assert counters.peek("nobody", now) == (0, None)
    assert counters.consume("nobody", now, N, LOCK).failures == 1


def test_refund_keeps_a_lock_that_was_full_before_the_attempt(counters, clock):
    """lockout.refund keeps the lock when the count stays at the limit (a lowered limit)."""
    now = clock.now()
    fail(counters, "alice", now, 4, max_failures=5)
    until = now + timedelta(minutes=LOCK)
    assert counters.consume("alice", now, 3, LOCK) == Decision(False, 4, until, False, False)
    counters.refund("alice", 3)
    assert counters.peek("alice", now) == (3, until)
    counters.refund("alice", 3)
    assert counters.peek("alice", now) == (2, None)


def test_a_full_count_without_a_lock_is_refused_and_locks(counters, clock):
    """The defensive branch: the limit was lowered below the count already consumed."""
    now = clock.now()
    fail(counters, "alice", now, 3, max_failures=5)
    until = now + timedelta(minutes=LOCK)
    assert counters.consume("alice", now, 2, LOCK) == Decision(False, 3, until, False, False)
    assert counters.peek("alice", now) == (3, until)
    assert counters.consume("alice", now, 5, LOCK) == Decision(False, 3, until, False, False)


def test_succeed_clears_the_count_and_the_provisional_lock(counters, clock):
    now = clock.now()
    fail(counters, "alice", now, N - 1)
    counters.succeed("alice")
    assert counters.peek("alice", now) == (0, None)
    assert [d.allowed for d in fail(counters, "alice", now, N + 1)] == [True] * N + [False]
    counters.succeed("alice")  # a completed logon lifts the provisional lock
    assert counters.peek("alice", now) == (0, None)
    assert counters.consume("alice", now, N, LOCK) == Decision(True, 1, None, False, False)
    counters.succeed("nobody")
    assert counters.peek("nobody", now) == (0, None)


def test_the_lock_lifts_by_itself_after_the_period(counters):
    start = datetime(2026, 4, 1, 9, 0, 0, 123457, tzinfo=UTC)  # microseconds are kept exactly
    clock = FixedClock(start)
    until = start + timedelta(minutes=LOCK)
    fail(counters, "alice", clock.now(), N)
    clock.advance(minutes=LOCK, microseconds=-1)
    assert counters.consume("alice", clock.now(), N, LOCK) == Decision(False, N, until, False, False)
    assert counters.peek("alice", clock.now()) == (N, until)
    clock.advance(microseconds=1)  # exactly at the end of the period
    assert counters.peek("alice", clock.now()) == (0, None)
    assert counters.consume("alice", clock.now(), N, LOCK) == Decision(True, 1, None, True, False)
    assert counters.peek("alice", clock.now()) == (1, None)
    # a fresh count: the attempt that lifted the lock was the first of the next N
    later = clock.now()
    assert [d.locks_now for d in fail(counters, "alice", later, N - 1)] == [False] * (N - 2) + [True]
    assert counters.consume("alice", later, N, LOCK) == \
        Decision(False, N, later + timedelta(minutes=LOCK), False, False)


def test_time_is_the_callers_whatever_the_zone(counters):
    for year in (1999, 2199):
        key = f"alice-{year}"
        now = datetime(year, 6, 1, 12, 0, tzinfo=JST)
        locked = fail(counters, key, now, N)[-1]
        assert locked.locked_until == now + timedelta(minutes=LOCK)
        assert counters.peek(key, now)[1] == now + timedelta(minutes=LOCK)
        assert counters.peek(key, now.astimezone(UTC) + timedelta(minutes=LOCK)) == (0, None)
        assert counters.consume(key, now + timedelta(minutes=LOCK, seconds=1), N, LOCK).auto_unlocked


def test_peek_reads_without_changing_anything(counters, clock):
    now = clock.now()
    assert counters.peek("nobody", now) == (0, None)
    fail(counters, "alice", now, 3)
    assert counters.peek("alice", now) == (3, None)
    assert counters.peek("alice", now) == (3, None)
    assert counters.consume("alice", now, N, LOCK).failures == 4
    fail(counters, "alice", now, 1)
    later = now + timedelta(minutes=LOCK + 1)
    assert counters.peek("alice", later) == (0, None)  # a lapsed lock reads as none...
    # ...but peeking did not lift it: the next attempt does, and says so
    assert counters.consume("alice", later, N, LOCK) == Decision(True, 1, None, True, False)


def test_reset_returns_what_it_cleared(counters, clock):
    now = clock.now()
    assert counters.reset("nobody", now) == (0, False)
    fail(counters, "alice", now, 3)
    assert counters.reset("alice", now) == (3, False)
    assert counters.peek("alice", now) == (0, None)
    fail(counters, "alice", now, N + 2)
    assert counters.reset("alice", now + timedelta(minutes=1)) == (N, True)
    assert counters.peek("alice", now) == (0, None)
    assert counters.consume("alice", now, N, LOCK) == Decision(True, 1, None, False, False)
    fail(counters, "alice", now, N - 1)
    assert counters.reset("alice", now + timedelta(minutes=LOCK)) == (N, False)  # lapsed: not locked
    assert counters.reset("alice", now) == (0, False)


def test_keys_are_independent(counters, clock):
    now = clock.now()
    keys = ["alice", "alice2", "ali*", "al?ce", "[a]lice", "unknown:" + "ab" * 20, "田中", "a:b c"]
    for i, key in enumerate(keys):
        fail(counters, key, now, i % N + 1)
    for i, key in enumerate(keys):
        assert counters.peek(key, now)[0] == i % N + 1, key
    counters.succeed("ali*")
    counters.reset("al?ce", now)
    counters.refund("[a]lice", N)
    assert [counters.peek(k, now)[0] for k in keys] == [1, 2, 0, 0, 4, 1, 2, 3]


def test_every_sequence_matches_the_decision_functions(counters):
    """A long random mix of every operation, against a model built from lockout.consume/refund."""
    rng = random.Random(20260401)
    clock = FixedClock(datetime(2026, 4, 1, tzinfo=UTC))
    model: dict[str, tuple[int, datetime | None]] = {}
    keys = ["k1", "k2", "k3"]
    for step in range(400):
        key, now = rng.choice(keys), clock.now()
        max_failures = rng.choice([3, 3, 3, 1, 2, 5])
        lock_minutes = rng.choice([1, 30])
        op = rng.choices(["consume", "refund", "succeed", "peek", "reset", "wait"],
                         weights=[10, 3, 1, 3, 1, 3])[0]
        failures, locked_until = model.get(key, (0, None))
        where = f"step {step}: {op} {key}"
        if op == "consume":
            want = lockout.consume(failures, locked_until, now, max_failures, lock_minutes)
            assert counters.consume(key, now, max_failures, lock_minutes) == want, where
            model[key] = (want.failures, want.locked_until)
        elif op == "refund":
            counters.refund(key, max_failures)
            if key in model:
                model[key] = lockout.refund(failures, locked_until, max_failures)
        elif op == "succeed":
            counters.succeed(key)
            model[key] = (0, None)
        elif op == "peek":
            lapsed = locked_until is not None and locked_until <= now
            assert counters.peek(key, now) == ((0, None) if lapsed else (failures, locked_until)), where
        elif op == "reset":
            was_locked = locked_until is not None and locked_until > now
            assert counters.reset(key, now) == (failures, was_locked), where
            model[key] = (0, None)
        else:
            clock.advance(seconds=rng.choice([1, 59, 61, 600, 1800, 3600]))


# -- exactness under concurrency (R4) ------------------------------------------------------

THREADS = 200


def storm(instances: list[Counters], key: str, now: datetime) -> list[Decision]:
    barrier = threading.Barrier(THREADS)

    def attempt(i: int) -> Decision:
        barrier.wait(timeout=60)
        return instances[i % len(instances)].consume(key, now, N, LOCK)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(attempt, range(THREADS)))


@pytest.mark.parametrize("instances", [1, 2], ids=["one-instance", "two-instances"])
def test_parallel_attempts_get_exactly_max_failures_evaluations(store, clock, instances):
    pool = [store.first] + [store.instance() for _ in range(instances - 1)]
    now = clock.now()
    until = now + timedelta(minutes=LOCK)
    decisions = storm(pool, "target", now)
    allowed = [d for d in decisions if d.allowed]
    assert sorted(d.failures for d in allowed) == list(range(1, N + 1))
    assert [d.locked_until for d in allowed if d.locks_now] == [until]
    refused = Decision(False, N, until, False, False)
    assert [d for d in decisions if not d.allowed] == [refused] * (THREADS - N)
    for counters in pool:
        assert counters.peek("target", now) == (N, until)


def test_instances_share_one_count(store, clock):
    a, b = store.first, store.instance()
    now = clock.now()
    fail(a, "alice", now, 2)
    fail(b, "alice", now, 2)
    assert a.peek("alice", now) == b.peek("alice", now) == (4, None)
    assert b.consume("alice", now, N, LOCK).locks_now
    assert not a.consume("alice", now, N, LOCK).allowed
    assert b.reset("alice", now) == (N, True)
    assert a.peek("alice", now) == (0, None)


# -- Redis specifics -----------------------------------------------------------------------

@pytest.fixture
def redis_store(redis_url) -> Iterator[tuple[redis.Redis, str]]:
    prefix = f"test:{uuid.uuid4().hex}:c:"
    client = redis.Redis.from_url(redis_url)
    yield client, prefix
    clear_redis(redis_url, prefix + "*")
    client.close()


def test_redis_keys_are_prefixed_timestamped_in_microseconds_and_expire(redis_store, clock):
    client, prefix = redis_store
    counters = RedisCounters(client, prefix=prefix)
    now = clock.now() + timedelta(microseconds=7)
    fail(counters, "alice", now, N)
    assert client.keys(prefix + "*") == [(prefix + "alice").encode()]
    until_us = int((now + timedelta(minutes=LOCK)).timestamp()) * 1_000_000 + 7
    assert client.hgetall(prefix + "alice") == {b"f": str(N).encode(), b"lu": str(until_us).encode()}
    ttl = LOCK * 60 + 24 * 3600
    assert ttl - 5 <= client.ttl(prefix + "alice") <= ttl  # an abandoned key goes away
    counters.refund("alice", N)
    assert ttl - 5 <= client.ttl(prefix + "alice") <= ttl
    counters.succeed("alice")
    assert not client.exists(prefix + "alice")
    fail(counters, "bob", now, 1)
    counters.reset("bob", now)
    assert client.keys(prefix + "*") == []
    counters.refund("carol", N)
    counters.peek("carol", now)
    assert client.keys(prefix + "*") == []  # reading or refunding creates nothing


def test_the_default_prefix(redis_store, clock):
    client, _ = redis_store
    counters = RedisCounters(client)
    key = f"test-{uuid.uuid4().hex}"
    try:
        counters.consume(key, clock.now(), N, LOCK)
        assert client.exists("authsvc:c:" + key)
    finally:
        client.delete("authsvc:c:" + key)


def test_bootstrap_wires_redis_counters_from_config(make_deps, redis_url, clock):
    deps = make_deps("sqlite", counters={"backend": "redis"})
    assert isinstance(deps.counters, RedisCounters)
    other = make_deps("sqlite", counters={"backend": "redis"})  # a second instance
    fail(deps.counters, "alice", clock.now(), N)
    assert other.counters.peek("alice", clock.now()) == (N, clock.now() + timedelta(minutes=LOCK))
    with redis.Redis.from_url(redis_url) as client:
        assert client.exists("authsvc:c:alice")


def test_a_dead_redis_raises_instead_of_allowing(clock):
    dead = redis.Redis.from_url("redis://127.0.0.1:1/15", socket_connect_timeout=2, socket_timeout=2)
    counters = RedisCounters(dead)
    now = clock.now()
    calls: list[Callable[[], object]] = [
        lambda: counters.consume("alice", now, N, LOCK),
        lambda: counters.refund("alice", N),
        lambda: counters.succeed("alice"),
        lambda: counters.peek("alice", now),
        lambda: counters.reset("alice", now),
    ]
    for call in calls:
        with pytest.raises(redis.exceptions.ConnectionError):
            call()


def test_a_dead_redis_stops_the_service_instead_of_allowing(make_deps, operator, account_admin):
    live = make_deps("sqlite")
    add_contract(live, operator)
    active_account(live, account_admin, operator, "alice")
    # the same service, configured with a Redis that is not there
    deps = make_deps("sqlite", counters={"backend": "redis"}, redis={"url": "redis://127.0.0.1:1/15"})
    assert isinstance(deps.counters, RedisCounters)
    with pytest.raises(redis.exceptions.ConnectionError):
        deps.counters.consume("alice", deps.clock.now(), N, LOCK)
    with pytest.raises(redis.exceptions.ConnectionError):
        accounts.unlock(deps, operator, "alice")
    assert events(deps, "account.unlock") == []


def test_deployments_with_their_own_prefix_do_not_share_counters(make_deps, redis_url, clock):
    """Two deployments on one Redis database keep apart by `redis.prefix`."""
    clear_redis(redis_url, "deploy-a:*")
    clear_redis(redis_url, "deploy-b:*")
    a = make_deps("sqlite", counters={"backend": "redis"}, redis={"url": redis_url, "prefix": "deploy-a:"})
    b = make_deps("sqlite", counters={"backend": "redis"}, redis={"url": redis_url, "prefix": "deploy-b:"})
    for _ in range(3):
        a.counters.consume("tanaka", clock.now(), 5, 30)
    assert a.counters.peek("tanaka", clock.now())[0] == 3
    assert b.counters.peek("tanaka", clock.now())[0] == 0
    clear_redis(redis_url, "deploy-a:*")
    clear_redis(redis_url, "deploy-b:*")
