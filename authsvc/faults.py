"""Failures of the adapters that bootstrap builds which the front-ends answer as such, named
here (beside bootstrap, outside the services, which stay free of storage technology) so that
the web layer need not know the technologies: a backend that does not answer (the database,
Redis), and palm readings that would not make a template."""

from __future__ import annotations

from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError

from adapters.vein import VeinError

# The database or Redis cannot be reached (or dropped the connection): the service is
# unavailable, and nothing was decided. A logon fails closed.
BACKEND_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, RedisError)

# The samples of an enrolment would not make a template: the palm is read again.
UNREADABLE_SAMPLES: tuple[type[Exception], ...] = (VeinError,)
