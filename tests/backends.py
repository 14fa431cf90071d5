"""Where the tests find their real backends. Under pytest-xdist every worker gets Redis
databases of its own (the PostgreSQL databases are already created per run and worker), so
workers never clear each other's keys."""

from __future__ import annotations

import os
import re

PG_ADMIN_URL = os.environ.get("AUTHSVC_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
_BASE_REDIS = os.environ.get("AUTHSVC_TEST_REDIS", "redis://127.0.0.1:6379/15")
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_FIRST_DB = int(re.search(r"/(\d+)$", _BASE_REDIS.split("?")[0]).group(1)) - 2 * _WORKER
if _FIRST_DB < 1:
    raise RuntimeError(f"too many test workers for the Redis databases below {_BASE_REDIS}")


def redis_url(number: int) -> str:
    """The test Redis server with database `number`."""
    return re.sub(r"/\d*$", "", _BASE_REDIS.split("?")[0]) + f"/{number}"


REDIS_TEST_URL = redis_url(_FIRST_DB)   # the in-process tests' Redis (15 for the first worker)
INSTANCES_REDIS_DB = _FIRST_DB - 1      # the multi-instance and timing tests' Redis (14, ...)
