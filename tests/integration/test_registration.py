"""Biometric registration's ID image evidence (R14, R15, R22) at rest in a real database:
sealed in every table, its hash audited, readable by the agency only, destroyed after
retention. The rest of the registration service, over the in-memory fakes:
tests/unit/test_registration_service.py."""

from __future__ import annotations

import base64
import hashlib

import pytest

from authsvc.domain.errors import Forbidden, NotFound
from authsvc.domain.roles import Actor, Role
from authsvc.services import registration
from authsvc.services.accounts import OPERATIONS_CONTRACT
from tests.integration.support import dump_all, ready
from tests.registration_support import (
    ADMIN,
    AGENCY_ADMIN,
    AGENCY_STAFF,
    IMAGE,
    MARKER,
    OTHER_ADMIN,
    REGISTRANT,
    build_world,
    confirmed_session,
    reg_events,
)


@pytest.fixture
def world(deps, operator, account_admin):
    return build_world(deps, operator, account_admin)


def test_id_image_evidence(world, operator, clock):
    deps = world
    sid = confirmed_session(deps, operator)
    # sealed: neither the image nor its base64 is in clear in any table
    dump = dump_all(deps)
    assert MARKER.decode() not in dump
    assert base64.b64encode(IMAGE)[:40].decode() not in dump
    assert base64.urlsafe_b64encode(IMAGE)[:40].decode() not in dump
    assert IMAGE.hex()[:80] not in dump
    digest = hashlib.sha256(IMAGE).hexdigest()
    [captured] = [e for e in reg_events(deps) if e.action == "registration.id_captured"]
    assert captured.data["sha256"] == digest and captured.data["size"] == len(IMAGE)
    # readable by the agency's system administrators and staff only
    assert registration.read_evidence(deps, AGENCY_STAFF, sid) == IMAGE
    assert registration.read_evidence(deps, AGENCY_ADMIN, sid) == IMAGE
    for who in (ADMIN, REGISTRANT, OTHER_ADMIN, operator,  # operator: a role claim, no account
                Actor("kanri", frozenset({Role.SYSTEM_ADMIN})),  # claims a role it does not hold
                Actor("yamada", frozenset({Role.STAFF}))):
        with pytest.raises(Forbidden):
            registration.read_evidence(deps, who, sid)
    reads = [e for e in reg_events(deps) if e.action == "registration.evidence_read"]
    assert [(e.actor, e.result) for e in reads][:2] == [("kanri", "ok"), ("unyo", "ok")]
    assert all(e.result == "refused" for e in reads[2:]) and len(reads) == 8
    # bound to its session: the sealed value does not open elsewhere
    from authsvc.domain.errors import SealError
    from authsvc.store.models import Evidence
    with deps.uow() as uow:
        sealed = uow.session.query(Evidence).one().sealed
    with pytest.raises(SealError):
        deps.sealer.open(sealed, b"registration-evidence:another-session")
    # destroyed after the retention period
    clock.advance(seconds=(deps.settings.registration.evidence_retention_days - 1) * 86400)
    assert registration.purge_evidence(deps) == 0
    assert registration.read_evidence(deps, AGENCY_STAFF, sid) == IMAGE
    clock.advance(seconds=86400)
    assert registration.purge_evidence(deps) == 1
    assert registration.purge_evidence(deps) == 0
    with pytest.raises(NotFound) as err:
        registration.read_evidence(deps, AGENCY_STAFF, sid)
    assert err.value.code == "registration_no_evidence"
    with deps.uow() as uow:
        row = uow.session.query(Evidence).one()
        assert row.sealed == "" and row.destroyed_at is not None and row.sha256 == digest
    [destroyed] = [e for e in reg_events(deps) if e.action == "registration.evidence_destroyed"]
    assert destroyed.data["sha256"] == digest and destroyed.data["admin"] == "sato"


def test_an_agency_operator_with_an_account_reads_the_evidence(world, operator):
    """The agency operator signed in with their own account (on the operations contract) reads
    the ID image; a company's system administrator does not, even of the registrant's company
    (R14, R24). Only a role claimed without an account is refused (test_id_image_evidence)."""
    deps = world
    second = Actor("ops2", frozenset({Role.AGENCY_OPERATOR}), terminal="OPS-2")
    ready(deps, operator, second, "kanda", name="神田 八郎", contract=OPERATIONS_CONTRACT,
          role="agency_operator")
    sid = confirmed_session(deps, operator)
    kanda = Actor("kanda", frozenset({Role.AGENCY_OPERATOR}), terminal="OPS-3")
    assert registration.read_evidence(deps, kanda, sid) == IMAGE
    with pytest.raises(Forbidden):
        registration.read_evidence(deps, ADMIN, sid)
    reads = [(e.actor, e.result) for e in reg_events(deps) if e.action == "registration.evidence_read"]
    assert reads == [("kanda", "ok"), ("sato", "refused")]
