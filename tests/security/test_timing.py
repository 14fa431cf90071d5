"""R5 through the HTTP stack: the response time of a logon does not tell whether the account
exists. One gunicorn instance (one sync worker: requests are sent one at a time, so more
workers would only add noise) on PostgreSQL + Redis, at the DEFAULT argon2 parameters of
config/default.toml — the point is that the argon2 work (a real hash, or the dummy for an
unknown user) dominates both answers equally.

Wrong-password attempts on existing accounts and attempts by unknown identifiers of the same
length are interleaved (the order alternates per pair) after a warm-up; the medians must lie
within 10 % of each other. The machine is shared and noisy, so the measurement is repeated up
to three times before the test fails. Attempts are spread over several identifiers of each
kind and lockout.max_failures is raised, so nothing locks during the measurement."""

from __future__ import annotations

import contextlib
import statistics
import time
import uuid
from datetime import date

import pytest
import requests

from authsvc.domain import lockout
from tests.backends import INSTANCES_REDIS_DB
from tests.security.instances import (
    InstanceError,
    cli,
    cli_json,
    forget_redis,
    fresh_database,
    redis_db,
    running_instances,
    service_env,
)

REDIS_DB = INSTANCES_REDIS_DB  # db 14 for the first xdist worker
PAIRS = 60
WARMUP_PAIRS = 6
ROUNDS = 3
TOLERANCE = 0.10
IDS_PER_KIND = 4  # 3 rounds × 66 pairs over 4 IDs: under 50 attempts each, far below the limit
WRONG_PASSWORD = "Kx7#vQm2pLz9"


def test_unknown_and_existing_users_take_the_same_time(tmp_path):
    run = uuid.uuid4().hex[:6]
    known = [f"tk{run}{k:02d}" for k in range(IDS_PER_KIND)]
    unknown = [f"tu{run}{k:02d}" for k in range(IDS_PER_KIND)]
    assert {len(x) for x in known} == {len(x) for x in unknown}  # same length, same work to parse
    with contextlib.ExitStack() as stack:
        try:
            redis_url = redis_db(REDIS_DB)
            db_url = stack.enter_context(fresh_database("authsvc_timing"))
        except InstanceError as exc:
            pytest.fail(str(exc), pytrace=False)
        # default argon2 parameters (nothing set); 100 failures allowed before a lock
        env = service_env(tmp_path / "instance", db_url, redis_url, lockout__max_failures=100)
        key = bytes.fromhex(env["AUTHSVC_AUDIT_KEY"])
        subjects = known + [lockout.throttle_key(u, key, lambda _k: False) for u in unknown]
        stack.callback(lambda: forget_redis(redis_url, subjects))
        cli(env, "db", "upgrade")
        cli(env, "contract", "create", "C-1", "--company", "防衛産業株式会社",
            "--start", date.today().isoformat())
        for user_id in known:
            cli_json(env, "user", "create", user_id, "--name", "鈴木 一郎", "--contract", "C-1",
                     "--role", "user")
            cli(env, "identifier", "approve", user_id)
        (instance,) = stack.enter_context(running_instances(
            1, env, tmp_path / "logs", workers=1, worker_class="sync"))

        def attempt(user_id: str) -> float:
            started = time.perf_counter()
            r = requests.post(instance.url + "/api/v1/logon",
                              json={"user_id": user_id, "password": WRONG_PASSWORD}, timeout=60)
            elapsed = time.perf_counter() - started
            assert r.status_code == 401
            return elapsed

        def measure(pairs: int) -> tuple[float, float]:
            t_known, t_unknown = [], []
            for i in range(pairs):
                k, u = known[i % IDS_PER_KIND], unknown[i % IDS_PER_KIND]
                if i % 2:
                    t_known.append(attempt(k))
                    t_unknown.append(attempt(u))
                else:
                    t_unknown.append(attempt(u))
                    t_known.append(attempt(k))
            return statistics.median(t_known), statistics.median(t_unknown)

        tries = []
        for _ in range(ROUNDS):
            measure(WARMUP_PAIRS)
            m_known, m_unknown = measure(PAIRS)
            gap = abs(m_known - m_unknown) / max(m_known, m_unknown)
            tries.append(f"known {m_known * 1000:.1f} ms, unknown {m_unknown * 1000:.1f} ms, "
                         f"gap {gap:.1%}")
            if gap < TOLERANCE:
                break
        else:
            pytest.fail(f"median response times differ by {TOLERANCE:.0%} or more in all "
                        f"{ROUNDS} rounds: " + "; ".join(tries))
        print("timing:", "; ".join(tries))
        # nothing locked: every attempt was evaluated with argon2, not refused early
        for user_id in known:
            assert cli_json(env, "user", "show", user_id)["locked"] is False
