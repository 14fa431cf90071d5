"""Writes to the one namespace of identifiers of accounts, devices and service processes (R6)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authsvc.store.models import Identifier


class Identifiers:
    def __init__(self, session: Session) -> None:
        self._s = session

    def claim(self, ident: Identifier) -> bool:
        """Insert a new identifier row (flushed now). False if a concurrent transaction took
        the same value first: the primary key settles the race (on PostgreSQL the insert waits
        for the other transaction, then violates it). Only the insert is undone then (a
        savepoint); the caller refuses the action."""
        try:
            with self._s.begin_nested():
                self._s.add(ident)
                self._s.flush()
        except IntegrityError:
            return False
        return True
