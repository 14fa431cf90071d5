"""WebAuthn as a second factor (R10, R11, R12) where the database matters: one assertion, or
one registration response, submitted many times at once, on PostgreSQL and SQLite; driven by a
software authenticator that answers the way a browser's `credential.toJSON()` does. The
service's rules over the in-memory fakes: tests/unit/test_webauthn_service.py."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from authsvc.domain.errors import DomainError
from authsvc.services import Deps
from authsvc.services import webauthn as wa
from authsvc.store.models import WebauthnCredential
from tests.integration.support import active_account, add_contract
from tests.webauthn_soft import SoftAuthenticator
from tests.webauthn_support import ALICE, enrol


def stored(deps: Deps) -> list[SimpleNamespace]:
    """The stored credentials as plain snapshots (rows detach when the unit of work ends)."""
    with deps.uow(read_only=True) as uow:
        rows = uow.session.scalars(select(WebauthnCredential).order_by(WebauthnCredential.id))
        return [SimpleNamespace(account_id=r.account_id, credential_id=r.credential_id,
                                sign_count=r.sign_count, name=r.name, created_at=r.created_at,
                                last_used_at=r.last_used_at) for r in rows]


# ---- concurrency ----------------------------------------------------------------------------

THREADS = 10


@pytest.mark.parametrize("backend_name", ["postgres", "sqlite"])
def test_one_assertion_submitted_ten_times_at_once_succeeds_once(
    make_deps, operator, account_admin, backend_name
):
    deps = make_deps(backend_name)
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "alice")
    auth = SoftAuthenticator()
    enrol(deps, auth)
    cid, options = wa.authentication_options(deps, "alice")
    assertion = auth.get(options)
    barrier = threading.Barrier(THREADS)

    def submit(_i: int) -> bool:
        barrier.wait(timeout=30)
        return wa.authenticate(deps, "alice", cid, json.loads(json.dumps(assertion)))

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(submit, range(THREADS)))
    assert results.count(True) == 1 and results.count(False) == THREADS - 1
    assert stored(deps)[0].sign_count == 1


@pytest.mark.parametrize("backend_name", ["postgres"])
def test_ten_registrations_of_one_response_store_one_credential(
    make_deps, operator, account_admin, backend_name
):
    deps = make_deps(backend_name)
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "alice")
    cid, options = wa.registration_options(deps, "alice")
    response = SoftAuthenticator().create(options)
    barrier = threading.Barrier(THREADS)

    def submit(_i: int) -> str:
        barrier.wait(timeout=30)
        try:
            wa.register(deps, ALICE, "alice", cid, response)
            return "ok"
        except DomainError as exc:
            return exc.code

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(submit, range(THREADS)))
    assert sorted(results) == ["ok"] + ["webauthn_invalid"] * (THREADS - 1)
    assert len(stored(deps)) == 1
