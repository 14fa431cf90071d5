"""R4 under attack: parallel wrong passwords against one identifier get exactly `max_failures`
evaluations, on PostgreSQL and on SQLite, from one service instance or several; an unknown
identifier locks the same way (R5)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from authsvc.bootstrap import build
from authsvc.domain import logon_flow as lf
from authsvc.services import Deps, accounts, audit, logon
from authsvc.store.models import LogonThrottle
from tests.conftest import AGENCY, make_settings
from tests.integration.support import (
    CHOSEN,
    active_account,
    add_contract,
    dump_all,
    events,
    password_step,
    pseudonym,
)

THREADS = 40
FAILED = logon.FAILED


def storm(instances: list[Deps], user_id: str, password: str) -> list[logon.State]:
    """THREADS attempts released at once, spread over the given service instances."""
    barrier = threading.Barrier(THREADS)

    def attempt(i: int) -> logon.State:
        barrier.wait(timeout=30)
        return password_step(instances[i % len(instances)], user_id, password, terminal=f"T-{i}")

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(attempt, range(THREADS)))


def tally(deps: Deps, subject: str) -> dict[str, int]:
    out = {"failed": 0, "refused": 0, "ok": 0}
    for e in events(deps, "logon.password", subject):
        out[e.result] += 1
    return out


def second_instance(deps: Deps, clock) -> Deps:
    """Another service instance on the same database (own engine and connection pool)."""
    s = deps.settings
    return build(make_settings(s.paths.instance_dir, s.database.url), clock=clock)


@pytest.mark.parametrize("instances", [1, 2], ids=["one-instance", "two-instances"])
@pytest.mark.parametrize("backend_name", ["postgres", "sqlite"])
def test_parallel_wrong_passwords_get_exactly_max_failures_evaluations(
    make_deps, clock, operator, account_admin, backend_name, instances
):
    deps = make_deps(backend_name)
    n = deps.settings.lockout.max_failures
    add_contract(deps, operator)
    initial = active_account(deps, account_admin, operator, "target").initial_password
    pool = [deps] + [second_instance(deps, clock) for _ in range(instances - 1)]
    try:
        assert storm(pool, "target", CHOSEN[0]) == [FAILED] * THREADS
    finally:
        for extra in pool[1:]:
            extra.engine.dispose()

    assert tally(deps, "target") == {"failed": n, "refused": THREADS - n, "ok": 0}
    reasons = [e.data["reason"] for e in events(deps, "logon.password", "target")]
    # refused unevaluated: locked, or every remaining attempt already in flight ("busy")
    assert reasons.count("wrong_password") == n and set(reasons) <= {"wrong_password", "locked", "busy"}
    assert len(events(deps, "account.lock", "target")) == 1
    view = accounts.show(deps, AGENCY, "target")
    assert view.locked and view.failures == n
    # the right password is not even evaluated while locked
    assert password_step(deps, "target", initial) == FAILED
    assert tally(deps, "target")["refused"] == THREADS - n + 1
    assert audit.verify(deps).ok
    # after an operator's unlock it works again
    accounts.unlock(deps, operator, "target")
    assert password_step(deps, "target", initial).step is lf.Step.CHANGE_PASSWORD


@pytest.mark.parametrize("backend_name", ["postgres", "sqlite"])
def test_unknown_identifier_under_the_same_attack(make_deps, operator, backend_name):
    deps = make_deps(backend_name)
    n = deps.settings.lockout.max_failures
    add_contract(deps, operator)
    assert storm([deps], "Ghost.User", CHOSEN[0]) == [FAILED] * THREADS
    ghost = pseudonym(deps, "ghost.user")  # R2: counted and audited under a keyed pseudonym
    assert tally(deps, ghost) == {"failed": n, "refused": THREADS - n, "ok": 0}
    reasons = [e.data["reason"] for e in events(deps, "logon.password", ghost)]
    assert reasons.count("unknown_user") == n and set(reasons) <= {"unknown_user", "locked", "busy"}
    assert len(events(deps, "account.lock", ghost)) == 1
    with deps.uow() as uow:
        row = uow.session.get(LogonThrottle, ghost)
        assert row is not None and row.failures == n and row.locked_until is not None
    assert "ghost.user" not in dump_all(deps).casefold()
    assert audit.verify(deps).ok


@pytest.mark.parametrize("backend_name", ["postgres", "sqlite"])
def test_right_password_racing_an_attack_never_exceeds_the_limit(
    make_deps, operator, account_admin, backend_name
):
    """Attackers and the real user at once: whatever the interleaving, no more than
    max_failures attempts are evaluated per reset of the count, and the chain holds."""
    deps = make_deps(backend_name)
    n = deps.settings.lockout.max_failures
    add_contract(deps, operator)
    initial = active_account(deps, account_admin, operator, "target").initial_password
    barrier = threading.Barrier(THREADS)

    def attempt(i: int) -> logon.State:
        barrier.wait(timeout=30)
        return password_step(deps, "target", initial if i % 10 == 0 else CHOSEN[0])

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(attempt, range(THREADS)))
    assert all(r == FAILED or r.step is lf.Step.CHANGE_PASSWORD for r in results)
    count = tally(deps, "target")
    assert sum(count.values()) == THREADS
    assert count["ok"] == sum(r.step is lf.Step.CHANGE_PASSWORD for r in results)
    # every success is a logon of its own, pending at the change under a token of its own
    tokens = [r.token for r in results if r.step is lf.Step.CHANGE_PASSWORD]
    assert all(tokens) and len(set(tokens)) == len(tokens)
    # only a success resets the count: each stretch up to a reset evaluates at most n attempts
    assert count["failed"] + count["ok"] <= n * (count["ok"] + 1)
    assert audit.verify(deps).ok
