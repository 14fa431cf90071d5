"""Conformance of the failed-attempt counters (R4, R5): `SqlCounters` on SQLite and PostgreSQL and
`RedisCounters` on a real Redis behave exactly like the decision functions in
`authsvc.domain.lockout` (reservations in flight, their lapse, decided failures), are exact
under concurrency from one or several instances, and a dead Redis raises instead of allowing
(the caller fails closed)."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import redis

from adapters.clock import FixedClock
from adapters.counters import RedisCounters
from authsvc.domain import lockout
from authsvc.domain.lockout import Decision, Failure
from authsvc.ports import Counters
from authsvc.services import accounts
from authsvc.store.counters import SqlCounters
from authsvc.store.db import make_engine, session_factory
from tests.conftest import clear_redis
from tests.fakes import MemoryCounters
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


@pytest.fixture(params=["memory", "sql-sqlite", "sql-postgres", "redis"])
def store(request, make_deps) -> Iterator[Store]:
    cleanups: list[Callable[[], None]] = []
    if request.param == "memory":  # the fake of tests/fakes.py: one store, shared by instances
        shared = MemoryCounters()
        yield Store(request.param, shared, lambda: shared)
    elif request.param == "redis":
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


PENDING = 30  # seconds an undecided reservation holds its place


def fail(counters: Counters, key: str, now: datetime, times: int,
         max_failures: int = N) -> list[tuple[Decision, Failure | None]]:
    """`times` attempts one after the other, each reserved and then failing."""
    out: list[tuple[Decision, Failure | None]] = []
    for _ in range(times):
        d = counters.consume(key, now, max_failures, LOCK)
        out.append((d, counters.fail(key, d.attempt, now, max_failures, LOCK) if d.allowed else None))
    return out


def refused(failures: int, until: datetime | None, busy: bool = False) -> Decision:
    return Decision(False, failures, until, False, busy, "")


def allowed(d: Decision, failures: int, auto_unlocked: bool = False) -> bool:
    return (d.allowed, d.failures, d.locked_until, d.auto_unlocked, d.busy, bool(d.attempt)) == \
        (True, failures, None, auto_unlocked, False, True)


# -- behaviour ------------------------------------------------------------------------------

def test_n_failures_then_refused_without_counting(counters, clock):
    now = clock.now()
    until = now + timedelta(minutes=LOCK)
    steps = fail(counters, "alice", now, N)
    assert all(allowed(d, i) for i, (d, _) in enumerate(steps))
    assert [f for _, f in steps] == [Failure(i, None, False) for i in range(1, N)] + [
        Failure(N, until, True)]  # the N-th decided failure locks
    # while locked no attempt is even evaluated, and refused attempts are not counted
    assert [d for d, _ in fail(counters, "alice", now + timedelta(minutes=10), 3)] == [refused(N, until)] * 3
    assert counters.peek("alice", now) == (N, until)


def test_reservations_in_flight_hold_the_remaining_attempts(counters, clock):
    """Never more than N evaluations at once, and an attempt in flight is no failure."""
    now = clock.now()
    fail(counters, "alice", now, 2)
    held = [counters.consume("alice", now, N, LOCK) for _ in range(N - 2)]
    assert all(allowed(d, 2) for d in held)
    assert len({d.attempt for d in held}) == N - 2
    assert counters.consume("alice", now, N, LOCK) == refused(2, None, busy=True)
    assert counters.peek("alice", now) == (2, None)
    counters.release("alice", held[0].attempt)  # its outcome was a success
    assert allowed(counters.consume("alice", now, N, LOCK), 2)
    assert counters.consume("alice", now, N, LOCK).busy


def test_a_released_attempt_counts_for_nothing_and_forgives_nothing_earlier(counters, clock):
    now = clock.now()
    fail(counters, "alice", now, N - 1)
    d = counters.consume("alice", now, N, LOCK)
    counters.release("alice", d.attempt)
    counters.release("alice", d.attempt)  # twice: still one attempt given back
    assert counters.peek("alice", now) == (N - 1, None)
    # knowing the password does not buy more guesses: the next failure locks
    (d, f), = fail(counters, "alice", now, 1)
    assert f == Failure(N, now + timedelta(minutes=LOCK), True)
    counters.release("nobody", "x")  # a key never counted stays empty
    assert counters.peek("nobody", now) == (0, None)


def test_an_undecided_attempt_lapses_and_never_counts(counters, clock):
    """A worker that dies (or a Redis that stalls) between reserving and deciding leaves no
    failure behind: the reservation lapses after its time, and the account is as it was."""
    now = clock.now()
    for _ in range(N):
        assert counters.consume("alice", now, N, LOCK).allowed  # never decided
    assert counters.consume("alice", now + timedelta(seconds=PENDING - 1), N, LOCK).busy
    later = now + timedelta(seconds=PENDING)
    assert counters.peek("alice", later) == (0, None)
    for _ in range(3):  # however often it happens
        assert allowed(counters.consume("alice", later, N, LOCK), 0)
        later += timedelta(seconds=PENDING)
    assert counters.peek("alice", later) == (0, None)


def test_a_late_failure_still_counts(counters, clock):
    """An attempt decided after its reservation lapsed was evaluated: its failure counts."""
    now = clock.now()
    d = counters.consume("alice", now, N, LOCK)
    later = now + timedelta(seconds=PENDING * 3)
    assert counters.fail("alice", d.attempt, later, N, LOCK) == Failure(1, None, False)
    assert counters.peek("alice", later) == (1, None)


def test_a_full_count_without_a_lock_is_refused_and_locks(counters, clock):
    """The defensive branch: the limit was lowered below the count already decided."""
    now = clock.now()
    fail(counters, "alice", now, 3, max_failures=5)
    until = now + timedelta(minutes=LOCK)
    assert counters.consume("alice", now, 2, LOCK) == refused(3, until)
    assert counters.peek("alice", now) == (3, until)
    assert counters.consume("alice", now, 5, LOCK) == refused(3, until)


def test_succeed_clears_the_count_and_the_lock(counters, clock):
    now = clock.now()
    fail(counters, "alice", now, N - 1)
    counters.succeed("alice")
    assert counters.peek("alice", now) == (0, None)
    assert [d.allowed for d, _ in fail(counters, "alice", now, N + 1)] == [True] * N + [False]
    counters.succeed("alice")
    assert counters.peek("alice", now) == (0, None)
    assert allowed(counters.consume("alice", now, N, LOCK), 0)
    counters.succeed("nobody")
    assert counters.peek("nobody", now) == (0, None)


def test_the_lock_lifts_by_itself_after_the_period(counters):
    start = datetime(2026, 4, 1, 9, 0, 0, 123457, tzinfo=UTC)  # microseconds are kept exactly
    clock = FixedClock(start)
    until = start + timedelta(minutes=LOCK)
    fail(counters, "alice", clock.now(), N)
    clock.advance(minutes=LOCK, microseconds=-1)
    assert counters.consume("alice", clock.now(), N, LOCK) == refused(N, until)
    assert counters.peek("alice", clock.now()) == (N, until)
    clock.advance(microseconds=1)  # exactly at the end of the period
    assert counters.peek("alice", clock.now()) == (0, None)
    d = counters.consume("alice", clock.now(), N, LOCK)
    assert allowed(d, 0, auto_unlocked=True)
    assert counters.fail("alice", d.attempt, clock.now(), N, LOCK) == Failure(1, None, False)
    # a fresh count: the attempt that lifted the lock was the first of the next N
    later = clock.now()
    assert [f.locks_now for _, f in fail(counters, "alice", later, N - 1)] == [False] * (N - 2) + [True]
    assert counters.consume("alice", later, N, LOCK) == refused(N, later + timedelta(minutes=LOCK))


def test_time_is_the_callers_whatever_the_zone(counters):
    for year in (1999, 2199):
        key = f"alice-{year}"
        now = datetime(year, 6, 1, 12, 0, tzinfo=JST)
        locked = fail(counters, key, now, N)[-1][1]
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
    fail(counters, "alice", now, 2)
    later = now + timedelta(minutes=LOCK + 1)
    assert counters.peek("alice", later) == (0, None)  # a lapsed lock reads as none...
    # ...but peeking did not lift it: the next attempt does, and says so
    assert allowed(counters.consume("alice", later, N, LOCK), 0, auto_unlocked=True)


def test_reset_returns_what_it_cleared(counters, clock):
    now = clock.now()
    assert counters.reset("nobody", now) == (0, False)
    fail(counters, "alice", now, 3)
    assert counters.reset("alice", now) == (3, False)
    assert counters.peek("alice", now) == (0, None)
    fail(counters, "alice", now, N + 2)
    assert counters.reset("alice", now + timedelta(minutes=1)) == (N, True)
    assert counters.peek("alice", now) == (0, None)
    assert allowed(counters.consume("alice", now, N, LOCK), 0)  # its reservation is in flight
    assert counters.reset("alice", now) == (0, False)  # ...and cleared with the rest
    fail(counters, "alice", now, N)
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
    counters.release("[a]lice", "nothing-in-flight")
    assert [counters.peek(k, now)[0] for k in keys] == [1, 2, 0, 0, 5, 1, 2, 3]


def test_every_sequence_matches_the_decision_functions(counters):
    """A long random mix of every operation, against a model built from lockout.consume/fail
    with the reservations in flight and their lapse."""
    rng = random.Random(20260401)
    clock = FixedClock(datetime(2026, 4, 1, tzinfo=UTC))
    model: dict[str, tuple[int, datetime | None, dict[str, datetime]]] = {}
    keys = ["k1", "k2", "k3"]
    for step in range(500):
        key, now = rng.choice(keys), clock.now()
        max_failures = rng.choice([3, 3, 3, 1, 2, 5])
        lock_minutes = rng.choice([1, 30])
        op = rng.choices(["consume", "fail", "release", "succeed", "peek", "reset", "wait"],
                         weights=[10, 6, 3, 1, 3, 1, 3])[0]
        failures, locked_until, flight = model.get(key, (0, None, {}))
        live = {a: t for a, t in flight.items() if t > now}
        where = f"step {step}: {op} {key}"
        if op == "consume":
            want = lockout.consume(failures, len(live), locked_until, now, max_failures, lock_minutes)
            got = counters.consume(key, now, max_failures, lock_minutes)
            assert replace(got, attempt="") == want and bool(got.attempt) == want.allowed, where
            if got.allowed:
                live[got.attempt] = now + timedelta(seconds=PENDING)
            model[key] = (want.failures, want.locked_until, live)
        elif op == "fail" and flight:
            attempt = rng.choice(sorted(flight))
            want_f = lockout.fail(failures, locked_until, now, max_failures, lock_minutes)
            assert counters.fail(key, attempt, now, max_failures, lock_minutes) == want_f, where
            live.pop(attempt, None)
            model[key] = (want_f.failures, want_f.locked_until, live)
        elif op == "release" and flight:
            attempt = rng.choice(sorted(flight))
            counters.release(key, attempt)
            live.pop(attempt, None)
            model[key] = (failures, locked_until, live)
        elif op == "succeed":
            counters.succeed(key)
            model[key] = (0, None, live)
        elif op == "peek":
            lapsed = locked_until is not None and locked_until <= now
            assert counters.peek(key, now) == ((0, None) if lapsed else (failures, locked_until)), where
        elif op == "reset":
            was_locked = locked_until is not None and locked_until > now
            assert counters.reset(key, now) == (failures, was_locked), where
            model[key] = (0, None, {})
        elif op == "wait":
            clock.advance(seconds=rng.choice([1, 29, 31, 59, 61, 600, 1800, 3600]))


# -- exactness under concurrency (R4) ------------------------------------------------------

THREADS = 200


def storm(instances: list[Counters], key: str, now: datetime) -> list[tuple[Decision, Failure | None]]:
    """Every thread reserves at once; those allowed then fail (a wrong password)."""
    barrier = threading.Barrier(THREADS)

    def attempt(i: int) -> tuple[Decision, Failure | None]:
        counters = instances[i % len(instances)]
        barrier.wait(timeout=60)
        d = counters.consume(key, now, N, LOCK)
        return d, counters.fail(key, d.attempt, now, N, LOCK) if d.allowed else None

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(attempt, range(THREADS)))


@pytest.mark.parametrize("instances", [1, 2], ids=["one-instance", "two-instances"])
def test_parallel_attempts_get_exactly_max_failures_evaluations(store, clock, instances):
    pool = [store.first] + [store.instance() for _ in range(instances - 1)]
    now = clock.now()
    until = now + timedelta(minutes=LOCK)
    steps = storm(pool, "target", now)
    failures = [f for d, f in steps if d.allowed]
    assert len(failures) == N
    assert sorted(f.failures for f in failures) == list(range(1, N + 1))
    assert [f.locked_until for f in failures if f.locks_now] == [until]
    assert all(not d.allowed and (d.busy or d.locked_until == until) for d, f in steps if f is None)
    for counters in pool:
        assert counters.peek("target", now) == (N, until)


def test_instances_share_one_count(store, clock):
    a, b = store.first, store.instance()
    now = clock.now()
    fail(a, "alice", now, 2)
    fail(b, "alice", now, 2)
    assert a.peek("alice", now) == b.peek("alice", now) == (4, None)
    d = b.consume("alice", now, N, LOCK)
    assert a.consume("alice", now, N, LOCK).busy  # b's attempt is in flight
    assert a.fail("alice", d.attempt, now, N, LOCK).locks_now  # settled by another instance
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
    counters.succeed("alice")
    assert not client.exists(prefix + "alice")
    d = counters.consume("dave", now, N, LOCK)  # a reservation: when it lapses, in microseconds
    lapses_us = int((now + timedelta(seconds=PENDING)).timestamp()) * 1_000_000 + 7
    assert client.hgetall(prefix + "dave") == {b"f": b"0", f"p:{d.attempt}".encode(): str(lapses_us).encode()}
    counters.release("dave", d.attempt)
    assert client.hgetall(prefix + "dave") == {b"f": b"0"}
    assert ttl - 5 <= client.ttl(prefix + "dave") <= ttl
    counters.reset("dave", now)
    fail(counters, "bob", now, 1)
    counters.reset("bob", now)
    assert client.keys(prefix + "*") == []
    counters.release("carol", "x")
    counters.peek("carol", now)
    assert client.keys(prefix + "*") == []  # reading or releasing creates nothing


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
        lambda: counters.fail("alice", "x", now, N, LOCK),
        lambda: counters.release("alice", "x"),
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
    fail(a.counters, "tanaka", clock.now(), 3)
    assert a.counters.peek("tanaka", clock.now())[0] == 3
    assert b.counters.peek("tanaka", clock.now())[0] == 0
    clear_redis(redis_url, "deploy-a:*")
    clear_redis(redis_url, "deploy-b:*")
