"""Queries of remote biometric registration: consents, sessions and their sealed evidence.

New rows go in through the `add_…` methods and one-per-account rows through `save_…`; both
flush, so constraints are checked (and ids assigned) at that call, not at commit. `lock`
takes the rows FOR UPDATE (SQLite's writers are serialized already)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from authsvc.domain.registration import FINAL, State
from authsvc.store.models import Account, Consent, Evidence, RegistrationSession, VeinEnrolment

_FINAL = [s.value for s in FINAL]


class Registrations:
    def __init__(self, session: Session) -> None:
        self._s = session

    # ---- consent --------------------------------------------------------------------------

    def consent_of(self, account_id: int) -> Consent | None:
        """The account's consent record (given or withdrawn), if one was ever recorded."""
        return self._s.scalars(select(Consent).where(Consent.account_id == account_id)).first()

    def consented(self, account_id: int) -> bool:
        """Whether the account's consent to remote registration is recorded and given."""
        return bool(self._s.scalar(select(Consent.given).where(Consent.account_id == account_id)))

    def save_consent(self, consent: Consent) -> None:
        """Store the account's consent record, new or changed."""
        self._s.add(consent)
        self._s.flush()

    # ---- the people ------------------------------------------------------------------------

    def registrant_of(self, row: RegistrationSession) -> Account | None:
        """The registrant's account."""
        return self._s.get(Account, row.account_id)

    def person_enrolled(self, person_id: int) -> bool:
        """Whether the person has a palm-vein enrolment, enabled or not."""
        return self._s.scalars(select(VeinEnrolment.id).where(
            VeinEnrolment.person_id == person_id)).first() is not None

    # ---- sessions --------------------------------------------------------------------------

    def get(self, session_id: str, lock: bool = False) -> RegistrationSession | None:
        """The session with this id, in any state."""
        if not lock:
            return self._s.get(RegistrationSession, session_id)
        q = select(RegistrationSession).where(RegistrationSession.id == session_id)
        return self._s.scalars(q.with_for_update()).first()

    def add_session(self, row: RegistrationSession) -> None:
        self._s.add(row)
        self._s.flush()

    def live_of_account(self, account_id: int, lock: bool = False) -> list[RegistrationSession]:
        """The account's sessions not in a final state (idle ones included)."""
        q = select(RegistrationSession).where(RegistrationSession.account_id == account_id,
                                              RegistrationSession.state.not_in(_FINAL))
        return list(self._s.scalars(q.with_for_update() if lock else q))

    def live_of_registrant(self, registrant: str) -> list[RegistrationSession]:
        """The sessions of this registrant user ID (in any case: IDs are stored as assigned)
        not in a final state, newest first."""
        return list(self._s.scalars(select(RegistrationSession).where(
            func.lower(RegistrationSession.registrant) == registrant.lower(),
            RegistrationSession.state.not_in(_FINAL)).order_by(RegistrationSession.opened_at.desc())))

    def waiting_for(self, company: str) -> list[RegistrationSession]:
        """The company's sessions waiting for an administrator to join, oldest first."""
        return list(self._s.scalars(select(RegistrationSession).where(
            RegistrationSession.company == company,
            RegistrationSession.state == State.WAITING.value).order_by(RegistrationSession.opened_at)))

    def live_inactive_since(self, cutoff: datetime, lock: bool = False) -> list[RegistrationSession]:
        """Sessions not in a final state whose last activity is before `cutoff`."""
        q = select(RegistrationSession).where(RegistrationSession.state.not_in(_FINAL),
                                              RegistrationSession.last_activity_at < cutoff)
        return list(self._s.scalars(q.with_for_update() if lock else q))

    def recent(self, limit: int) -> list[RegistrationSession]:
        """The latest `limit` sessions, newest first."""
        return list(self._s.scalars(select(RegistrationSession)
                                    .order_by(RegistrationSession.opened_at.desc()).limit(limit)))

    # ---- evidence --------------------------------------------------------------------------

    def add_evidence(self, evidence: Evidence) -> None:
        self._s.add(evidence)
        self._s.flush()

    def evidence_held(self, session_id: str) -> int:
        """How many of the session's evidence images are held (not destroyed)."""
        return self._s.scalar(select(func.count(Evidence.id)).where(
            Evidence.session_id == session_id, Evidence.destroyed_at.is_(None))) or 0

    def latest_evidence(self, session_id: str) -> Evidence | None:
        """The session's newest evidence still held."""
        return self._s.scalars(select(Evidence).where(
            Evidence.session_id == session_id, Evidence.destroyed_at.is_(None))
            .order_by(Evidence.id.desc())).first()

    def evidence_due(self, now: datetime, lock: bool = False) -> list[Evidence]:
        """Evidence still held whose retention deadline is `now` or past."""
        q = select(Evidence).where(Evidence.destroyed_at.is_(None), Evidence.retain_until <= now)
        return list(self._s.scalars(q.with_for_update() if lock else q))
