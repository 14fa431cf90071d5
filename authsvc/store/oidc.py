"""Queries of the OpenID provider ([8 of 12]): authorization codes, the grants they issued,
and the back-channel logouts owed to relying parties."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from authsvc.store.models import OidcCode, OidcGrant, OidcLogout


class Oidc:
    def __init__(self, session: Session) -> None:
        self._s = session

    # ---- codes ---------------------------------------------------------------------------

    def add_code(self, code: OidcCode) -> None:
        self._s.add(code)
        self._s.flush()

    def code(self, code_hash: str) -> OidcCode | None:
        return self._s.get(OidcCode, code_hash)

    def redeem(self, code_hash: str, now: datetime) -> bool:
        """Mark the code used; True for the one caller that did (of concurrent redemptions,
        exactly one wins: a conditional UPDATE, not a read then a write)."""
        done = self._s.execute(update(OidcCode).where(OidcCode.code_hash == code_hash,
                                                      OidcCode.used_at.is_(None))
                               .values(used_at=now).execution_options(synchronize_session=False))
        return bool(done.rowcount)  # type: ignore[attr-defined]

    def forget_codes(self, before: datetime) -> int:
        """Codes expired before `before` are no longer needed to recognise a replay."""
        done = self._s.execute(delete(OidcCode).where(OidcCode.expires_at < before)
                               .execution_options(synchronize_session=False))
        return int(done.rowcount)  # type: ignore[attr-defined]

    # ---- grants --------------------------------------------------------------------------

    def add_grant(self, grant: OidcGrant) -> None:
        self._s.add(grant)
        self._s.flush()

    def by_access(self, access_hash: str) -> OidcGrant | None:
        return self._s.scalars(select(OidcGrant).where(OidcGrant.access_hash == access_hash)).first()

    def by_refresh(self, refresh_hash: str, lock: bool = False) -> OidcGrant | None:
        q = select(OidcGrant).where(OidcGrant.refresh_hash == refresh_hash)
        return self._s.scalars(q.with_for_update() if lock else q).first()

    def of_code(self, code_hash: str) -> list[OidcGrant]:
        return list(self._s.scalars(select(OidcGrant).where(OidcGrant.code_hash == code_hash)))

    def live(self, user_id: str | None = None) -> list[OidcGrant]:
        """Grants not revoked (of one user, or of everyone), oldest first."""
        q = select(OidcGrant).where(OidcGrant.revoked_at.is_(None))
        if user_id is not None:
            q = q.where(OidcGrant.user_id == user_id)
        return list(self._s.scalars(q.order_by(OidcGrant.id)))

    # ---- back-channel logouts ------------------------------------------------------------

    def add_logout(self, logout: OidcLogout) -> None:
        self._s.add(logout)
        self._s.flush()

    def due_logouts(self, now: datetime, limit: int = 100) -> list[OidcLogout]:
        """Logouts to try now: neither delivered nor given up on, their time come."""
        q = (select(OidcLogout).where(OidcLogout.delivered_at.is_(None), OidcLogout.given_up_at.is_(None),
                                      OidcLogout.next_at <= now)
             .order_by(OidcLogout.next_at, OidcLogout.id).limit(limit))
        return list(self._s.scalars(q))

    def logout(self, logout_id: int, lock: bool = False) -> OidcLogout | None:
        q = select(OidcLogout).where(OidcLogout.id == logout_id)
        return self._s.scalars(q.with_for_update() if lock else q).first()

    def logouts(self, limit: int = 100) -> list[OidcLogout]:
        """The newest logouts, for operators."""
        return list(self._s.scalars(select(OidcLogout).order_by(OidcLogout.id.desc()).limit(limit)))
