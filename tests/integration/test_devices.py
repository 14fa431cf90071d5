"""The device registry (R6, R12) on SQLite and PostgreSQL."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from authsvc.domain.errors import DomainError, Forbidden, NotFound
from authsvc.services import devices
from tests.integration.support import events, row_counts


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
    before = row_counts(deps)
    with pytest.raises(Forbidden):
        devices.register(deps, account_admin, "TERM-003", new_key()[1])
    assert row_counts(deps) == before


@pytest.mark.parametrize("key", ["", "not-a-key", "A" * 10, "A" * 100,
                                 "-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----"])
def test_bad_keys_are_refused_and_write_nothing(deps, operator, key):
    before = row_counts(deps)
    with pytest.raises(DomainError) as err:
        devices.register(deps, operator, "TERM-004", key)
    assert err.value.code == "device_key_invalid"
    assert row_counts(deps) == before


def test_pem_keys_are_accepted(deps, operator):
    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert devices.register(deps, operator, "TERM-005", pem).status == "active"
    assert [d.device_id for d in devices.list_devices(deps)] == ["TERM-005"]
