"""Use cases, one module per capability. A service takes plain values and the ports it needs
(bundled in `Deps`), returns plain results or raises a domain error; it never imports Flask."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from adapters.checkpoints import Checkpointer
from authsvc.domain.hashing import Hasher
from authsvc.domain.passwords import Rule
from authsvc.domain.sealing import Sealer
from authsvc.ports import Clock, Counters, SessionStore, VeinReader
from authsvc.settings import Settings
from authsvc.store.uow import UnitOfWork


@dataclass(frozen=True)
class Deps:
    settings: Settings
    uow: Callable[..., UnitOfWork]  # uow() for a transaction; uow(read_only=True) to read
    clock: Clock
    hasher: Hasher
    audit_key: bytes
    engine: Engine
    counters: Counters
    sessions: SessionStore
    sealer: Sealer
    vein: VeinReader  # the matcher (server side: no capture unit)
    checkpointer: Checkpointer | None = None  # the audit chain's anchor outside the database

    @property
    def rule(self) -> Rule:
        p = self.settings.password
        return Rule(min_length=p.min_length, max_length=p.max_length, min_classes=p.min_classes)
