"""Real service instances for the multi-instance, timing and benchmark runs: N gunicorn masters
(each with its own workers) started as subprocesses of this process, on free loopback ports,
sharing one database, one Redis and one set of keys, exactly as production runs them behind a
load balancer.

* **Ports without a race.** The parent binds a listening socket to 127.0.0.1:0 and hands the
  file descriptor to gunicorn (`--bind fd://N`), so no other process can take the port between
  "find a free port" and "bind it".
* **Ready means answering.** `running_instances` returns only when every instance answers
  `GET /api/v1/openapi.json` with 200 (a worker accepts only after it has built the app); an
  instance that exits or does not answer in time fails the start with the tail of its log.
* **Always stopped.** Each master runs in a session (process group) of its own; on leaving
  the context — normally, on a failed assertion, on an exception while starting the second
  instance, on Ctrl-C — each master gets SIGTERM (graceful), then its whole group SIGKILL if
  anything of it is still there after the grace period. On Linux the master also gets SIGTERM
  from the kernel if this process dies without cleaning up (PR_SET_PDEATHSIG), and gunicorn
  workers stop on their own when their master goes away.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests
from sqlalchemy import create_engine, text

from tests import backends
from tests.backends import PG_ADMIN_URL

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
READY_PATH = "/api/v1/openapi.json"
# Variables of the developer's shell that would change the service's configuration.
_SERVICE_VARS = re.compile(r"^AUTHSVC(__|_CONFIG$|_AUDIT_KEY$|_SECRET_KEY$|_DATA_KEYS$|_LANG$)")




class InstanceError(RuntimeError):
    """A backend is missing, an instance did not start, or a CLI command of the service failed."""


@dataclass
class Instance:
    url: str                                  # http://127.0.0.1:<port>
    process: subprocess.Popen = field(repr=False)
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def service_env(instance_dir: Path | str, database_url: str = "", redis_url: str = "",
                **config: object) -> dict[str, str]:
    """The environment of one deployment: this process's environment without any AUTHSVC
    settings of its own, plus the database, Redis (counters and sessions, when `redis_url`),
    loopback as the internal network, freshly generated shared keys, and `config` given as
    `section__key=value` (`lockout__max_failures=100`)."""
    env = {k: v for k, v in os.environ.items() if not _SERVICE_VARS.match(k)}
    env.update({
        "AUTHSVC__PATHS__INSTANCE_DIR": str(instance_dir),
        "AUTHSVC__DATABASE__URL": database_url,
        "AUTHSVC__NETWORK__INTERNAL": "127.0.0.0/8",
        # TOTP and WebAuthn beside palm vein, as a group policy would allow
        "AUTHSVC__MFA__SECOND_FACTORS": "vein,totp,webauthn",
        # no terminal agent runs beside these instances (R12's proof: tests/*/test_terminal*)
        "AUTHSVC__DEVICES__REQUIRE_TERMINAL": "false",
        # the keys every instance must share (the instance folder would do as well; the
        # environment also lets a test compute the audit pseudonym of an unknown identifier)
        "AUTHSVC_AUDIT_KEY": os.urandom(32).hex(),
        "AUTHSVC_SECRET_KEY": os.urandom(32).hex(),
        "AUTHSVC_DATA_KEYS": f"k1:{os.urandom(32).hex()}",
        "AUTHSVC_LANG": "en",
    })
    if redis_url:
        env.update({"AUTHSVC__COUNTERS__BACKEND": "redis", "AUTHSVC__SESSIONS__BACKEND": "redis",
                    "AUTHSVC__REDIS__URL": redis_url})
    for name, value in config.items():
        section, _, key = name.partition("__")
        env[f"AUTHSVC__{section.upper()}__{key.upper()}"] = str(value)
    return env


def cli(env: Mapping[str, str], *args: str, timeout: float = 120) -> str:
    """Run `authsvc ARGS` with the deployment's environment; its standard output, or
    InstanceError with everything it printed."""
    done = subprocess.run([str(VENV_BIN / "authsvc"), *args], env=dict(env), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise InstanceError(f"authsvc {' '.join(args)} exited {done.returncode}:\n"
                            f"{done.stdout}\n{done.stderr}")
    return done.stdout


def cli_json(env: Mapping[str, str], *args: str) -> dict:
    return json.loads(cli(env, *args, "--json"))


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(env: Mapping[str, str], log_dir: Path, workers: int, worker_class: str, threads: int,
           extra_args: tuple[str, ...]) -> Instance:
    sock = _listening_socket()
    try:
        port = sock.getsockname()[1]
        log_path = log_dir / f"gunicorn-{port}-{uuid.uuid4().hex[:6]}.log"
        args = [sys.executable, "-m", "gunicorn", "--bind", f"fd://{sock.fileno()}",
                "--workers", str(workers), "--worker-class", worker_class,
                "--graceful-timeout", "5", "--timeout", "120", "--log-level", "info",
                "--chdir", str(ROOT)]
        if worker_class == "gthread":
            args += ["--threads", str(threads)]
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # preexec_fn only calls prctl: safe before client threads
                [*args, *extra_args, "wsgi:app"], env=dict(env), cwd=ROOT, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, pass_fds=(sock.fileno(),),
                start_new_session=True, preexec_fn=_die_with_parent)
    finally:
        sock.close()  # the child holds its own copy
    return Instance(f"http://127.0.0.1:{port}", process, log_path)


def _wait_ready(inst: Instance, deadline: float) -> None:
    with requests.Session() as http:
        while True:
            if inst.process.poll() is not None:
                raise InstanceError(f"instance {inst.url} exited with {inst.process.returncode}:\n"
                                    f"{inst.log_tail()}")
            try:
                if http.get(inst.url + READY_PATH, timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise InstanceError(f"instance {inst.url} did not answer in time:\n{inst.log_tail()}")
            time.sleep(0.2)


def stop(inst: Instance, grace: float = 15) -> None:
    """SIGTERM to the master, then SIGKILL to its whole process group if needed."""
    proc = inst.process
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)
    # workers that outlived their master (they notice on their own; do not wait for that)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_instances(count: int, env: Mapping[str, str], log_dir: Path | str, *, workers: int = 2,
                      worker_class: str = "gthread", threads: int = 4, startup_timeout: float = 90,
                      extra_args: tuple[str, ...] = ()) -> Iterator[list[Instance]]:
    """`count` gunicorn instances of wsgi:app with `env`, answering when this yields; all of
    them stopped when it is left, however it is left. The schema must be current already
    (`cli(env, "db", "upgrade")`): instances never migrate."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    started: list[Instance] = []
    try:
        for _ in range(count):
            started.append(_spawn(env, log_dir, workers, worker_class, threads, extra_args))
        deadline = time.monotonic() + startup_timeout
        for inst in started:
            _wait_ready(inst, deadline)
        yield started
    finally:
        for inst in started:
            stop(inst)


# ---- backends ------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(prefix: str, admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A PostgreSQL database of its own (`<prefix>_<random>`), dropped on leaving, even with
    instances still connected."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        raise InstanceError(f"PostgreSQL is required at {admin_url} (set AUTHSVC_TEST_PG): {exc}") from exc
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def redis_db(number: int) -> str:
    """The test Redis with database `number`; InstanceError when it does not answer."""
    url = backends.redis_url(number)
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise InstanceError(f"Redis is required at {url} (set AUTHSVC_TEST_REDIS): {exc}") from exc
    finally:
        client.close()
    return url


def forget_redis(url: str, subjects: list[str] | tuple[str, ...] = (),
                 tokens: list[str] | tuple[str, ...] = ()) -> int:
    """Delete only what these subjects and tokens left in Redis: their counters
    (`authsvc:c:<subject>`), session indexes (`authsvc:u:<subject>`) and the session or logon
    records of the tokens (`authsvc:s:<sha256(token)>`). Returns how many keys went."""
    from authsvc.domain.tokens import session_id

    keys = [f"authsvc:{kind}:{s}" for s in subjects for kind in ("c", "u")]
    keys += [f"authsvc:s:{session_id(t)}" for t in tokens if t]
    if not keys:
        return 0
    with redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5) as client:
        return sum(int(client.delete(*keys[i:i + 500])) for i in range(0, len(keys), 500))
