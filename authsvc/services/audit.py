"""The audit log (R22): verification of the hash chain against its anchor outside the database,
the checkpoints that anchor it, an operator's acceptance of a restored database, and reading."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from authsvc.domain import audit as chain
from authsvc.domain import identifiers, lockout
from authsvc.domain.errors import DomainError, Forbidden, NotFound
from authsvc.domain.roles import Actor, Perm
from authsvc.services import Deps, guard

COLUMNS = ("seq", "ts", "actor", "action", "subject", "result", "terminal", "source", "detail")
UNANCHORED = "unanchored"  # a chain with rows, and no checkpoint of it anywhere
CHECKPOINT = "checkpoint"  # a line in the checkpoint files that this key did not sign


@dataclass(frozen=True)
class Verification:
    checked: int
    problem: chain.Problem | None
    head_seq: int = 0
    anchor: chain.Checkpoint | None = None
    bad_lines: tuple[str, ...] = field(default=())
    head_hash: str = chain.GENESIS

    @property
    def ok(self) -> bool:
        return self.problem is None


def _checkpoints(deps: Deps) -> tuple[list[chain.Checkpoint], list[str]]:
    if deps.checkpointer is None:
        return [], []
    return deps.checkpointer.store.read()


def verify(deps: Deps) -> Verification:
    """The chain in itself (every row's hash and MAC, the signed head), then against every
    checkpoint in force: the chain must reach each and hold its hash there, so deleting the log,
    writing an old head back or restoring an old backup is found. A chain with rows and no
    checkpoint at all is refused too: the anchor is missing (see docs/decisions/0005)."""
    found, bad = _checkpoints(deps)
    binding = chain.in_force(found)
    anchor = max(binding, key=lambda c: c.seq, default=None)
    if bad:
        return Verification(0, chain.Problem(0, CHECKPOINT), 0, anchor, tuple(bad))
    wanted = {c.seq for c in binding}
    hash_at: dict[int, str] = {}

    def rows(stream: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in stream:
            if row["seq"] in wanted:
                hash_at[row["seq"]] = row["hash"]
            yield row

    with deps.uow(read_only=True, snapshot=True) as uow:  # the service appends meanwhile
        head = uow.audit_head()
        if head is None:
            first = list(uow.audit_rows(batch=1))
            if first:
                return Verification(0, chain.Problem(first[0]["seq"], "head"), 0, anchor)
            return Verification(0, chain.check_anchors(binding, 0, {}), 0, anchor)
        checked, problem = chain.verify(rows(uow.audit_rows()), head.seq, head.hash, head.mac,
                                        deps.audit_key)
        problem = problem or chain.check_anchors(binding, head.seq, hash_at)
        if problem is None and anchor is None and head.seq > 0:
            problem = chain.Problem(head.seq, UNANCHORED)
        return Verification(checked, problem, head.seq, anchor, head_hash=head.hash)


@guard.audited("audit.checkpoint", None)
def checkpoint(deps: Deps, actor: Actor, adopt: bool = False) -> Verification:
    """Verify, then anchor the verified head now (what the scheduled `audit verify` does after
    a clean run). `adopt` anchors a chain that has no checkpoint yet (a new or moved
    checkpoint folder): the operator's decision, audited."""
    actor.require(Perm.READ_AUDIT)
    began = datetime.now(UTC)  # every checkpoint written before this is read by the verification
    result = verify(deps)
    if result.problem is not None and not (adopt and result.problem.reason == UNANCHORED):
        from authsvc.services import alerts  # the inbox is told: R25

        alerts.raise_alert(deps, "audit_verification_failed", "audit", None,
                           reason=result.problem.reason, seq=result.problem.seq)
        return result
    if deps.checkpointer is None:
        raise DomainError("audit_checkpoints_unavailable")
    if result.problem is not None:  # adopting: the decision itself goes into the chain first
        with deps.uow() as uow:
            uow.audit(deps.clock.now(), actor, "audit.checkpoint_adopted", "audit", "ok",
                      head=result.head_seq, folder=str(deps.settings.checkpoint_path))
            uow.commit()
        with deps.uow(read_only=True) as uow:
            head = uow.audit_head()
            if head is not None:
                deps.checkpointer.store.append(head.seq, head.hash)
        return verify(deps)
    if result.head_seq > 0:  # the head the verification held, covering every checkpoint before it
        deps.checkpointer.store.append(result.head_seq, result.head_hash, chain.VERIFIED, at=began)
    return result


@guard.audited("audit.accept_rollback", None)
def accept_rollback(deps: Deps, actor: Actor, reason: str) -> dict[str, Any]:
    """After a database restored from a backup (or a loss the operators have investigated):
    record that the events after the restored head are gone. Writes a `rollback` checkpoint at
    the present head (older checkpoints stop binding), then the audit event that says what was
    lost and why. Refused unless the chain is intact in itself and only behind its anchor."""
    actor.require(Perm.RUN_MAINTENANCE)
    reason = " ".join((reason or "").split())[:200]
    if not reason:
        raise DomainError("audit_reason_required")
    result = verify(deps)
    if result.problem is None or result.problem.reason not in ("rolled_back", "diverged"):
        raise DomainError("audit_no_rollback")
    if deps.checkpointer is None:
        raise DomainError("audit_checkpoints_unavailable")
    with deps.uow(read_only=True) as uow:
        head = uow.audit_head()
        seq, digest = (head.seq, head.hash) if head is not None else (0, chain.GENESIS)
    lost = {"restored_head": seq, "anchored_seq": result.anchor.seq if result.anchor else 0,
            "anchored_hash": result.anchor.hash if result.anchor else "", "found": result.problem.reason}
    deps.checkpointer.store.append(seq, digest, chain.ROLLBACK)
    now = deps.clock.now()
    with deps.uow() as uow:
        uow.audit(now, actor, "audit.rollback_accepted", "audit", "alert", reason=reason, **lost)
        uow.commit()
    deps.checkpointer.flush()
    return lost


@guard.audited("audit.read", "subject")
def events(deps: Deps, actor: Actor, subject: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest events, newest first (system administrators and staff only, R22). A subject
    is matched as itself and as the pseudonym an unknown identifier is logged under, so an
    operator can ask "was ID X tried?" without the log ever holding unknown IDs in clear.
    A company's administrators read the events of their company's accounts and service
    clients only (R24)."""
    actor.require(Perm.READ_AUDIT)
    if not actor.everywhere:
        if not subject or not subject.strip():
            raise Forbidden("audit_subject_required")
        with deps.uow(read_only=True) as uow:
            key = identifiers.canonical_or_none(subject.strip()) or ""
            acc = uow.account(key)
            svc = uow.service_clients.by_identifier(key) if acc is None else None
            if acc is None and svc is None:  # unknown: never written down in clear (R5),
                raise NotFound("account_not_found", user_id=subject.strip()[:64])  # like another's
            company = acc.contract.company if acc is not None else svc.company if svc else None
        guard.check(actor, Perm.READ_AUDIT, company, "account_not_found", user_id=subject.strip())
    subjects = None
    if subject:  # as typed, and without the white space an operator may have typed around it
        forms = {subject, subject.strip()}
        subjects = [*forms, *(lockout.throttle_key(f, deps.audit_key, lambda _k: False) for f in forms)]
    with deps.uow() as uow:
        return [{c: getattr(e, c) for c in COLUMNS} for e in uow.audit_events(subjects, limit)]
