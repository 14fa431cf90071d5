"""What the in-memory unit of work (tests/fakes.py) still refuses: rows of the SQL store's own
counters and sessions, whose fakes are `MemoryCounters` and `MemorySessions`. Its contract with
the SQL store: tests/integration/test_unit_of_work.py and test_repositories.py."""

from __future__ import annotations

import pytest

from authsvc.store.models import LogonThrottle, SessionRow
from tests.fakes import fake_deps


@pytest.mark.parametrize("row", [LogonThrottle(key="k", failures=0), SessionRow(id="s", data="{}")])
def test_the_fake_refuses_rows_it_does_not_store(clock, row):
    deps = fake_deps(clock)
    with deps.uow() as uow, pytest.raises(NotImplementedError, match=type(row).__name__):
        uow.add(row)
    assert not any(deps.uow.db.counts().values())  # nothing was stored
