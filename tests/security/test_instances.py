"""R4, R5 and R11 through the real deployment: two gunicorn instances (2 workers each) of
wsgi:app on one fresh PostgreSQL database, with Redis counters and sessions, attacked over HTTP.

Worker class: `gthread`, 2 workers × 4 threads per instance. The point of these tests is the
exactness of the shared counters and of the TOTP claim under real concurrency: with gthread
up to 16 attempts are inside the service at the same moment — threads of one process sharing
one engine and one Redis client, processes of one instance, and two instances — which is more
hostile to a check-then-act bug than sync workers (4 requests in flight, one per process).
Argon2 runs at the cheap test parameters: what is counted here does not depend on its cost
(tests/security/test_timing.py uses the real ones).

Every subject is unique to the run, and only its own Redis keys are removed (Redis database
14, `AUTHSVC_TEST_REDIS` names the server), so parallel runs do not disturb each other.
A missing PostgreSQL or Redis fails these tests; nothing is skipped."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

import pyotp
import pytest
import redis
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from authsvc.domain import lockout
from authsvc.domain.messages import text as message
from tests.backends import INSTANCES_REDIS_DB
from tests.conftest import FAST_ARGON2
from tests.security.instances import (
    Instance,
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
ATTACKERS = 200
PARALLEL_LOGONS = 20
NEW_PASSWORD = "Vt8$wQ3#nRz7"  # passes the password rule
WRONG_PASSWORD = "Kx7#vQm2pLz9"
REFUSAL = {"error": "logon_failed", "message": message("logon_failed", "ja")}
RUN = uuid.uuid4().hex[:6]  # every subject is unique to this run


@dataclass
class Deployment:
    env: dict[str, str]
    db: Engine
    redis_url: str
    log_dir: str
    instances: list[Instance]
    subjects: list[str] = field(default_factory=list)  # whose Redis keys to remove at the end
    tokens: list[str] = field(default_factory=list)

    def user(self, user_id: str) -> str:
        """An approved account on contract C-1; its initial password."""
        issued = cli_json(self.env, "user", "create", user_id, "--name", "田中 太郎",
                          "--contract", "C-1", "--role", "user")
        cli(self.env, "identifier", "approve", user_id)
        self.subjects.append(user_id)
        return issued["initial_password"]

    def tally(self, subject: str, action: str = "logon.password", after: int = 0) -> dict[str, int]:
        """Audit rows of `action` for `subject` by result, read from PostgreSQL directly, sealed
        into the chain or not yet (`after`: an `id`, as `last_id` gives it)."""
        with self.db.connect() as conn:
            rows = conn.execute(text(
                "SELECT result, count(*) FROM audit_events WHERE action = :a AND subject = :s "
                "AND id > :after GROUP BY result"), {"a": action, "s": subject, "after": after})
            return {result: n for result, n in rows}

    def last_id(self) -> int:
        with self.db.connect() as conn:
            return conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_events")).scalar_one()


def _config(**extra: object) -> dict[str, object]:
    return {f"argon2__{k}": v for k, v in FAST_ARGON2.items()} | extra


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    """A fresh database, Redis database 14, shared keys, and two running instances."""
    tmp = tmp_path_factory.mktemp("instances")
    with contextlib.ExitStack() as stack:
        try:
            redis_url = redis_db(REDIS_DB)
            db_url = stack.enter_context(fresh_database("authsvc_inst"))
        except InstanceError as exc:
            pytest.fail(str(exc), pytrace=False)
        env = service_env(tmp / "instance", db_url, redis_url, **_config())
        cli(env, "db", "upgrade")  # instances never migrate
        cli(env, "contract", "create", "C-1", "--company", "防衛産業株式会社",
            "--start", date.today().isoformat())
        engine = create_engine(db_url)
        stack.callback(engine.dispose)
        dep = Deployment(env, engine, redis_url, str(tmp / "logs"), [])
        stack.callback(lambda: forget_redis(redis_url, dep.subjects, dep.tokens))
        dep.instances = stack.enter_context(running_instances(
            2, env, tmp / "logs", workers=2, worker_class="gthread", threads=4))
        yield dep


def post(url: str, path: str, body: dict | None = None, token: str | None = None,
         http: requests.Session | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return (http or requests).post(url + path, json=body or {}, headers=headers, timeout=120)


def simultaneously(count: int, request: Callable[[int, requests.Session], requests.Response]
                   ) -> list[requests.Response]:
    """`count` requests released at the same moment by a barrier, each on its own connection."""
    barrier = threading.Barrier(count)

    def one(i: int) -> requests.Response:
        with requests.Session() as http:
            barrier.wait(timeout=60)
            return request(i, http)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def storm(instances: list[Instance], user_id: str, password: str) -> list[requests.Response]:
    return simultaneously(ATTACKERS, lambda i, http: post(
        instances[i % len(instances)].url, "/api/v1/logon",
        {"user_id": user_id, "password": password}, http=http))


def assert_all_refused(answers: list[requests.Response]) -> None:
    assert {a.status_code for a in answers} == {401}
    assert len({a.content for a in answers}) == 1, "every refusal must have the same body"
    assert answers[0].json() == REFUSAL


def test_parallel_wrong_passwords_over_two_instances_get_at_most_n_evaluations(deployment):
    dep = deployment
    n = 5  # lockout.max_failures, the default
    user_id = f"target-{RUN}"
    initial = dep.user(user_id)

    answers = storm(dep.instances, user_id, WRONG_PASSWORD)

    assert_all_refused(answers)
    # evaluated (argon2 ran, "failed") vs refused unevaluated because the lock was in force
    assert dep.tally(user_id) == {"failed": n, "refused": ATTACKERS - n}
    assert dep.tally(user_id, "account.lock") == {"ok": 1}
    assert cli_json(dep.env, "user", "show", user_id)["locked"] is True
    # the right password is not even evaluated while locked, and answers the same
    right = post(dep.instances[0].url, "/api/v1/logon", {"user_id": user_id, "password": initial})
    assert (right.status_code, right.content) == (401, answers[0].content)
    assert dep.tally(user_id) == {"failed": n, "refused": ATTACKERS - n + 1}
    # an operator's unlock (audited) lets it through, on either instance
    cli(dep.env, "user", "unlock", user_id)
    assert dep.tally(user_id, "account.unlock") == {"ok": 1}
    assert cli_json(dep.env, "user", "show", user_id)["locked"] is False
    ok = post(dep.instances[1].url, "/api/v1/logon", {"user_id": user_id, "password": initial})
    assert ok.status_code == 200 and ok.json()["state"] == "change_password"
    dep.tokens.append(ok.json()["token"])


def test_unknown_identifier_locks_the_same_way_under_a_pseudonym(deployment):
    dep = deployment
    n = 5
    ghost = f"ghost-{RUN}"
    subject = lockout.throttle_key(ghost, bytes.fromhex(dep.env["AUTHSVC_AUDIT_KEY"]), lambda _k: False)
    assert subject.startswith("unknown:")
    dep.subjects.append(subject)

    answers = storm(dep.instances, ghost.upper(), WRONG_PASSWORD)  # IDs are case-insensitive

    assert_all_refused(answers)
    assert dep.tally(subject) == {"failed": n, "refused": ATTACKERS - n}
    assert dep.tally(subject, "account.lock") == {"ok": 1}
    # the clear identifier is stored nowhere: not in the audit log, history, or Redis
    with dep.db.connect() as conn:
        found = conn.execute(text(
            "SELECT (SELECT count(*) FROM audit_events WHERE lower(subject || actor || detail) "
            "LIKE :p) + (SELECT count(*) FROM logon_history WHERE lower(subject) LIKE :p)"),
            {"p": f"%{ghost}%"}).scalar_one()
    assert found == 0
    with redis.Redis.from_url(dep.redis_url) as r:
        assert list(r.scan_iter(match=f"*{ghost}*")) == []
        assert r.exists(f"authsvc:c:{subject}")
    # ... yet an operator asking about it finds the attempts (R5: operators see the reason)
    shown = cli_json(dep.env, "audit", "show", "--subject", ghost, "--limit", "1000")
    attempts = [e for e in shown if e["action"] == "logon.password"]
    assert len(attempts) == ATTACKERS and {e["subject"] for e in attempts} == {subject}


def _wait_for_fresh_totp_step(period: int = 30, margin: float = 5.0) -> None:
    left = period - time.time() % period
    if left < margin:
        time.sleep(left + 0.2)


def test_one_totp_code_is_accepted_once_across_instances(deployment, tmp_path):
    dep = deployment
    user_id = f"totp-{RUN}"
    initial = dep.user(user_id)
    # every password step of the 20 logons consumes an attempt until it succeeds: allow them
    env = {**dep.env, "AUTHSVC__LOCKOUT__MAX_FAILURES": "100"}
    with running_instances(2, env, tmp_path / "logs", workers=2, worker_class="gthread",
                           threads=4) as instances:
        a, b = (i.url for i in instances)
        # first logon through the API: initial password -> change -> TOTP enrolment -> done
        r = post(a, "/api/v1/logon", {"user_id": user_id, "password": initial})
        assert r.status_code == 200 and r.json()["state"] == "change_password"
        r = post(b, "/api/v1/logon/password", {"new_password": NEW_PASSWORD}, r.json()["token"])
        assert r.status_code == 200 and r.json()["state"] == "enrol"
        token = r.json()["token"]
        secret = post(a, "/api/v1/logon/totp/enrol", {}, token).json()["secret"]
        totp = pyotp.TOTP(secret)
        # confirm with the previous step's code (inside the ±1 window), so the current step's
        # code is still unused for the replay below
        r = post(b, "/api/v1/logon/totp", {"code": totp.at(time.time() - 30)}, token)
        assert r.status_code == 200 and r.json()["state"] == "done"
        assert post(a, "/api/v1/logoff", {}, r.json()["token"]).json() == {"logged_off": True}

        # 20 logons in parallel, each with a logon token of its own at the second factor
        logons = simultaneously(PARALLEL_LOGONS, lambda i, http: post(
            (a, b)[i % 2], "/api/v1/logon", {"user_id": user_id, "password": NEW_PASSWORD}, http=http))
        assert [x.status_code for x in logons] == [200] * PARALLEL_LOGONS
        assert {x.json()["state"] for x in logons} == {"second_factor"}
        tokens = [x.json()["token"] for x in logons]
        dep.tokens.extend(tokens)
        assert len(set(tokens)) == PARALLEL_LOGONS

        # the same current code, 20 times at once, over both instances
        _wait_for_fresh_totp_step()
        code = totp.now()
        before = dep.last_id()
        answers = simultaneously(PARALLEL_LOGONS, lambda i, http: post(
            (a, b)[i % 2], "/api/v1/logon/totp", {"code": code}, tokens[i], http=http))

        done = [x for x in answers if x.status_code == 200]
        assert len(done) == 1 and done[0].json()["state"] == "done"
        refused = [x for x in answers if x.status_code != 200]
        assert_all_refused(refused)
        assert dep.tally(user_id, "logon.totp", after=before) == {"ok": 1, "failed": PARALLEL_LOGONS - 1}
        session = done[0].json()["token"]
        dep.tokens.append(session)
        # the session it opened is served by either instance
        for url in (a, b):
            me = requests.get(url + "/api/v1/session", headers={"Authorization": f"Bearer {session}"},
                              timeout=30)
            assert me.status_code == 200 and me.json()["user_id"] == user_id


def test_a_database_rolled_back_under_running_instances_is_found(deployment):
    """[5 of 12] items 1-2 in the production shape: the audit tables put back as a backup held
    them, under two running instances; the scheduled `audit verify` finds it, before and after
    the service has written on, until an operator accepts the restore."""
    dep = deployment
    ghost = f"rollback-{RUN}"
    dep.subjects.append(lockout.throttle_key(ghost, bytes.fromhex(dep.env["AUTHSVC_AUDIT_KEY"]),
                                             lambda _k: False))

    def backup() -> dict[str, list[dict]]:
        with dep.db.connect() as conn:
            return {t: [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {t}"))]
                    for t in ("audit_events", "audit_head")}

    def restore(saved: dict[str, list[dict]]) -> None:
        with dep.db.begin() as conn:
            for table, rows in saved.items():
                conn.execute(text(f"DELETE FROM {table}"))
                for row in rows:
                    conn.execute(text(f"INSERT INTO {table} ({', '.join(row)}) "
                                      f"VALUES ({', '.join(':' + c for c in row)})"), row)

    def activity(count: int) -> None:
        for i in range(count):
            r = post(dep.instances[i % 2].url, "/api/v1/logon", {"user_id": ghost, "password": "x"})
            assert r.status_code == 401

    assert "chain intact" in cli(dep.env, "audit", "verify")
    saved = backup()
    activity(4)
    assert "chain intact" in cli(dep.env, "audit", "verify")  # anchors the head it verified
    restore(saved)
    with pytest.raises(InstanceError, match="shorter than its checkpoint"):
        cli(dep.env, "audit", "verify")
    activity(8)  # the instances write on from the restored head
    with pytest.raises(InstanceError, match=r"differs from its checkpoint|shorter than"):
        cli(dep.env, "audit", "verify")
    cli(dep.env, "audit", "accept-rollback", "--reason", "restore drill")
    assert "chain intact" in cli(dep.env, "audit", "verify")
    activity(2)
    assert "chain intact" in cli(dep.env, "audit", "verify")


def test_codes_of_three_windows_at_once_finish_one_logon_once(deployment):
    """[5 of 12] item 5 over HTTP: the previous, current and next window's TOTP codes, each
    sent four times at once to both instances on one pending logon, finish it at most once
    (on today's main several were accepted and opened several sessions)."""
    dep = deployment
    user_id = f"once-{RUN}"
    initial = dep.user(user_id)
    a, b = (i.url for i in dep.instances)
    r = post(a, "/api/v1/logon", {"user_id": user_id, "password": initial})
    r = post(b, "/api/v1/logon/password", {"new_password": NEW_PASSWORD}, r.json()["token"])
    token = r.json()["token"]
    totp = pyotp.TOTP(post(a, "/api/v1/logon/totp/enrol", {}, token).json()["secret"])
    r = post(b, "/api/v1/logon/totp", {"code": totp.at(time.time() - 30)}, token)
    assert r.status_code == 200 and r.json()["state"] == "done"
    post(a, "/api/v1/logoff", {}, r.json()["token"])

    r = post(a, "/api/v1/logon", {"user_id": user_id, "password": NEW_PASSWORD})
    assert r.json()["state"] == "second_factor"
    pending = r.json()["token"]
    dep.tokens.append(pending)
    _wait_for_fresh_totp_step()
    now = time.time()
    codes = [totp.at(now + 30 * offset) for offset in (-1, 0, 1)] * 4
    before = dep.last_id()
    answers = simultaneously(len(codes), lambda i, http: post(
        (a, b)[i % 2], "/api/v1/logon/totp", {"code": codes[i]}, pending, http=http))
    done = [x for x in answers if x.status_code == 200]
    assert_all_refused([x for x in answers if x.status_code != 200])
    # one at a time holds the logon: the previous window's code is a replay of the enrolment's
    # confirmation, and when it holds the logon first it fails and puts the logon back for a
    # later request; so some codes may be evaluated one after another, but at most one
    # finishes the logon, and the others are refused without evaluation
    evaluated = dep.tally(user_id, "logon.totp", after=before)
    assert evaluated.get("ok", 0) <= 1 and sum(evaluated.values()) < len(codes), evaluated
    assert len(done) == evaluated.get("ok", 0) and all(x.json()["state"] == "done" for x in done)
    assert dep.tally(user_id, "logon.complete", after=before) == ({"ok": 1} if done else {})
    dep.tokens.extend(x.json()["token"] for x in done)


def test_a_look_alike_identifier_over_http_is_an_unknown_id(deployment):
    """[5 of 12] item 4 over HTTP: KELVIN SIGN for k, a trailing no-break space, with the
    right password, get the one refusal and reach nothing of the account."""
    dep = deployment
    user_id = f"kato-{RUN}"
    initial = dep.user(user_id)
    key = bytes.fromhex(dep.env["AUTHSVC_AUDIT_KEY"])
    for look_alike in (user_id.replace("k", "\u212a", 1), user_id + "\u00a0", "\u017f" + user_id[1:]):
        dep.subjects.append(lockout.throttle_key(look_alike, key, lambda _k: False))
        r = post(dep.instances[0].url, "/api/v1/logon", {"user_id": look_alike, "password": initial})
        assert (r.status_code, r.json()) == (401, REFUSAL)
    assert dep.tally(user_id) == {}  # the real account saw no attempt at all
    r = post(dep.instances[1].url, "/api/v1/logon", {"user_id": user_id.upper(), "password": initial})
    assert r.status_code == 200 and r.json()["state"] == "change_password"
    dep.tokens.append(r.json()["token"])
