"""The capability: a palm-vein reader (R13). Its interface is a port (authsvc.ports.VeinReader,
with its defaults); this module names them for the adapters that implement it."""

from __future__ import annotations

from authsvc.ports import (
    DEFAULT_LIVENESS_THRESHOLD,
    DEFAULT_MAX_FMR,
    DEFAULT_MAX_RESULTS,
    DEFAULT_MIN_QUALITY,
    DEFAULT_TIMEOUT_S,
    GalleryLike,
    Progress,
    VeinReader,
)

__all__ = ["DEFAULT_LIVENESS_THRESHOLD", "DEFAULT_MAX_FMR", "DEFAULT_MAX_RESULTS",
           "DEFAULT_MIN_QUALITY", "DEFAULT_TIMEOUT_S", "GalleryLike", "Progress", "VeinReader"]
