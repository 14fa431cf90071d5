"""The unit of work: one database transaction, the repository queries the services need, and
the audit event of each action written inside that same transaction (sealed into the hash chain
at once on SQLite, by the sequencer after the commit on PostgreSQL: store/audit_chain.py)."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import and_, delete, exists, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from adapters import metrics
from adapters.checkpoints import Checkpointer
from authsvc.domain import audit as chain
from authsvc.domain.calendar import jst_iso
from authsvc.domain.roles import Actor
from authsvc.store.alerts import Alerts
from authsvc.store.applications import Applications
from authsvc.store.audit_chain import AuditUnavailable, Sequencer, Writer, check_head
from authsvc.store.audit_reports import AuditReports
from authsvc.store.biometrics import Biometrics
from authsvc.store.credentials import Credentials
from authsvc.store.db import read_session
from authsvc.store.devices import Devices
from authsvc.store.directory import Directory
from authsvc.store.groups import Groups
from authsvc.store.identifiers import Identifiers
from authsvc.store.models import (
    Account,
    AuditArchive,
    AuditEvent,
    AuditHead,
    Challenge,
    Contract,
    Identifier,
    LogonHistory,
    PasswordHistory,
    Person,
    TotpCredential,
    VeinEnrolment,
    WebauthnCredential,
)
from authsvc.store.oidc import Oidc
from authsvc.store.registrations import Registrations
from authsvc.store.service_clients import ServiceClients

log = logging.getLogger("authsvc.audit")
SERIALIZE_LOCK = 0x656E726F  # PostgreSQL advisory lock of `serialize` ('enro')
_EVENT_COLUMNS = (*(c for c in chain.FIELDS if c != "seq"), "writer", "wseq", "emac")
# An unsealed event, inserted only where the chain's head exists (one statement, no lock): a
# constant statement, so the hot path builds nothing per event (PostgreSQL only).
_INSERT_WHERE_HEAD = text(
    f"INSERT INTO audit_events ({', '.join(_EVENT_COLUMNS)}) "  # noqa: S608 - constant names
    f"SELECT {', '.join(':' + c for c in _EVENT_COLUMNS)} "
    "WHERE EXISTS (SELECT 1 FROM audit_head WHERE id = 1) RETURNING id")


def _alert(exc: BaseException, action: str) -> None:
    log.critical("ALERT audit log cannot be written (%s): %s refused", type(exc).__name__, action)


__all__ = ["AuditUnavailable", "UnitOfWork"]


class UnitOfWork:
    def __init__(self, sessions: sessionmaker[Session], audit_key: bytes, read_only: bool = False,
                 checkpointer: Checkpointer | None = None, snapshot: bool = False,
                 sequencer: Sequencer | None = None) -> None:
        self._sessions = sessions
        self._sequencer = sequencer if sequencer is not None and not sequencer.inline else None
        self._audit_key = audit_key
        self._read_only = read_only
        self._checkpointer = checkpointer
        self._snapshot = snapshot
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = (read_session(self._sessions, self._snapshot) if self._read_only
                        else self._sessions())
        self._audited = ""  # the last action audited in this transaction
        self._head: tuple[int, str] | None = None  # the chain's head after this transaction
        self._writer: Writer | None = None  # sequenced: this transaction's writer ...
        self._wseq = 0                      # ... and the position of its last event here
        # the repositories, one per aggregate, all in this one transaction
        self.registrations = Registrations(self.session)
        self.credentials = Credentials(self.session)
        self.devices = Devices(self.session)
        self.biometrics = Biometrics(self.session)
        self.groups = Groups(self.session)
        self.alerts = Alerts(self.session)
        self.audit_reports = AuditReports(self.session)
        self.identifiers = Identifiers(self.session)
        self.service_clients = ServiceClients(self.session)
        self.oidc = Oidc(self.session)
        self.directory = Directory(self.session)
        self.applications = Applications(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.session.rollback()  # no-op after commit; undoes everything otherwise
        self.session.close()
        if self._writer is not None and self._sequencer is not None:  # its events rolled back
            self._sequencer.writers.give_back(self._writer)
            self._writer = None

    def commit(self) -> None:
        try:
            self.session.commit()
        except BaseException as exc:
            self._writer = None  # the outcome is unknown: this writer's numbers end here
            if self._audited and isinstance(exc, SQLAlchemyError):
                _alert(exc, self._audited)
            raise
        if self._writer is not None and self._sequencer is not None:
            self._writer.last = self._wseq
            self._sequencer.writers.give_back(self._writer)
            self._writer = None
            self._sequencer.committed()  # sealed into the chain by the sequencer (R22)
        if self._head is not None and self._checkpointer is not None:
            self._checkpointer.note(*self._head)  # anchored outside the database (R22)

    def add(self, obj: object) -> None:
        self.session.add(obj)
        self.session.flush()

    # ---- repositories -------------------------------------------------------------------

    def identifier(self, value: str, lock: bool = False) -> Identifier | None:
        q = select(Identifier).where(Identifier.value == value)
        return self.session.scalars(q.with_for_update() if lock else q).first()

    def account(self, canonical_id: str, lock: bool = False) -> Account | None:
        """The account currently holding the identifier (deleted accounts hold none)."""
        ident = self.identifier(canonical_id)
        if ident is None or ident.holder_id is None or ident.kind != "account":
            return None
        q = select(Account).where(Account.id == ident.holder_id)
        return self.session.scalars(q.with_for_update(of=Account) if lock else q).first()

    def holder(self, canonical_id: str) -> tuple[Identifier | None, Account | None]:
        """The identifier and its current account in one query (the logon's hot path)."""
        row = self.session.execute(
            select(Identifier, Account)
            .outerjoin(Account, and_(Account.id == Identifier.holder_id, Identifier.kind == "account"))
            .where(Identifier.value == canonical_id)
        ).first()
        return (row[0], row[1]) if row else (None, None)

    def account_for_update(self, account_id: int) -> Account | None:
        q = select(Account).where(Account.id == account_id).with_for_update(of=Account)
        return self.session.scalars(q).first()

    def enrolled_factors(self, account_id: int, person_id: int) -> tuple[str, ...]:
        """The second factors the account (and its person, for palm vein) has, in one round trip."""
        checks = {
            "vein": exists().where(VeinEnrolment.person_id == person_id,
                                   VeinEnrolment.disabled_at.is_(None)),
            "totp": exists().where(TotpCredential.account_id == account_id,
                                   TotpCredential.confirmed_at.is_not(None)),
            "webauthn": exists().where(WebauthnCredential.account_id == account_id),
        }
        row = self.session.execute(select(*checks.values())).one()
        return tuple(f for f, has in zip(checks, row, strict=True) if has)

    def accounts(
        self, status: str | None = None, contract: str | None = None, role: str | None = None,
        company: str | None = None, name: str | None = None,
    ) -> list[Account]:
        """Accounts matching every filter given; `name` is a part of the person's name."""
        q = (select(Account).join(Contract).join(Person)
             .order_by(func.lower(Account.user_id), Account.id))
        if company:
            q = q.where(Contract.company == company)
        if name:
            q = q.where(Person.name.contains(name, autoescape=True))
        if status:
            q = q.where(Account.status == status)
        if contract:
            q = q.where(Contract.number == contract)
        if role:
            q = q.where(Account.role == role)
        return list(self.session.scalars(q))

    def accounts_of_person(self, person_id: int) -> list[Account]:
        return list(self.session.scalars(select(Account).where(Account.person_id == person_id)))

    def contract(self, number: str) -> Contract | None:
        return self.session.scalars(select(Contract).where(Contract.number == number)).first()

    def contracts(self) -> list[Contract]:
        return list(self.session.scalars(select(Contract).order_by(Contract.number)))

    def person(self, person_id: int) -> Person | None:
        return self.session.get(Person, person_id)

    def password_history(self, account_id: int, limit: int) -> list[PasswordHistory]:
        q = (
            select(PasswordHistory)
            .where(PasswordHistory.account_id == account_id)
            .order_by(PasswordHistory.id.desc())
            .limit(limit)
        )
        return list(self.session.scalars(q))

    def put_challenge(
        self, purpose: str, subject: str, data: dict[str, Any], expires_at: datetime
    ) -> str:
        """Store a single-use challenge; returns its unguessable id."""
        cid = secrets.token_urlsafe(32)
        self.add(Challenge(id=cid, purpose=purpose, subject=subject, data=json.dumps(data),
                           expires_at=expires_at))
        return cid

    def take_challenge(self, cid: str, purpose: str, subject: str, now: datetime) -> dict[str, Any] | None:
        """Consume a challenge: it exists, is for this purpose and subject, and has not expired.
        DELETE ... RETURNING makes it single-use even between concurrent requests (R11)."""
        if not isinstance(cid, str) or len(cid) > 64:
            return None
        row = self.session.execute(
            delete(Challenge).where(Challenge.id == cid).returning(
                Challenge.purpose, Challenge.subject, Challenge.data, Challenge.expires_at)
        ).first()
        self.session.execute(delete(Challenge).where(Challenge.expires_at <= now))  # tidy up
        if row is None or row.purpose != purpose or row.subject != subject or row.expires_at <= now:
            return None
        return dict(json.loads(row.data))

    def record_logon(
        self, now: datetime, subject: str, step: str, result: str, actor: Actor,
        reason: str = "", factors: str = "", remote: bool = False,
    ) -> None:
        """One row of the logon history (R9), in the same transaction as its audit event."""
        self.session.add(LogonHistory(
            subject=subject[:100], at=now, result=result, step=step, factors=factors[:100],
            terminal=actor.terminal[:100], source=actor.source[:100], remote=remote, reason=reason[:64]))

    def logon_history(self, subject: str, limit: int = 50) -> list[LogonHistory]:
        q = (select(LogonHistory).where(LogonHistory.subject == subject)
             .order_by(LogonHistory.id.desc()).limit(limit))
        return list(self.session.scalars(q))

    def count_accounts(self) -> int:
        return self.session.scalar(select(func.count(Account.id))) or 0

    # ---- audit chain ----------------------------------------------------------------------

    def audit(
        self,
        now: datetime,
        actor: Actor,
        action: str,
        subject: str,
        result: str = "ok",
        **detail: Any,
    ) -> None:
        """Append one event; it commits or rolls back together with the action it records.
        If the event cannot be written the action fails and operators are alerted (R22)."""
        if actor.maintenance:  # R26: every action of a maintenance account is flagged
            detail = {**detail, "maintenance_account": True}
        try:
            with metrics.audit_write():
                if self._sequencer is not None:
                    self._insert(now, actor, action, subject, result, detail)
                else:
                    self._append(now, actor, action, subject, result, detail)
        except (SQLAlchemyError, AuditUnavailable) as exc:
            _alert(exc, action)
            raise
        self._audited = action

    @staticmethod
    def _fields(now: datetime, actor: Actor, action: str, subject: str, result: str,
                detail: dict[str, Any]) -> dict[str, Any]:
        return {
            "ts": jst_iso(now),
            "actor": actor.id,
            "action": action,
            "subject": subject,
            "result": result,
            "terminal": actor.terminal,
            "source": actor.source,
            "detail": json.dumps(detail, sort_keys=True, ensure_ascii=False, default=str),
        }

    def _insert(
        self, now: datetime, actor: Actor, action: str, subject: str, result: str,
        detail: dict[str, Any],
    ) -> None:
        """The event as its writer's next, with its event MAC; no lock is taken: the sequencer
        seals it into the chain after the commit (store/audit_chain.py). The insert happens only
        where the chain's head exists, in the same statement; without one, the chain must be
        new (`audit_chain.check_head`: an erased or headless log refuses the action)."""
        assert self._sequencer is not None
        if self._writer is None:
            self._writer = self._sequencer.writers.take()
            self._wseq = self._writer.last
        self._wseq += 1
        fields = self._fields(now, actor, action, subject, result, detail)
        row = {**fields, "writer": self._writer.name, "wseq": self._wseq,
               "emac": chain.sign_event(self._audit_key, self._writer.name, self._wseq, fields)}
        done = self.session.scalar(_INSERT_WHERE_HEAD, row)
        if done is None:
            check_head(self.session, self._checkpointer)  # raises unless the chain is new
            self.session.add(AuditEvent(**row))
            self.session.flush()

    def _append(
        self, now: datetime, actor: Actor, action: str, subject: str, result: str,
        detail: dict[str, Any],
    ) -> None:
        """The event chained at once, under the head row (SQLite: its writers are serialised)."""
        head = self.session.scalars(
            select(AuditHead).where(AuditHead.id == 1).with_for_update()
        ).first()
        if head is None:
            check_head(self.session, self._checkpointer)  # raises unless the chain is new
            head = AuditHead(id=1, seq=0, hash=chain.GENESIS, mac="")
            self.session.add(head)
        fields = {"seq": head.seq + 1, **self._fields(now, actor, action, subject, result, detail)}
        digest = chain.chain_hash(head.hash, fields)
        event = AuditEvent(**fields, prev_hash=head.hash, hash=digest,
                           mac=chain.sign_row(self._audit_key, fields["seq"], digest))
        self.session.add(event)
        head.seq, head.hash = fields["seq"], digest
        head.mac = chain.sign_head(self._audit_key, head.seq, digest)
        self.session.flush()
        self._head = (head.seq, digest)

    def serialize(self) -> None:
        """Take the serialising lock now: a check-then-write that must not interleave with
        another (the 1:N search before an enrolment) takes this first, and the next one waits
        for this transaction. (SQLite's writers are serialized already.)"""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SERIALIZE_LOCK})

    def audit_head(self) -> AuditHead | None:
        return self.session.get(AuditHead, 1)

    def audit_rows(self, batch: int = 1000, after: int = 0,
                   upto: int | None = None) -> Iterator[dict[str, Any]]:
        """The audit rows after `after` (up to `upto`) in stored order, as plain dicts, streamed
        in batches."""
        while True:
            q = select(AuditEvent).where(AuditEvent.seq > after)
            if upto is not None:
                q = q.where(AuditEvent.seq <= upto)
            rows = self.session.scalars(q.order_by(AuditEvent.seq).limit(batch)).all()
            if not rows:
                return
            for r in rows:
                yield {c: getattr(r, c) for c in (*chain.FIELDS, "prev_hash", "hash", "mac")}
            after = rows[-1].seq

    def audit_archives(self) -> list[AuditArchive]:
        """The records of the archived runs of events, in sequence order."""
        return list(self.session.scalars(select(AuditArchive).order_by(AuditArchive.first_seq)))

    def audit_last_before(self, ts: str) -> int:
        """The newest sequence number of an event stamped before `ts` (0 for none)."""
        return int(self.session.scalar(select(func.max(AuditEvent.seq)).where(AuditEvent.ts < ts)) or 0)

    def archive_audit(self, record: AuditArchive) -> int:
        """Record an archive and delete the events it holds from the database, in this
        transaction; how many were deleted."""
        self.session.add(record)
        done = self.session.execute(delete(AuditEvent).where(AuditEvent.seq >= record.first_seq,
                                                             AuditEvent.seq <= record.last_seq)
                                    .execution_options(synchronize_session=False))
        self.session.flush()
        return int(done.rowcount)  # type: ignore[attr-defined]

    def audit_unchained(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Events not in the chain: unsealed (seq empty) or refused by the sequencer (seq < 0),
        oldest first."""
        q = (select(AuditEvent).where((AuditEvent.seq.is_(None)) | (AuditEvent.seq < 0))
             .order_by(AuditEvent.id).limit(limit))
        return [{c: getattr(r, c) for c in (*chain.FIELDS, "id", "writer", "wseq", "emac")}
                for r in self.session.scalars(q)]

    def audit_events(self, subjects: list[str] | None = None, limit: int = 100) -> list[AuditEvent]:
        """The newest events first (by when they were written; sealed or not)."""
        q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if subjects:
            q = q.where(func.lower(AuditEvent.subject).in_([x.lower() for x in subjects]))
        return list(self.session.scalars(q))
