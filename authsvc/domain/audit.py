"""The audit hash chain (R22): each event carries the hash of its predecessor and is a signed
checkpoint (a MAC of its sequence number and hash, with a key kept outside the database); the
chain's head (last sequence number and hash) is signed with the same key. So a modified,
deleted, reordered or truncated log is found by `verify`, and so is a chain rebuilt from some
row onward with valid hashes but without the key, at the first rebuilt row."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
FIELDS = ("seq", "ts", "actor", "action", "subject", "result", "terminal", "source", "detail")


def canonical(event: Mapping[str, Any]) -> bytes:
    return json.dumps(
        {k: event[k] for k in FIELDS}, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    ).encode()


def chain_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(event)).hexdigest()


def sign_head(key: bytes, seq: int, head_hash: str) -> str:
    return hmac.new(key, f"{seq}:{head_hash}".encode(), hashlib.sha256).hexdigest()


def sign_row(key: bytes, seq: int, row_hash: str) -> str:
    """The signed checkpoint stored with each row. Domain-separated from `sign_head`, so a
    row's MAC can never serve as the head's (which would hide a truncated tail)."""
    return hmac.new(key, f"row:{seq}:{row_hash}".encode(), hashlib.sha256).hexdigest()


def _same_mac(expected: str, stored: object) -> bool:
    """Constant-time comparison that also survives a non-ASCII or missing stored value."""
    given = stored.encode("utf-8", "replace") if isinstance(stored, str) else b""
    return hmac.compare_digest(expected.encode(), given)


@dataclass(frozen=True)
class Problem:
    seq: int
    reason: str  # modified | deleted | reordered | forged | truncated | head

    def __str__(self) -> str:
        return f"first bad row: seq {self.seq} ({self.reason})"


def verify(
    rows: Iterable[Mapping[str, Any]],
    head_seq: int,
    head_hash: str,
    head_mac: str,
    key: bytes,
) -> tuple[int, Problem | None]:
    """Walk the rows in stored order; return how many were checked and the first problem.
    Rows read from the store always carry their `mac` (a missing one, NULL, is a problem);
    rows given without a `mac` key are checked by the chain and the signed head only."""
    prev_hash, expected, checked = GENESIS, 1, 0
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
    if checked > head_seq or prev_hash != head_hash:
        return checked, Problem(head_seq + 1, "head")
    if not _same_mac(sign_head(key, head_seq, head_hash), head_mac):
        return checked, Problem(head_seq, "head")  # the chain was rebuilt without the key
    return checked, None
