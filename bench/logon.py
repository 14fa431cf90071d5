"""Password-logon benchmark: how close the HTTP service comes to the raw argon2id rate, what one
logon costs besides the hash, and how cheaply a locked account is refused. See bench/README.md.

    .venv/bin/python bench/logon.py                    # default and Keycloak parameters, PG + Redis
    .venv/bin/python bench/logon.py --params keycloak --db sqlite

Production shape by default: one gunicorn instance with `workers = cores` gthread workers of 4
threads each (README) on a fresh PostgreSQL database (dropped afterwards) with Redis counters
and sessions (Redis database 13; only the keys of this run are removed). Figures are printed,
never asserted."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pyotp  # noqa: E402
import requests  # noqa: E402
from argon2 import PasswordHasher, Type  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from tests.security.instances import (  # noqa: E402
    InstanceError,
    cli,
    forget_redis,
    fresh_database,
    redis_db,
    running_instances,
    service_env,
)

NEW_PASSWORD = "Vt8$wQ3#nRz7"  # every bench account's password (passes the rule)
WRONG_PASSWORD = "Kx7#vQm2pLz9"
CHEAP = {"time_cost": 1, "memory_cost_kib": 8, "parallelism": 1}  # the cheapest argon2id allowed


def default_params() -> dict[str, int]:
    from authsvc.settings import load_settings

    a = load_settings(environ={}).argon2
    return {"time_cost": a.time_cost, "memory_cost_kib": a.memory_cost_kib, "parallelism": a.parallelism}


PARAMS = {
    "default": default_params(),                                          # config/default.toml
    "keycloak": {"time_cost": 5, "memory_cost_kib": 7168, "parallelism": 1},  # Keycloak's argon2 default
}
TARGET_RATIO = {"default": 0.9, "keycloak": 0.65}
TARGET_NON_HASH_MS = 10.0
TARGET_LOCKED_X = 20.0
NOISE = 0.15  # raw rates before and after the logon load further apart than this: a noisy run


def describe(p: dict[str, int]) -> str:
    return f"t={p['time_cost']}, m={p['memory_cost_kib']} KiB, p={p['parallelism']}"


@contextlib.contextmanager
def environ(env: dict[str, str]) -> Iterator[None]:
    """The deployment's environment in this process too (the keys are read from os.environ)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# ---- set-up through the service layer --------------------------------------------------------


def make_accounts(env: dict[str, str], user_ids: list[str]) -> None:
    """Approved accounts whose password is NEW_PASSWORD (changed, so no forced change) with a
    confirmed TOTP: their password step answers `second_factor`."""
    from authsvc.bootstrap import build
    from authsvc.domain.roles import Actor, Role
    from authsvc.services import accounts, passwords, totp
    from authsvc.settings import load_settings

    with environ(env):
        deps = build(load_settings())
        ops = Actor("bench", frozenset({Role.AGENCY_OPERATOR}), terminal="bench", source="local")
        accounts.create_contract(deps, ops, "C-1", "ベンチ株式会社", date(date.today().year, 1, 1), None)

        def one(user_id: str) -> None:
            accounts.create_account(deps, ops, user_id, "性能 測定", "C-1", "user")
            accounts.approve_identifier(deps, ops, user_id)
            me = Actor(user_id, terminal="bench", source="127.0.0.1")
            passwords.change_password(deps, me, user_id, NEW_PASSWORD)
            secret = totp.begin_enrolment(deps, me, user_id).secret
            totp.confirm_enrolment(deps, me, user_id, pyotp.TOTP(secret).now())

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            list(pool.map(one, user_ids))
        deps.engine.dispose()


# ---- load --------------------------------------------------------------------------------------


@dataclass
class Load:
    count: int
    seconds: float
    tokens: list[str]

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def load(url: str, clients: int, seconds: float, body: Callable[[int], dict],
         expect: Callable[[requests.Response], bool]) -> Load:
    """`clients` threads send logons back to back for `seconds`; every answer must satisfy
    `expect`. Rate = answers / time until the last in-flight answer came back."""
    barrier = threading.Barrier(clients + 1)
    tokens: list[str] = []
    counts = [0] * clients
    lock = threading.Lock()
    start = end = 0.0

    def client(i: int) -> None:
        with requests.Session() as http:
            barrier.wait()
            while time.perf_counter() < end:
                r = http.post(url + "/api/v1/logon", json=body(i), timeout=120)
                if not expect(r):
                    raise RuntimeError(f"unexpected answer {r.status_code}: {r.text[:200]}")
                if r.status_code == 200:
                    with lock:
                        tokens.append(r.json()["token"])
                counts[i] += 1

    with ThreadPoolExecutor(max_workers=clients) as pool:
        futures = [pool.submit(client, i) for i in range(clients)]
        start = time.perf_counter()
        end = start + seconds
        barrier.wait()
        for f in futures:
            f.result()
    return Load(sum(counts), time.perf_counter() - start, tokens)


def _raw_worker(params: dict[str, int], seconds: float, start_at: float) -> tuple[int, float]:
    ph = PasswordHasher(time_cost=params["time_cost"], memory_cost=params["memory_cost_kib"],
                        parallelism=params["parallelism"], hash_len=32, salt_len=16, type=Type.ID)
    stored = ph.hash(NEW_PASSWORD)
    while time.time() < start_at:
        time.sleep(0.01)
    n, end = 0, start_at + seconds
    while time.time() < end:
        ph.verify(stored, NEW_PASSWORD)
        n += 1
    return n, time.time() - start_at


@dataclass
class Raw:
    count: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def raw_rate(params: dict[str, int], processes: int, seconds: float) -> Raw:
    """argon2id verifications with argon2-cffi, `processes` verifying at once (the same
    parallelism as the gunicorn workers)."""
    with ProcessPoolExecutor(max_workers=processes) as pool:
        start_at = time.time() + 1.0  # every process has hashed its password and is waiting
        results = list(pool.map(_raw_worker, [params] * processes, [seconds] * processes,
                                [start_at] * processes))
    return Raw(sum(n for n, _ in results), max(t for _, t in results))


def second_factor(r: requests.Response) -> bool:
    return r.status_code == 200 and r.json().get("state") == "second_factor"


def refused(r: requests.Response) -> bool:
    return r.status_code == 401


# ---- one deployment -----------------------------------------------------------------------------


@dataclass
class Figures:
    name: str
    params: dict[str, int]
    logon: Load
    raw_before: Raw
    raw_after: Raw
    locked: Load
    evaluated_locked: int

    @property
    def raw(self) -> float:
        """Both halves together: measured right before and right after the logon load, so a
        change of the machine's background load affects both figures alike."""
        return (self.raw_before.count + self.raw_after.count) / (
            self.raw_before.seconds + self.raw_after.seconds)

    @property
    def ratio(self) -> float:
        return self.logon.rate / self.raw


@contextlib.contextmanager
def deployment(args: argparse.Namespace, tmp: Path, **config: object) -> Iterator[tuple[dict, str]]:
    """A fresh database (PostgreSQL or SQLite) with the schema; (env, database url)."""
    if args.db == "sqlite":
        env = service_env(tmp / "instance", "", "", **config)
        cli(env, "db", "upgrade")
        yield env, f"sqlite:///{tmp / 'instance' / 'authsvc.db'}"
        return
    with fresh_database("authsvc_bench") as url:
        env = service_env(tmp / "instance", url, args.redis_url, **config)
        cli(env, "db", "upgrade")
        yield env, url


def tally(db_url: str, subject: str) -> dict[str, int]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT result, count(*) FROM audit_events WHERE action = "
                                     "'logon.password' AND subject = :s GROUP BY result"), {"s": subject})
            return {result: n for result, n in rows}
    finally:
        engine.dispose()


def run_params(args: argparse.Namespace, name: str, tmp: Path, say: Callable[[str], None]) -> Figures:
    params = PARAMS[name]
    config = {f"argon2__{k}": v for k, v in params.items()}
    users = [f"bench{i:02d}" for i in range(args.clients)]
    locked_user = "benchlk"
    subjects = [*users, locked_user]
    tokens: list[str] = []
    with deployment(args, tmp / name, **config) as (env, db_url):
        try:
            t0 = time.perf_counter()
            make_accounts(env, subjects)
            say(f"  {len(subjects)} accounts set up in {time.perf_counter() - t0:.1f} s")
            with running_instances(1, env, tmp / name / "logs", workers=args.workers,
                                   worker_class=args.worker_class, threads=max(args.threads, 1)) as (inst,):
                def mine(i: int) -> dict:
                    return {"user_id": users[i], "password": NEW_PASSWORD}

                warm = load(inst.url, args.clients, 2.0, mine, second_factor)
                tokens += warm.tokens
                raw_before = raw_rate(params, args.workers, args.raw_seconds / 2)
                logon = load(inst.url, args.clients, args.seconds, mine, second_factor)
                tokens += logon.tokens
                say(f"  (i) {logon.count} logons in {logon.seconds:.1f} s")
                raw_after = raw_rate(params, args.workers, args.raw_seconds / 2)
                say(f"  (ii) raw argon2id: {raw_before.rate:.2f}/s before, {raw_after.rate:.2f}/s after")
                for _ in range(5):  # lock it: max_failures wrong passwords (lockout default, 5)
                    requests.post(inst.url + "/api/v1/logon", timeout=60,
                                  json={"user_id": locked_user, "password": WRONG_PASSWORD})
                locked = load(inst.url, args.clients, args.locked_seconds,
                              lambda _i: {"user_id": locked_user, "password": NEW_PASSWORD}, refused)
                say(f"  (v) {locked.count} refusals in {locked.seconds:.1f} s")
            evaluated = tally(db_url, locked_user).get("failed", 0)
        finally:
            if args.db == "postgres":
                forget_redis(args.redis_url, subjects, tokens)
    return Figures(name, params, logon, raw_before, raw_after, locked, evaluated)


def run_cheap(args: argparse.Namespace, tmp: Path, say: Callable[[str], None]) -> Load:
    """The non-hash cost measured directly: the same logons with the cheapest argon2id."""
    config = {f"argon2__{k}": v for k, v in CHEAP.items()}
    users = [f"cheap{i:02d}" for i in range(args.clients)]
    tokens: list[str] = []
    with deployment(args, tmp / "cheap", **config) as (env, _url):
        try:
            make_accounts(env, users)
            with running_instances(1, env, tmp / "cheap" / "logs", workers=args.workers,
                                   worker_class=args.worker_class, threads=max(args.threads, 1)) as (inst,):
                def mine(i: int) -> dict:
                    return {"user_id": users[i], "password": NEW_PASSWORD}

                tokens += load(inst.url, args.clients, 2.0, mine, second_factor).tokens
                cheap = load(inst.url, args.clients, args.seconds, mine, second_factor)
                tokens += cheap.tokens
                say(f"  {cheap.count} logons in {cheap.seconds:.1f} s")
        finally:
            if args.db == "postgres":
                forget_redis(args.redis_url, users, tokens)
    return cheap


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def report(args: argparse.Namespace, figures: list[Figures], cheap: Load | None) -> str:
    w = args.workers
    backend = "PostgreSQL + Redis" if args.db == "postgres" else "SQLite, SQL counters and sessions"
    lines = [
        "",
        f"authsvc password-logon benchmark — {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average at start {args.load_at_start}",
        f"one gunicorn instance, {w} {args.worker_class} workers"
        f"{f' x {args.threads} threads' if args.threads else ''}; {args.clients} client threads; {backend}",
        f"logons end at the password step (state second_factor); {args.seconds:g} s per load",
    ]
    for f in figures:
        non_hash_ms = (1 / f.logon.rate - 1 / f.raw) * w * 1000
        locked_x = f.locked.rate / f.logon.rate
        target = TARGET_RATIO[f.name]
        lines += [
            "",
            f"argon2id {f.name} ({describe(f.params)})",
            f"  (i)   password logons through HTTP  {f.logon.rate:9.2f} /s   ({f.logon.count} in "
            f"{f.logon.seconds:.1f} s)",
            f"  (ii)  raw argon2id verifications    {f.raw:9.2f} /s   ({w} processes; "
            f"{f.raw_before.rate:.2f} before and {f.raw_after.rate:.2f} after (i))",
            f"  (iii) ratio (i)/(ii)                {f.ratio:9.2f}      target >= {target:.2f}: "
            f"{verdict(f.ratio >= target)}",
            f"  (iv)  non-hash cost per logon       {non_hash_ms:9.1f} ms   target <= "
            f"{TARGET_NON_HASH_MS:g} ms: {verdict(non_hash_ms <= TARGET_NON_HASH_MS)}   "
            f"[(1/(i) - 1/(ii)) x {w} workers]",
            f"  (v)   locked-account refusals       {f.locked.rate:9.2f} /s   = {locked_x:.1f} x the logon "
            f"rate; target >= {TARGET_LOCKED_X:g} x: {verdict(locked_x >= TARGET_LOCKED_X)}",
            f"        ({f.locked.count} answers, all 401; argon2 evaluations of the locked account: "
            f"{f.evaluated_locked}, the {f.evaluated_locked} attempts that locked it)",
        ]
        spread = abs(f.raw_before.rate - f.raw_after.rate) / max(f.raw_before.rate, f.raw_after.rate)
        if spread > NOISE:
            lines.append(f"  WARNING: the raw rate changed by {spread:.0%} between before and after (i): "
                         "the machine's background load changed during the run; do not trust these figures")
    if cheap is not None:
        per_logon_ms = w / cheap.rate * 1000
        lines += [
            "",
            f"non-hash cost measured directly (argon2id {describe(CHEAP)}, hashing ~0.01 ms):",
            f"  {cheap.rate:.1f} logons/s with {w} workers = {per_logon_ms:.1f} ms of worker time per "
            f"logon; target <= {TARGET_NON_HASH_MS:g} ms: {verdict(per_logon_ms <= TARGET_NON_HASH_MS)}",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    cores = os.cpu_count() or 2
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", choices=["default", "keycloak", "both"], default="both")
    ap.add_argument("--db", choices=["postgres", "sqlite"], default="postgres",
                    help="postgres: PostgreSQL + Redis (production shape); sqlite: the embedded default")
    ap.add_argument("--workers", type=int, default=cores, help="gunicorn workers (default: cores)")
    ap.add_argument("--threads", type=int, default=4,
                    help="threads per worker (gthread: the production shape, README); 0: sync workers")
    ap.add_argument("--clients", type=int, default=None,
                    help="client threads (default: 4 x workers x threads: no worker waits for a request)")
    ap.add_argument("--seconds", type=float, default=15, help="length of each logon load")
    ap.add_argument("--locked-seconds", type=float, default=6)
    ap.add_argument("--raw-seconds", type=float, default=10,
                    help="raw argon2 measurement, half before and half after the logon load")
    ap.add_argument("--no-direct", action="store_true", help="skip the direct non-hash measurement")
    ap.add_argument("--redis-db", type=int, default=13)
    args = ap.parse_args(argv)
    args.worker_class = "gthread" if args.threads else "sync"
    args.clients = args.clients or 4 * args.workers * max(args.threads, 1)
    names = ["default", "keycloak"] if args.params == "both" else [args.params]

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    args.load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        args.redis_url = redis_db(args.redis_db) if args.db == "postgres" else ""
        with tempfile.TemporaryDirectory(prefix="authsvc-bench-") as tmp:
            figures = []
            for name in names:
                say(f"argon2id {name} ({describe(PARAMS[name])}) ...")
                figures.append(run_params(args, name, Path(tmp), say))
            cheap = None
            if not args.no_direct:
                say(f"argon2id cheapest ({describe(CHEAP)}) ...")
                cheap = run_cheap(args, Path(tmp), say)
    except InstanceError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print(report(args, figures, cheap))
    print(f"\n(run took {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
