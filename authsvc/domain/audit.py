"""The audit hash chain (R22): each event carries the hash of its predecessor and is a signed
checkpoint (a MAC of its sequence number and hash, with a key kept outside the database); the
chain's head (last sequence number and hash) is signed with the same key. So a modified,
deleted, reordered or truncated log is found by `verify`, and so is a chain rebuilt from some
row onward with valid hashes but without the key, at the first rebuilt row.

Events are written before they are chained (docs/decisions/0013): an action's transaction
inserts its event with an event MAC over its content and its writer's position (`writer`,
`wseq`: each writer numbers its events 1, 2, 3 … without gaps), and one sequencer at a time
seals the committed events into the chain. A sealer that finds a writer's numbers skip puts an
`audit.events_missing` event into the chain in their place."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
FIELDS = ("seq", "ts", "actor", "action", "subject", "result", "terminal", "source", "detail")


_SORTED = tuple(sorted(FIELDS))
# sorted keys, no spaces, UTF-8 as is: the same bytes as json.dumps(..., sort_keys=True) gives,
# with the encoder built once (verification encodes every row of the log)
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def canonical(event: Mapping[str, Any]) -> bytes:
    return _ENCODE({k: event[k] for k in _SORTED}).encode()


def chain_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(event)).hexdigest()


def _mac(key: bytes, message: str) -> str:
    return hmac.digest(key, message.encode(), "sha256").hex()


def sign_head(key: bytes, seq: int, head_hash: str) -> str:
    return _mac(key, f"{seq}:{head_hash}")


def sign_row(key: bytes, seq: int, row_hash: str) -> str:
    """The signed checkpoint stored with each row. Domain-separated from `sign_head`, so a
    row's MAC can never serve as the head's (which would hide a truncated tail)."""
    return _mac(key, f"row:{seq}:{row_hash}")


def sign_event(key: bytes, writer: str, wseq: int, event: Mapping[str, Any]) -> str:
    """The MAC an event carries from its insert until it is sealed: its content (without the
    sequence number it has not got yet) and its writer's position, so an unsealed event cannot
    be forged, edited, or passed off as another writer's. Domain-separated (`event:`)."""
    body = {k: event[k] for k in FIELDS if k != "seq"}
    msg = f"event:{writer}:{wseq}:".encode() + json.dumps(
        body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def event_ok(key: bytes, row: Mapping[str, Any]) -> bool:
    """An unsealed row's event MAC holds (its content and writer position are as written)."""
    if not row.get("writer") or not isinstance(row.get("wseq"), int) or row["wseq"] < 1:
        return False
    return _same_mac(sign_event(key, row["writer"], row["wseq"], row), row.get("emac"))


def sign_writer(key: bytes, writer: str, last: int) -> str:
    """A writer's last sealed position, as the sequencer keeps it (`audit_writers`)."""
    return hmac.new(key, f"writer:{writer}:{last}".encode(), hashlib.sha256).hexdigest()


def writer_ok(key: bytes, writer: str, last: int, mac: object) -> bool:
    return _same_mac(sign_writer(key, writer, last), mac)


MISSING = "audit.events_missing"     # sealed in place of a writer's events that never arrived
LOSS_ACCEPTED = "audit.loss_accepted"  # an operator's acceptance of one such gap (by its seq)


@dataclass(frozen=True)
class Placement:
    """What the sequencer does with one unsealed event, by its writer's last sealed position:
    seal it (`ok`), seal it after a `missing` event for the numbers skipped before it, or
    refuse it (`replayed`: a position already sealed; `forged`: its MAC does not hold)."""

    verdict: str  # ok | gap | replayed | forged
    missing: tuple[int, int] | None = None


def place(key: bytes, row: Mapping[str, Any], last: int) -> Placement:
    if not event_ok(key, row):
        return Placement("forged")
    if row["wseq"] <= last:
        return Placement("replayed")
    if row["wseq"] > last + 1:
        return Placement("gap", (last + 1, row["wseq"] - 1))
    return Placement("ok")


def _same_mac(expected: str, stored: object) -> bool:
    """Constant-time comparison that also survives a non-ASCII or missing stored value."""
    given = stored.encode("utf-8", "replace") if isinstance(stored, str) else b""
    return hmac.compare_digest(expected.encode(), given)


@dataclass(frozen=True)
class Problem:
    seq: int
    # modified | deleted | reordered | forged | truncated | head | rolled_back | diverged |
    # missing (a writer's events never sealed) | unsealed (the sequencer is not sealing)
    reason: str

    def __str__(self) -> str:
        return f"first bad row: seq {self.seq} ({self.reason})"


def verify(
    rows: Iterable[Mapping[str, Any]],
    head_seq: int,
    head_hash: str,
    head_mac: str,
    key: bytes,
    start: tuple[int, str] = (1, GENESIS),
) -> tuple[int, Problem | None]:
    """Walk the rows in stored order; return how many were checked and the first problem.
    Rows read from the store always carry their `mac` (a missing one, NULL, is a problem);
    rows given without a `mac` key are checked by the chain and the signed head only.
    `start`: the first sequence number expected and its predecessor's hash (after archived
    rows: the archives carry the chain forward)."""
    expected, prev_hash = start
    checked = expected - 1  # what the archives hold counts as checked (they verify themselves)
    for row in rows:
        seq = row["seq"]
        if seq != expected:
            return checked, Problem(expected, "deleted" if seq > expected else "reordered")
        if row["prev_hash"] != prev_hash:
            return checked, Problem(seq, "reordered")
        if chain_hash(prev_hash, row) != row["hash"]:
            return checked, Problem(seq, "modified")
        if "mac" in row and not _same_mac(sign_row(key, seq, row["hash"]), row["mac"]):
            return checked, Problem(seq, "forged")  # hashes recomputed without the key
        prev_hash, expected, checked = row["hash"], expected + 1, checked + 1
    if checked < head_seq:
        return checked, Problem(checked + 1, "truncated")
    if head_seq < start[0] - 1:
        return checked, Problem(head_seq + 1, "head")  # a head behind what was archived
    if checked > head_seq or prev_hash != head_hash:
        return checked, Problem(head_seq + 1, "head")
    if not _same_mac(sign_head(key, head_seq, head_hash), head_mac):
        return checked, Problem(head_seq, "head")  # the chain was rebuilt without the key
    return checked, None


# ---- archives: retention without a break in the chain --------------------------------------
#
# Events older than the retention period leave the database for an archive file; a signed
# record of each archive stays (first and last sequence, the hash before its first row and of its
# last, the file's SHA-256). The archives must follow one another without a gap from sequence 1,
# and the first row left in the database must continue the last archive: so deleting rows and
# calling them archived, dropping an archive record, or editing one is found without the files;
# an archive file verifies on its own against its signed record.


@dataclass(frozen=True)
class Archive:
    first_seq: int
    last_seq: int
    first_prev_hash: str
    last_hash: str
    sha256: str  # of the archive file's bytes
    mac: str = ""

    def message(self) -> bytes:
        return (f"archive:{self.first_seq}:{self.last_seq}:{self.first_prev_hash}:{self.last_hash}:"
                f"{self.sha256}").encode()

    def signed(self, key: bytes) -> Archive:
        return Archive(self.first_seq, self.last_seq, self.first_prev_hash, self.last_hash, self.sha256,
                       hmac.new(key, self.message(), hashlib.sha256).hexdigest())

    def valid(self, key: bytes) -> bool:
        return _same_mac(hmac.new(key, self.message(), hashlib.sha256).hexdigest(), self.mac)


def check_archives(archives: Iterable[Archive], key: bytes) -> tuple[tuple[int, str], Problem | None]:
    """The archive records in sequence order, each signed, each following the one before from
    sequence 1; returns where the database's rows must start (sequence, predecessor's hash)."""
    start = (1, GENESIS)
    for a in sorted(archives, key=lambda x: x.first_seq):
        if not a.valid(key):
            return start, Problem(a.first_seq, "forged")
        if a.first_seq != start[0] or a.first_prev_hash != start[1] or a.last_seq < a.first_seq:
            return start, Problem(start[0], "deleted")
        start = (a.last_seq + 1, a.last_hash)
    return start, None


def verify_archive(rows: Iterable[Mapping[str, Any]], record: Archive, key: bytes) -> Problem | None:
    """An archive file's rows against its signed record: the record's MAC, every row's chain
    hash and MAC, no gap, the record's first and last hashes. (The file's SHA-256 is checked
    by the caller, who has its bytes.)"""
    if not record.valid(key):
        return Problem(record.first_seq, "forged")
    # the record stands for the archive's head: its last sequence and hash, under the key
    _checked, problem = verify(rows, record.last_seq, record.last_hash,
                               sign_head(key, record.last_seq, record.last_hash), key,
                               start=(record.first_seq, record.first_prev_hash))
    return problem


# ---- checkpoints: the chain's anchor outside the database ----------------------------------
#
# A head signed inside the database proves that a chain of that length existed, not that it is
# the newest: a saved head row written back after deleting the events behind it verifies. So
# every process appends signed checkpoints (sequence, hash, time) to a place outside the
# database, and the chain must hold every checkpoint in force: reach its sequence, with its
# hash there. (Not only the newest: after a restore from an old backup the service writes on,
# and the checkpoints of that new branch would otherwise hide the older ones it contradicts.)
# A `rollback` checkpoint is an operator's acceptance of a restored database: checkpoints
# written before it no longer bind.

ROLLBACK = "rollback"
VERIFIED = "verified"  # written by a verification that held every checkpoint before it


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str          # UTC, ISO 8601 with microseconds: orders checkpoints across processes
    kind: str = "head"  # head | rollback | verified
    mac: str = ""

    def signed(self, key: bytes) -> Checkpoint:
        return Checkpoint(self.seq, self.hash, self.at, self.kind, _checkpoint_mac(key, self))

    def to_line(self) -> str:
        return json.dumps({"seq": self.seq, "hash": self.hash, "at": self.at, "kind": self.kind,
                           "mac": self.mac}, sort_keys=True, separators=(",", ":"))


def _checkpoint_mac(key: bytes, cp: Checkpoint) -> str:
    msg = f"checkpoint:{cp.kind}:{cp.seq}:{cp.hash}:{cp.at}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def parse_checkpoint(line: str, key: bytes) -> Checkpoint | None:
    """A checkpoint line, or None when it is not one this key signed (forged or damaged)."""
    try:
        d = json.loads(line)
        cp = Checkpoint(int(d["seq"]), str(d["hash"]), str(d["at"]), str(d["kind"]), str(d["mac"]))
    except (ValueError, KeyError, TypeError):
        return None
    if cp.kind not in ("head", ROLLBACK, VERIFIED) or cp.seq < 0:
        return None
    return cp if _same_mac(_checkpoint_mac(key, cp), cp.mac) else None


def in_force(checkpoints: Iterable[Checkpoint]) -> list[Checkpoint]:
    """The checkpoints that bind: those written at or after the last accepted rollback (by
    time), and of those only the ones a later verification has not already covered. A
    `verified` checkpoint carries the time its verification began: every checkpoint written
    before then was held by that chain, whose head it fixes, so it adds nothing (this keeps
    what a verification must hold to what came since the previous one)."""
    ordered = sorted(checkpoints, key=lambda c: c.at)
    since = max((i for i, c in enumerate(ordered) if c.kind == ROLLBACK), default=0)
    ordered = ordered[since:]
    covered = max((i for i, c in enumerate(ordered) if c.kind == VERIFIED), default=None)
    if covered is None:
        return ordered
    last = ordered[covered]
    return [last, *(c for c in ordered if c is not last and (c.at >= last.at or c.seq > last.seq))]


def anchor(checkpoints: Iterable[Checkpoint]) -> Checkpoint | None:
    """The newest checkpoint in force, by sequence."""
    return max(in_force(checkpoints), key=lambda c: c.seq, default=None)


def check_anchors(binding: Iterable[Checkpoint], head_seq: int,
                  hash_at: Mapping[int, str]) -> Problem | None:
    """The chain (already verified in itself) against every checkpoint in force: it must reach
    each one's sequence (`rolled_back`: rows a checkpoint saw are gone) and hold its hash there
    (`diverged`: another chain than the one anchored). `hash_at` maps the checkpoints'
    sequences to the chain's hashes there."""
    cps = [c for c in binding if c.seq > 0]
    if any(c.seq > head_seq for c in cps):
        return Problem(head_seq + 1, "rolled_back")
    wrong = [c.seq for c in cps if hash_at.get(c.seq) != c.hash]
    return Problem(min(wrong), "diverged") if wrong else None
