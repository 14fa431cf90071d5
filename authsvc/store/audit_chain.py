"""The audit chain's one sequencer (R22, docs/decisions/0013): actions insert their events
unsealed, without a shared lock; a sealing pass, one at a time under a database lock, puts the
committed ones into the hash chain in one short transaction. Each process keeps a pool of
writers (an identity and a count of its committed events) and a background thread that seals
after its commits; `seal()` seals now, for the readers of the chain (verification, export,
archive). On SQLite, where every writer holds the database's one lock anyway, events are
chained as they are inserted (store/uow.py) and there is nothing to seal."""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, exists, select, text
from sqlalchemy.orm import Session, sessionmaker

from adapters.checkpoints import Checkpointer
from authsvc.domain import audit as chain
from authsvc.domain.calendar import jst_iso
from authsvc.store.models import AuditArchive, AuditEvent, AuditHead, AuditWriter

log = logging.getLogger("authsvc.audit")
SEAL_LOCK = 0x61756469  # PostgreSQL advisory lock: one sealing pass at a time
COALESCE_SECONDS = 0.05  # a pass seals what committed meanwhile: fewer, larger passes under load
_UNSEALED = (AuditEvent.id, *(AuditEvent.__table__.c[c] for c in chain.FIELDS if c != "seq"),
             AuditEvent.writer, AuditEvent.wseq, AuditEvent.emac)
_SEAL = text("UPDATE audit_events SET seq = :seq, prev_hash = :prev_hash, hash = :hash, mac = :mac "
             "WHERE id = :id")
_REFUSE = text("UPDATE audit_events SET seq = :seq WHERE id = :id")
SYSTEM = "system"


class AuditUnavailable(RuntimeError):
    """The audit chain cannot be extended; the action it belongs to must fail (R22)."""


def check_head(s: Session, checkpointer: Checkpointer | None) -> AuditHead | None:
    """The chain's head, or None for a chain not begun yet. Refuses (AuditUnavailable) a head
    missing while sealed or archived events exist, and a chain begun afresh where a checkpoint
    outside the database says there was one: an erased log stops every audited action (each
    transaction asks before its first event) until an operator accepts the loss
    (`authsvc audit accept-rollback`), instead of a new chain quietly taking its place."""
    head = s.get(AuditHead, 1)
    if head is not None:
        return head
    reason = ""
    if s.scalar(select(exists().where(AuditEvent.seq > 0))) or s.scalar(select(exists(AuditArchive))):
        reason = "audit head is missing while events exist"
    elif checkpointer is not None:
        found = chain.anchor(checkpointer.store.read()[0])
        if found is not None and found.seq > 0:
            reason = f"audit log erased: a checkpoint outside it has seq {found.seq}"
    if not reason:
        return None
    head = s.scalars(select(AuditHead).where(AuditHead.id == 1)).first()
    if head is not None:  # another instance's first pass committed (and anchored) meanwhile
        return head
    raise AuditUnavailable(reason)


class Writer:
    """One writer's identity and the last position it committed. A transaction takes a writer
    for itself, numbers its events on from `last`, and gives it back; a commit whose outcome is
    unknown (an error during commit) retires the writer, so no number is ever used twice."""

    __slots__ = ("last", "name")

    def __init__(self) -> None:
        self.name = secrets.token_hex(16)
        self.last = 0


class Writers:
    """A process's pool of writers: as many as it has transactions writing at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[Writer] = []
        self._pid = os.getpid()

    def take(self) -> Writer:
        with self._lock:
            if self._pid != os.getpid():  # a forked worker: the parent's writers are the parent's
                self._free, self._pid = [], os.getpid()
            return self._free.pop() if self._free else Writer()

    def give_back(self, writer: Writer) -> None:
        with self._lock:
            if self._pid == os.getpid():
                self._free.append(writer)


class Sequencer:
    def __init__(self, sessions: sessionmaker[Session], audit_key: bytes,
                 checkpointer: Checkpointer | None, inline: bool, batch: int = 2000,
                 background: bool = True) -> None:
        self._sessions = sessions
        self._key = audit_key
        self._checkpointer = checkpointer
        self.inline = inline  # SQLite: events are chained as they are inserted
        self.background = background  # tests of an unsealed window turn the thread off
        self.writers = Writers()
        self._batch = batch
        self._cond = threading.Condition()
        self._pending = False
        self._dirty = False  # committed events since the last pass began
        self._unanchored = False  # committed events since this process last anchored the head
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = 0
        if not inline:
            atexit.register(self._at_exit)

    # ---- after a commit ------------------------------------------------------------------

    def committed(self) -> None:
        """An action committed events: the process's sealing thread seals them."""
        if self.inline:
            return
        self._unanchored = True  # this process anchors the head once its events are in it
        if not self.background or self._closed:
            return
        with self._cond:
            self._pending = self._dirty = True
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="audit-sequencer", daemon=True)
                self._thread.start()
            self._cond.notify()

    def close(self) -> None:
        """Stop the sealing thread (what is unsealed stays for the next pass of any process)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=10)
        atexit.unregister(self._at_exit)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
            time.sleep(COALESCE_SECONDS)  # let the commits of this moment join one pass
            with self._cond:
                self._pending = False
            delay = 0.002
            while not self._closed:  # until a pass of ours began after the commit that woke us
                try:
                    if self.seal(wait=False) is not None:
                        break
                except Exception:  # logged; the next pass retries
                    log.exception("ALERT audit events cannot be sealed; retrying")
                    delay = 1.0
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _at_exit(self) -> None:
        if not self._dirty:
            return
        try:
            self.seal()
        except Exception as exc:  # the next process's pass seals them
            log.warning("audit events left unsealed at exit (%s)", type(exc).__name__)

    # ---- a sealing pass ------------------------------------------------------------------

    def seal(self, wait: bool = True) -> int | None:
        """Seal every committed unsealed event now, in passes of `batch`; how many were sealed,
        or None when another pass holds the lock and `wait` is False."""
        if self.inline:
            return 0
        total = 0
        while True:
            done = self._pass(wait)
            if done is None:
                return None if total == 0 else total
            total += done
            if done < self._batch:
                return total

    def _pass(self, wait: bool) -> int | None:
        with self._sessions() as s:
            if wait:
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEAL_LOCK})
            elif not s.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SEAL_LOCK}):
                return None
            self._dirty = False  # what commits from now on waits for the next pass
            rows = s.execute(select(*_UNSEALED).where(AuditEvent.seq.is_(None))
                             .order_by(AuditEvent.id).limit(self._batch)).all()
            if not rows:  # another process sealed ours: anchor the head that holds them
                head = s.get(AuditHead, 1) if self._unanchored else None
                if head is not None and self._checkpointer is not None:
                    self._unanchored = False
                    self._checkpointer.note(head.seq, head.hash)
                return 0
            head = check_head(s, self._checkpointer)
            if head is None:
                head = AuditHead(id=1, seq=0, hash=chain.GENESIS, mac="")
                s.add(head)
            n, digest = self._chain(s, head, rows)
            head.seq, head.hash, head.mac = n, digest, chain.sign_head(self._key, n, digest)
            s.commit()
        self._unanchored = False
        if self._checkpointer is not None:
            self._checkpointer.note(n, digest)  # anchored outside the database
        return len(rows)

    def _chain(self, s: Session, head: AuditHead, rows: Sequence[Row[Any]]) -> tuple[int, str]:
        """Place each event after the head (domain/audit.place): sealed in order, a `missing`
        event first where its writer skipped numbers, refused (negative seq) when forged or
        replayed. Returns the new head."""
        names = {r.writer for r in rows}
        kept = {w.writer: w for w in s.scalars(select(AuditWriter).where(AuditWriter.writer.in_(names)))}
        last = {n: w.last_wseq for n, w in kept.items() if chain.writer_ok(self._key, n, w.last_wseq, w.mac)}
        n, digest = head.seq, head.hash
        sealed: list[dict[str, Any]] = []
        refused: list[dict[str, Any]] = []
        for r in rows:
            fields = {c: getattr(r, c) for c in chain.FIELDS if c != "seq"}
            placed = chain.place(self._key, {**fields, "writer": r.writer, "wseq": r.wseq,
                                             "emac": r.emac}, last.get(r.writer, 0))
            if placed.verdict in ("forged", "replayed"):
                log.critical("ALERT audit event %d refused by the sequencer: %s", r.id, placed.verdict)
                refused.append({"id": r.id, "seq": -r.id})
                continue
            if placed.missing is not None:
                n, digest = self._missing(s, n, digest, r.writer, placed.missing)
            n += 1
            new = chain.chain_hash(digest, {**fields, "seq": n})
            sealed.append({"id": r.id, "seq": n, "prev_hash": digest, "hash": new,
                           "mac": chain.sign_row(self._key, n, new)})
            digest, last[r.writer] = new, r.wseq
        if sealed:
            s.execute(_SEAL, sealed)
        if refused:
            s.execute(_REFUSE, refused)
        for name in names:
            if name in last:
                mac = chain.sign_writer(self._key, name, last[name])
                if name in kept:
                    kept[name].last_wseq, kept[name].mac = last[name], mac
                else:
                    s.add(AuditWriter(writer=name, last_wseq=last[name], mac=mac))
        return n, digest

    def _missing(self, s: Session, n: int, digest: str, writer: str,
                 gap: tuple[int, int]) -> tuple[int, str]:
        """Seal, in place of a writer's events that never arrived, an event that says so."""
        log.critical("ALERT audit events %d..%d of writer %s are missing", gap[0], gap[1], writer)
        fields = {"seq": n + 1, "ts": jst_iso(datetime.now(UTC)), "actor": SYSTEM,
                  "action": chain.MISSING, "subject": "audit", "result": "alert", "terminal": "",
                  "source": "", "detail": json.dumps({"writer": writer, "first": gap[0], "last": gap[1]},
                                                     sort_keys=True)}
        new = chain.chain_hash(digest, fields)
        s.add(AuditEvent(**fields, prev_hash=digest, hash=new, mac=chain.sign_row(self._key, n + 1, new)))
        s.flush()
        return n + 1, new
