"""Queries of palm-vein enrolments (sealed templates, attempt limits) and of samples seen."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from authsvc.store.models import VeinEnrolment


class Biometrics:
    def __init__(self, session: Session) -> None:
        self._s = session

    def enrolment_of(self, person_id: int, lock: bool = False) -> VeinEnrolment | None:
        """The person's enrolment. `lock`: SELECT … FOR UPDATE on its row, the lock under which
        the attempt limits are counted and the samples seen are checked and recorded (so of
        concurrent copies of one sample at most one passes). Taken before the audit chain's
        head, in every transaction that takes both (docs/decisions/0003-vein.md)."""
        q = select(VeinEnrolment).where(VeinEnrolment.person_id == person_id)
        return self._s.scalars(q.with_for_update() if lock else q).first()

    def remove(self, enrolment: VeinEnrolment) -> None:
        """Delete an enrolment: the person registers a palm again (an operator's reset)."""
        self._s.delete(enrolment)
        self._s.flush()

    def is_enrolled(self, person_id: int) -> bool:
        """Whether the person has an enrolment (in any state)."""
        q = select(VeinEnrolment.id).where(VeinEnrolment.person_id == person_id)
        return self._s.scalars(q).first() is not None

    def other_templates(self, but_person_id: int) -> dict[int, str]:
        """Every other person's sealed template by person id, as plain rows (no ORM objects:
        the 1:N search reads all of them, and N can be large)."""
        q = select(VeinEnrolment.person_id, VeinEnrolment.template).where(
            VeinEnrolment.person_id != but_person_id)
        return {pid: template for pid, template in self._s.execute(q)}
