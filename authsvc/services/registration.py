"""Biometric registration (R14, R15, R22), without pages: in person (a staff member witnesses
`vein.enrol`) or remotely, the registrant's company's system administrator attending a
registration session: opened by the registrant → joined by the administrator → photo ID image
captured (sealed evidence, hash audited) → identity confirmed or rejected → palm enrolled
(`vein.enrol`, the administrator the witness) → closed. An idle session expires, checked on
every call and by `expire_idle` (maintenance). Every step is audited naming both people."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from adapters.vein import Capture, VeinError, VeinReader
from authsvc.domain import identifiers
from authsvc.domain import registration as rules
from authsvc.domain.errors import DomainError, Forbidden, NotFound, OutOfScope
from authsvc.domain.registration import Party, State
from authsvc.domain.roles import Actor, Perm, Role
from authsvc.services import Deps, guard, vein
from authsvc.services.accounts import OPERATIONS_CONTRACT
from authsvc.store.models import Account, Consent, Evidence, RegistrationSession
from authsvc.store.uow import UnitOfWork

MAX_IMAGE_BYTES = 2 * 1024 * 1024
ENROL_SAMPLES = 3  # palm captures asked of the terminal for one enrolment
SYSTEM = Actor("system:registration", frozenset({Role.SYSTEM_ADMIN}))


def _aad(session_id: str) -> bytes:
    return f"registration-evidence:{session_id}".encode()


@dataclass(frozen=True)
class SessionView:
    id: str
    state: str
    registrant: str
    admin: str | None
    company: str
    opened_at: datetime
    last_activity_at: datetime
    ended_at: datetime | None
    reason: str
    evidence: int  # evidence images held (not destroyed)
    name: str = ""  # the registrant's name, for the administrator to compare with the photo ID

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


def _view(uow: UnitOfWork, row: RegistrationSession) -> SessionView:
    held = uow.registrations.evidence_held(row.id)
    person = uow.person(row.person_id)
    return SessionView(row.id, row.state, row.registrant, row.admin, row.company, row.opened_at,
                       row.last_activity_at, row.ended_at, row.reason, held,
                       person.name if person else "")


def _person(acc: Account) -> rules.Person:
    return rules.Person(acc.id, acc.person_id, acc.contract.company, acc.role, acc.status)


def _is(actor: Actor, user_id: str | None) -> bool:
    return user_id is not None and identifiers.canonical(actor.id) == identifiers.canonical(user_id)


def _audit(uow: UnitOfWork, now: datetime, actor: Actor, action: str, row: RegistrationSession,
           result: str = "ok", **detail: Any) -> None:
    uow.audit(now, actor, action, row.registrant, result, session=row.id, registrant=row.registrant,
              admin=row.admin, **detail)


def _row(uow: UnitOfWork, session_id: str) -> RegistrationSession:
    row = uow.registrations.get(str(session_id)[:64], lock=True)
    if row is None:
        raise NotFound("registration_not_found")
    return row


def _load(deps: Deps, uow: UnitOfWork, session_id: str) -> RegistrationSession:
    """The session, locked; an idle one is expired here (and committed) before refusing."""
    row = _row(uow, session_id)
    now = deps.clock.now()
    if rules.is_idle(row.state, row.last_activity_at, now, deps.settings.registration.idle_minutes):
        _expire(uow, row, now, SYSTEM)
        uow.commit()
        raise DomainError("registration_expired")
    if row.state in rules.FINAL:
        raise DomainError("registration_ended", state=row.state)
    return row


def _advance(uow: UnitOfWork, row: RegistrationSession, event: str, by: Party, now: datetime) -> None:
    row.state = rules.step(row.state, event, by).value
    row.last_activity_at = now
    if row.state in rules.FINAL:
        row.ended_at = now


def _expire(uow: UnitOfWork, row: RegistrationSession, now: datetime, actor: Actor) -> None:
    idle_since = row.last_activity_at
    _advance(uow, row, "expire", Party.SYSTEM, now)
    _audit(uow, now, actor, "registration.expired", row, idle_since=idle_since.isoformat())


# ---- consent --------------------------------------------------------------------------------


@guard.audited("registration.consent")
def record_consent(deps: Deps, actor: Actor, user_id: str, given: bool) -> None:
    """Record (or withdraw) the account's consent to remote registration incl. ID image capture."""
    actor.require(Perm.MANAGE_ACCOUNTS)
    now = deps.clock.now()
    with deps.uow() as uow:
        acc = guard.account(uow, actor, Perm.MANAGE_ACCOUNTS, user_id)
        row = uow.registrations.consent_of(acc.id) or Consent(account_id=acc.id)
        row.given, row.recorded_by, row.recorded_at = bool(given), actor.id, now
        uow.registrations.save_consent(row)
        uow.audit(now, actor, "registration.consent", acc.user_id, given=bool(given))
        uow.commit()


def has_consent(deps: Deps, user_id: str) -> bool:
    with deps.uow(read_only=True) as uow:
        acc = uow.account(identifiers.canonical(user_id))
        return acc is not None and uow.registrations.consented(acc.id)


# ---- the remote session ---------------------------------------------------------------------


def open_session(deps: Deps, actor: Actor, user_id: str) -> SessionView:
    """The registrant opens a session for themselves from their terminal. A live session
    already open for the account is returned as it is."""
    if not _is(actor, user_id):
        raise Forbidden("registration_own_only")
    now = deps.clock.now()
    with deps.uow() as uow:
        acc = uow.account(identifiers.canonical(user_id), lock=True)
        if acc is None:
            raise NotFound("account_not_found", user_id=user_id)
        consent = uow.registrations.consented(acc.id)
        try:
            rules.check_can_open(acc.status, acc.must_change_password, consent,
                                 uow.registrations.person_enrolled(acc.person_id))
        except DomainError as exc:
            uow.audit(now, actor, "registration.open", acc.user_id, "refused", reason=exc.code)
            uow.commit()
            raise
        idle = deps.settings.registration.idle_minutes
        for live in uow.registrations.live_of_account(acc.id, lock=True):
            if rules.is_idle(live.state, live.last_activity_at, now, idle):
                _expire(uow, live, now, SYSTEM)
            else:
                result = _view(uow, live)
                uow.commit()
                return result
        row = RegistrationSession(
            id=secrets.token_urlsafe(32), account_id=acc.id, person_id=acc.person_id,
            registrant=acc.user_id, company=acc.contract.company, state=State.WAITING.value,
            terminal=actor.terminal[:100], opened_at=now, last_activity_at=now, reason="")
        uow.registrations.add_session(row)
        _audit(uow, now, actor, "registration.opened", row, company=row.company)
        result = _view(uow, row)
        uow.commit()
    return result


def waiting_for(deps: Deps, admin: Actor) -> list[SessionView]:
    """Sessions of the administrator's company waiting for an administrator to join."""
    now, idle = deps.clock.now(), deps.settings.registration.idle_minutes
    with deps.uow(read_only=True) as uow:
        acc = uow.account(identifiers.canonical(admin.id))
        if acc is None or acc.role != Role.SYSTEM_ADMIN.value or Role.SYSTEM_ADMIN not in admin.roles:
            raise Forbidden("registration_not_admin")
        rows = uow.registrations.waiting_for(acc.contract.company)
        return [_view(uow, r) for r in rows
                if not rules.is_idle(r.state, r.last_activity_at, now, idle)
                and r.person_id != acc.person_id]


def get(deps: Deps, actor: Actor, session_id: str) -> SessionView:
    """The session as its registrant, its attending administrator or the agency sees it. A
    read, as both pages poll it; only a session found idle is expired (a write) first."""
    with deps.uow(read_only=True) as uow:
        row = uow.registrations.get(str(session_id)[:64])
        if row is None:
            raise NotFound("registration_not_found")
        if not (_is(actor, row.registrant) or _is(actor, row.admin) or _agency(uow, actor)):
            raise Forbidden()
        if not rules.is_idle(row.state, row.last_activity_at, deps.clock.now(),
                             deps.settings.registration.idle_minutes):
            return _view(uow, row)
    with deps.uow() as uow:
        with contextlib.suppress(DomainError):
            _load(deps, uow, session_id)  # expires it (and commits)
        return _view(uow, _row(uow, session_id))


def join(deps: Deps, admin: Actor, session_id: str) -> SessionView:
    """The registrant's company's system administrator — another human — attends."""
    now = deps.clock.now()
    with deps.uow() as uow:
        row = _load(deps, uow, session_id)
        registrant = uow.registrations.registrant_of(row)
        acc = uow.account(identifiers.canonical(admin.id))
        try:
            if acc is None or Role.SYSTEM_ADMIN not in admin.roles:
                raise Forbidden("registration_not_admin")
            assert registrant is not None
            rules.check_attendant(_person(registrant), _person(acc))
            nxt = rules.step(row.state, "join", Party.ADMIN)
        except DomainError as exc:
            _audit(uow, now, admin, "registration.join", row, "refused", reason=exc.code,
                   attempted_by=admin.id)
            uow.commit()
            raise
        row.state, row.last_activity_at = nxt.value, now
        row.admin, row.admin_account_id = acc.user_id, acc.id
        _audit(uow, now, admin, "registration.joined", row)
        result = _view(uow, row)
        uow.commit()
    return result


def _act(deps: Deps, actor: Actor, session_id: str, event: str, action: str,
         reason: str = "", **detail: Any) -> SessionView:
    """A step by the attending administrator (confirm, reject, close)."""
    now = deps.clock.now()
    with deps.uow() as uow:
        row = _load(deps, uow, session_id)
        try:
            if not _is(actor, row.admin) or Role.SYSTEM_ADMIN not in actor.roles:
                raise Forbidden("registration_not_attendant")
            _advance(uow, row, event, Party.ADMIN, now)
        except DomainError as exc:
            _audit(uow, now, actor, f"registration.{event}", row, "refused", reason=exc.code,
                   attempted_by=actor.id)
            uow.commit()
            raise
        if reason:
            row.reason = reason[:200]
        _audit(uow, now, actor, action, row, **({"reason": reason[:200]} if reason else {}), **detail)
        result = _view(uow, row)
        uow.commit()
    return result


def capture_id(deps: Deps, actor: Actor, session_id: str, image: bytes) -> SessionView:
    """The registrant's photo ID, held up to the camera: sealed at rest, bound to the session,
    kept until the retention deadline; its SHA-256 goes to the audit log."""
    now = deps.clock.now()
    with deps.uow() as uow:
        row = _load(deps, uow, session_id)
        try:
            if not _is(actor, row.registrant):
                raise Forbidden("registration_not_registrant")
            kind = rules.check_image(image, MAX_IMAGE_BYTES)
            _advance(uow, row, "capture_id", Party.REGISTRANT, now)
        except DomainError as exc:
            _audit(uow, now, actor, "registration.capture_id", row, "refused", reason=exc.code,
                   attempted_by=actor.id)
            uow.commit()
            raise
        data = bytes(image)
        digest = hashlib.sha256(data).hexdigest()
        keep = now + timedelta(days=deps.settings.registration.evidence_retention_days)
        ev = Evidence(session_id=row.id, sealed=deps.sealer.seal(data, _aad(row.id)), sha256=digest,
                      content_type=kind, size=len(data), captured_by=actor.id, captured_at=now,
                      retain_until=keep)
        uow.registrations.add_evidence(ev)
        _audit(uow, now, actor, "registration.id_captured", row, sha256=digest, size=len(data),
               content_type=kind, evidence=ev.id, retain_until=keep.isoformat())
        result = _view(uow, row)
        uow.commit()
    return result


def confirm(deps: Deps, admin: Actor, session_id: str) -> SessionView:
    return _act(deps, admin, session_id, "confirm", "registration.confirmed")


def reject(deps: Deps, admin: Actor, session_id: str, reason: str = "") -> SessionView:
    return _act(deps, admin, session_id, "reject", "registration.rejected", reason)


def close(deps: Deps, admin: Actor, session_id: str) -> SessionView:
    return _act(deps, admin, session_id, "close", "registration.closed")


def enrol_challenges(deps: Deps, actor: Actor, session_id: str) -> list[vein.Challenge]:
    """Challenges for the registrant's terminal agent, one per palm sample, once the identity
    is confirmed; bound to this session."""
    now = deps.clock.now()
    with deps.uow() as uow:
        row = _load(deps, uow, session_id)
        if not _is(actor, row.registrant):
            raise Forbidden("registration_not_registrant")
        rules.step(row.state, "enrol", Party.REGISTRANT)
        row.last_activity_at = now
        uow.commit()
    return vein.issue_enrol_challenges(deps, capture_subject(session_id), ENROL_SAMPLES)


def capture_subject(session_id: str) -> str:
    return f"registration:{str(session_id)[:64]}"


def _latest_image(deps: Deps, uow: UnitOfWork, row: RegistrationSession) -> tuple[bytes, Evidence]:
    """The session's latest ID image still held, opened, with its evidence row."""
    ev = uow.registrations.latest_evidence(row.id)
    if ev is None:
        raise NotFound("registration_no_evidence")
    return deps.sealer.open(ev.sealed, _aad(row.id)), ev


def view_id(deps: Deps, admin: Actor, session_id: str) -> tuple[bytes, str]:
    """The photo ID just captured, for the attending administrator to compare with the person
    on camera, while the decision is open; every viewing is audited."""
    now = deps.clock.now()
    with deps.uow() as uow:
        row = _load(deps, uow, session_id)
        if not _is(admin, row.admin) or Role.SYSTEM_ADMIN not in admin.roles:
            raise Forbidden("registration_not_attendant")
        if row.state != State.ID_CAPTURED.value:
            raise DomainError("registration_wrong_step", state=row.state, event="view_id")
        data, ev = _latest_image(deps, uow, row)
        _audit(uow, now, admin, "registration.id_viewed", row, evidence=ev.id, sha256=ev.sha256)
        uow.commit()
    return data, ev.content_type


def live_session(deps: Deps, actor: Actor) -> SessionView | None:
    """The registrant's own session still in progress, if any (for the page to resume)."""
    now, idle = deps.clock.now(), deps.settings.registration.idle_minutes
    with deps.uow(read_only=True) as uow:
        rows = uow.registrations.live_of_registrant(identifiers.canonical(actor.id))
        return next((_view(uow, r) for r in rows
                     if not rules.is_idle(r.state, r.last_activity_at, now, idle)), None)


def recent(deps: Deps, actor: Actor, limit: int = 100) -> list[SessionView]:
    """The latest registration sessions, for the agency (the evidence's only readers)."""
    with deps.uow(read_only=True) as uow:
        if not _agency(uow, actor):
            raise Forbidden()
        rows = uow.registrations.recent(limit)
        return [_view(uow, r) for r in rows]


def enrol(deps: Deps, actor: Actor, session_id: str, reader: VeinReader,
          capture_fn: Callable[[bytes], Capture] | None = None) -> dict[str, Any]:
    """The registrant enrols their palm on their terminal's reader, after the identity was
    confirmed; the attending administrator is the witness. A palm matching another person
    stops the registration (vein.enrol raises the alert)."""
    now = deps.clock.now()
    with deps.uow() as uow:
        row = _load(deps, uow, session_id)
        try:
            if not _is(actor, row.registrant):
                raise Forbidden("registration_not_registrant")
            rules.step(row.state, "enrol", Party.REGISTRANT)  # checked now, applied after
        except DomainError as exc:
            _audit(uow, now, actor, "registration.enrol", row, "refused", reason=exc.code,
                   attempted_by=actor.id)
            uow.commit()
            raise
        row.last_activity_at = now
        registrant, admin = row.registrant, row.admin or ""
        uow.commit()
    witness = Actor(admin, frozenset({Role.SYSTEM_ADMIN}), terminal=actor.terminal, source=actor.source)
    try:
        result = vein.enrol_witnessed(deps, witness, registrant, reader, capture_fn)
    except (DomainError, VeinError) as exc:
        code = getattr(exc, "code", None) or getattr(exc, "reason", type(exc).__name__)
        with deps.uow() as uow:
            row = _load(deps, uow, session_id)
            now = deps.clock.now()
            if code == "vein_duplicate_person":
                _advance(uow, row, "stop", Party.SYSTEM, now)
                row.reason = code
                _audit(uow, now, actor, "registration.stopped", row, "alert", reason=code)
            else:  # a poor capture, a reader error: the registrant may try again
                row.last_activity_at = now
                _audit(uow, now, actor, "registration.enrol", row, "failed", reason=str(code)[:64])
            uow.commit()
        raise
    with deps.uow() as uow:
        row = _row(uow, session_id)  # no idle or final-state refusal: the palm is enrolled
        now = deps.clock.now()
        late = {}
        try:
            _advance(uow, row, "enrol", Party.REGISTRANT, now)
        except DomainError:
            # The administrator closed (or the session expired) while the palm was being read:
            # the enrolment was witnessed and is kept; the record says so instead of failing.
            late = {"session_ended_during_enrolment": row.state}
        _audit(uow, now, actor, "registration.enrolled", row, person=result["person_id"],
               reader=result["reader_id"], **late)
        uow.commit()
    return result


def expire_idle(deps: Deps, actor: Actor = SYSTEM) -> list[str]:
    """For the maintenance job: expire every session left idle; returns their ids."""
    now, idle = deps.clock.now(), deps.settings.registration.idle_minutes
    done: list[str] = []
    with deps.uow() as uow:
        for row in uow.registrations.live_inactive_since(now - timedelta(minutes=idle), lock=True):
            if rules.is_idle(row.state, row.last_activity_at, now, idle):
                _expire(uow, row, now, actor)
                done.append(row.id)
        uow.commit()
    return done


# ---- evidence -------------------------------------------------------------------------------


def is_agency(deps: Deps, actor: Actor, perm: Perm = Perm.READ_EVIDENCE) -> bool:
    """Whether `actor` is of the agency and may `perm` (see evidence, run the station)."""
    with deps.uow(read_only=True) as uow:
        return _agency(uow, actor, perm)


def _agency(uow: UnitOfWork, actor: Actor, perm: Perm = Perm.READ_EVIDENCE) -> bool:
    """A system administrator or staff member of the agency (the operations contract), or an
    agency operator: the only people who may see registration evidence or run the
    registration station."""
    if not actor.can(perm):
        return False
    acc = uow.account(identifiers.canonical(actor.id))
    if acc is None or acc.status != "active" or acc.role not in actor.roles:
        return False
    return acc.role == Role.AGENCY_OPERATOR.value or (
        acc.role in (Role.SYSTEM_ADMIN.value, Role.STAFF.value)
        and acc.contract.number == OPERATIONS_CONTRACT)


def read_evidence(deps: Deps, actor: Actor, session_id: str) -> bytes:
    """The session's latest ID image, opened, for the agency's system administrators and staff;
    every reading (and every refusal) is audited."""
    now = deps.clock.now()
    with deps.uow() as uow:
        row = uow.registrations.get(str(session_id)[:64])
        if row is None:
            raise NotFound("registration_not_found")
        if not _agency(uow, actor):
            _audit(uow, now, actor, "registration.evidence_read", row, "refused", reason="forbidden",
                   attempted_by=actor.id)
            uow.commit()
            raise Forbidden()
        data, ev = _latest_image(deps, uow, row)
        _audit(uow, now, actor, "registration.evidence_read", row, evidence=ev.id, sha256=ev.sha256)
        uow.commit()
    return data


def purge_evidence(deps: Deps, actor: Actor = SYSTEM) -> int:
    """For the maintenance job: destroy evidence past its retention deadline (the sealed image
    is erased; the row keeps its hash and dates as the record). Returns how many."""
    now = deps.clock.now()
    count = 0
    with deps.uow() as uow:
        for ev in uow.registrations.evidence_due(now, lock=True):
            ev.sealed, ev.destroyed_at = "", now
            row = uow.registrations.get(ev.session_id)
            assert row is not None
            _audit(uow, now, actor, "registration.evidence_destroyed", row, evidence=ev.id,
                   sha256=ev.sha256, retain_until=ev.retain_until.isoformat())
            count += 1
        uow.commit()
    return count


# ---- in person ------------------------------------------------------------------------------


@guard.audited("registration.in_person")
def enrol_in_person(deps: Deps, staff_actor: Actor, user_id: str, reader: VeinReader,
                    capture_fn: Callable[[bytes], Capture] | None = None,
                    id_document: str = "") -> dict[str, Any]:
    """At the registration station: the staff member, signed in, checked the photo ID and is
    the witness of `vein.enrol` (its duplicate-person check and alert apply). Nobody
    witnesses their own enrolment."""
    staff_actor.require(Perm.ENROL_BIOMETRICS)
    now = deps.clock.now()
    with deps.uow() as uow:
        acc = uow.account(identifiers.canonical(user_id))
        staff = uow.account(identifiers.canonical(staff_actor.id))
        if acc is None:
            raise NotFound("account_not_found", user_id=user_id)
        if (staff is not None and staff.person_id == acc.person_id) or _is(staff_actor, acc.user_id):
            raise Forbidden("registration_self_attend")  # audited by guard.audited
        at_station = _agency(uow, staff_actor, Perm.ENROL_BIOMETRICS)  # the agency's station
        if not (at_station or staff_actor.reaches(acc.contract.company)):
            raise OutOfScope("account_not_found", user_id=user_id)
        uow.audit(now, staff_actor, "registration.in_person", acc.user_id, registrant=acc.user_id,
                  witness=staff_actor.id, id_document=id_document[:50])
        uow.commit()
    return vein.enrol_witnessed(deps, staff_actor, user_id, reader, capture_fn)
