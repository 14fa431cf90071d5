"""Typed domain errors: each carries a stable code that messages.py turns into Japanese or English."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule refused an action. `code` is stable and machine-readable; `params` fill the text."""

    code = "error"

    def __init__(self, code: str | None = None, **params: Any) -> None:
        self.code = code or self.code
        self.params = params
        super().__init__(self.code)

    def message(self, lang: str = "ja") -> str:
        from authsvc.domain.messages import text

        return text(self.code, lang, **self.params)


class NotFound(DomainError):
    code = "not_found"


class OutOfScope(NotFound):
    """The target belongs to another company (R24). The caller hears exactly what an unknown
    target would give (no enumeration across companies); the audit log records the refusal
    with its real reason, `other_company`."""

    reason = "other_company"


class Conflict(DomainError):
    code = "conflict"


class Forbidden(DomainError):
    code = "forbidden"


class InvalidInput(DomainError):
    code = "invalid_input"


class PasswordRejected(DomainError):
    """The new password breaks one or more rules; `reasons` lists every rule code that failed."""

    code = "password_rejected"

    def __init__(self, reasons: list[str], **params: Any) -> None:
        super().__init__(self.code, **params)
        self.reasons = reasons

    def message(self, lang: str = "ja") -> str:
        from authsvc.domain.messages import text

        return " ".join(text(r, lang, **self.params) for r in self.reasons)


class SealError(ValueError):
    """A sealed value is malformed, was sealed under an unknown key, or was tampered with.

    The error of the `Sealer` port (authsvc/ports.py): its adapter (adapters/sealing.py) raises
    it, so a service catches it without knowing the technology behind the port. A ValueError,
    as it always was; not a DomainError (it is never shown to a user)."""
