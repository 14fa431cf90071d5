"""Readers that drive a BioAPI-style SDK module: `SdkVeinReader` over any module with the
vein_sdk_stub call shape (a vendor's binding would be one), and `EmulatedVeinReader`, which is
just `SdkVeinReader` over the stub, plus access to the stub's control channel. One code path:
what the tests exercise through the emulator is exactly what a real SDK binding would run."""

from __future__ import annotations

import contextlib
import hashlib
import math
import secrets
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from datetime import UTC
from typing import Any, Protocol, Self

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import vein_sdk_stub as stub
from adapters.clock import SystemClock
from adapters.vein.errors import (
    Cancelled,
    CaptureTimeout,
    EnrolmentMismatch,
    InvalidRecord,
    NoHand,
    PoorQuality,
    PresentationAttack,
    ReaderDisconnected,
    ReaderFault,
    Reposition,
    VeinError,
)
from adapters.vein.records import Candidate, Capture, Enrolment, Match, Purpose, ReaderInfo, TerminalProof
from authsvc.ports import (
    DEFAULT_LIVENESS_THRESHOLD,
    DEFAULT_MAX_FMR,
    DEFAULT_MAX_RESULTS,
    DEFAULT_MIN_QUALITY,
    DEFAULT_TIMEOUT_S,
    Clock,
    Progress,
)
from vein_sdk_stub import Bir, Code, DataType, GuiResponse, GuiState, SdkError

_PURPOSES = {Purpose.VERIFY: stub.Purpose.VERIFY, Purpose.IDENTIFY: stub.Purpose.IDENTIFY,
             Purpose.ENROL: stub.Purpose.ENROL}
_SCORE_CAP = 99.0


class VeinSdk(Protocol):
    """The SDK module calls a reader needs (vein_sdk_stub.SdkModule has them; a vendor binding
    would wrap its C API in the same shape)."""

    def enumerate_units(self) -> list[Any]: ...
    def attach(self, unit_id: str) -> int: ...
    def detach(self, handle: int) -> None: ...
    def capture(self, handle: int, purpose: stub.Purpose, timeout_ms: int,
                gui_callback: Callable[[GuiState, str, int], GuiResponse | None] | None = None) -> Bir: ...
    def create_template(self, birs: Sequence[Bir | bytes]) -> stub.TemplateResult: ...
    def verify_match(self, max_fmr_requested: float, probe: Bir | bytes,
                     template: Bir | bytes) -> tuple[bool, float]: ...
    def prepare_population(self, templates: Mapping[Hashable, Bir | bytes]) -> stub.PreparedPopulation: ...
    def identify_match(self, max_fmr_requested: float, probe: Bir | bytes,
                       population: stub.PreparedPopulation,
                       max_results: int) -> list[tuple[Hashable, float]]: ...
    def get_error_info(self) -> tuple[str, int, str]: ...
    def unload(self) -> None: ...


def translate(exc: SdkError) -> VeinError:
    """An SDK return code → the interface's typed error."""
    sdk = {"level": str(exc.level), "code": exc.code, "detail": exc.detail}
    if exc.code in stub.CODE_HINTS:
        return Reposition(stub.CODE_HINTS[exc.code], **sdk)
    kind: type[VeinError] = {
        Code.NO_HAND: NoHand,
        Code.TIMEOUT_EXPIRED: CaptureTimeout,
        Code.USER_CANCELLED: Cancelled,
        Code.UNIT_REMOVED: ReaderDisconnected,
        Code.UNIT_NOT_PRESENT: ReaderDisconnected,
        Code.INCONSISTENT_SAMPLES: EnrolmentMismatch,
        Code.INVALID_BIR: InvalidRecord,
        Code.INCOMPATIBLE_FORMAT: InvalidRecord,
    }.get(exc.code, ReaderFault)  # type: ignore[call-overload]
    return kind(str(exc), **sdk)


def score_of(fmr_achieved: float) -> float:
    return _SCORE_CAP if fmr_achieved <= 0.0 else min(_SCORE_CAP, max(0.0, -math.log10(fmr_achieved)))


def _check_fmr(max_fmr: float) -> float:
    if isinstance(max_fmr, bool) or not isinstance(max_fmr, int | float) or not (
            math.isfinite(max_fmr) and 0.0 < max_fmr < 1.0):
        raise ValueError(f"max_fmr is a rate in (0, 1), got {max_fmr!r}")
    return float(max_fmr)


class Gallery:
    """A prepared 1:N gallery: ids → templates, held by the SDK as one search matrix."""

    def __init__(self, population: stub.PreparedPopulation) -> None:
        self.population = population

    def add(self, id: Hashable, template: bytes) -> None:
        try:
            self.population.add(id, template)
        except SdkError as exc:
            raise translate(exc) from None

    def remove(self, id: Hashable) -> None:
        self.population.remove(id)

    def __len__(self) -> int:
        return len(self.population)

    def __contains__(self, id: object) -> bool:
        return id in self.population

    def ids(self) -> Iterable[Hashable]:
        return self.population.keys()


class SdkVeinReader:
    """A reader on one unit of a BioAPI-style SDK module. `unit_id=None` gives a matcher only
    (enrol, verify, identify; no capture): what the server needs, with no sensor attached.

    The reader owns an Ed25519 key (given, or generated) and signs every capture with it;
    `reader_id` defaults to "vein-" + the first 16 hex digits of SHA-256 of the public key."""

    kind = "sdk"

    def __init__(self, module: VeinSdk, unit_id: str | None = "vein0", *,
                 key: Ed25519PrivateKey | None = None, reader_id: str | None = None,
                 clock: Clock | None = None, min_quality: int = DEFAULT_MIN_QUALITY,
                 liveness_threshold: float = DEFAULT_LIVENESS_THRESHOLD) -> None:
        if not 0 <= min_quality <= 100:
            raise ValueError("min_quality is 0..100")
        if not 0.0 <= liveness_threshold <= 1.0:
            raise ValueError("liveness_threshold is 0..1")
        self.module = module  # the SDK module (vein_sdk_stub.SdkModule, or a vendor binding)
        self.unit_id = unit_id
        self._key = key or Ed25519PrivateKey.generate()
        raw = self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.reader_id = reader_id or "vein-" + hashlib.sha256(raw).hexdigest()[:16]
        self._clock = clock or SystemClock()
        self.min_quality = min_quality
        self.liveness_threshold = liveness_threshold
        self._handle: int | None = None
        self._opened = False
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def public_key_bytes(self) -> bytes:
        """The raw 32-byte public key, for the device registry."""
        return self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)

    def open(self) -> None:
        """Attach the unit (idempotent). A matcher-only reader has nothing to attach."""
        with self._lock:
            self._opened = True
            if self.unit_id is not None and self._handle is None:
                self._handle = self._call(self.module.attach, self.unit_id)

    def close(self) -> None:
        with self._lock:
            self._opened = False
            handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(SdkError):  # already dead (unplugged): nothing to release
                self.module.detach(handle)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _call(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except SdkError as exc:
            raise translate(exc) from None

    def list_readers(self) -> list[ReaderInfo]:
        return [ReaderInfo(u.unit_id, u.vendor, u.model, u.serial, u.present)
                for u in self._call(self.module.enumerate_units)]

    def _live_handle(self) -> int:
        """The unit's handle, re-attaching after an unplug (ReaderDisconnected while it is out)."""
        if self.unit_id is None:
            raise ReaderDisconnected("this reader is a matcher only: no sensor unit")
        if not self._opened:
            raise ReaderFault("the reader is not open")
        with self._lock:
            if self._handle is None:
                self._handle = self._call(self.module.attach, self.unit_id)
            return self._handle

    # -- capture --------------------------------------------------------------------------
    def capture(self, purpose: Purpose | str, challenge: bytes, timeout_s: float = DEFAULT_TIMEOUT_S,
                cancel: threading.Event | None = None, progress: Progress | None = None) -> Capture:
        purpose = Purpose(purpose)
        if not isinstance(challenge, bytes) or not 16 <= len(challenge) <= 256:
            raise ValueError("the challenge is 16..256 bytes from the server")
        if not 0.0 < timeout_s <= 600.0:
            raise ValueError("timeout_s is in (0, 600]")
        handle = self._live_handle()
        last: list[str] = []

        def gui(state: GuiState, message: str, percent: int) -> GuiResponse:
            if cancel is not None and cancel.is_set():
                return GuiResponse.CANCEL
            if progress is not None and (not last or last[-1] != message):
                last.append(message)
                progress(message)
            return GuiResponse.OK

        try:
            bir = self.module.capture(handle, _PURPOSES[purpose], max(1, round(timeout_s * 1000)), gui)
        except SdkError as exc:
            if exc.code in (Code.UNIT_REMOVED, Code.INVALID_HANDLE):
                with self._lock:
                    self._handle = None
            raise translate(exc) from None
        if bir.liveness < self.liveness_threshold:
            raise PresentationAttack(bir.liveness, self.liveness_threshold)
        if bir.quality < self.min_quality:
            raise PoorQuality(bir.quality, self.min_quality)
        record = Capture(
            format=f"{bir.format_owner:04X}:{bir.format_type:04X}",
            purpose=purpose,
            quality=bir.quality,
            liveness_passed=True,
            liveness_score=bir.liveness,
            reader_id=self.reader_id,
            created_at=self._clock.now().astimezone(UTC),
            challenge=challenge,
            sample=bir.to_bytes(),
        )
        return record.signed(self._key)

    def prove_terminal(self, challenge: bytes) -> TerminalProof:
        """The terminal's proof without a palm (R12): `challenge` signed with this reader's
        key (the terminal's device key) under the purpose "terminal". No sensor is needed."""
        return TerminalProof(self.reader_id, self._clock.now().astimezone(UTC), challenge).signed(self._key)

    # -- matching -------------------------------------------------------------------------
    def _probe(self, capture: Capture) -> Bir:
        """The capture's sample, after the presentation policy (liveness, quality) is applied
        again here: the server's thresholds, not only the terminal's, decide."""
        if not capture.liveness_passed or capture.liveness_score < self.liveness_threshold:
            raise PresentationAttack(capture.liveness_score, self.liveness_threshold)
        if capture.quality < self.min_quality:
            raise PoorQuality(capture.quality, self.min_quality)
        bir = self._parse(capture.sample, "sample")
        if bir.data_type != DataType.SAMPLE:
            raise InvalidRecord("the capture's sample is not a sample record")
        if (bir.quality, f"{bir.format_owner:04X}:{bir.format_type:04X}") != (capture.quality,
                                                                                capture.format):
            raise InvalidRecord("the capture's fields disagree with its sample")
        return bir

    @staticmethod
    def _parse(blob: bytes, what: str) -> Bir:
        try:
            return Bir.from_bytes(blob)
        except SdkError as exc:
            raise InvalidRecord(f"{what}: {exc.detail}") from None

    def enrol(self, captures: Sequence[Capture]) -> Enrolment:
        rejected: list[tuple[int, str]] = []
        birs: list[Bir] = []
        positions: list[int] = []
        for i, capture in enumerate(captures):
            if not capture.liveness_passed or capture.liveness_score < self.liveness_threshold:
                rejected.append((i, "liveness"))
                continue
            birs.append(self._parse(capture.sample, f"capture {i}"))
            positions.append(i)
        result = self._call(self.module.create_template, birs)
        rejected += [(positions[j], reason) for j, reason in result.rejected]
        rejected.sort()
        if result.status != Code.OK or result.template is None:
            return Enrolment(None, result.samples_needed, tuple(rejected))
        return Enrolment(result.template.to_bytes(), 0, tuple(rejected), result.template.quality)

    def verify(self, capture: Capture, template: bytes, max_fmr: float = DEFAULT_MAX_FMR) -> Match:
        max_fmr = _check_fmr(max_fmr)
        probe = self._probe(capture)
        stored = self._parse(template, "template")
        matched, fmr = self._call(self.module.verify_match, max_fmr, probe, stored)
        return Match(score_of(fmr), bool(matched), fmr)

    def sample_vector(self, capture: Capture) -> np.ndarray | None:
        """The unit feature vector of the capture's sample (None if it is not a readable sample
        record), for the server's replayed-sample check. In memory only (R15)."""
        try:
            bir = Bir.from_bytes(capture.sample)
        except SdkError:
            return None
        return bir.unit_vector() if bir.data_type == DataType.SAMPLE else None

    def prepare_gallery(self, templates: Mapping[Hashable, bytes] | None = None) -> Gallery:
        return Gallery(self._call(self.module.prepare_population, dict(templates or {})))

    def identify(self, capture: Capture, templates: Mapping[Hashable, bytes] | Gallery,
                 max_fmr: float = DEFAULT_MAX_FMR,
                 max_results: int = DEFAULT_MAX_RESULTS) -> list[Candidate]:
        max_fmr = _check_fmr(max_fmr)
        if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1:
            raise ValueError("max_results is a positive integer")
        probe = self._probe(capture)
        gallery = templates if isinstance(templates, Gallery) else self.prepare_gallery(templates)
        hits = self._call(self.module.identify_match, max_fmr, probe, gallery.population, max_results)
        return [Candidate(key, score_of(fmr), fmr) for key, fmr in hits]


class _OwnNoise(stub.Population):
    """The stub's population, except for the sensor noise of each capture: palms, quality and
    liveness stay those of the seed and presentation index, the noise is the reader's own.
    With `salt` None it is drawn from the OS (every capture fresh, as a physical reader's);
    otherwise from a stream keyed by (seed, salt, palm, hand, index): reproducible for one
    reader ID, independent between reader IDs. Two emulated readers with one seed, or one agent
    started twice, would otherwise produce byte-identical samples for a palm's n-th
    presentation, which the server rightly refuses as a replay."""

    _TAG = 0x7E4D

    def __init__(self, seed: int, params: stub.PopulationParams | None, salt: int | None) -> None:
        super().__init__(seed, params)
        self._salt = salt
        self._os = np.random.default_rng(secrets.randbits(128)) if salt is None else None
        self._os_lock = threading.Lock()

    def _noise(self, palm: int, hand: int, index: int) -> np.ndarray:
        d = self.params.dim
        if self._os is not None:
            with self._os_lock:
                return self._os.standard_normal(d) / np.sqrt(d)
        rng = np.random.default_rng([self.seed, self._TAG, int(self._salt or 0), hand, index, palm])
        return rng.standard_normal(d) / np.sqrt(d)

    def presentations(self, palms: np.ndarray | int, hand: stub.Hand | int, index: int,
                      kind: str = "bona_fide", quality: int | None = None) -> stub.Presentations:
        drawn = super().presentations(palms, hand, index, kind, quality)  # type: ignore[arg-type]
        p = self.params
        sigma = p.noise_scale(drawn.quality) * (p.spoof_noise_factor if kind == "spoof" else 1.0)
        rows = np.atleast_1d(np.asarray(palms, dtype=np.int64))
        noise = np.vstack([self._noise(int(n), int(hand) + (8 if kind == "spoof" else 0), index)
                           for n in rows])
        vectors = self.latents(rows, hand) + sigma[:, None] * noise
        return stub.Presentations(vectors, drawn.quality, drawn.liveness)


class EmulatedVeinReader(SdkVeinReader):
    """SdkVeinReader over vein_sdk_stub, with the stub's control channel at hand (`control`).

    `noise` says where each capture's sensor noise comes from: "stub" (the stub's own
    streams: a reader seeded explicitly reproduces the stub exactly; benchmarks and the stub's
    tests), "reader" (reproducible per reader ID, distinct between readers: test terminals) or
    "fresh" (the OS's randomness: every capture new, as a physical reader's). Default: "fresh"
    without a seed (the agent and the CLI), "reader" with a seed and a terminal key, else
    "stub". See `_OwnNoise` and docs/decisions/0003-vein.md §2."""

    kind = "emulated"

    def __init__(self, seed: int | None = None, unit_id: str | None = "vein0", *,
                 params: stub.PopulationParams | None = None, tick_s: float = 0.005,
                 noise: str | None = None, **options: Any) -> None:
        if noise is None:
            noise = "fresh" if seed is None else "reader" if options.get("key") is not None else "stub"
        if noise not in ("stub", "reader", "fresh"):
            raise ValueError("noise is stub, reader or fresh")
        seed = 0 if seed is None else seed
        self.stub = stub.load_module(seed, params, units=(unit_id or "vein0",), tick_s=tick_s)
        super().__init__(self.stub, unit_id, **options)
        if noise != "stub":
            salt = (None if noise == "fresh" else
                    int.from_bytes(hashlib.sha256(self.reader_id.encode()).digest()[:8], "big"))
            self.stub.population = _OwnNoise(seed, params, salt)

    @property
    def control(self) -> stub.Control:
        """The unit's control channel: script what the next capture returns."""
        return self.stub.control(self.unit_id or "vein0")
