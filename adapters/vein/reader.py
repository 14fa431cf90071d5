"""The capability: a palm-vein reader (R13). Small on purpose, after python-fido2's CtapDevice:
open/close and a context manager, list the units, one long call (capture) that takes a cancel
event and a progress callback, enrolment that says "more samples needed" until done, and typed
errors (adapters.vein.errors) for every way a capture can fail."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Protocol, Self, runtime_checkable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.vein.records import Candidate, Capture, Enrolment, Match, Purpose, ReaderInfo

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
        check (authsvc/domain/replay.py); None when the format cannot be read. In memory only:
        never stored or logged (R15)."""
        ...
