"""Verification of the audit hash chain (R22)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authsvc.domain import audit as chain
from authsvc.domain import lockout
from authsvc.domain.roles import Actor, Perm
from authsvc.services import Deps

COLUMNS = ("seq", "ts", "actor", "action", "subject", "result", "terminal", "source", "detail")


@dataclass(frozen=True)
class Verification:
    checked: int
    problem: chain.Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(deps: Deps) -> Verification:
    with deps.uow() as uow:
        head = uow.audit_head()
        if head is None:
            rows = list(uow.audit_rows(batch=1))
            if rows:
                return Verification(0, chain.Problem(rows[0]["seq"], "head"))
            return Verification(0, None)
        checked, problem = chain.verify(uow.audit_rows(), head.seq, head.hash, head.mac, deps.audit_key)
        return Verification(checked, problem)


def events(deps: Deps, actor: Actor, subject: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest events, newest first (system administrators and staff only, R22). A subject
    is matched as itself and as the pseudonym an unknown identifier is logged under, so an
    operator can ask "was ID X tried?" without the log ever holding unknown IDs in clear."""
    actor.require(Perm.READ_AUDIT)
    subjects = None
    if subject:
        folded = subject.strip().casefold()
        subjects = [folded, lockout.throttle_key(subject, deps.audit_key, lambda _k: False)]
    with deps.uow() as uow:
        return [{c: getattr(e, c) for c in COLUMNS} for e in uow.audit_events(subjects, limit)]
