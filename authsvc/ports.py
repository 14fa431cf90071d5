"""The ports: every interface the services depend on, in one place. Implementations live in
`adapters/` (Redis, vein readers, files, the clock) and `store/` (SQL); fakes for fast tests
in `tests/fakes.py`. A service is typed by these Protocols, never by an implementation.

    Clock            what time it is (tests move it)
    Counters         failed-attempt counting with reservations (lockout.py)
    SessionStore     server-side sessions and pending logons, keyed by the token's hash
    CheckpointStore  the audit chain's anchor outside the database
    VeinReader       a palm-vein reader or matcher (R13), and its 1:N gallery
    AlertSink        where operator alerts go (the log today; the alerting of [10 of 12] next)
    Directory        an LDAP-style directory to import from and export to ([9 of 12])
    PasswordHasher   argon2id hashing and verification (adapters/hashing.py)
    Sealer           AES-256-GCM sealing of secrets at rest with a key ring (adapters/sealing.py)
    Holidays         Japanese public holidays, for business days (adapters/holidays.py)
    Blocklist        common and breached passwords (adapters/blocklist.py)
    ReplayCheck      recognising a palm sample seen before (adapters/vein/replay.py)
    SigningKeys      the OpenID provider's signing keys, files outside the database (adapters/oidc_keys.py)

The unit of work with its repositories is `authsvc.store.uow.UnitOfWork` (one transaction over
the SQL store); its in-memory fake is `tests/fakes.py:MemoryUnitOfWork`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from authsvc.domain.audit import Checkpoint
from authsvc.domain.lockout import Decision, Failure

if TYPE_CHECKING:  # names for the annotations only: no adapter is imported at run time
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from adapters.oidc_keys import KeyInfo
    from adapters.vein.records import (
        Candidate,
        Capture,
        Enrolment,
        Match,
        Purpose,
        ReaderInfo,
        TerminalProof,
    )


class Clock(Protocol):
    def now(self) -> datetime: ...


class Counters(Protocol):
    """`consume` reserves one of the remaining attempts atomically *before* the password is
    checked, so parallel attempts through any number of workers or instances never get more
    than N evaluations; `fail` and `release` settle the reservation once the outcome is known;
    a reservation never settled lapses after `pending_seconds` and never counts."""

    def consume(self, key: str, now: datetime, max_failures: int, lock_minutes: int) -> Decision:
        """Reserve one attempt for `key` (or refuse it: locked, or all remaining attempts in
        flight), as one atomic step; the decision names the reservation to settle."""
        ...

    def fail(self, key: str, attempt: str, now: datetime, max_failures: int,
             lock_minutes: int) -> Failure:
        """The reserved attempt failed: count it (the N-th decided failure locks)."""
        ...

    def release(self, key: str, attempt: str) -> None:
        """The reserved attempt succeeded (or was never evaluated): give it back."""
        ...

    def succeed(self, key: str) -> None:
        """A completed logon: the count and any lock are cleared."""
        ...

    def peek(self, key: str, now: datetime) -> tuple[int, datetime | None]:
        """(decided failures, locked_until while the lock is in force, else None)."""
        ...

    def reset(self, key: str, now: datetime) -> tuple[int, bool]:
        """An operator's unlock: clears the key; returns (failures it had, whether it was locked)."""
        ...


class SessionStore(Protocol):
    def put(self, token: str, data: dict[str, Any], user_id: str | None, ttl_s: int) -> None: ...
    def get(self, token: str) -> dict[str, Any] | None: ...
    def take(self, token: str) -> dict[str, Any] | None:
        """Get and delete in one atomic step: of concurrent takers exactly one gets it."""
        ...
    def delete(self, token: str) -> None: ...
    def of_user(self, user_id: str) -> dict[str, dict[str, Any]]:
        """The user's live sessions, by session id (the token's hash)."""
        ...
    def delete_id(self, sid: str) -> None: ...
    def delete_user(self, user_id: str) -> int: ...


class CheckpointStore(Protocol):
    folder: Any  # where it is, for the operator's messages

    def append(self, seq: int, head_hash: str, kind: str = "head",
               at: datetime | None = None) -> Checkpoint: ...

    def read(self) -> tuple[list[Checkpoint], list[str]]:
        """Every signed checkpoint, and where the lines are that are not."""
        ...


class AlertSink(Protocol):
    def alert(self, event: str, **detail: Any) -> None:
        """Tell the operators now (never an attacker): the audit log cannot be written, a
        checkpoint cannot be written, a duplicate person was enrolled ..."""
        ...


class Directory(Protocol):
    def search(self, base: str, filter: str, attributes: Sequence[str],
               page_size: int = 500) -> Iterator[dict[str, list[str]]]:
        """Every entry under `base` matching `filter`, paged (never capped by a size limit)."""
        ...

    def close(self) -> None: ...


# ---- secrets at rest and the rules' data sources ---------------------------------------------
# The domain stays plain Python (tests/unit/test_layers.py): the technologies live in adapters/
# behind these, and the rules take the data sources as plain callables (`deps.holidays.is_holiday`).


class PasswordHasher(Protocol):
    """Password hashing (R3, R5): argon2id in adapters/hashing.py."""

    def hash(self, password: str) -> str:
        """A fresh salted hash of the (NFKC-normalised) password."""
        ...

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether `password` matches `stored`. With no stored hash (an unknown user) the same
        work is spent on a dummy and the answer is False (R5); a malformed hash is False."""
        ...

    def needs_rehash(self, stored: str) -> bool:
        """Whether `stored` was made with other parameters than today's (re-hash on success)."""
        ...


class Sealer(Protocol):
    """Secrets sealed at rest under a key ring kept outside the database (R15): AES-256-GCM in
    adapters/sealing.py. `aad` binds a sealed value to its place (say b"totp:42")."""

    def seal(self, plaintext: bytes, aad: bytes) -> str:
        """Sealed under the current (first) key."""
        ...

    def open(self, sealed: str, aad: bytes) -> bytes:
        """The plaintext; raises authsvc.domain.errors.SealError if `sealed` is malformed, under
        an unknown key, tampered with, or bound to another `aad`."""
        ...

    def needs_reseal(self, sealed: str) -> bool:
        """Whether `sealed` is not under the current key (key rotation: re-seal on use)."""
        ...


class Holidays(Protocol):
    """The public holidays the business-day calendar skips (R7): Japan's in adapters/holidays.py."""

    def is_holiday(self, day: date) -> bool: ...


class Blocklist(Protocol):
    """Common and breached passwords (R1): the bundled list in adapters/blocklist.py."""

    def is_breached(self, password: str) -> bool:
        """Whether `password` is on the list, exactly as given (the rule folds case itself)."""
        ...


# ---- palm vein (R13): small on purpose, after python-fido2's CtapDevice ----------------------

DEFAULT_MAX_FMR = 1e-7  # per comparison; docs/decisions/0003-vein.md (measured FNMR ≈ 1e-4 there)
DEFAULT_MAX_RESULTS = 10
DEFAULT_TIMEOUT_S = 15.0
DEFAULT_MIN_QUALITY = 40
DEFAULT_LIVENESS_THRESHOLD = 0.5

Progress = Callable[[str], None]


@runtime_checkable
class GalleryLike(Protocol):
    """A prepared 1:N gallery (built by VeinReader.prepare_gallery)."""

    def add(self, id: Hashable, template: bytes) -> None: ...
    def remove(self, id: Hashable) -> None: ...
    def __len__(self) -> int: ...
    def __contains__(self, id: object) -> bool: ...


@runtime_checkable
class VeinReader(Protocol):
    """open/close and a context manager, list the units, one long call (capture) that takes a
    cancel event and a progress callback, enrolment that says "more samples needed" until
    done, and typed errors (adapters.vein.errors) for every way a capture can fail."""

    reader_id: str  # the id the device registry knows this reader by

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The reader's signing key (registered with the service, R12)."""
        ...

    def open(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...

    def list_readers(self) -> list[ReaderInfo]: ...

    def capture(self, purpose: Purpose | str, challenge: bytes, timeout_s: float = DEFAULT_TIMEOUT_S,
                cancel: threading.Event | None = None, progress: Progress | None = None) -> Capture:
        """One signed capture bound to `challenge`. Raises NoHand, Reposition, PoorQuality,
        PresentationAttack, CaptureTimeout, ReaderDisconnected, Cancelled or ReaderFault."""
        ...

    def prove_terminal(self, challenge: bytes) -> TerminalProof:
        """`challenge` signed with the reader's key under the purpose "terminal", with no
        capture: how the terminal agent proves the terminal for a logon by another factor (R12)."""
        ...

    def enrol(self, captures: Sequence[Capture]) -> Enrolment:
        """A template from the captures so far, or how many more good ones are needed."""
        ...

    def verify(self, capture: Capture, template: bytes, max_fmr: float = DEFAULT_MAX_FMR) -> Match:
        """1:1 → (score, decision, fmr_achieved)."""
        ...

    def identify(self, capture: Capture, templates: Mapping[Hashable, bytes] | GalleryLike,
                 max_fmr: float = DEFAULT_MAX_FMR,
                 max_results: int = DEFAULT_MAX_RESULTS) -> list[Candidate]:
        """1:N → candidates within `max_fmr` (per comparison), best first."""
        ...

    def prepare_gallery(self, templates: Mapping[Hashable, bytes] | None = None) -> GalleryLike: ...

    def sample_vector(self, capture: Capture) -> Sequence[float] | None:
        """The feature vector inside the capture's sample, for the server's replayed-sample
        check (adapters/vein/replay.py); None when the format cannot be read. In memory only:
        never stored or logged (R15)."""
        ...


class SampleSketch(Protocol):
    """What the replay check makes of one sample: `record`, the bytes kept for it (never the
    sample or its features); whatever else it carries lives only for the check."""

    @property
    def record(self) -> bytes: ...


class ReplayCheck(Protocol):
    """Replayed palm samples (R11, R15): a sample identical or implausibly close to one already
    seen for the person is a replay. Keyed one-way digests in adapters/vein/replay.py.
    `history` is the person's opaque record of samples seen (None: nothing yet)."""

    def sketch(self, sample: bytes, vector: Sequence[float] | None) -> SampleSketch:
        """The record and probes of one sample; `vector` is its feature vector
        (`VeinReader.sample_vector`), None when the format cannot be read."""
        ...

    def seen(self, history: bytes | None, sketch: SampleSketch) -> bool:
        """Whether `sketch` (one this check made) is identical or implausibly close to a sample
        in `history`."""
        ...

    def remember(self, history: bytes | None, *sketches: SampleSketch) -> bytes:
        """`history` with the records of `sketches` appended, keeping only the newest."""
        ...


class SigningKeys(Protocol):
    """The OpenID provider's signing keys ([8 of 12]): the newest signs; a replaced key stays
    published until the tokens it signed have expired. The private parts never leave it."""

    alg: str  # the configured signing algorithm (ES256, EdDSA or RS256)

    def current(self) -> KeyInfo:
        """The key that signs now (created on first use, replaced when it is too old)."""
        ...

    def rotate(self) -> KeyInfo:
        """Make a new key the signing one."""
        ...

    def inventory(self) -> list[KeyInfo]:
        """Every key kept, newest first, each with whether it is published."""
        ...

    def published(self) -> list[dict[str, Any]]:
        """The public JWKs of every key still needed (the JWKS's `keys`)."""
        ...

    def sign(self, claims: Mapping[str, Any], typ: str = "JWT") -> str:
        """A JWT of `claims` under the current key, its `kid` in the header."""
        ...

    def subject_key(self) -> bytes:
        """The secret that derives relying parties' subjects: stable for the deployment."""
        ...
