"""Typed errors of the vein reader interface. Each has a stable `reason` (for messages, audit and
the logon history) and, when it came from the SDK, the SDK's (level, code, detail)."""

from __future__ import annotations


class VeinError(Exception):
    reason = "reader_error"

    def __init__(self, message: str = "", *, level: str | None = None, code: int | None = None,
                 detail: str | None = None) -> None:
        self.level, self.code, self.detail = level, code, detail
        super().__init__(message or self.reason)


class NoHand(VeinError):
    """The sensor detected no hand in its detection window."""

    reason = "no_hand"


class Reposition(VeinError):
    """The hand must be moved; `hint` is left, right, closer, farther or tilt."""

    reason = "reposition"

    def __init__(self, hint: str, **sdk: object) -> None:
        self.hint = hint
        super().__init__(f"reposition the hand: {hint}", **sdk)  # type: ignore[arg-type]


class PoorQuality(VeinError):
    reason = "poor_quality"

    def __init__(self, quality: int, minimum: int) -> None:
        self.quality, self.minimum = quality, minimum
        super().__init__(f"capture quality {quality} is below {minimum}")


class PresentationAttack(VeinError):
    """The liveness check failed: an artefact, not a live hand (or a live hand it misjudged)."""

    reason = "presentation_attack"

    def __init__(self, liveness_score: float, threshold: float) -> None:
        self.liveness_score, self.threshold = liveness_score, threshold
        super().__init__(f"liveness score {liveness_score:.3f} is below {threshold:.3f}")


class CaptureTimeout(VeinError):
    reason = "timeout"


class ReaderDisconnected(VeinError):
    reason = "disconnected"


class Cancelled(VeinError):
    reason = "cancelled"


class EnrolmentMismatch(VeinError):
    """The enrolment samples are not all of one palm (or not all of one hand)."""

    reason = "enrolment_mismatch"


class ReaderFault(VeinError):
    """Any other failure of the device or the SDK (busy, hardware fault, vendor codes)."""

    reason = "reader_fault"


class InvalidRecord(VeinError, ValueError):
    """A capture record, sample or template that is malformed, hostile or of another format."""

    reason = "invalid_record"
