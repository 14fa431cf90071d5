"""Conformance of the server-side session stores (R16): `SqlSessions` on SQLite and PostgreSQL and
`RedisSessions` on a real Redis keep sessions by the token's hash, expire them, list and end
one user's sessions (and nobody else's), and are shared by every service instance."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from sqlalchemy import select, text

from adapters.sessions import RedisSessions
from authsvc.domain.tokens import new_token, session_id
from authsvc.ports import SessionStore
from authsvc.store.db import make_engine, session_factory
from authsvc.store.models import SessionRow
from authsvc.store.sessions import SqlSessions
from tests.conftest import clear_redis
from tests.fakes import MemorySessions

HOUR = 3600


class Store:
    """One session store shared by any number of service instances."""

    def __init__(self, name: str, first: SessionStore, another: Callable[[], SessionStore],
                 let_expire: Callable[[float], None], dump: Callable[[], str]) -> None:
        self.name = name
        self.first = first
        self.instance = another
        self.let_expire = let_expire  # let `seconds` pass for the store
        self.dump = dump              # everything the store holds, as text


@pytest.fixture(params=["memory", "sql-sqlite", "sql-postgres", "redis"])
def store(request, make_deps, clock) -> Iterator[Store]:
    cleanups: list[Callable[[], None]] = []
    if request.param == "memory":  # the fake of tests/fakes.py: one store, shared by instances
        shared = MemorySessions(clock.now)
        yield Store(request.param, shared, lambda: shared, lambda s: clock.advance(seconds=s),
                    shared.dump)
    elif request.param == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = f"test:{uuid.uuid4().hex}:"  # outside the service's namespace (authsvc:*)
        raw = redis.Redis.from_url(url)
        cleanups.append(raw.close)

        def another() -> SessionStore:
            client = redis.Redis.from_url(url, socket_timeout=10)
            cleanups.append(client.close)
            return RedisSessions(client, prefix=prefix)

        def dump() -> str:
            out = []
            for key in raw.scan_iter(match=prefix + "*"):
                kind = raw.type(key)
                value = raw.get(key) if kind == b"string" else sorted(raw.smembers(key))
                out.append(repr((key, value)))
            return "\n".join(out)

        cleanups.append(lambda: clear_redis(url, prefix + "*"))
        yield Store(request.param, another(), another, lambda s: time.sleep(s + 0.1), dump)
    else:
        deps = make_deps(request.param.removeprefix("sql-"))
        assert isinstance(deps.sessions, SqlSessions)

        def another() -> SessionStore:
            engine = make_engine(deps.settings.database_url)
            cleanups.append(engine.dispose)
            return SqlSessions(session_factory(engine), clock.now)

        def dump() -> str:
            with deps.engine.connect() as conn:
                return "\n".join(repr(tuple(row)) for row in conn.execute(text("SELECT * FROM sessions")))

        yield Store(request.param, deps.sessions, another, lambda s: clock.advance(seconds=s), dump)
    for cleanup in reversed(cleanups):
        cleanup()


@pytest.fixture
def sessions(store: Store) -> SessionStore:
    return store.first


def data(n: int, **extra: object) -> dict:
    return {"n": n, "factors": ["password", "totp"], "name": "田中 太郎", "nested": {"ok": True}, **extra}


def test_put_get_delete(sessions):
    token = new_token()
    assert sessions.get(token) is None
    sessions.put(token, data(1), "alice", HOUR)
    assert sessions.get(token) == data(1)
    sessions.put(token, data(2, locked=True), "alice", HOUR)  # the same session, updated
    assert sessions.get(token) == data(2, locked=True)
    assert sessions.get(new_token()) is None
    sessions.delete(token)
    assert sessions.get(token) is None
    assert sessions.of_user("alice") == {}
    sessions.delete(token)  # ending an ended session is harmless
    sessions.delete(new_token())


def test_take_gets_and_deletes_in_one_step(store, sessions):
    token = new_token()
    assert sessions.take(token) is None
    sessions.put(token, data(1), "alice", HOUR)
    assert sessions.take(token) == data(1)
    assert sessions.get(token) is None and sessions.take(token) is None
    assert sessions.of_user("alice") == {}
    short = new_token()
    sessions.put(short, data(2), None, 1)
    store.let_expire(1)
    assert sessions.take(short) is None  # an expired one is not handed out


def test_of_concurrent_takers_exactly_one_gets_it(store):
    """The single-use transition of a logon step rests on this: across threads and instances,
    one `take` wins, every other finds nothing."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    instances = [store.first, store.instance(), store.instance()]
    for _round in range(5):
        token = new_token()
        store.first.put(token, data(7), None, HOUR)
        barrier = threading.Barrier(12)

        def take(i: int, token: str = token, barrier: threading.Barrier = barrier) -> object:
            barrier.wait(timeout=30)
            return instances[i % len(instances)].take(token)

        with ThreadPoolExecutor(max_workers=12) as pool:
            got = list(pool.map(take, range(12)))
        assert got.count(data(7)) == 1 and got.count(None) == 11


def test_sessions_expire_after_their_lifetime(store, sessions):
    short, long = new_token(), new_token()
    sessions.put(short, data(1), "alice", 1)
    sessions.put(long, data(2), "alice", HOUR)
    assert sessions.get(short) == data(1)
    assert set(sessions.of_user("alice")) == {session_id(short), session_id(long)}
    store.let_expire(1)
    assert sessions.get(short) is None
    assert sessions.get(long) == data(2)
    assert sessions.of_user("alice") == {session_id(long): data(2)}


def test_putting_a_session_again_renews_its_lifetime(store, sessions):
    token = new_token()
    sessions.put(token, data(1), "alice", 1)
    sessions.put(token, data(2), "alice", HOUR)  # activity: the idle timer starts again
    store.let_expire(1)
    assert sessions.get(token) == data(2)
    assert sessions.of_user("alice") == {session_id(token): data(2)}


def test_of_user_lists_only_that_users_live_sessions(store, sessions):
    a1, a2, a_old, b1, anon = (new_token() for _ in range(5))
    sessions.put(a_old, data(0), "alice", 1)
    sessions.put(a1, data(1), "alice", HOUR)
    sessions.put(a2, data(2), "alice", HOUR)
    sessions.put(b1, data(3), "bob", HOUR)
    sessions.put(anon, data(4), None, HOUR)  # e.g. a logon still at its first factor
    store.let_expire(1)
    assert sessions.of_user("alice") == {session_id(a1): data(1), session_id(a2): data(2)}
    assert sessions.of_user("bob") == {session_id(b1): data(3)}
    assert sessions.of_user("alic") == {}
    assert sessions.of_user("nobody") == {}


def test_delete_id_ends_one_session_by_its_id(sessions):
    a1, a2 = new_token(), new_token()
    sessions.put(a1, data(1), "alice", HOUR)
    sessions.put(a2, data(2), "alice", HOUR)
    sessions.delete_id(session_id(a1))
    assert sessions.get(a1) is None
    assert sessions.get(a2) == data(2)
    assert sessions.of_user("alice") == {session_id(a2): data(2)}
    sessions.delete_id(session_id(a1))
    sessions.delete_id("0" * 64)


def test_delete_user_ends_all_of_one_users_sessions_and_no_others(sessions):
    a1, a2, b1, anon = (new_token() for _ in range(4))
    sessions.put(a1, data(1), "alice", HOUR)
    sessions.put(a2, data(2), "alice", HOUR)
    sessions.put(b1, data(3), "bob", HOUR)
    sessions.put(anon, data(4), None, HOUR)
    assert sessions.delete_user("alice") == 2
    assert sessions.get(a1) is None and sessions.get(a2) is None
    assert sessions.of_user("alice") == {}
    assert sessions.get(b1) == data(3)
    assert sessions.get(anon) == data(4)
    assert sessions.of_user("bob") == {session_id(b1): data(3)}
    assert sessions.delete_user("alice") == 0
    a3 = new_token()  # alice logs on again later: her new session is hers to end again
    sessions.put(a3, data(5), "alice", HOUR)
    assert sessions.of_user("alice") == {session_id(a3): data(5)}
    assert sessions.delete_user("alice") == 1
    assert sessions.get(a3) is None


def test_delete_user_counts_the_live_sessions_it_ended(store, sessions):
    """The count is audited ("ended_sessions"): a session that had already expired was not ended."""
    old, live = new_token(), new_token()
    sessions.put(old, data(1), "alice", 1)
    sessions.put(live, data(2), "alice", HOUR)
    store.let_expire(1)
    assert sessions.delete_user("alice") == 1
    assert sessions.get(live) is None


def test_user_ids_are_matched_exactly(sessions):
    ids = ["田中", "田中2", "alice", "alice:x", "al*"]
    tokens = {uid: new_token() for uid in ids}
    for uid, token in tokens.items():
        sessions.put(token, data(len(uid)), uid, HOUR)
    for uid, token in tokens.items():
        assert sessions.of_user(uid) == {session_id(token): data(len(uid))}, uid
    assert sessions.delete_user("田中") == 1
    assert sessions.delete_user("al*") == 1
    alive = [uid for uid, token in tokens.items() if sessions.get(token) is not None]
    assert alive == ["田中2", "alice", "alice:x"]


def test_tokens_are_not_stored_in_clear(store, sessions):
    tokens = [new_token() for _ in range(3)]
    for i, token in enumerate(tokens):
        sessions.put(token, data(i), "alice" if i else None, HOUR)
    held = store.dump()
    assert all(session_id(t) in held for t in tokens)  # sessions are keyed by the token's hash
    for token in tokens:
        assert token not in held
        assert token[:16] not in held


def test_a_session_can_change_hands(sessions):
    """The user a session belongs to is updated (a logon is tied to its account once the
    password step succeeds); the session then ends with its new owner, not its old one."""
    token = new_token()
    sid = session_id(token)
    sessions.put(token, data(1), None, HOUR)
    assert sessions.of_user("alice") == {}
    sessions.put(token, data(2), "alice", HOUR)
    assert sessions.of_user("alice") == {sid: data(2)}
    sessions.put(token, data(3), "bob", HOUR)
    assert sessions.delete_user("alice") == 0  # the old owner's end does not reach it...
    assert sessions.get(token) == data(3)
    assert sessions.of_user("alice") == {}
    assert sessions.of_user("bob") == {sid: data(3)}  # ...the new owner's does
    sessions.put(token, data(4), None, HOUR)
    assert sessions.of_user("bob") == {}
    assert sessions.delete_user("bob") == 0
    assert sessions.get(token) == data(4)
    sessions.put(token, data(5), "bob", HOUR)
    assert sessions.delete_user("bob") == 1
    assert sessions.get(token) is None


def test_every_instance_sees_the_same_sessions(store, sessions):
    other = store.instance()
    token = new_token()
    sessions.put(token, data(1), "alice", HOUR)
    assert other.get(token) == data(1)
    assert other.of_user("alice") == {session_id(token): data(1)}
    assert other.delete_user("alice") == 1  # e.g. an operator revokes the account elsewhere
    assert sessions.get(token) is None


# -- Redis specifics -----------------------------------------------------------------------

@pytest.fixture
def redis_sessions(redis_url) -> Iterator[tuple[redis.Redis, str, RedisSessions]]:
    prefix = f"test:{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(redis_url)
    yield client, prefix, RedisSessions(client, prefix=prefix)
    clear_redis(redis_url, prefix + "*")
    client.close()


def test_redis_user_index_outlives_every_session_in_it(redis_sessions):
    """A later, shorter session must not shorten the index: the longer session would drop out
    of it and survive delete_user (a revoked account keeping a session, R16)."""
    client, prefix, sessions = redis_sessions
    long, short = new_token(), new_token()
    sessions.put(long, data(1), "alice", 3 * 24 * HOUR)
    sessions.put(short, data(2), "alice", 60)
    assert client.ttl(f"{prefix}u:alice") >= client.ttl(f"{prefix}s:{session_id(long)}")
    assert client.ttl(f"{prefix}u:alice") > 0  # and it does go away some day
    assert client.ttl(f"{prefix}s:{session_id(long)}") > 2 * 24 * HOUR


def test_redis_delete_user_racing_new_logons_leaves_no_session_behind(redis_url, redis_sessions):
    """While an account's sessions are being ended, sessions put for it concurrently must stay
    findable, so that the next delete_user ends them (none is left live but unlisted)."""
    client, prefix, sessions = redis_sessions
    other = RedisSessions(redis.Redis.from_url(redis_url), prefix=prefix)
    stop = threading.Event()

    def logons() -> None:
        while not stop.is_set():
            other.put(new_token(), data(1), "alice", HOUR)

    writer = threading.Thread(target=logons)
    writer.start()
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            sessions.delete_user("alice")
    finally:
        stop.set()
        writer.join()
    sessions.delete_user("alice")
    live = [k for k in client.scan_iter(match=f"{prefix}s:*")]
    assert live == []


def test_bootstrap_wires_redis_sessions_from_config(make_deps, redis_url):
    deps = make_deps("sqlite", sessions={"backend": "redis"})
    assert isinstance(deps.sessions, RedisSessions)
    other = make_deps("sqlite", sessions={"backend": "redis"})
    token = new_token()
    deps.sessions.put(token, data(1), "alice", HOUR)
    assert other.sessions.get(token) == data(1)
    with redis.Redis.from_url(redis_url) as client:
        assert client.exists(f"authsvc:s:{session_id(token)}")
    assert other.sessions.delete_user("alice") == 1


def test_a_dead_redis_raises_instead_of_answering():
    sessions = RedisSessions(redis.Redis.from_url("redis://127.0.0.1:1/15", socket_connect_timeout=2))
    token = new_token()
    for call in (lambda: sessions.get(token), lambda: sessions.put(token, data(1), "alice", HOUR),
                 lambda: sessions.of_user("alice"), lambda: sessions.delete(token),
                 lambda: sessions.delete_user("alice")):
        with pytest.raises(redis.exceptions.ConnectionError):
            call()


def test_sql_sessions_rows_hold_the_hash(make_deps):
    deps = make_deps("sqlite")
    token = new_token()
    deps.sessions.put(token, data(1), "alice", HOUR)
    with deps.engine.connect() as conn:
        assert list(conn.execute(select(SessionRow.id, SessionRow.user_id))) == [(session_id(token), "alice")]
