"""Failures of the adapters that bootstrap builds which the front-ends answer as such, named
here (beside bootstrap, outside the services, which stay free of storage technology) so that
the web layer need not know the technologies: a backend that does not answer (the database,
Redis), and palm readings that would not make a template."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError

from adapters.vein import VeinError

# The database or Redis cannot be reached (or dropped the connection): the service is
# unavailable, and nothing was decided. A logon fails closed.
BACKEND_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, RedisError)

# The samples of an enrolment would not make a template: the palm is read again.
UNREADABLE_SAMPLES: tuple[type[Exception], ...] = (VeinError,)


def safe_url(url: str) -> str:
    """A URL to show an operator: its password (and any query, which may hold one) left out."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url.split("?")[0][:200]
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username
    return urlunsplit((parts.scheme, f"{user}@{netloc}" if user else netloc, parts.path, "", ""))


def _host_port(url: str, default_port: int) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port or default_port
    except ValueError:
        port = default_port
    return f"{parts.hostname or 'localhost'}:{port}"


def unavailable_backend(exc: BaseException, database_url: str, redis_url: str) -> tuple[str, str]:
    """Which backend did not answer, and where, for the operator (never a password):
    ("redis", "127.0.0.1:6379"), ("database", "PostgreSQL db:5432") or ("database", "SQLite …")."""
    if isinstance(exc, RedisError):
        return "redis", _host_port(redis_url, 6379)
    if database_url.startswith("sqlite"):
        return "database", f"SQLite {database_url.removeprefix('sqlite:///')}"
    return "database", f"PostgreSQL {_host_port(database_url, 5432)}"
