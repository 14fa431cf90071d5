"""The audit path without one lock per event (R22, docs/decisions/0013), on PostgreSQL where it
runs: events written concurrently all reach the chain, in an order every reader agrees on;
an event deleted, edited, forged or replayed before it was sealed is found; a sequencer that
stops sealing is found; and an action whose transaction rolls back leaves no gap."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from authsvc.domain import audit as chain
from authsvc.domain.errors import DomainError
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, accounts, audit
from authsvc.store.audit_chain import SEAL_LOCK
from tests.integration.support import add_contract, events, sql

ACTOR = Actor("ops1", frozenset({Role.AGENCY_OPERATOR}), terminal="T-1", source="10.0.0.1")


@pytest.fixture
def deps(make_deps) -> Deps:
    return make_deps("postgres", audit={"checkpoint_seconds": 0})


@pytest.fixture
def held(deps) -> Iterator[Deps]:
    """No sealing for now: the background thread is off (a test seals when it chooses)."""
    deps.sequencer.background = False
    yield deps
    deps.sequencer.background = True


def write(deps: Deps, subject: str, n: int = 1) -> None:
    """`n` events in one transaction of this thread."""
    with deps.uow() as uow:
        for i in range(n):
            uow.audit(deps.clock.now(), ACTOR, "test.sequenced", subject, index=i)
        uow.commit()


def unsealed(deps: Deps) -> list[dict]:
    with deps.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(
            "SELECT * FROM audit_events WHERE seq IS NULL ORDER BY id"))]


def problem(deps: Deps) -> str | None:
    found = audit.verify(deps).problem
    return None if found is None else found.reason


def test_concurrent_writers_take_no_shared_lock_and_every_event_is_chained(deps):
    """8 threads, each its own transactions: none waits for another's (a writer holds its
    events' transaction open while the others commit), and all land in one gapless chain."""
    inside = threading.Barrier(8, timeout=30)
    failed: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for j in range(20):
                with deps.uow() as uow:
                    uow.audit(deps.clock.now(), ACTOR, "test.sequenced", f"w{k}-{j}")
                    if j == 0:
                        inside.wait()  # all 8 inside a transaction with an event written at once
                    uow.commit()
        except BaseException as exc:  # a shared lock would break the barrier: reported below
            failed.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failed, failed
    audit.seal(deps)
    found = events(deps, "test.sequenced")
    assert sorted(e.subject for e in found) == sorted(f"w{k}-{j}" for k in range(8) for j in range(20))
    assert [e.seq for e in found] == list(range(1, 161))
    assert not unsealed(deps)
    with deps.engine.connect() as conn:  # each writer's events in its own order in the chain
        by_writer: dict[str, list[int]] = {}
        for w, n in conn.execute(text("SELECT writer, wseq FROM audit_events ORDER BY seq")):
            by_writer.setdefault(w, []).append(n)
    assert all(ns == list(range(1, len(ns) + 1)) for ns in by_writer.values())
    result = audit.verify(deps)
    assert result.ok and result.checked == 160, result.problem


def test_an_event_deleted_before_it_was_sealed_is_found_and_can_be_accepted(held):
    deps = held
    for i in range(3):
        write(deps, f"e{i}")
    victim = unsealed(deps)[1]
    assert (victim["subject"], victim["wseq"]) == ("e1", 2)
    sql(deps, "DELETE FROM audit_events WHERE id = :id", id=victim["id"])
    audit.seal(deps)
    gap = events(deps, chain.MISSING)
    assert len(gap) == 1 and gap[0].result == "alert"
    assert gap[0].data == {"writer": victim["writer"], "first": 2, "last": 2}
    assert [e.subject for e in events(deps, "test.sequenced")] == ["e0", "e2"]
    result = audit.verify(deps)
    assert (result.problem.reason, result.problem.seq) == ("missing", gap[0].seq)
    with pytest.raises(DomainError):  # the operators' decision needs a reason
        audit.accept_rollback(deps, ACTOR, " ")
    accepted = audit.accept_rollback(deps, ACTOR, "INC-7: investigated")
    assert accepted == {"found": "missing", "seq": gap[0].seq}
    assert problem(deps) is None
    write(deps, "after")
    assert problem(deps) is None


@pytest.mark.parametrize("attack", ["edit", "forge", "replay", "steal-position"])
def test_an_unsealed_event_that_is_not_as_written_is_refused(held, attack):
    deps = held
    write(deps, "first", 2)
    if attack == "replay":  # a sealed event copied back in, position, MAC and all
        audit.seal(deps)
    row = unsealed(deps)[-1] if attack != "replay" else None
    if attack == "edit":
        sql(deps, "UPDATE audit_events SET subject = 'someone-else' WHERE id = :id", id=row["id"])
    elif attack == "forge":
        sql(deps, "INSERT INTO audit_events (ts, actor, action, subject, result, terminal, source, "
                  "detail, writer, wseq, emac) SELECT ts, actor, action, 'forged', result, terminal, "
                  "source, detail, 'f00d', 1, :mac FROM audit_events WHERE id = :id",
            id=row["id"], mac="0" * 64)
    elif attack == "replay":
        sql(deps, "INSERT INTO audit_events (ts, actor, action, subject, result, terminal, source, "
                  "detail, writer, wseq, emac) SELECT ts, actor, action, subject, result, terminal, "
                  "source, detail, writer, wseq, emac FROM audit_events WHERE seq = 1")
    else:  # another writer's position claimed for this event: its MAC names the first's
        sql(deps, "UPDATE audit_events SET writer = 'other', wseq = 1 WHERE id = :id", id=row["id"])
    audit.seal(deps)
    with deps.engine.connect() as conn:
        refused = conn.execute(text("SELECT count(*) FROM audit_events WHERE seq < 0")).scalar_one()
    assert refused == 1 and not unsealed(deps)
    result = audit.verify(deps)
    assert result.problem is not None and result.problem.reason == "forged"


def test_a_sequencer_that_stops_sealing_is_found(held, clock):
    """Another pass holds the sealing lock and never lets go (a hung instance): events stay
    unsealed, where they could be deleted unseen; past `audit.seal_grace_seconds` the
    verification says so."""
    deps = held
    write(deps, "waiting")
    stuck = create_engine(deps.engine.url)
    with stuck.connect() as conn:
        conn.execute(text("BEGIN"))
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEAL_LOCK})
        assert problem(deps) is None  # within the grace period: the sequencer may be busy
        clock.advance(seconds=deps.settings.audit.seal_grace_seconds + 1)
        assert problem(deps) == "unsealed"
        conn.execute(text("ROLLBACK"))
    stuck.dispose()
    assert problem(deps) is None  # sealed as soon as the lock is free


def test_a_rolled_back_action_leaves_no_gap(held):
    deps = held
    write(deps, "before")
    with deps.uow() as uow:  # an action refused after its event was written: rolled back
        uow.audit(deps.clock.now(), ACTOR, "test.sequenced", "rolled-back")
    write(deps, "after")
    audit.seal(deps)
    assert [e.subject for e in events(deps, "test.sequenced")] == ["before", "after"]
    assert not events(deps, chain.MISSING)
    assert problem(deps) is None


def test_the_background_sequencer_seals_without_being_asked(deps, operator):
    add_contract(deps, operator)
    write(deps, "soon", 3)
    for _ in range(200):
        if not unsealed(deps):
            break
        threading.Event().wait(0.02)
    assert not unsealed(deps)
    with deps.engine.connect() as conn:
        head = conn.execute(text("SELECT seq FROM audit_head")).scalar_one()
    assert head == 4


def test_the_log_unwritable_refuses_the_action(deps, operator):
    """The events table cannot take a row (here: a trigger that refuses): the action fails
    and nothing of it stays."""
    add_contract(deps, operator)
    sql(deps, "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'read-only'; "
              "END $$ LANGUAGE plpgsql")
    sql(deps, "CREATE TRIGGER refuse BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse()")
    try:
        with pytest.raises(Exception, match="read-only"):
            accounts.create_contract(deps, operator, "C-2026-099", "他社", deps.clock.now().date(), None)
    finally:
        sql(deps, "DROP TRIGGER refuse ON audit_events")
        sql(deps, "DROP FUNCTION refuse()")
    with deps.uow(read_only=True) as uow:
        assert uow.contract("C-2026-099") is None
    assert [e.action for e in events(deps)] == ["contract.create"] and problem(deps) is None
