"""The device registry (R6, R12): terminals and readers are registered with their public key,
suspended, resumed, and revoked on loss or damage. A capture is accepted only from an active
device whose key signed it; the state is read at every request, so a revocation takes effect
on the next one. A key belongs to one device for good: its fingerprint is unique over every
device row, in every state, and rows are never deleted, so a revoked key can never be
registered again (under any ID, even after the identifier's reuse window), and an active
key cannot be registered under a second ID. A terminal may be bound to a company: captures
from it are then accepted only for users whose contract is that company's."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from authsvc.domain import identifiers
from authsvc.domain.calendar import jst_iso
from authsvc.domain.errors import DomainError, NotFound
from authsvc.domain.roles import Actor, Perm, company_key
from authsvc.services import Deps, guard
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
    company: str  # "" when the terminal serves users of any company
    key_fingerprint: str  # SHA-256 of the raw key, hex

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ActiveDevice:
    """What a capture's acceptance needs of an active device."""

    device_id: str
    public_key: bytes
    company: str | None
    kind: str = "terminal"


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


def key_fingerprint(raw: bytes) -> str:
    """SHA-256 of the raw public key, hex: the key's identity in the registry."""
    return hashlib.sha256(raw).hexdigest()


def _view(d: Device) -> DeviceView:
    return DeviceView(d.device_id, d.kind, d.description, d.status, _b64(d.public_key),
                      d.registered_by, jst_iso(d.registered_at), jst_iso(d.status_changed_at),
                      d.reason, d.company or "", d.key_fingerprint or key_fingerprint(d.public_key))


def _device(uow: UnitOfWork, device_id: str, lock: bool = False) -> Device:
    found = uow.devices.by_identifier(identifiers.canonical(device_id), lock=lock)
    if found is None:
        raise NotFound("device_not_found", device=device_id)
    return found


def _company(uow: UnitOfWork, company: str | None) -> str | None:
    """The company as its contracts spell it; None for an unbound device."""
    if company is None or not company.strip():
        return None
    wanted = company_key(company)
    for name in uow.devices.known_companies():
        if company_key(name) == wanted:
            return name
    raise DomainError("device_company_unknown", company=" ".join(company.split())[:200])


@guard.audited("device.register", "device_id")
def register(deps: Deps, actor: Actor, device_id: str, public_key: str, kind: str = "terminal",
             description: str = "", company: str | None = None) -> DeviceView:
    """Register a device with its public key (and, for a terminal serving one company's users
    only, that company: one with a contract). A key already registered, for any device in any
    state, is refused and the refusal audited: `device_key_revoked` if that device was revoked
    (a revoked key is retired for good), else `device_key_in_use`. A company's administrator
    registers terminals of their own company (the default); only the agency registers one
    that serves every company (R24)."""
    actor.require(Perm.MANAGE_DEVICES)
    key = identifiers.canonical_or_none(device_id)
    if key is None:
        raise DomainError("device_id_invalid")
    raw = parse_public_key(public_key)
    if kind not in KINDS:
        raise DomainError("device_kind_invalid", kind=kind)
    description = " ".join((description or "").split())[:200]
    fingerprint = key_fingerprint(raw)
    now = deps.clock.now()
    with deps.uow() as uow:
        ident = uow.identifier(key, lock=True)
        if ident is not None:
            identifiers.check_assignable(device_id, now, ident.holder_id is not None,
                                         ident.released_at, deps.settings.identifiers.reuse_after_days)
        if company is None and not actor.everywhere:
            company = actor.company
        bound = _company(uow, company)
        guard.check(actor, Perm.MANAGE_DEVICES, bound, "device_company_unknown",
                    company=" ".join((company or "").split())[:200])
        holder = uow.devices.key_holder(fingerprint)
        if holder is None:
            dev = Device(device_id=device_id, kind=kind, public_key=raw, key_fingerprint=fingerprint,
                         company=bound, description=description, status="active",
                         registered_by=actor.id, registered_at=now, status_changed_at=now, reason="")
            # the unique index on the fingerprint settles a race with another registration
            if not uow.devices.add(dev):
                holder = uow.devices.key_holder(fingerprint)  # the registration that won it
        if holder is None:
            # registered by a system administrator: assigned and approved in one act (004 第6 1(1)ア)
            if ident is None:
                ident = Identifier(value=key, kind="device", holder_id=dev.id, assigned_by=actor.id,
                                   assigned_at=now, approved_by=actor.id, approved_at=now)
                if not uow.identifiers.claim(ident):  # a concurrent registration took the new ID
                    raise DomainError("identifier_in_use", user_id=device_id)
            else:
                ident.kind, ident.holder_id, ident.assigned_by, ident.assigned_at = ("device", dev.id,
                                                                                     actor.id, now)
                ident.approved_by, ident.approved_at, ident.released_at = actor.id, now, None
            uow.audit(now, actor, "device.register", device_id, kind=kind, key=_b64(raw)[:16],
                      key_fingerprint=fingerprint, **({"company": bound} if bound else {}))
            result = _view(dev)
            uow.commit()
            return result
    raise _key_refused(deps, actor, device_id, fingerprint, holder)


def _key_refused(deps: Deps, actor: Actor, device_id: str, fingerprint: str,
                 holder: tuple[str, str]) -> DomainError:
    """Audit the refusal of a known key; the error to raise."""
    held_by, status = holder
    code = "device_key_revoked" if status == "revoked" else "device_key_in_use"
    with deps.uow() as uow:
        uow.audit(deps.clock.now(), actor, "device.register", device_id, "refused", reason=code,
                  key_fingerprint=fingerprint, holder=held_by)
        uow.commit()
    return DomainError(code, device=held_by)


@guard.audited("device.change", "device_id")
def change(deps: Deps, actor: Actor, device_id: str, action: str, reason: str = "") -> DeviceView:
    """suspend | resume | revoke (on loss or damage: final, the identifier is tombstoned, and
    the key retired for good: the row, never deleted, keeps its fingerprint)."""
    actor.require(Perm.MANAGE_DEVICES)
    allowed, target = TRANSITIONS[action]
    now = deps.clock.now()
    with deps.uow() as uow:
        dev = _device(uow, device_id, lock=True)
        guard.check(actor, Perm.MANAGE_DEVICES, dev.company, "device_not_found", device=device_id)
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


@guard.audited("device.list", None)
def list_devices(deps: Deps, actor: Actor) -> list[DeviceView]:
    """The devices of the actor's company (every device for the agency)."""
    actor.require(Perm.MANAGE_DEVICES)
    with deps.uow(read_only=True) as uow:
        return [_view(d) for d in uow.devices.all() if actor.reaches(d.company)]


def active_device(deps: Deps, device_id: str) -> ActiveDevice | None:
    """An active registered device's key and company binding, or None (unknown, suspended,
    revoked)."""
    key = identifiers.canonical_or_none(device_id)
    if key is None:
        return None
    with deps.uow(read_only=True) as uow:
        dev = uow.devices.by_identifier(key)
        if dev is None or dev.status != "active":
            return None
        return ActiveDevice(dev.device_id, dev.public_key, dev.company, dev.kind)


def status_of(deps: Deps, device_id: str) -> str | None:
    """The status of the device last registered as `device_id` (active, suspended, revoked),
    or None if none ever was: the reason a terminal's proof is refused, for the audit log."""
    key = identifiers.canonical_or_none(device_id)
    if key is None:
        return None
    with deps.uow(read_only=True) as uow:
        return uow.devices.last_status(key)


def active_key(deps: Deps, device_id: str) -> bytes | None:
    """The public key of an active registered device, or None (unknown, suspended, revoked)."""
    found = active_device(deps, device_id)
    return found.public_key if found is not None else None
