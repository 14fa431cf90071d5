"""Helpers shared by the integration and security tests: real services on real backends."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyotp
from sqlalchemy import func, select, text

from adapters.clock import FixedClock
from authsvc.domain import lockout
from authsvc.domain.roles import Actor
from authsvc.services import Deps, accounts, audit, logon, totp
from authsvc.services.accounts import Issued
from authsvc.services.passwords import change_password
from authsvc.services.sessions import Client
from authsvc.store.models import AuditEvent, Base

# Passwords a user may choose: each passes the rule (checked in the tests that use them).
CHOSEN = ("Kx7#vQm2pLz9", "Tr4!wNb8sYc6", "Hj5%eRd3uGk8", "Zq9&mWc4tPn7", "Fb2@yLs6hXv5",
          "Wd8^kMe3rQa4", "Np6$gTz9cJb2")


def add_contract(
    deps: Deps, actor: Actor, number: str = "C-2026-001", company: str = "防衛産業株式会社",
    starts_on: date | None = None, ends_on: date | None = None,
) -> None:
    starts_on = starts_on or deps.clock.now().date()
    accounts.create_contract(deps, actor, number, company, starts_on, ends_on)


def active_account(
    deps: Deps, creator: Actor, approver: Actor, user_id: str, name: str = "田中 太郎",
    contract: str = "C-2026-001", role: str = "user", person_id: int | None = None,
) -> Issued:
    """An account created by `creator` and approved by `approver`; returns its initial password."""
    issued = accounts.create_account(deps, creator, user_id, name, contract, role,
                                     person_id=person_id)
    accounts.approve_identifier(deps, approver, user_id)
    return issued


def ready(
    deps: Deps, creator: Actor, approver: Actor, user_id: str, password: str = CHOSEN[0], *,
    name: str = "田中 太郎", contract: str = "C-2026-001", role: str = "user",
    person_id: int | None = None,
) -> None:
    """An approved account whose initial password has been changed to `password`."""
    active_account(deps, creator, approver, user_id, name=name, contract=contract, role=role,
                   person_id=person_id)
    change_password(deps, Actor(user_id), user_id, password)


def totp_now(deps: Deps, secret: str) -> str:
    """The TOTP code of `secret` at the current time step of `deps.clock`."""
    return pyotp.TOTP(secret).at(deps.clock.now())


def next_totp(deps: Deps, secret: str) -> str:
    """A fresh TOTP code of `secret`: the clock moves on one time step first (each code counts once)."""
    deps.clock.advance(seconds=30)
    return totp_now(deps, secret)


def confirmed_totp(deps: Deps, user_id: str) -> str:
    """Enrol and confirm `user_id`'s TOTP app, as that user; returns its secret."""
    made = totp.begin_enrolment(deps, Actor(user_id), user_id)
    totp.confirm_enrolment(deps, Actor(user_id), user_id, totp_now(deps, made.secret))
    return made.secret


def totp_worker(deps: Deps, operator: Actor, account_admin: Actor, password: str = CHOSEN[0]) -> str:
    """kato under the default contract (added first): password changed to `password`, a
    confirmed TOTP app; returns its secret."""
    ready(deps, account_admin, operator, "kato", password)
    return confirmed_totp(deps, "kato")


def password_step(deps: Deps, user_id: str, password: str, terminal: str = "", source: str = "",
                  remote: bool = False) -> logon.State:
    """A logon's first step (ID and password) through its one entry point, `logon.begin`, from
    `terminal` and `source`. Asserts nothing: the caller checks the State -- `logon.FAILED`
    when refused; CHANGE_PASSWORD after an initial password (R2); otherwise the step the
    user's second factors lead to: SECOND_FACTOR with one enrolled, and with none REGISTER,
    palm vein being among the tests' second factors (tests/conftest.py)."""
    return logon.begin(deps, user_id, password, Client(terminal, source, remote))


@dataclass(frozen=True)
class Event:
    seq: int
    actor: str
    action: str
    subject: str
    result: str
    terminal: str
    source: str
    detail: str

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.detail)


def events(deps: Deps, action: str | None = None, subject: str | None = None) -> list[Event]:
    """Audit events (read through the unit of work) in chain order, optionally filtered."""
    audit.seal(deps)
    with deps.uow() as uow:
        rows = [Event(r.seq, r.actor, r.action, r.subject, r.result, r.terminal, r.source,
                      r.detail)
                for r in uow.audit_events([subject] if subject else None, limit=100_000)
                if action is None or r.action == action]
    return sorted(rows, key=lambda r: r.seq)


def pseudonym(deps: Deps, submitted: str) -> str:
    """The key and audit subject a logon attempt by an unknown identifier is recorded under."""
    key = lockout.throttle_key(submitted, deps.audit_key, lambda _k: False)
    assert key.startswith(lockout.UNKNOWN_PREFIX)
    return key


def audit_count(deps: Deps) -> int:
    """Events in the chain (sealed first: on PostgreSQL the sequencer seals after commits)."""
    audit.seal(deps)
    with deps.uow() as uow:
        return uow.session.scalar(select(func.count(AuditEvent.seq))) or 0


def row_counts(deps: Deps) -> dict[str, int]:
    """How many rows every table holds: a snapshot to show an action wrote nothing. (Sealed
    first; the sequencer's own bookkeeping, `audit_writers`, is not counted.)"""
    audit.seal(deps)
    with deps.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in Base.metadata.sorted_tables if t.name != "audit_writers"}


def dump_all(deps: Deps) -> str:
    """Every column of every row of every table, as text."""
    parts: list[str] = []
    with deps.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.extend(f"{table.name}.{k}={v!s}" for k, v in row._mapping.items())
    return "\n".join(parts)


def set_time(clock: FixedClock, moment: datetime) -> None:
    clock.advance(seconds=(moment - clock.now()).total_seconds())


def sql(deps: Deps, statement: str, **params: Any) -> None:
    with deps.engine.begin() as conn:
        conn.execute(text(statement), params)
