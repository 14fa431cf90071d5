"""Queries of the service clients (R6): processes with identifiers of their own."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from authsvc.store.models import Identifier, ServiceClient


class ServiceClients:
    def __init__(self, session: Session) -> None:
        self._s = session

    def by_identifier(self, value: str, lock: bool = False) -> ServiceClient | None:
        """The client currently holding the identifier `value` (canonical), or None (unknown,
        not a service client's, or released by a revocation). `lock`: SELECT … FOR UPDATE on
        the client's row."""
        ident = self._s.scalars(select(Identifier).where(Identifier.value == value)).first()
        if ident is None or ident.kind != "service" or ident.holder_id is None:
            return None
        return self.get(ident.holder_id, lock=lock)

    def get(self, row_id: int, lock: bool = False) -> ServiceClient | None:
        q = select(ServiceClient).where(ServiceClient.id == row_id)
        return self._s.scalars(q.with_for_update() if lock else q).first()

    def all(self) -> list[ServiceClient]:
        """Every client row, in every state, by client ID (then oldest first)."""
        return list(self._s.scalars(select(ServiceClient).order_by(ServiceClient.client_id,
                                                                   ServiceClient.id)))

    def add(self, client: ServiceClient) -> None:
        """Insert a new client row (flushed, so it has its id)."""
        self._s.add(client)
        self._s.flush()
