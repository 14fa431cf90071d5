"""The records the vein interface hands out: a signed capture, an enrolment, a match, a candidate.

A `Capture` is what travels from the terminal to the server. Its signature is the reader's
Ed25519 signature over a canonical encoding of every other field, so the server can prove the
capture came from a registered reader (R12), for the challenge it issued (R11), with the quality
and liveness results the reader measured. `to_dict()`/`from_dict()` give a JSON-safe form
(base64url, no padding); `from_dict` is strict, because its input comes from the network."""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from adapters.vein.errors import InvalidRecord

RECORD_VERSION = 1
MIN_CHALLENGE = 16
MAX_CHALLENGE = 256
MAX_SAMPLE = 16 * 1024
SIGNATURE_SIZE = 64
MAX_READER_ID = 128
MAX_FORMAT = 32
_SIGNING_CONTEXT = b"authsvc.vein.capture/1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_READER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]*")
_FORMAT = re.compile(r"[0-9A-F]{4}:[0-9A-F]{4}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_FIELDS = ("v", "format", "purpose", "quality", "liveness_passed", "liveness_score", "reader_id",
           "created_at", "challenge", "sample", "signature")


class Purpose(StrEnum):
    VERIFY = "verify"
    IDENTIFY = "identify"
    ENROL = "enrol"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: object, name: str, max_bytes: int) -> bytes:
    """Strict base64url without padding: canonical, bounded, nothing else accepted."""
    if not isinstance(text, str):
        raise InvalidRecord(f"{name}: base64url text expected")
    if len(text) > (max_bytes * 4 + 2) // 3:
        raise InvalidRecord(f"{name}: longer than {max_bytes} bytes")
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise InvalidRecord(f"{name}: not base64url (unpadded)")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidRecord(f"{name}: not base64url") from None
    if b64url(data) != text:
        raise InvalidRecord(f"{name}: non-canonical base64url")
    return data


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)



def _verified(public_key: Ed25519PublicKey | bytes, signature: bytes, payload: bytes) -> bool:
    """Whether `signature` is an Ed25519 signature by `public_key` over `payload`."""
    key = (Ed25519PublicKey.from_public_bytes(public_key) if isinstance(public_key, bytes)
           else public_key)
    if len(signature) != SIGNATURE_SIZE:
        return False
    try:
        key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True

@dataclass(frozen=True)
class Capture:
    """One signed capture. `sample` is the processed biometric sample (a BIR, opaque bytes):
    it is kept in memory only, never logged (it is left out of repr) and never stored (R15)."""

    format: str  # format owner:type of the sample, e.g. "FFFE:0001"
    purpose: Purpose
    quality: int  # 0–100
    liveness_passed: bool
    liveness_score: float  # 0.0–1.0
    reader_id: str
    created_at: datetime  # aware, UTC
    challenge: bytes = field(repr=False)
    sample: bytes = field(repr=False)
    signature: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        _check_fields(self)

    # -- signing --------------------------------------------------------------------------
    def signed_payload(self) -> bytes:
        """The canonical encoding signed by the reader: a context label, then every field but
        the signature, each length-prefixed (4 bytes, big-endian), in a fixed order."""
        parts = [
            _SIGNING_CONTEXT,
            self.format.encode("ascii"),
            str(self.purpose).encode("ascii"),
            str(self.quality).encode("ascii"),
            b"1" if self.liveness_passed else b"0",
            struct.pack(">d", self.liveness_score),
            self.reader_id.encode("ascii"),
            str(_micros(self.created_at)).encode("ascii"),
            self.challenge,
            self.sample,
        ]
        return b"".join(struct.pack(">I", len(p)) + p for p in parts)

    def signed(self, key: Ed25519PrivateKey) -> Capture:
        return replace(self, signature=key.sign(self.signed_payload()))

    def verify_signature(self, public_key: Ed25519PublicKey | bytes) -> bool:
        """True when `signature` is `public_key`'s over this record. Use the key registered
        for `reader_id` in the device registry, never a key that came with the capture."""
        return _verified(public_key, self.signature, self.signed_payload())

    # -- JSON-safe form -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "v": RECORD_VERSION,
            "format": self.format,
            "purpose": str(self.purpose),
            "quality": self.quality,
            "liveness_passed": self.liveness_passed,
            "liveness_score": self.liveness_score,
            "reader_id": self.reader_id,
            "created_at": self.created_at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "challenge": b64url(self.challenge),
            "sample": b64url(self.sample),
            "signature": b64url(self.signature),
        }

    @classmethod
    def from_dict(cls, data: object) -> Capture:
        """Parse untrusted input; raises InvalidRecord (a ValueError) saying what is wrong."""
        if not isinstance(data, Mapping):
            raise InvalidRecord("a capture record is a JSON object")
        if len(data) > 2 * len(_FIELDS):
            raise InvalidRecord("too many fields")
        keys = set(data)
        missing = [k for k in _FIELDS if k not in keys]
        extra = sorted(str(k)[:40] for k in keys - set(_FIELDS))
        if missing:
            raise InvalidRecord(f"missing field(s): {', '.join(missing)}")
        if extra:
            raise InvalidRecord(f"unknown field(s): {', '.join(extra)}")
        if type(data["v"]) is not int or data["v"] != RECORD_VERSION:
            raise InvalidRecord(f"v: version {RECORD_VERSION} expected")
        created = data["created_at"]
        if not isinstance(created, str) or len(created) > 40:
            raise InvalidRecord("created_at: ISO 8601 text expected")
        try:
            moment = datetime.fromisoformat(created)
            if moment.tzinfo is None:
                raise InvalidRecord("created_at: a time zone is required")
            moment = moment.astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            if isinstance(exc, InvalidRecord):
                raise
            raise InvalidRecord("created_at: not an ISO 8601 date-time") from None
        purpose = data["purpose"]
        if not isinstance(purpose, str) or purpose not in Purpose.__members__.values():
            raise InvalidRecord("purpose: verify, identify or enrol")
        score = data["liveness_score"]
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise InvalidRecord("liveness_score: a number expected")
        if isinstance(score, int):  # JSON may give 0 or 1; a huge integer must not overflow
            score = float(score) if -1 <= score <= 2 else -1.0
        return cls(
            format=data["format"],
            purpose=Purpose(purpose),
            quality=data["quality"],
            liveness_passed=data["liveness_passed"],
            liveness_score=score,
            reader_id=data["reader_id"],
            created_at=moment,
            challenge=b64url_decode(data["challenge"], "challenge", MAX_CHALLENGE),
            sample=b64url_decode(data["sample"], "sample", MAX_SAMPLE),
            signature=b64url_decode(data["signature"], "signature", SIGNATURE_SIZE),
        )


_PROOF_CONTEXT = b"authsvc.terminal.proof/1"
_PROOF_FIELDS = ("v", "purpose", "device_id", "created_at", "challenge", "signature")
TERMINAL_PURPOSE = "terminal"


@dataclass(frozen=True)
class TerminalProof:
    """The terminal's answer to a server challenge without a palm (R12): the device key's
    Ed25519 signature over a label of its own (so it can never pass for a capture, nor a
    capture for it), the purpose "terminal", the device ID, the time and the challenge, each
    length-prefixed as in a capture's payload."""

    device_id: str
    created_at: datetime  # aware, UTC
    challenge: bytes = field(repr=False)
    signature: bytes = field(default=b"", repr=False)
    purpose: str = TERMINAL_PURPOSE

    def __post_init__(self) -> None:
        if self.purpose != TERMINAL_PURPOSE:
            raise InvalidRecord("purpose: terminal expected")
        if (not isinstance(self.device_id, str) or not 0 < len(self.device_id) <= MAX_READER_ID
                or not self.device_id.isascii() or not _READER_ID.fullmatch(self.device_id)):
            raise InvalidRecord(f"device_id: 1..{MAX_READER_ID} characters of [A-Za-z0-9._:@/-]")
        if (not isinstance(self.created_at, datetime) or self.created_at.tzinfo is None
                or self.created_at.utcoffset() != timedelta(0)):
            raise InvalidRecord("created_at: an aware UTC date-time expected")
        if not isinstance(self.challenge, bytes) or not MIN_CHALLENGE <= len(self.challenge) <= MAX_CHALLENGE:
            raise InvalidRecord(f"challenge: {MIN_CHALLENGE}..{MAX_CHALLENGE} bytes expected")
        if not isinstance(self.signature, bytes) or len(self.signature) not in (0, SIGNATURE_SIZE):
            raise InvalidRecord(f"signature: {SIGNATURE_SIZE} bytes expected")

    def signed_payload(self) -> bytes:
        parts = [_PROOF_CONTEXT, self.purpose.encode("ascii"), self.device_id.encode("ascii"),
                 str(_micros(self.created_at)).encode("ascii"), self.challenge]
        return b"".join(struct.pack(">I", len(p)) + p for p in parts)

    def signed(self, key: Ed25519PrivateKey) -> TerminalProof:
        return replace(self, signature=key.sign(self.signed_payload()))

    def verify_signature(self, public_key: Ed25519PublicKey | bytes) -> bool:
        """True when `signature` is `public_key`'s over this record (the key registered for
        `device_id`, never one that came with the proof)."""
        return _verified(public_key, self.signature, self.signed_payload())

    def to_dict(self) -> dict[str, Any]:
        return {"v": RECORD_VERSION, "purpose": self.purpose, "device_id": self.device_id,
                "created_at": self.created_at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "challenge": b64url(self.challenge), "signature": b64url(self.signature)}

    @classmethod
    def from_dict(cls, data: object) -> TerminalProof:
        """Parse untrusted input, as strictly as a capture; raises InvalidRecord."""
        if not isinstance(data, Mapping):
            raise InvalidRecord("a terminal proof is a JSON object")
        if len(data) > 2 * len(_PROOF_FIELDS) or set(data) != set(_PROOF_FIELDS):
            raise InvalidRecord(f"fields: exactly {', '.join(_PROOF_FIELDS)}")
        if type(data["v"]) is not int or data["v"] != RECORD_VERSION:
            raise InvalidRecord(f"v: version {RECORD_VERSION} expected")
        return cls(device_id=data["device_id"], created_at=_parse_time(data["created_at"]),
                   challenge=b64url_decode(data["challenge"], "challenge", MAX_CHALLENGE),
                   signature=b64url_decode(data["signature"], "signature", SIGNATURE_SIZE),
                   purpose=data["purpose"])


def _parse_time(created: object) -> datetime:
    if not isinstance(created, str) or len(created) > 40:
        raise InvalidRecord("created_at: ISO 8601 text expected")
    try:
        moment = datetime.fromisoformat(created)
    except (ValueError, OverflowError):
        raise InvalidRecord("created_at: not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise InvalidRecord("created_at: a time zone is required")
    try:
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidRecord("created_at: not an ISO 8601 date-time") from None


def _check_fields(c: Capture) -> None:
    if not isinstance(c.format, str) or len(c.format) > MAX_FORMAT or not _FORMAT.fullmatch(c.format):
        raise InvalidRecord("format: 'OWNR:TYPE' in upper-case hex expected")
    if not isinstance(c.purpose, Purpose):
        raise InvalidRecord("purpose: verify, identify or enrol")
    if type(c.quality) is not int or not 0 <= c.quality <= 100:
        raise InvalidRecord("quality: an integer 0..100 expected")
    if type(c.liveness_passed) is not bool:
        raise InvalidRecord("liveness_passed: true or false expected")
    if (not isinstance(c.liveness_score, float) or not math.isfinite(c.liveness_score)
            or not 0.0 <= c.liveness_score <= 1.0):
        raise InvalidRecord("liveness_score: a number 0..1 expected")
    if (not isinstance(c.reader_id, str) or not 0 < len(c.reader_id) <= MAX_READER_ID
            or not c.reader_id.isascii() or not _READER_ID.fullmatch(c.reader_id)):
        raise InvalidRecord(f"reader_id: 1..{MAX_READER_ID} characters of [A-Za-z0-9._:@/-]")
    if (not isinstance(c.created_at, datetime) or c.created_at.tzinfo is None
            or c.created_at.utcoffset() != timedelta(0)):
        raise InvalidRecord("created_at: an aware UTC date-time expected")
    if not isinstance(c.challenge, bytes) or not MIN_CHALLENGE <= len(c.challenge) <= MAX_CHALLENGE:
        raise InvalidRecord(f"challenge: {MIN_CHALLENGE}..{MAX_CHALLENGE} bytes expected")
    if not isinstance(c.sample, bytes) or not 0 < len(c.sample) <= MAX_SAMPLE:
        raise InvalidRecord(f"sample: 1..{MAX_SAMPLE} bytes expected")
    if not isinstance(c.signature, bytes) or len(c.signature) not in (0, SIGNATURE_SIZE):
        raise InvalidRecord(f"signature: {SIGNATURE_SIZE} bytes expected")


@dataclass(frozen=True)
class Enrolment:
    """The outcome of enrol(): a template once enough good samples are in, else how many more
    are needed. `rejected` lists (index of the capture, reason) for captures that did not count."""

    template: bytes | None = field(repr=False)
    samples_needed: int
    rejected: tuple[tuple[int, str], ...] = ()
    quality: int | None = None  # the lowest quality among the samples used

    @property
    def complete(self) -> bool:
        return self.template is not None


class Match(NamedTuple):
    score: float  # calibrated: −log10 of the false-match rate of this comparison
    decision: bool
    fmr_achieved: float


class Candidate(NamedTuple):
    id: object
    score: float
    fmr_achieved: float


class ReaderInfo(NamedTuple):
    unit_id: str  # the unit's id at the SDK ("vein0")
    vendor: str
    model: str
    serial: str
    present: bool
