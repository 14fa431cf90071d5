"""Queries of possession factors: TOTP secrets and WebAuthn credentials of accounts.

New rows go in through the `add_…` methods and one-per-account rows through `save_…`; both
flush, so constraints are checked (and ids assigned) at that call, not at commit."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authsvc.store.models import Challenge, TotpCredential, WebauthnCredential

TOTP_ENROL = "totp_enrol"  # the purpose of a pending TOTP enrolment's challenge row


class Credentials:
    def __init__(self, session: Session) -> None:
        self._s = session

    # ---- TOTP -----------------------------------------------------------------------------

    def totp_of(self, account_id: int) -> TotpCredential | None:
        """The account's TOTP credential (confirmed or not), if it has one."""
        return self._s.scalars(
            select(TotpCredential).where(TotpCredential.account_id == account_id)
        ).first()

    def pending_totp(self, subject: str, now: datetime) -> dict[str, Any] | None:
        """The data of the subject's pending enrolment (a `totp_enrol` challenge row, kept by
        `UnitOfWork.put_challenge`) that has not expired at `now`, or None."""
        row = self._s.scalars(select(Challenge).where(
            Challenge.purpose == TOTP_ENROL, Challenge.subject == subject,
            Challenge.expires_at > now)).first()
        return None if row is None else dict(json.loads(row.data))

    def drop_pending_totp(self, subject: str) -> int:
        """Discard the subject's pending enrolments, expired or not; returns how many."""
        result = self._s.execute(
            delete(Challenge).where(Challenge.purpose == TOTP_ENROL, Challenge.subject == subject)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def save_totp(self, credential: TotpCredential) -> None:
        """Store the account's credential, new or changed."""
        self._s.add(credential)
        self._s.flush()

    def remove_totp(self, credential: TotpCredential) -> None:
        self._s.delete(credential)
        self._s.flush()

    def claim_totp_step(self, account_id: int, sealed: str, step: int,
                        reseal: str | None = None) -> bool:
        """Accept time step `step` of the confirmed secret `sealed`: one conditional UPDATE
        (`... WHERE last_step IS NULL OR last_step < :step`, and the secret still `sealed`)
        whose row count says whether this request won, so a code is accepted at most once
        between threads, processes and instances. `reseal`: the secret sealed under the current
        key, stored in the same UPDATE."""
        values: dict[str, object] = {"last_step": step}
        if reseal is not None:
            values["secret"] = reseal
        claimed = self._s.execute(
            update(TotpCredential)
            .where(TotpCredential.account_id == account_id,
                   TotpCredential.secret == sealed,
                   TotpCredential.confirmed_at.is_not(None),
                   or_(TotpCredential.last_step.is_(None), TotpCredential.last_step < step))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return claimed.rowcount == 1  # type: ignore[attr-defined]

    # ---- WebAuthn -------------------------------------------------------------------------

    def webauthn_of(self, account_id: int, lock: bool = False) -> list[WebauthnCredential]:
        """The account's WebAuthn credentials, oldest first; `lock`: each row FOR UPDATE."""
        q = (select(WebauthnCredential).where(WebauthnCredential.account_id == account_id)
             .order_by(WebauthnCredential.id))
        return list(self._s.scalars(q.with_for_update() if lock else q))

    def webauthn_for_use(self, row_id: int) -> WebauthnCredential | None:
        """One credential by its row id, locked (FOR UPDATE) so that two assertions cannot
        both move its sign counter; None when it was removed meanwhile."""
        return self._s.scalars(
            select(WebauthnCredential).where(WebauthnCredential.id == row_id).with_for_update()
        ).first()

    def add_webauthn(self, credential: WebauthnCredential) -> bool:
        """Register `credential`; False when its credential ID is registered already (to any
        account), found now or inserted by a concurrent transaction (the unique index): then
        nothing is added and the transaction stays usable."""
        taken = self._s.scalars(select(WebauthnCredential.id).where(
            WebauthnCredential.credential_id == credential.credential_id)).first()
        if taken is not None:
            return False
        try:
            with self._s.begin_nested():
                self._s.add(credential)
        except IntegrityError:
            return False
        return True

    def remove_webauthn(self, credential: WebauthnCredential) -> None:
        self._s.delete(credential)
        self._s.flush()
