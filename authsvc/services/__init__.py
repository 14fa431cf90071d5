"""Use cases, one module per capability. A service takes plain values and the ports it needs
(bundled in `Deps`), returns plain results or raises a domain error; it never imports Flask."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adapters.checkpoints import Checkpointer
from authsvc.domain.passwords import Rule
from authsvc.ports import (
    Blocklist,
    Clock,
    Counters,
    Holidays,
    PasswordHasher,
    ReplayCheck,
    Sealer,
    SessionStore,
    SigningKeys,
    VeinReader,
)
from authsvc.settings import Settings
from authsvc.store.audit_chain import Sequencer
from authsvc.store.uow import UnitOfWork


@dataclass(frozen=True)
class Deps:
    settings: Settings
    # uow() for a transaction; uow(read_only=True) to read; snapshot=True: one consistent state
    uow: Callable[..., UnitOfWork]
    clock: Clock
    hasher: PasswordHasher
    audit_key: bytes
    engine: Any  # the SQL store's engine, for tools and tests that reach the database directly
    counters: Counters
    sessions: SessionStore
    sealer: Sealer
    vein: VeinReader  # the matcher (server side: no capture unit)
    replay: ReplayCheck  # the replayed-palm-sample check (keyed from the audit key)
    holidays: Holidays  # public holidays, for the business-day calendar (R7)
    blocklist: Blocklist  # common and breached passwords, for the password rule (R1)
    signing_keys: SigningKeys  # the OpenID provider's signing keys (files, outside the database)
    checkpointer: Checkpointer | None = None  # the audit chain's anchor outside the database
    sequencer: Sequencer | None = None  # seals audit events into the chain (store/audit_chain.py)
    # a company's directory ([9 of 12]): its LdapDirectory (adapters/directory), None for none
    directories: Callable[[str], Any] | None = None

    def seal_audit(self, wait: bool = True) -> int:
        """Seal every committed audit event into the chain now (the sequencer does it after each
        commit; the chain's readers call this first). How many were sealed; with `wait` False,
        nothing is done while another pass is sealing. Nothing to do on SQLite or the fakes."""
        return (self.sequencer.seal(wait) or 0) if self.sequencer is not None else 0

    @property
    def rule(self) -> Rule:
        p = self.settings.password
        return Rule(min_length=p.min_length, max_length=p.max_length, min_classes=p.min_classes)
