"""The audit log (R22): verification of the hash chain against its anchor outside the database,
the checkpoints that anchor it, an operator's acceptance of a restored database, and reading."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters import metrics
from authsvc.domain import audit as chain
from authsvc.domain import identifiers, lockout
from authsvc.domain.calendar import jst_iso
from authsvc.domain.errors import DomainError, Forbidden, NotFound
from authsvc.domain.roles import Actor, Perm
from authsvc.services import Deps, audit_export, guard
from authsvc.store.models import AuditArchive

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


def seal(deps: Deps, wait: bool = True) -> int:
    """Seal every committed event into the chain now (the sequencer does it after each commit;
    the chain's readers call this first, to read it whole). How many were sealed; with `wait`
    False, nothing is done while another pass is sealing."""
    return deps.seal_audit(wait)


def verify(deps: Deps) -> Verification:
    """The chain verified (see `_verify_chain`), after sealing what is committed unless another
    pass is sealing (a pass that never ends shows as `unsealed` events); its result is the gauge
    authsvc_audit_verification_ok of GET /metrics."""
    try:
        seal(deps, wait=False)
    except Exception:  # what cannot be sealed is reported by the verification
        logging.getLogger("authsvc.audit").exception("audit events cannot be sealed")
    result = _verify_chain(deps)
    metrics.set_audit_verification(result.ok)
    return result


def _verify_chain(deps: Deps) -> Verification:
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

    missing: set[int] = set()  # the sequencer's `missing` events, less those accepted

    def rows(stream: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in stream:
            if row["seq"] in wanted:
                hash_at[row["seq"]] = row["hash"]
            if row["action"] == chain.MISSING:
                missing.add(row["seq"])
            elif row["action"] == chain.LOSS_ACCEPTED:
                missing.discard(_accepted_seq(row))
            yield row

    with deps.uow(read_only=True, snapshot=True) as uow:  # the service appends meanwhile
        head = uow.audit_head()
        if head is None:
            first = list(uow.audit_rows(batch=1))
            if first:
                return Verification(0, chain.Problem(first[0]["seq"], "head"), 0, anchor)
            return Verification(0, chain.check_anchors(binding, 0, {}) or _unchained(deps, uow, 0),
                                0, anchor)
        start, problem = chain.check_archives([_record(a) for a in uow.audit_archives()], deps.audit_key)
        if problem is not None:
            return Verification(0, problem, head.seq, anchor, head_hash=head.hash)
        hash_at[start[0] - 1] = start[1]  # the last archive's hash answers a checkpoint there
        checked, problem = chain.verify(rows(uow.audit_rows()), head.seq, head.hash, head.mac,
                                        deps.audit_key, start=start)
        # a checkpoint inside an archived run is held by that archive's signed record
        binding = [c for c in binding if c.seq >= start[0] - 1]
        problem = (problem or chain.check_anchors(binding, head.seq, hash_at)
                   or (chain.Problem(min(missing), "missing") if missing else None)
                   or _unchained(deps, uow, head.seq))
        if problem is None and anchor is None and head.seq > 0:
            problem = chain.Problem(head.seq, UNANCHORED)
        return Verification(checked, problem, head.seq, anchor, head_hash=head.hash)


def _accepted_seq(row: dict[str, Any]) -> int:
    try:
        return int(json.loads(row["detail"]).get("seq", 0))
    except (ValueError, TypeError, AttributeError):
        return 0


def _unchained(deps: Deps, uow: Any, head_seq: int) -> chain.Problem | None:
    """The events outside the chain: one the sequencer refused (forged or replayed), one whose
    event MAC does not hold, or one left unsealed beyond `audit.seal_grace_seconds` (the
    sequencer is stopped or blocked: its events could be deleted unseen)."""
    cutoff = jst_iso(deps.clock.now() - timedelta(seconds=deps.settings.audit.seal_grace_seconds))
    for row in uow.audit_unchained():
        if row["seq"] is not None or not chain.event_ok(deps.audit_key, row):
            return chain.Problem(head_seq + 1, "forged")
        if row["ts"] < cutoff:
            return chain.Problem(head_seq + 1, "unsealed")
    return None


def _record(a: Any) -> chain.Archive:
    return chain.Archive(a.first_seq, a.last_seq, a.first_prev_hash, a.last_hash, a.sha256, a.mac)


# ---- retention: archive and prune ----------------------------------------------------------


@guard.audited("audit.archive", None)
def archive(deps: Deps, actor: Actor, before: datetime | None = None) -> dict[str, Any]:
    """Move the events stamped before `before` (default: older than `audit.retention_days`) out
    of the database into an archive file of their own, with a signed record that carries the
    chain forward (domain/audit.py: archives). The file is written and synced before the rows
    are deleted; the record and the deletion commit together. Only a chain that verifies is
    archived."""
    actor.require(Perm.RUN_MAINTENANCE)
    days = deps.settings.audit.retention_days
    if before is None:
        if days <= 0:
            return {"archived": 0}
        before = deps.clock.now() - timedelta(days=days)
    seal(deps)  # everything committed is in the chain before the cut is chosen
    checked = verify(deps)
    if checked.problem is not None:
        raise DomainError("audit_archive_unverified", problem=str(checked.problem))
    folder = deps.settings.audit_archive_path
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with deps.uow(read_only=True, snapshot=True) as uow:
        start, _ = chain.check_archives([_record(a) for a in uow.audit_archives()], deps.audit_key)
        head = uow.audit_head()
        # the newest event always stays: the signed head is checked against a row; and nothing
        # leaves before every export destination has it (the separate copy is never short)
        delivered = [audit_export.cursor_of(deps.settings, name).read()[0]
                     for name in audit_export.destinations(deps.settings)]
        last = min(uow.audit_last_before(jst_iso(before)), (head.seq if head else 0) - 1, *delivered)
        if last < start[0]:
            return {"archived": 0}
        name = f"audit-{start[0]:012d}-{last:012d}.jsonl"
        if (folder / name).exists():  # a run archived before a restore: never overwritten
            name = f"audit-{start[0]:012d}-{last:012d}-{deps.clock.now():%Y%m%dT%H%M%S%f}.jsonl"
        digest = hashlib.sha256()
        last_hash = start[1]
        partial = folder / f".{name}.partial"
        with open(partial, "w", encoding="utf-8") as fh:
            for row in uow.audit_rows(after=start[0] - 1, upto=last):
                line = json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"
                fh.write(line)
                digest.update(line.encode())
                last_hash = row["hash"]
            fh.flush()
            os.fsync(fh.fileno())
    record = chain.Archive(start[0], last, start[1], last_hash, digest.hexdigest()).signed(deps.audit_key)
    (folder / f"{name}.sig").write_text(json.dumps(asdict(record), sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, folder / name)
    now = deps.clock.now()
    with deps.uow() as uow:
        deleted = uow.archive_audit(AuditArchive(
            first_seq=record.first_seq, last_seq=record.last_seq, first_prev_hash=record.first_prev_hash,
            last_hash=record.last_hash, sha256=record.sha256, file_name=name, created_at=now, mac=record.mac))
        uow.audit(now, actor, "audit.archived", "audit", first=record.first_seq, last=record.last_seq,
                  file=name, sha256=record.sha256, deleted=deleted)
        uow.commit()
    return {"archived": deleted, "first": record.first_seq, "last": record.last_seq, "file": name}


def verify_archive(deps: Deps, path: str | Path) -> chain.Problem | None:
    """An archive file on its own: its bytes against the SHA-256 in its signed record (the
    `.sig` file beside it), the record's MAC, and the chain of its rows."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        sig = json.loads(Path(f"{path}.sig").read_text(encoding="utf-8"))
        record = chain.Archive(int(sig["first_seq"]), int(sig["last_seq"]), str(sig["first_prev_hash"]),
                               str(sig["last_hash"]), str(sig["sha256"]), str(sig["mac"]))
    except (OSError, ValueError, KeyError, TypeError):
        return chain.Problem(0, "unreadable")
    if hashlib.sha256(raw).hexdigest() != record.sha256:
        return chain.Problem(record.first_seq, "modified")
    try:
        rows = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line]
    except ValueError:
        return chain.Problem(record.first_seq, "unreadable")
    return chain.verify_archive(rows, record, deps.audit_key)


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
    if result.problem is not None and result.problem.reason == "missing":
        return _accept_missing(deps, actor, reason, result.problem.seq)
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


def _accept_missing(deps: Deps, actor: Actor, reason: str, seq: int) -> dict[str, Any]:
    """The operators have investigated the events a writer never delivered (the sequencer's
    `missing` event at `seq`): the acceptance goes into the chain, naming it."""
    with deps.uow() as uow:
        uow.audit(deps.clock.now(), actor, chain.LOSS_ACCEPTED, "audit", "alert", reason=reason, seq=seq)
        uow.commit()
    seal(deps)
    return {"found": "missing", "seq": seq}


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
