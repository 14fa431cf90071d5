"""Engines for SQLite (embedded default) and PostgreSQL, and schema migration with Alembic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and ":memory:" not in url:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # hide_parameters: a password typed into the ID field must not reach logs or error texts
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Take the write lock at the start, so read-then-write transactions (the audit
            # head, the logon throttle) serialise instead of failing with "database is locked".
            # A read-only transaction (READ_ONLY) takes no lock: WAL readers never wait.
            read_only = conn.get_execution_options().get("authsvc_read_only")
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # No pre-ping: it costs a round trip per checkout on the logon's hot path. A connection the
    # server dropped fails its one request (503, fail closed) and is replaced; pool_recycle
    # retires connections before common idle timeouts.
    # A server that does not answer at all (a wrong or firewalled host) fails in seconds, not
    # after the operating system's TCP timeout: the operator is told which host:port at once.
    connect_args = {"connect_timeout": 10} if url.startswith("postgresql+psycopg://") \
        and "connect_timeout" not in url else {}
    return create_engine(url, pool_recycle=1800, hide_parameters=True, connect_args=connect_args)


READ_ONLY = {"authsvc_read_only": True}


def read_session(sessions: sessionmaker[Session], snapshot: bool = False) -> Session:
    """A session for reads only: on SQLite it does not wait for, or block, writers (WAL), and
    reads one snapshot. On PostgreSQL `snapshot` asks for REPEATABLE READ, for a long read
    that must see one consistent state while the service writes (the audit verification);
    other reads run outside a transaction (below)."""
    session = sessions()
    options: dict[str, object] = dict(READ_ONLY)
    if session.get_bind().dialect.name == "postgresql":
        # A snapshot: one REPEATABLE READ transaction. Otherwise no transaction at all: each
        # statement reads what is committed (as READ COMMITTED would), without the BEGIN and
        # ROLLBACK round trips a transaction costs on the logon's hot path.
        options["isolation_level"] = "REPEATABLE READ" if snapshot else "AUTOCOMMIT"
    session.connection(execution_options=options)
    return session


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


class SchemaNotCurrent(RuntimeError):
    """The database is not at the newest schema revision."""


def check_current(engine: Engine) -> None:
    """Refuse to serve on an old or empty schema (production runs `authsvc db upgrade` once,
    before starting its instances, rather than racing to migrate from each of them)."""
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        raise SchemaNotCurrent(
            f"database schema is at {current or 'nothing'}, the code needs {head}: "
            "run `authsvc db upgrade` first"
        )


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (creates it on an empty database)."""
    command.upgrade(alembic_config(engine), "head")
