"""The device registry (R6, R12): terminals and readers are registered with their public key,
suspended, resumed, and revoked on loss or damage. A capture is accepted only from an active
device whose key signed it; the state is read at every request, so a revocation takes effect
on the next one."""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from authsvc.domain import identifiers
from authsvc.domain.calendar import jst_iso
from authsvc.domain.errors import DomainError, NotFound
from authsvc.domain.roles import Actor, Perm
from authsvc.services import Deps
from authsvc.store.models import Device, Identifier
from authsvc.store.uow import UnitOfWork

KINDS = ("terminal", "reader", "token", "card")
TRANSITIONS = {"suspend": ({"active"}, "suspended"), "resume": ({"suspended"}, "active"),
               "revoke": ({"active", "suspended"}, "revoked")}


@dataclass(frozen=True)
class DeviceView:
    device_id: str
    kind: str
    description: str
    status: str
    public_key: str  # base64url of the raw Ed25519 key
    registered_by: str
    registered_at: str
    status_changed_at: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_public_key(text: str) -> bytes:
    """A raw Ed25519 public key from base64url (32 bytes) or PEM (SubjectPublicKeyInfo)."""
    text = (text or "").strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not Ed25519")
        else:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            key = Ed25519PublicKey.from_public_bytes(raw)
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    except (ValueError, binascii.Error, TypeError):
        raise DomainError("device_key_invalid") from None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _view(d: Device) -> DeviceView:
    return DeviceView(d.device_id, d.kind, d.description, d.status, _b64(d.public_key),
                      d.registered_by, jst_iso(d.registered_at), jst_iso(d.status_changed_at),
                      d.reason)


def _device(uow: UnitOfWork, device_id: str, lock: bool = False) -> Device:
    ident = uow.identifier(identifiers.canonical(device_id))
    if ident is None or ident.kind != "device" or ident.holder_id is None:
        raise NotFound("device_not_found", device=device_id)
    q = select(Device).where(Device.id == ident.holder_id)
    found = uow.session.scalars(q.with_for_update() if lock else q).first()
    if found is None:
        raise NotFound("device_not_found", device=device_id)
    return found


def register(deps: Deps, actor: Actor, device_id: str, public_key: str, kind: str = "terminal",
             description: str = "") -> DeviceView:
    actor.require(Perm.MANAGE_DEVICES)
    key = identifiers.canonical(device_id)
    raw = parse_public_key(public_key)
    if kind not in KINDS:
        raise DomainError("device_kind_invalid", kind=kind)
    description = " ".join((description or "").split())[:200]
    now = deps.clock.now()
    with deps.uow() as uow:
        ident = uow.identifier(key, lock=True)
        if ident is not None:
            identifiers.check_assignable(device_id, now, ident.holder_id is not None, ident.released_at,
                                         deps.settings.identifiers.reuse_after_days)
        dev = Device(device_id=device_id, kind=kind, public_key=raw, description=description,
                     status="active", registered_by=actor.id, registered_at=now,
                     status_changed_at=now, reason="")
        uow.add(dev)
        if ident is None:
            ident = Identifier(value=key, kind="device", assigned_by=actor.id, assigned_at=now)
            uow.session.add(ident)
        # registered by a system administrator: assigned and approved in one act (004 第6 1(1)ア)
        ident.kind, ident.holder_id, ident.assigned_by, ident.assigned_at = "device", dev.id, actor.id, now
        ident.approved_by, ident.approved_at, ident.released_at = actor.id, now, None
        uow.audit(now, actor, "device.register", device_id, kind=kind, key=_b64(raw)[:16])
        result = _view(dev)
        uow.commit()
    return result


def change(deps: Deps, actor: Actor, device_id: str, action: str, reason: str = "") -> DeviceView:
    """suspend | resume | revoke (on loss or damage: final, the identifier is tombstoned)."""
    actor.require(Perm.MANAGE_DEVICES)
    allowed, target = TRANSITIONS[action]
    now = deps.clock.now()
    with deps.uow() as uow:
        dev = _device(uow, device_id, lock=True)
        if dev.status not in allowed:
            raise DomainError("bad_transition", status=dev.status)
        before, dev.status, dev.status_changed_at = dev.status, target, now
        dev.reason = " ".join((reason or "").split())[:200]
        if action == "revoke":
            ident = uow.identifier(identifiers.canonical(device_id), lock=True)
            assert ident is not None
            ident.holder_id, ident.released_at = None, now
        uow.audit(now, actor, f"device.{action}", dev.device_id, status_from=before, reason=dev.reason)
        result = _view(dev)
        uow.commit()
    return result


def list_devices(deps: Deps) -> list[DeviceView]:
    with deps.uow(read_only=True) as uow:
        return [_view(d) for d in uow.session.scalars(select(Device).order_by(Device.device_id))]


def active_key(deps: Deps, device_id: str) -> bytes | None:
    """The public key of an active registered device, or None (unknown, suspended, revoked)."""
    key = identifiers.canonical_or_none(device_id)
    if key is None:
        return None
    with deps.uow(read_only=True) as uow:
        ident = uow.identifier(key)
        if ident is None or ident.kind != "device" or ident.holder_id is None:
            return None
        dev = uow.session.get(Device, ident.holder_id)
        return dev.public_key if dev is not None and dev.status == "active" else None
