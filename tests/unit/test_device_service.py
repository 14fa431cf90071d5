"""The device registry (R6, R12) as a service: registration, the life cycle, the one namespace
of identifiers, one device per key for good, the company binding; over the in-memory fakes
(tests/fakes.py). What needs the real databases (the race of two registrations of one key,
the command line, migration 0005): tests/integration/test_devices.py."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.clock import FixedClock
from authsvc.domain.errors import DomainError, Forbidden, NotFound
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, devices
from tests.conftest import AGENCY
from tests.fakes import fake_deps
from tests.integration.support import events


@pytest.fixture
def deps(clock: FixedClock) -> Deps:
    return fake_deps(clock)


def new_key() -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private, base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_register_suspend_resume_and_revoke(deps, operator, clock):
    private, b64 = new_key()
    view = devices.register(deps, operator, "TERM-001", b64, "terminal", "新宿 登録所")
    assert view.status == "active" and view.public_key == b64
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert devices.active_key(deps, "term-001") == raw
    assert devices.change(deps, operator, "TERM-001", "suspend", "点検").status == "suspended"
    assert devices.active_key(deps, "TERM-001") is None  # effective at once
    assert devices.change(deps, operator, "TERM-001", "resume").status == "active"
    assert devices.active_key(deps, "TERM-001") == raw
    assert devices.change(deps, operator, "TERM-001", "revoke", "紛失").status == "revoked"
    assert devices.active_key(deps, "TERM-001") is None
    with pytest.raises(NotFound):
        devices.change(deps, operator, "TERM-001", "resume")  # revocation is final
    assert [e.action for e in events(deps, subject="TERM-001")] == [
        "device.register", "device.suspend", "device.resume", "device.revoke"]


def test_a_revoked_identifier_is_not_reassigned_within_the_window(deps, operator, clock):
    _, b64 = new_key()
    devices.register(deps, operator, "TERM-002", b64)
    devices.change(deps, operator, "TERM-002", "revoke", "破損")
    with pytest.raises(DomainError) as err:
        devices.register(deps, operator, "TERM-002", new_key()[1])
    assert err.value.code == "identifier_reserved"
    clock.advance(days=deps.settings.identifiers.reuse_after_days)
    assert devices.register(deps, operator, "TERM-002", new_key()[1]).status == "active"


def test_devices_and_accounts_share_one_identifier_namespace(deps, operator, account_admin):
    from tests.integration.support import active_account, add_contract

    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "shared-id")
    with pytest.raises(DomainError) as err:
        devices.register(deps, operator, "shared-id", new_key()[1])
    assert err.value.code == "identifier_in_use"


def test_only_system_administrators_register_devices(deps, operator, account_admin):
    before = deps.uow.db.counts()
    assert before["audit_events"] == before["audit_head"] == 0
    with pytest.raises(Forbidden):
        devices.register(deps, account_admin, "TERM-003", new_key()[1])
    # the refused use of a privilege is recorded (004 第8 1(2)): the first audit event (and
    # so the chain's head) and the operators' alert (R25); no device, no identifier
    assert deps.uow.db.counts() == {**before, "audit_events": 1, "audit_head": 1, "alerts": 1}
    [refused] = events(deps, "device.register", "TERM-003")
    assert (refused.actor, refused.result, refused.data) == (
        account_admin.id, "refused", {"reason": "forbidden"})
    assert devices.active_key(deps, "TERM-003") is None


@pytest.mark.parametrize("key", ["", "not-a-key", "A" * 10, "A" * 100,
                                 "-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----"])
def test_bad_keys_are_refused_and_write_nothing(deps, operator, key):
    before = deps.uow.db.counts()
    with pytest.raises(DomainError) as err:
        devices.register(deps, operator, "TERM-004", key)
    assert err.value.code == "device_key_invalid"
    assert deps.uow.db.counts() == before


def test_pem_keys_are_accepted(deps, operator):
    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert devices.register(deps, operator, "TERM-005", pem).status == "active"
    assert [d.device_id for d in devices.list_devices(deps, AGENCY)] == ["TERM-005"]


# -- one device per key, for good (issue [5 of 12] part 2, item 1) ------------------------------


def refusals(deps, subject):
    return [(e.result, e.data.get("reason")) for e in events(deps, "device.register", subject)
            if e.result == "refused"]


def test_a_revoked_key_is_refused_for_good(deps, operator, clock):
    """The revoked terminal's key cannot come back under a new ID, nor under its own ID once
    the identifier may be reused: the device row, never deleted, keeps its fingerprint."""
    _, key = new_key()
    devices.register(deps, operator, "T-3", key)
    devices.change(deps, operator, "T-3", "revoke", "紛失")
    with pytest.raises(DomainError) as err:
        devices.register(deps, operator, "T-3B", key)
    assert err.value.code == "device_key_revoked" and err.value.params == {"device": "T-3"}
    assert "T-3" in err.value.message("en")
    assert refusals(deps, "T-3B") == [("refused", "device_key_revoked")]
    assert devices.active_key(deps, "T-3B") is None
    clock.advance(days=deps.settings.identifiers.reuse_after_days + 1)  # the identifier is free again
    with pytest.raises(DomainError) as err:
        devices.register(deps, operator, "T-3", key)
    assert err.value.code == "device_key_revoked"
    with pytest.raises(DomainError) as err:
        devices.register(deps, operator, "T-3C", key)
    assert err.value.code == "device_key_revoked"
    assert devices.register(deps, operator, "T-3", new_key()[1]).status == "active"  # a new key
    with pytest.raises(DomainError):
        devices.register(deps, operator, "T-3D", key)  # still retired after the ID's reuse
    assert sorted((d.device_id, d.status) for d in devices.list_devices(deps, AGENCY)) == [
        ("T-3", "active"), ("T-3", "revoked")]


@pytest.mark.parametrize("state", ["active", "suspended"])
def test_a_key_serves_one_device_id(deps, operator, state):
    private, key = new_key()
    devices.register(deps, operator, "TERM-A", key)
    if state == "suspended":
        devices.change(deps, operator, "TERM-A", "suspend")
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    for other, text in (("TERM-B", key), ("TERM-C", pem)):  # the same key, in either spelling
        with pytest.raises(DomainError) as err:
            devices.register(deps, operator, other, text)
        assert err.value.code == "device_key_in_use" and err.value.params == {"device": "TERM-A"}
        assert refusals(deps, other) == [("refused", "device_key_in_use")]
    assert [d.device_id for d in devices.list_devices(deps, AGENCY)] == ["TERM-A"]



def test_company_binding_is_recorded_and_must_name_a_contracted_company(deps, operator):
    from tests.integration.support import add_contract

    add_contract(deps, operator, "C-1", company="防衛産業株式会社")
    view = devices.register(deps, operator, "TERM-CO", new_key()[1], company="防衛産業株式会社")
    assert view.company == "防衛産業株式会社"
    assert devices.register(deps, operator, "TERM-ANY", new_key()[1]).company == ""
    with pytest.raises(DomainError) as err:
        devices.register(deps, operator, "TERM-X", new_key()[1], company="他社")
    assert err.value.code == "device_company_unknown"



def test_a_companys_administrator_registers_and_changes_only_their_companys_devices(deps, operator):
    """R24: a company's system administrator registers terminals bound to their own company
    (the default); a terminal serving every company, or another company's, is the agency's:
    refused like an unknown company (or device), audited with the real reason, nothing
    written. They see and change only their company's devices."""
    from tests.integration.support import add_contract

    add_contract(deps, operator, "C-1", company="防衛産業株式会社")
    add_contract(deps, operator, "C-9", company="他社")
    admin = Actor("sato", frozenset({Role.SYSTEM_ADMIN}), company="防衛産業株式会社")
    assert devices.register(deps, admin, "TERM-OWN", new_key()[1]).company == "防衛産業株式会社"
    devices.register(deps, operator, "TERM-ANY", new_key()[1])
    devices.register(deps, operator, "TERM-9", new_key()[1], company="他社")
    before = deps.uow.db.counts()
    for device_id, company in (("TERM-Y", "他社"), ("TERM-Z", "")):
        with pytest.raises(NotFound) as err:
            devices.register(deps, admin, device_id, new_key()[1], company=company)
        assert err.value.code == "device_company_unknown"
        assert devices.active_key(deps, device_id) is None
    with pytest.raises(NotFound) as theirs:
        devices.change(deps, admin, "TERM-9", "suspend", "test")
    with pytest.raises(NotFound) as unknown:
        devices.change(deps, admin, "TERM-NONE", "suspend", "test")
    assert theirs.value.code == unknown.value.code == "device_not_found"
    with pytest.raises(NotFound):
        devices.change(deps, admin, "TERM-ANY", "suspend", "test")
    refused = [(e.action, e.subject, e.data["reason"]) for e in events(deps)
               if e.result == "refused"]
    assert refused == [("device.register", "TERM-Y", "other_company"),
                       ("device.register", "TERM-Z", "other_company"),
                       ("device.change", "TERM-9", "other_company"),
                       ("device.change", "TERM-ANY", "other_company")]
    assert deps.uow.db.counts() == {**before, "audit_events": before["audit_events"] + 4,
                                    "alerts": before["alerts"] + 4}  # (R25: each alerted)
    assert {d.device_id: d.status for d in devices.list_devices(deps, AGENCY)} == {
        "TERM-OWN": "active", "TERM-ANY": "active", "TERM-9": "active"}
    assert [d.device_id for d in devices.list_devices(deps, admin)] == ["TERM-OWN"]
    assert devices.change(deps, admin, "TERM-OWN", "suspend", "点検").status == "suspended"
