"""Queries of usage applications ([11 of 12], R21): companies, the applications and their
steps, and the rosters of each contract. New rows go in through `add…` (flushed, so ids are
assigned at that call); `lock` takes the rows FOR UPDATE (SQLite's writers are serialized)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from authsvc.store.models import Application, Company, Contract, Device, RosterEntry


class Applications:
    def __init__(self, session: Session) -> None:
        self._s = session

    # ---- companies -------------------------------------------------------------------------

    def company(self, name: str, lock: bool = False) -> Company | None:
        q = select(Company).where(Company.name == name)
        return self._s.scalars(q.with_for_update() if lock else q).first()

    def companies(self) -> list[Company]:
        return list(self._s.scalars(select(Company).order_by(Company.name)))

    def add_company(self, company: Company) -> None:
        self._s.add(company)
        self._s.flush()

    # ---- contracts -------------------------------------------------------------------------

    def contract_by_id(self, contract_id: int) -> Contract | None:
        return self._s.get(Contract, contract_id)

    def subcontracts(self, prime_contract_id: int) -> list[Contract]:
        return list(self._s.scalars(select(Contract).where(Contract.prime_contract_id == prime_contract_id)
                                    .order_by(Contract.number)))

    # ---- applications ----------------------------------------------------------------------

    def add(self, application: Application) -> None:
        self._s.add(application)
        self._s.flush()

    def get(self, application_id: int, lock: bool = False) -> Application | None:
        q = select(Application).where(Application.id == application_id)
        return self._s.scalars(q.with_for_update() if lock else q).first()

    def listed(self, companies: list[str] | None = None, state: str | None = None,
               limit: int = 500) -> list[Application]:
        """Applications, newest first: of these companies (as the contract's company or as the
        submitter's), or every one (None)."""
        q = select(Application).order_by(Application.id.desc()).limit(limit)
        if companies is not None:
            q = q.where(Application.company.in_(companies) | Application.submitter_company.in_(companies))
        if state:
            q = q.where(Application.state == state)
        return list(self._s.scalars(q))

    # ---- rosters ---------------------------------------------------------------------------

    def roster(self, contract_id: int, kind: str) -> list[RosterEntry]:
        return list(self._s.scalars(select(RosterEntry).where(
            RosterEntry.contract_id == contract_id, RosterEntry.kind == kind).order_by(RosterEntry.id)))

    def replace_roster(self, contract_id: int, kind: str, entries: list[RosterEntry]) -> int:
        """The contract's roster of this kind becomes `entries`; how many it held before."""
        done = self._s.execute(delete(RosterEntry).where(RosterEntry.contract_id == contract_id,
                                                         RosterEntry.kind == kind)
                               .execution_options(synchronize_session=False))
        self._s.add_all(entries)
        self._s.flush()
        return int(done.rowcount)  # type: ignore[attr-defined]

    # ---- removable media (003 6②: a device kind) --------------------------------------------

    def media(self, device_id: str) -> list[Device]:
        """The media rows registered under this device ID (media:<serial>), in every state."""
        return list(self._s.scalars(select(Device).where(Device.kind == "media",
                                                         Device.device_id == device_id)
                                    .order_by(Device.id)))

    def add_media(self, device: Device) -> None:
        self._s.add(device)
        self._s.flush()
