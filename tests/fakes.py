"""In-memory fakes of our own ports (authsvc/ports.py) and of the unit of work, for fast
service-level tests over `fake_deps()`. Each runs the same contract tests as the real
implementations (tests/integration/test_counters.py, test_session_stores.py,
test_unit_of_work.py), so a test over a fake means what it would over Redis or SQL."""

from __future__ import annotations

import copy
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache
from types import TracebackType
from typing import Any

from adapters.blocklist import BadPasswordsBlocklist
from adapters.checkpoints import Checkpointer
from adapters.clock import FixedClock
from adapters.hashing import Hasher
from adapters.holidays import JpHolidays
from adapters.oidc_keys import KeyRing
from adapters.sealing import Sealer
from adapters.vein import LshReplayCheck, open_reader
from authsvc.domain import audit as chain
from authsvc.domain import lockout
from authsvc.domain.audit import Checkpoint
from authsvc.domain.calendar import jst_iso
from authsvc.domain.registration import FINAL, State
from authsvc.domain.roles import Actor
from authsvc.domain.tokens import new_token, session_id
from authsvc.services import Deps
from authsvc.store.credentials import TOTP_ENROL
from authsvc.store.models import (
    Account,
    Alert,
    Application,
    AuditEvent,
    AuditHead,
    Challenge,
    Company,
    Consent,
    Contract,
    Device,
    Evidence,
    Group,
    GroupMember,
    Identifier,
    LogonHistory,
    OidcCode,
    OidcGrant,
    OidcLogout,
    PasswordHistory,
    Person,
    RegistrationSession,
    RosterEntry,
    ServiceClient,
    TotpCredential,
    VeinEnrolment,
    WebauthnCredential,
)
from authsvc.store.uow import AuditUnavailable
from tests.conftest import START, make_settings


class MemoryCounters:
    """`authsvc.ports.Counters` in a dict, one lock for every operation."""

    def __init__(self, pending_seconds: int = 30) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[int, datetime | None, dict[str, datetime]]] = {}
        self._pending = timedelta(seconds=pending_seconds)

    def consume(self, key: str, now: datetime, max_failures: int, lock_minutes: int) -> lockout.Decision:
        with self._lock:
            failures, locked_until, flight = self._keys.get(key, (0, None, {}))
            live = {a: t for a, t in flight.items() if t > now}
            decision = lockout.consume(failures, len(live), locked_until, now, max_failures, lock_minutes)
            if decision.allowed:
                decision = replace(decision, attempt=new_token()[:16])
                live[decision.attempt] = now + self._pending
            self._keys[key] = (decision.failures, decision.locked_until, live)
            return decision

    def fail(self, key: str, attempt: str, now: datetime, max_failures: int,
             lock_minutes: int) -> lockout.Failure:
        with self._lock:
            failures, locked_until, flight = self._keys.get(key, (0, None, {}))
            failure = lockout.fail(failures, locked_until, now, max_failures, lock_minutes)
            flight.pop(attempt, None)
            self._keys[key] = (failure.failures, failure.locked_until, flight)
            return failure

    def release(self, key: str, attempt: str) -> None:
        with self._lock:
            if key in self._keys:
                self._keys[key][2].pop(attempt, None)

    def succeed(self, key: str) -> None:
        with self._lock:
            if key in self._keys:
                self._keys[key] = (0, None, self._keys[key][2])

    def peek(self, key: str, now: datetime) -> tuple[int, datetime | None]:
        with self._lock:
            failures, locked_until, _ = self._keys.get(key, (0, None, {}))
            if locked_until is not None and locked_until <= now:
                return 0, None
            return failures, locked_until

    def reset(self, key: str, now: datetime) -> tuple[int, bool]:
        with self._lock:
            failures, locked_until, _ = self._keys.pop(key, (0, None, {}))
            return failures, bool(locked_until and locked_until > now)


class MemorySessions:
    """`authsvc.ports.SessionStore` in a dict, keyed by the token's hash like the real ones;
    time from the given clock function."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[str | None, str, datetime]] = {}  # sid -> user, JSON, expiry

    def _live(self, sid: str) -> tuple[str | None, str, datetime] | None:
        row = self._rows.get(sid)
        return row if row is not None and row[2] > self._now() else None

    def put(self, token: str, data: dict[str, Any], user_id: str | None, ttl_s: int) -> None:
        with self._lock:
            expires = self._now() + timedelta(seconds=ttl_s)
            self._rows[session_id(token)] = (user_id, json.dumps(data), expires)

    def get(self, token: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._live(session_id(token))
            return None if row is None else dict(json.loads(row[1]))

    def take(self, token: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._live(session_id(token))
            self._rows.pop(session_id(token), None)
            return None if row is None else dict(json.loads(row[1]))

    def delete(self, token: str) -> None:
        self.delete_id(session_id(token))

    def of_user(self, user_id: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {sid: dict(json.loads(row[1])) for sid in list(self._rows)
                    if (row := self._live(sid)) is not None and row[0] == user_id}

    def delete_id(self, sid: str) -> None:
        with self._lock:
            self._rows.pop(sid, None)

    def delete_user(self, user_id: str) -> int:
        with self._lock:
            mine = [sid for sid, row in self._rows.items() if row[0] == user_id]
            live = sum(1 for sid in mine if self._live(sid) is not None)
            for sid in mine:
                del self._rows[sid]
            return live

    def dump(self) -> str:
        with self._lock:
            return repr(copy.deepcopy(self._rows))


class MemoryCheckpoints:
    """`authsvc.ports.CheckpointStore` in a list (signed like the file store)."""

    folder = "memory"

    def __init__(self, key: bytes, now: Callable[[], datetime]) -> None:
        self._key, self._now, self.lines = key, now, []

    def append(self, seq: int, head_hash: str, kind: str = "head",
               at: datetime | None = None) -> Checkpoint:
        cp = Checkpoint(seq, head_hash, (at or self._now()).isoformat(timespec="microseconds"),
                        kind).signed(self._key)
        self.lines.append(cp)
        return cp

    def read(self) -> tuple[list[Checkpoint], list[str]]:
        return list(self.lines), []


# ---- the unit of work ------------------------------------------------------------------------
# A fake of `authsvc.store.uow.UnitOfWork` over ORM model instances held in memory (no session,
# no database). One `MemoryDatabase` per fake deployment: every `deps.uow()` of it sees the
# others' committed changes. A transaction works on its own copies of the rows and publishes
# copies of them at commit, so an uncommitted one leaves nothing behind and a reader never sees
# a writer's work in progress; a writer holds the database's one lock from open to close (like
# SQLite's BEGIN IMMEDIATE), so the transactions that write are serialised. That lock is also why
# the repositories' `lock=True` (SELECT ... FOR UPDATE) is a no-op here.

# rows that change after they are written, by primary key; each transaction copies them
_MUTABLE = (Contract, Person, Identifier, Account, AuditHead, Challenge, TotpCredential,
            WebauthnCredential, Device, VeinEnrolment, Consent, RegistrationSession, Evidence,
            Group, GroupMember, Alert, ServiceClient, OidcCode, OidcGrant, OidcLogout,
            Company, Application, RosterEntry)
# rows that are only ever appended: shared between transactions, never copied
_APPENDED = (AuditEvent, LogonHistory, PasswordHistory)
_LOCK_TIMEOUT_S = 30.0  # SQLite's busy_timeout: a writer waiting longer fails, it never hangs
_FINAL = {s.value for s in FINAL}  # registration sessions that are over


def _pk(cls: type) -> str:
    [column] = cls.__table__.primary_key.columns  # type: ignore[attr-defined]
    return str(column.key)


def _key_of(row: Any) -> Any:
    """The row's primary key: its value, or a tuple for a composite key (a group membership)."""
    columns = type(row).__table__.primary_key.columns  # type: ignore[attr-defined]
    if len(columns) == 1:
        return getattr(row, next(iter(columns)).key)
    return tuple(getattr(row, c.key) for c in columns)


def _clone(row: Any) -> Any:
    cls = type(row)
    return cls(**{c.key: getattr(row, c.key) for c in cls.__table__.columns})


@dataclass
class _Tables:
    rows: dict[type, dict[Any, Any]] = field(default_factory=lambda: {c: {} for c in _MUTABLE})
    logs: dict[type, list[Any]] = field(default_factory=lambda: {c: [] for c in _APPENDED})
    next_id: dict[type, int] = field(default_factory=dict)

    def copy(self) -> _Tables:
        rows = {cls: {k: _clone(r) for k, r in table.items()} for cls, table in self.rows.items()}
        for acc in rows[Account].values():
            _link(rows, acc)
        return _Tables(rows, {cls: list(log) for cls, log in self.logs.items()}, dict(self.next_id))


def _link(rows: dict[type, dict[Any, Any]], acc: Account) -> None:
    """Set an account's relationships from its foreign keys (what the ORM's joined load does)."""
    acc.person = rows[Person].get(acc.person_id)  # type: ignore[assignment]
    acc.contract = rows[Contract].get(acc.contract_id)  # type: ignore[assignment]


class MemoryDatabase:
    """The committed state of one fake deployment, and its writer lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writer: int | None = None  # the thread holding the lock
        self.committed = _Tables()

    def rows(self, cls: type) -> list[Any]:
        """The committed rows of a model, for tests to look at (copies: changing them does nothing)."""
        state = self.committed
        found = state.rows[cls].values() if cls in state.rows else state.logs[cls]
        return [_clone(r) for r in found]

    def counts(self) -> dict[str, int]:
        """How many committed rows each table holds (`tests.integration.support.row_counts`)."""
        state = self.committed
        return {cls.__tablename__: len(t)  # type: ignore[attr-defined]
                for cls, t in (*state.rows.items(), *state.logs.items())}

    def dump(self) -> str:
        """Every column of every committed row, as text (`tests.integration.support.dump_all`)."""
        state = self.committed
        return "\n".join(f"{cls.__tablename__}.{c.key}={getattr(r, c.key)!s}"  # type: ignore[attr-defined]
                         for cls, t in (*state.rows.items(), *state.logs.items())
                         for r in (t.values() if isinstance(t, dict) else t)
                         for c in cls.__table__.columns)  # type: ignore[attr-defined]


class _Repository:
    """What the fake repositories share: the rows of the transaction they were opened in."""

    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def _table(self, cls: type) -> dict[Any, Any]:
        return self._uow._t.rows[cls]

    def _where(self, cls: type, **equal: Any) -> list[Any]:
        """The rows whose columns equal the given values, in the order they were added."""
        return [r for r in self._table(cls).values()
                if all(getattr(r, k) == v for k, v in equal.items())]

    def _first(self, cls: type, **equal: Any) -> Any:
        return next(iter(self._where(cls, **equal)), None)

    def _delete(self, row: Any) -> None:
        self._table(type(row)).pop(_key_of(row), None)


class _MemoryIdentifiers(_Repository):
    def claim(self, ident: Identifier) -> bool:
        if self._uow.identifier(ident.value) is not None:
            return False
        self._uow.add(ident)
        return True


class _MemoryCredentials(_Repository):
    """`authsvc.store.credentials.Credentials`: TOTP and WebAuthn."""

    def totp_of(self, account_id: int) -> TotpCredential | None:
        return self._first(TotpCredential, account_id=account_id)

    def _pending(self, subject: str) -> list[Challenge]:
        return self._where(Challenge, purpose=TOTP_ENROL, subject=subject)

    def pending_totp(self, subject: str, now: datetime) -> dict[str, Any] | None:
        row = next((c for c in self._pending(subject) if c.expires_at > now), None)
        return None if row is None else dict(json.loads(row.data))

    def drop_pending_totp(self, subject: str) -> int:
        found = self._pending(subject)
        for row in found:
            self._delete(row)
        return len(found)

    def save_totp(self, credential: TotpCredential) -> None:
        self._uow.add(credential)  # one per account: a second one fails like the unique index

    def remove_totp(self, credential: TotpCredential) -> None:
        self._delete(credential)

    def claim_totp_step(self, account_id: int, sealed: str, step: int,
                        reseal: str | None = None) -> bool:
        cred = self.totp_of(account_id)
        if (cred is None or cred.secret != sealed or cred.confirmed_at is None
                or (cred.last_step is not None and cred.last_step >= step)):
            return False
        cred.last_step = step
        if reseal is not None:
            cred.secret = reseal
        return True

    def webauthn_of(self, account_id: int, lock: bool = False) -> list[WebauthnCredential]:
        return sorted(self._where(WebauthnCredential, account_id=account_id), key=lambda c: c.id)

    def webauthn_for_use(self, row_id: int) -> WebauthnCredential | None:
        return self._table(WebauthnCredential).get(row_id)

    def add_webauthn(self, credential: WebauthnCredential) -> bool:
        if self._first(WebauthnCredential, credential_id=credential.credential_id) is not None:
            return False
        self._uow.add(credential)
        return True

    def remove_webauthn(self, credential: WebauthnCredential) -> None:
        self._delete(credential)


class _MemoryDevices(_Repository):
    """`authsvc.store.devices.Devices`."""

    def by_identifier(self, value: str, lock: bool = False) -> Device | None:
        ident = self._uow.identifier(value)
        if ident is None or ident.kind != "device" or ident.holder_id is None:
            return None
        return self._table(Device).get(ident.holder_id)

    def last_status(self, value: str) -> str | None:
        mine = [d for d in self._table(Device).values() if d.device_id.lower() == value]
        return max(mine, key=lambda d: d.id).status if mine else None

    def key_holder(self, fingerprint: str) -> tuple[str, str] | None:
        found = self._first(Device, key_fingerprint=fingerprint)
        return None if found is None else (found.device_id, found.status)

    def all(self) -> list[Device]:
        return sorted(self._table(Device).values(), key=lambda d: d.device_id)

    def known_companies(self) -> list[str]:
        return list(dict.fromkeys(c.company for c in self._table(Contract).values()))

    def add(self, device: Device) -> bool:
        if device.key_fingerprint is not None and self.key_holder(device.key_fingerprint) is not None:
            return False  # the unique index on the fingerprint
        self._uow.add(device)
        return True


class _MemoryBiometrics(_Repository):
    """`authsvc.store.biometrics.Biometrics`."""

    def enrolment_of(self, person_id: int, lock: bool = False) -> VeinEnrolment | None:
        return self._first(VeinEnrolment, person_id=person_id)

    def remove(self, enrolment: VeinEnrolment) -> None:
        self._delete(enrolment)

    def is_enrolled(self, person_id: int) -> bool:
        return self.enrolment_of(person_id) is not None

    def other_templates(self, but_person_id: int) -> dict[int, str]:
        return {e.person_id: e.template for e in self._table(VeinEnrolment).values()
                if e.person_id != but_person_id}


class _MemoryRegistrations(_Repository):
    """`authsvc.store.registrations.Registrations`."""

    def consent_of(self, account_id: int) -> Consent | None:
        return self._first(Consent, account_id=account_id)

    def consented(self, account_id: int) -> bool:
        found = self.consent_of(account_id)
        return found is not None and bool(found.given)

    def save_consent(self, consent: Consent) -> None:
        self._uow.add(consent)

    def registrant_of(self, row: RegistrationSession) -> Account | None:
        return self._table(Account).get(row.account_id)

    def person_enrolled(self, person_id: int) -> bool:
        return self._first(VeinEnrolment, person_id=person_id) is not None

    def get(self, session_id: str, lock: bool = False) -> RegistrationSession | None:
        return self._table(RegistrationSession).get(session_id)

    def add_session(self, row: RegistrationSession) -> None:
        self._uow.add(row)

    def _live(self) -> list[RegistrationSession]:
        return [r for r in self._table(RegistrationSession).values() if r.state not in _FINAL]

    def live_of_account(self, account_id: int, lock: bool = False) -> list[RegistrationSession]:
        return [r for r in self._live() if r.account_id == account_id]

    def live_of_registrant(self, registrant: str) -> list[RegistrationSession]:
        mine = [r for r in self._live() if r.registrant.lower() == registrant.lower()]
        return sorted(mine, key=lambda r: r.opened_at, reverse=True)

    def waiting_for(self, company: str) -> list[RegistrationSession]:
        waiting = self._where(RegistrationSession, company=company, state=State.WAITING.value)
        return sorted(waiting, key=lambda r: r.opened_at)

    def live_inactive_since(self, cutoff: datetime, lock: bool = False) -> list[RegistrationSession]:
        return [r for r in self._live() if r.last_activity_at < cutoff]

    def recent(self, limit: int) -> list[RegistrationSession]:
        rows = self._table(RegistrationSession).values()
        return sorted(rows, key=lambda r: r.opened_at, reverse=True)[:limit]

    def add_evidence(self, evidence: Evidence) -> None:
        self._uow.add(evidence)

    def _held(self, session_id: str) -> list[Evidence]:
        return self._where(Evidence, session_id=session_id, destroyed_at=None)

    def evidence_held(self, session_id: str) -> int:
        return len(self._held(session_id))

    def latest_evidence(self, session_id: str) -> Evidence | None:
        return max(self._held(session_id), key=lambda e: e.id, default=None)

    def evidence_due(self, now: datetime, lock: bool = False) -> list[Evidence]:
        return [e for e in self._where(Evidence, destroyed_at=None) if e.retain_until <= now]


class _MemoryGroups(_Repository):
    """`authsvc.store.groups.Groups`."""

    def add(self, group: Group) -> bool:
        if self.named(group.company, group.name) is not None:
            return False  # the unique index on (company, name)
        self._uow.add(group)
        return True

    def named(self, company: str, name: str, lock: bool = False) -> Group | None:
        return self._first(Group, company=company, name=name)

    def of_company(self, company: str | None) -> list[Group]:
        rows = self._table(Group).values()
        return sorted((g for g in rows if company is None or g.company == company),
                      key=lambda g: (g.company, g.name))

    def member(self, group_id: int, account_id: int, lock: bool = False) -> GroupMember | None:
        return self._table(GroupMember).get((group_id, account_id))

    def members(self, group_id: int) -> list[tuple[GroupMember, str]]:
        accounts = self._table(Account)
        found = [(m, accounts[m.account_id].user_id) for m in self._where(GroupMember, group_id=group_id)]
        return sorted(found, key=lambda pair: pair[1])

    def add_member(self, member: GroupMember) -> None:
        self._uow.add(member)

    def remove_member(self, member: GroupMember) -> None:
        self._delete(member)

    def factor_policies(self, account_id: int) -> list[tuple[str, ...]]:
        groups = self._table(Group)
        return [tuple(json.loads(groups[m.group_id].factors))
                for m in self._where(GroupMember, account_id=account_id) if m.approved_at is not None]

    def memberships(self, account_id: int) -> list[Group]:
        groups = self._table(Group)
        return sorted((groups[m.group_id] for m in self._where(GroupMember, account_id=account_id)
                       if m.approved_at is not None), key=lambda g: g.name)


class _MemoryAlerts(_Repository):
    """`authsvc.store.alerts.Alerts`."""

    def add(self, alert: Alert) -> None:
        self._uow.add(alert)

    def get(self, alert_id: int, lock: bool = False) -> Alert | None:
        return self._table(Alert).get(alert_id)

    def inbox(self, company: str | None, everywhere: bool, open_only: bool, limit: int) -> list[Alert]:
        rows = [a for a in self._table(Alert).values()
                if (everywhere or a.company == company)
                and not (open_only and a.acknowledged_at is not None)]
        return sorted(rows, key=lambda a: (a.raised_at, a.id), reverse=True)[:limit]

    def recent(self, kind: str, since: datetime) -> int:
        return sum(1 for a in self._table(Alert).values() if a.kind == kind and a.raised_at >= since)

    def events_since(self, action: str, since_ts: str) -> int:
        return sum(1 for e in self._uow._t.logs[AuditEvent] if e.action == action and e.ts >= since_ts)


class _MemoryServiceClients(_Repository):
    """`authsvc.store.service_clients.ServiceClients`."""

    def by_identifier(self, value: str, lock: bool = False) -> ServiceClient | None:
        ident = self._uow.identifier(value)
        if ident is None or ident.kind != "service" or ident.holder_id is None:
            return None
        return self.get(ident.holder_id)

    def get(self, row_id: int, lock: bool = False) -> ServiceClient | None:
        return self._table(ServiceClient).get(row_id)

    def all(self) -> list[ServiceClient]:
        return sorted(self._table(ServiceClient).values(), key=lambda c: (c.client_id, c.id))

    def add(self, client: ServiceClient) -> None:
        self._uow.add(client)


class _MemoryOidc(_Repository):
    """`authsvc.store.oidc.Oidc`."""

    def add_code(self, code: OidcCode) -> None:
        self._uow.add(code)

    def code(self, code_hash: str) -> OidcCode | None:
        return self._table(OidcCode).get(code_hash)

    def redeem(self, code_hash: str, now: datetime) -> bool:
        found = self.code(code_hash)
        if found is None or found.used_at is not None:
            return False
        found.used_at = now
        return True

    def forget_codes(self, before: datetime) -> int:
        old = [c for c in self._table(OidcCode).values() if c.expires_at < before]
        for c in old:
            self._delete(c)
        return len(old)

    def add_grant(self, grant: OidcGrant) -> None:
        self._uow.add(grant)

    def by_access(self, access_hash: str) -> OidcGrant | None:
        return self._first(OidcGrant, access_hash=access_hash)

    def by_refresh(self, refresh_hash: str, lock: bool = False) -> OidcGrant | None:
        return self._first(OidcGrant, refresh_hash=refresh_hash)

    def of_code(self, code_hash: str) -> list[OidcGrant]:
        return self._where(OidcGrant, code_hash=code_hash)

    def live(self, user_id: str | None = None) -> list[OidcGrant]:
        rows = [g for g in self._table(OidcGrant).values()
                if g.revoked_at is None and (user_id is None or g.user_id == user_id)]
        return sorted(rows, key=lambda g: g.id)

    def add_logout(self, logout: OidcLogout) -> None:
        self._uow.add(logout)

    def due_logouts(self, now: datetime, limit: int = 100) -> list[OidcLogout]:
        rows = [o for o in self._table(OidcLogout).values()
                if o.delivered_at is None and o.given_up_at is None and o.next_at <= now]
        return sorted(rows, key=lambda o: (o.next_at, o.id))[:limit]

    def logout(self, logout_id: int, lock: bool = False) -> OidcLogout | None:
        return self._table(OidcLogout).get(logout_id)

    def logouts(self, limit: int = 100) -> list[OidcLogout]:
        return sorted(self._table(OidcLogout).values(), key=lambda o: o.id, reverse=True)[:limit]


class _MemoryApplications(_Repository):
    """`authsvc.store.applications.Applications`."""

    def company(self, name: str, lock: bool = False) -> Company | None:
        return self._first(Company, name=name)

    def companies(self) -> list[Company]:
        return sorted(self._table(Company).values(), key=lambda c: c.name)

    def add_company(self, company: Company) -> None:
        self._uow.add(company)

    def contract_by_id(self, contract_id: int) -> Contract | None:
        return self._table(Contract).get(contract_id)

    def subcontracts(self, prime_contract_id: int) -> list[Contract]:
        return sorted(self._where(Contract, prime_contract_id=prime_contract_id), key=lambda c: c.number)

    def add(self, application: Application) -> None:
        self._uow.add(application)

    def get(self, application_id: int, lock: bool = False) -> Application | None:
        return self._table(Application).get(application_id)

    def listed(self, companies: list[str] | None = None, state: str | None = None,
               limit: int = 500) -> list[Application]:
        found = [a for a in self._table(Application).values()
                 if (companies is None or a.company in companies or a.submitter_company in companies)
                 and (not state or a.state == state)]
        return sorted(found, key=lambda a: a.id, reverse=True)[:limit]

    def roster(self, contract_id: int, kind: str) -> list[RosterEntry]:
        return sorted(self._where(RosterEntry, contract_id=contract_id, kind=kind), key=lambda r: r.id)

    def replace_roster(self, contract_id: int, kind: str, entries: list[RosterEntry]) -> int:
        old = self._where(RosterEntry, contract_id=contract_id, kind=kind)
        for row in old:
            self._delete(row)
        for row in entries:
            self._uow.add(row)
        return len(old)

    def media(self, device_id: str) -> list[Device]:
        return sorted(self._where(Device, kind="media", device_id=device_id), key=lambda d: d.id)

    def add_media(self, device: Device) -> None:
        self._uow.add(device)


class MemoryUnitOfWork:
    """`authsvc.store.uow.UnitOfWork` in memory: its queries and every repository, with the
    same transaction and audit-chain semantics, and the unique columns checked at `add` (where
    the SQL store flushes)."""

    def __init__(self, db: MemoryDatabase, audit_key: bytes, read_only: bool = False,
                 checkpointer: Checkpointer | None = None) -> None:
        self._db = db
        self._audit_key = audit_key
        self._read_only = read_only
        self._checkpointer = checkpointer
        self._t: _Tables

    def __enter__(self) -> MemoryUnitOfWork:
        if not self._read_only:
            if self._db.writer == threading.get_ident():
                raise RuntimeError("a write transaction inside another one of the same thread "
                                   "(the SQL store would wait for its own lock)")
            if not self._db.lock.acquire(timeout=_LOCK_TIMEOUT_S):
                raise TimeoutError("MemoryDatabase is locked (a writer held it too long)")
            self._db.writer = threading.get_ident()
        self._t = self._db.committed.copy()
        self._head: tuple[int, str] | None = None
        self._audited = ""
        self.identifiers = _MemoryIdentifiers(self)
        self.credentials = _MemoryCredentials(self)
        self.registrations = _MemoryRegistrations(self)
        self.biometrics = _MemoryBiometrics(self)
        self.devices = _MemoryDevices(self)
        self.groups = _MemoryGroups(self)
        self.alerts = _MemoryAlerts(self)
        self.service_clients = _MemoryServiceClients(self)
        self.oidc = _MemoryOidc(self)
        self.applications = _MemoryApplications(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        del self._t  # what was not committed is gone
        if not self._read_only:
            self._db.writer = None
            self._db.lock.release()

    def commit(self) -> None:
        if self._read_only:
            raise RuntimeError("commit in a read-only unit of work")
        self._db.committed = self._t.copy()  # copies: later changes need a commit of their own
        if self._head is not None and self._checkpointer is not None:
            self._checkpointer.note(*self._head)

    def add(self, obj: object) -> None:
        cls = type(obj)
        if cls not in _MUTABLE and cls not in _APPENDED:
            raise NotImplementedError(f"MemoryUnitOfWork cannot store {cls.__name__} rows")
        columns = cls.__table__.columns  # type: ignore[attr-defined]
        for column in columns:
            default = column.default
            if getattr(obj, column.key) is None and default is not None and default.is_scalar:
                setattr(obj, column.key, default.arg)
        if cls in _APPENDED:
            key = _pk(cls)
            if getattr(obj, key) is None:
                setattr(obj, key, self._next_id(cls))
            self._t.logs[cls].append(obj)
            return
        table = self._t.rows[cls]
        others = [r for r in table.values() if r is not obj]
        composite = len(cls.__table__.primary_key.columns) > 1  # type: ignore[attr-defined]
        for column in columns:  # the primary key and the unique indexes: nothing is stored
            value = getattr(obj, column.key)
            if (((column.primary_key and not composite) or column.unique) and value is not None
                    and any(getattr(r, column.key) == value for r in others)):
                raise RuntimeError(f"unique constraint {cls.__name__}.{column.key}: {value!r}")
        if composite:  # a group membership: the pair is the key
            if any(_key_of(r) == _key_of(obj) for r in others):
                raise RuntimeError(f"unique constraint {cls.__name__}: {_key_of(obj)!r}")
        elif getattr(obj, _pk(cls)) is None:
            setattr(obj, _pk(cls), self._next_id(cls))
        table[_key_of(obj)] = obj
        if isinstance(obj, Account):
            _link(self._t.rows, obj)

    def _next_id(self, cls: type) -> int:
        self._t.next_id[cls] = self._t.next_id.get(cls, 0) + 1
        return self._t.next_id[cls]

    # ---- repositories -------------------------------------------------------------------

    def identifier(self, value: str, lock: bool = False) -> Identifier | None:
        return self._t.rows[Identifier].get(value)

    def holder(self, canonical_id: str) -> tuple[Identifier | None, Account | None]:
        ident = self.identifier(canonical_id)
        if ident is None or ident.kind != "account" or ident.holder_id is None:
            return ident, None
        return ident, self._t.rows[Account].get(ident.holder_id)

    def account(self, canonical_id: str, lock: bool = False) -> Account | None:
        return self.holder(canonical_id)[1]

    def account_for_update(self, account_id: int) -> Account | None:
        return self._t.rows[Account].get(account_id)

    def enrolled_factors(self, account_id: int, person_id: int) -> tuple[str, ...]:
        rows = self._t.rows
        have = {
            "vein": any(e.person_id == person_id and e.disabled_at is None
                        for e in rows[VeinEnrolment].values()),
            "totp": any(c.account_id == account_id and c.confirmed_at is not None
                        for c in rows[TotpCredential].values()),
            "webauthn": any(c.account_id == account_id for c in rows[WebauthnCredential].values()),
        }
        return tuple(f for f, has in have.items() if has)

    def accounts(self, status: str | None = None, contract: str | None = None,
                 role: str | None = None, company: str | None = None,
                 name: str | None = None) -> list[Account]:
        found = [a for a in self._t.rows[Account].values()
                 if (not status or a.status == status) and (not role or a.role == role)
                 and (not contract or a.contract.number == contract)
                 and (not company or a.contract.company == company)
                 and (not name or name in a.person.name)]
        return sorted(found, key=lambda a: (a.user_id.lower(), a.id))

    def accounts_of_person(self, person_id: int) -> list[Account]:
        return [a for a in self._t.rows[Account].values() if a.person_id == person_id]

    def contract(self, number: str) -> Contract | None:
        return next((c for c in self._t.rows[Contract].values() if c.number == number), None)

    def contracts(self) -> list[Contract]:
        return sorted(self._t.rows[Contract].values(), key=lambda c: c.number)

    def person(self, person_id: int) -> Person | None:
        return self._t.rows[Person].get(person_id)

    def password_history(self, account_id: int, limit: int) -> list[PasswordHistory]:
        mine = [h for h in self._t.logs[PasswordHistory] if h.account_id == account_id]
        return sorted(mine, key=lambda h: h.id, reverse=True)[:limit]

    def put_challenge(self, purpose: str, subject: str, data: dict[str, Any],
                      expires_at: datetime) -> str:
        cid = secrets.token_urlsafe(32)
        self.add(Challenge(id=cid, purpose=purpose, subject=subject, data=json.dumps(data),
                           expires_at=expires_at))
        return cid

    def take_challenge(self, cid: str, purpose: str, subject: str,
                       now: datetime) -> dict[str, Any] | None:
        if not isinstance(cid, str) or len(cid) > 64:
            return None
        table = self._t.rows[Challenge]
        row = table.pop(cid, None)
        for expired in [k for k, c in table.items() if c.expires_at <= now]:
            del table[expired]
        if row is None or row.purpose != purpose or row.subject != subject or row.expires_at <= now:
            return None
        return dict(json.loads(row.data))

    def record_logon(self, now: datetime, subject: str, step: str, result: str, actor: Actor,
                     reason: str = "", factors: str = "", remote: bool = False) -> None:
        self.add(LogonHistory(
            subject=subject[:100], at=now, result=result, step=step, factors=factors[:100],
            terminal=actor.terminal[:100], source=actor.source[:100], remote=remote, reason=reason[:64]))

    def logon_history(self, subject: str, limit: int = 50) -> list[LogonHistory]:
        mine = [r for r in self._t.logs[LogonHistory] if r.subject == subject]
        return sorted(mine, key=lambda r: r.id, reverse=True)[:limit]

    def count_accounts(self) -> int:
        return len(self._t.rows[Account])

    # ---- audit chain (as UnitOfWork.audit writes it) --------------------------------------

    def audit(self, now: datetime, actor: Actor, action: str, subject: str, result: str = "ok",
              **detail: Any) -> AuditEvent:
        if actor.maintenance:  # as UnitOfWork.audit: a maintenance account's actions flagged
            detail = {**detail, "maintenance_account": True}
        head = self._t.rows[AuditHead].get(1)
        if head is None:
            if self._t.logs[AuditEvent]:
                raise AuditUnavailable("audit head is missing while events exist")
            if self._checkpointer is not None:
                found = chain.anchor(self._checkpointer.store.read()[0])
                if found is not None and found.seq > 0:
                    raise AuditUnavailable(f"audit log erased: a checkpoint outside it has seq {found.seq}")
            head = AuditHead(id=1, seq=0, hash=chain.GENESIS, mac="")
            self._t.rows[AuditHead][1] = head
        fields = {
            "seq": head.seq + 1, "ts": jst_iso(now), "actor": actor.id, "action": action,
            "subject": subject, "result": result, "terminal": actor.terminal, "source": actor.source,
            "detail": json.dumps(detail, sort_keys=True, ensure_ascii=False, default=str),
        }
        digest = chain.chain_hash(head.hash, fields)
        event = AuditEvent(**fields, prev_hash=head.hash, hash=digest,
                           mac=chain.sign_row(self._audit_key, fields["seq"], digest))
        self._t.logs[AuditEvent].append(event)
        head.seq, head.hash = fields["seq"], digest
        head.mac = chain.sign_head(self._audit_key, head.seq, digest)
        self._head = (head.seq, digest)
        self._audited = action
        return event

    def serialize(self) -> None:
        """Nothing to do: a writer holds the database's one lock already."""

    def audit_head(self) -> AuditHead | None:
        return self._t.rows[AuditHead].get(1)

    def audit_rows(self, batch: int = 1000, after: int = 0,
                   upto: int | None = None) -> Iterator[dict[str, Any]]:
        for r in sorted(self._t.logs[AuditEvent], key=lambda e: e.seq):
            if r.seq > after and (upto is None or r.seq <= upto):
                yield {c: getattr(r, c) for c in (*chain.FIELDS, "prev_hash", "hash", "mac")}

    def audit_archives(self) -> list[Any]:
        return []  # archiving (retention) is done on the SQL stores only

    def audit_unchained(self, limit: int = 1000) -> list[dict[str, Any]]:
        return []  # events are chained as they are written here (as on SQLite)

    def audit_events(self, subjects: list[str] | None = None, limit: int = 100) -> list[AuditEvent]:
        wanted = {s.lower() for s in subjects} if subjects else None
        found = [e for e in self._t.logs[AuditEvent] if wanted is None or e.subject.lower() in wanted]
        return sorted(found, key=lambda e: e.seq, reverse=True)[:limit]


class MemoryStore:
    """The unit-of-work factory of one fake deployment (`deps.uow`), over its one database."""

    def __init__(self, audit_key: bytes, checkpointer: Checkpointer | None = None) -> None:
        self.db = MemoryDatabase()
        self._audit_key, self._checkpointer = audit_key, checkpointer

    def __call__(self, read_only: bool = False, snapshot: bool = False) -> MemoryUnitOfWork:
        """`snapshot` changes nothing here: a fake transaction always reads one state."""
        return MemoryUnitOfWork(self.db, self._audit_key, read_only, self._checkpointer)


# ---- a whole deployment over the fakes -------------------------------------------------------

_FAKE_AUDIT_KEY = bytes(range(32))


@cache
def _data_sources() -> tuple[JpHolidays, BadPasswordsBlocklist]:
    return JpHolidays(), BadPasswordsBlocklist()  # read-only data: loaded once per run


def fake_deps(clock: FixedClock | None = None, **sections: dict[str, Any]) -> Deps:
    """`Deps` over the in-memory fakes: no database, no Redis, no files. Real domain, real
    hashing (cheap argon2) and sealing; settings as `tests.conftest.make_settings` makes them,
    with `sections` on top. `deps.uow.db` is the deployment's `MemoryDatabase`; `deps.checkpointer.store`
    its `MemoryCheckpoints`."""
    clock = clock or FixedClock(START)
    settings = make_settings("/nonexistent/authsvc-fake-instance", **sections)
    a = settings.argon2
    checkpointer = Checkpointer(MemoryCheckpoints(_FAKE_AUDIT_KEY, clock.now),  # type: ignore[arg-type]
                                settings.audit.checkpoint_seconds)
    holidays, blocklist = _data_sources()
    return Deps(
        settings=settings,
        uow=MemoryStore(_FAKE_AUDIT_KEY, checkpointer),  # type: ignore[arg-type]
        checkpointer=checkpointer,
        clock=clock,
        hasher=Hasher(a.time_cost, a.memory_cost_kib, a.parallelism, a.hash_len, a.salt_len),
        audit_key=_FAKE_AUDIT_KEY,
        engine=None,
        counters=MemoryCounters(settings.lockout.pending_seconds),
        sessions=MemorySessions(clock.now),
        sealer=Sealer([("k1", bytes(range(32, 64)))]),
        vein=open_reader("emulated", unit_id=None, min_quality=settings.vein.min_quality),
        replay=LshReplayCheck(_FAKE_AUDIT_KEY),
        holidays=holidays,
        blocklist=blocklist,
        signing_keys=KeyRing(None, settings.oidc.signing_alg, settings.oidc.rotate_days,
                             settings.oidc.id_token_minutes, clock.now),
    )
