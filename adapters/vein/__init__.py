"""Palm-vein readers behind one interface (R13): `VeinReader` (the port, authsvc.ports),
`EmulatedVeinReader` and `SdkVeinReader` (the technologies), chosen by a config string:

    with open_reader("emulated", seed=0) as reader:          # the stub, with its control channel
        reader.control.present(42)
        capture = reader.capture("verify", challenge)         # signed by the reader's key
    open_reader("sdk", module="vendor_binding", module_options={...}, unit_id="0")
    open_reader("emulated", unit_id=None)                     # a matcher only (the server side)

See docs/decisions/0003-vein.md."""

from __future__ import annotations

import importlib
from typing import Any

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
from adapters.vein.records import (
    Candidate,
    Capture,
    Enrolment,
    Match,
    Purpose,
    ReaderInfo,
    TerminalProof,
)
from adapters.vein.replay import LshReplayCheck
from adapters.vein.sdk import EmulatedVeinReader, Gallery, SdkVeinReader, VeinSdk
from authsvc.ports import (
    DEFAULT_LIVENESS_THRESHOLD,
    DEFAULT_MAX_FMR,
    DEFAULT_MAX_RESULTS,
    DEFAULT_MIN_QUALITY,
    DEFAULT_TIMEOUT_S,
    GalleryLike,
    VeinReader,
)

KINDS = ("emulated", "sdk")


def open_reader(kind: str, **options: Any) -> SdkVeinReader:
    """Build and open the reader named by a config string.

    - "emulated": EmulatedVeinReader(seed=0, unit_id="vein0", key=…, reader_id=…, clock=…,
      min_quality=…, liveness_threshold=…, params=…)
    - "sdk": SdkVeinReader over `module` (a dotted module name with a `load_module(**opts)`
      function, default "vein_sdk_stub"), loaded with `module_options`; same keywords after.
    """
    if kind == "emulated":
        reader: SdkVeinReader = EmulatedVeinReader(**options)
    elif kind == "sdk":
        name = options.pop("module", "vein_sdk_stub")
        module_options = options.pop("module_options", None) or {}
        sdk = importlib.import_module(name).load_module(**module_options)
        reader = SdkVeinReader(sdk, **options)
    else:
        raise ValueError(f"unknown vein reader kind {kind!r}; expected one of {', '.join(KINDS)}")
    reader.open()
    return reader


__all__ = [
    "DEFAULT_LIVENESS_THRESHOLD",
    "DEFAULT_MAX_FMR",
    "DEFAULT_MAX_RESULTS",
    "DEFAULT_MIN_QUALITY",
    "DEFAULT_TIMEOUT_S",
    "KINDS",
    "Cancelled",
    "Candidate",
    "Capture",
    "CaptureTimeout",
    "EmulatedVeinReader",
    "Enrolment",
    "EnrolmentMismatch",
    "Gallery",
    "GalleryLike",
    "InvalidRecord",
    "LshReplayCheck",
    "Match",
    "NoHand",
    "PoorQuality",
    "PresentationAttack",
    "Purpose",
    "ReaderDisconnected",
    "ReaderFault",
    "ReaderInfo",
    "Reposition",
    "SdkVeinReader",
    "TerminalProof",
    "VeinError",
    "VeinReader",
    "VeinSdk",
    "open_reader",
]
