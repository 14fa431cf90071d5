"""Verification of the audit hash chain (R22)."""

from __future__ import annotations

from dataclasses import dataclass

from authsvc.domain import audit as chain
from authsvc.services import Deps


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
