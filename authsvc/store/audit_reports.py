"""Queries of the audit reports (R22; 004 第9 1(2)): the events of a period streamed in chain
order, and what attributes each to a company (the accounts' and service clients' companies),
the accounts with their last use, and the alerts of a period."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from authsvc.store.models import Account, Alert, AuditEvent, Contract, ServiceClient

# The columns a report reads (never prev_hash, hash, mac): one tuple per event.
_COLUMNS = (AuditEvent.seq, AuditEvent.ts, AuditEvent.actor, AuditEvent.action, AuditEvent.subject,
            AuditEvent.result, AuditEvent.terminal, AuditEvent.source, AuditEvent.detail)


class EventRow(NamedTuple):
    seq: int
    ts: str
    actor: str
    action: str
    subject: str
    result: str
    terminal: str
    source: str
    detail: str


class AccountRow(NamedTuple):
    user_id: str
    company: str
    role: str
    status: str
    created_at: datetime
    status_changed_at: datetime
    last_used_at: datetime | None


class AlertRow(NamedTuple):
    company: str | None
    subject: str
    detail: str
    raised_at: datetime


class AuditReports:
    def __init__(self, session: Session) -> None:
        self._s = session

    def events(self, since_ts: str, until_ts: str, batch: int = 2000) -> Iterator[EventRow]:
        """The events with `since_ts` <= ts < `until_ts` (ISO 8601 in JST: every stored ts
        carries +09:00, so the strings order as the instants do), in chain order, streamed in
        batches by seq (keyset), never the whole period in memory at once."""
        after = 0
        while True:
            rows = self._s.execute(
                select(*_COLUMNS).where(AuditEvent.seq > after, AuditEvent.ts >= since_ts,
                                        AuditEvent.ts < until_ts)
                .order_by(AuditEvent.seq).limit(batch)
            ).all()
            if not rows:
                return
            for r in rows:
                yield EventRow(*r)
            after = rows[-1][0]

    def account_companies(self) -> dict[str, str]:
        """Each user ID (lower case, as identifiers compare) to the company of its newest
        account's contract: an identifier reused after its tombstone belongs to its new holder."""
        rows = self._s.execute(select(Account.user_id, Contract.company)
                               .join(Contract, Contract.id == Account.contract_id)
                               .order_by(Account.id)).all()
        return {user_id.lower(): company for user_id, company in rows}

    def client_companies(self) -> dict[str, str | None]:
        """Each service client's ID to its company (None: the agency's)."""
        rows = self._s.execute(select(ServiceClient.client_id, ServiceClient.company)
                               .order_by(ServiceClient.id)).all()
        return {client_id.lower(): company for client_id, company in rows}

    def accounts(self, company: str | None) -> list[AccountRow]:
        """The accounts (of `company`; None: of every company), with their last use, by user ID."""
        q = (select(Account.user_id, Contract.company, Account.role, Account.status,
                    Account.created_at, Account.status_changed_at, Account.last_used_at)
             .join(Contract, Contract.id == Account.contract_id).order_by(Account.user_id, Account.id))
        if company is not None:
            q = q.where(Contract.company == company)
        return [AccountRow(*r) for r in self._s.execute(q).all()]

    def companies(self) -> list[str]:
        """Every company with a contract, by name."""
        return list(self._s.scalars(select(Contract.company).distinct().order_by(Contract.company)))

    def alerts(self, kind: str, since: datetime, until: datetime) -> list[AlertRow]:
        """The alerts of `kind` raised in [since, until), oldest first."""
        rows = self._s.execute(select(Alert.company, Alert.subject, Alert.detail, Alert.raised_at)
                               .where(Alert.kind == kind, Alert.raised_at >= since, Alert.raised_at < until)
                               .order_by(Alert.raised_at, Alert.id)).all()
        return [AlertRow(*r) for r in rows]
