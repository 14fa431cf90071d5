"""Queries of the device registry: terminals and readers, their keys and states."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authsvc.store.models import Contract, Device, Identifier


class Devices:
    def __init__(self, session: Session) -> None:
        self._s = session

    def by_identifier(self, value: str, lock: bool = False) -> Device | None:
        """The device currently holding the identifier `value` (canonical), or None (unknown,
        not a device's, or released by a revocation). `lock`: SELECT … FOR UPDATE on the
        device's row (not on the identifier's)."""
        ident = self._s.scalars(select(Identifier).where(Identifier.value == value)).first()
        if ident is None or ident.kind != "device" or ident.holder_id is None:
            return None
        q = select(Device).where(Device.id == ident.holder_id)
        return self._s.scalars(q.with_for_update() if lock else q).first()

    def last_status(self, value: str) -> str | None:
        """The status of the last device registered under the identifier `value` (canonical),
        in any state (a revoked one has released its identifier), or None: never registered."""
        return self._s.scalars(select(Device.status).where(func.lower(Device.device_id) == value)
                               .order_by(Device.id.desc()).limit(1)).first()

    def key_holder(self, fingerprint: str) -> tuple[str, str] | None:
        """(device ID, status) of the device that holds the key with this fingerprint, in any
        state (revoked rows keep it for good), or None."""
        row = self._s.execute(select(Device.device_id, Device.status)
                              .where(Device.key_fingerprint == fingerprint)).first()
        return (row[0], row[1]) if row else None

    def all(self) -> list[Device]:
        """Every device row, in every state, by device ID."""
        return list(self._s.scalars(select(Device).order_by(Device.device_id)))

    def known_companies(self) -> list[str]:
        """The companies that have a contract, as their contracts spell them (a terminal can be
        bound to one of these only)."""
        return list(self._s.scalars(select(Contract.company).distinct()))

    def add(self, device: Device) -> bool:
        """Insert a new device row (flushed, so it has its id). False if its key was registered
        by a concurrent transaction first: the unique index on the fingerprint settles the race
        (on PostgreSQL the insert waits for the other transaction and then violates it). Only
        the insert is undone then (a savepoint); the transaction stays usable, and
        `key_holder` names the winner. Any other conflict is raised as it is."""
        try:
            with self._s.begin_nested():
                self._s.add(device)
                self._s.flush()
        except IntegrityError:
            if device.key_fingerprint is None or self.key_holder(device.key_fingerprint) is None:
                raise
            return False
        return True
