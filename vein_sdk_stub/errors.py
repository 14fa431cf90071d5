"""Return codes in the BioAPI style: every failure is a (level, code, detail) triple, the way
BioAPI 2.0 reports a framework, BSP or unit error. The numbers are this stub's own (a real SDK
publishes its own table); the names follow BioAPI's where one exists."""

from __future__ import annotations

import threading
from enum import IntEnum, StrEnum


class Level(StrEnum):
    FRAMEWORK = "framework"  # the caller used the API wrongly (bad handle, bad parameter)
    BSP = "bsp"  # the biometric service provider: capture outcome, matching, records
    UNIT = "unit"  # the sensor unit itself: removed, busy, faulty


class Code(IntEnum):
    OK = 0x0000
    # framework
    INTERNAL_ERROR = 0x0001
    INVALID_PARAMETER = 0x0002
    MODULE_NOT_LOADED = 0x0003
    INVALID_HANDLE = 0x0004
    # BSP: capture outcomes
    USER_CANCELLED = 0x0101
    TIMEOUT_EXPIRED = 0x0102
    NO_HAND = 0x0103  # the sensor gave up: nothing was presented in its detection window
    INVALID_BIR = 0x0104
    INCOMPATIBLE_FORMAT = 0x0105
    INCONSISTENT_SAMPLES = 0x0106  # enrolment samples are not all of one palm
    MORE_SAMPLES_NEEDED = 0x0107  # a status of create_template, never raised
    # BSP: guidance (vendor-specific in a real SDK)
    MOVE_LEFT = 0x0201
    MOVE_RIGHT = 0x0202
    MOVE_CLOSER = 0x0203
    MOVE_FARTHER = 0x0204
    HOLD_FLAT = 0x0205  # the hand is tilted
    # unit
    UNIT_IN_USE = 0x0301
    UNIT_REMOVED = 0x0302  # unplugged; every handle on it is dead
    UNIT_NOT_PRESENT = 0x0303  # attach to a unit that is not plugged in
    INVALID_UNIT_ID = 0x0304
    HARDWARE_FAULT = 0x0305


_FRAMEWORK = {Code.INTERNAL_ERROR, Code.INVALID_PARAMETER, Code.MODULE_NOT_LOADED, Code.INVALID_HANDLE}
_UNIT = {Code.UNIT_IN_USE, Code.UNIT_REMOVED, Code.UNIT_NOT_PRESENT, Code.INVALID_UNIT_ID,
         Code.HARDWARE_FAULT}

# Reposition hints (the control channel's vocabulary) and their guidance codes.
HINT_CODES: dict[str, Code] = {
    "left": Code.MOVE_LEFT,
    "right": Code.MOVE_RIGHT,
    "closer": Code.MOVE_CLOSER,
    "farther": Code.MOVE_FARTHER,
    "tilt": Code.HOLD_FLAT,
}
CODE_HINTS: dict[int, str] = {int(code): hint for hint, code in HINT_CODES.items()}


def level_of(code: int) -> Level:
    if code in _FRAMEWORK:
        return Level.FRAMEWORK
    if code in _UNIT:
        return Level.UNIT
    return Level.BSP


def code_name(code: int) -> str:
    try:
        return Code(code).name
    except ValueError:
        return f"VENDOR_0x{code:04X}"


class SdkError(Exception):
    """A non-OK return code, wrapped: `level`, `code` (int) and a human `detail`."""

    def __init__(self, code: int, detail: str = "", level: Level | None = None) -> None:
        self.code = int(code)
        self.level = level or level_of(self.code)
        self.detail = detail or code_name(self.code)
        super().__init__(f"{self.level}:{code_name(self.code)} (0x{self.code:04X}): {self.detail}")


_last = threading.local()


def record(error: SdkError | None) -> None:
    """Remember the calling thread's last error for get_error_info() (BioAPI_GetLastErrorInfo)."""
    _last.info = (None if error is None else (error.level, error.code, error.detail))


def last_error() -> tuple[Level, int, str]:
    info = getattr(_last, "info", None)
    return info if info is not None else (Level.FRAMEWORK, int(Code.OK), "no error")
