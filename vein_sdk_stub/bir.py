"""The biometric information record (BIR): what capture returns and what a template is.

Byte layout, little-endian (a real SDK's records are opaque bytes too; this one is documented
so the server can parse it strictly):

    offset size  field
    0      4     magic b"PVSB"
    4      1     format version (1)
    5      1     data type: 1 sample (a processed capture), 2 template (enrolled)
    6      2     format owner (0xFFFE: unregistered, this stub)
    8      2     format type (0x0001)
    10     1     purpose: 1 verify, 2 identify, 3 enrol (0 in a template)
    11     1     quality 0–100 (a template: the lowest quality of its samples)
    12     1     hand: 0 unknown, 1 right, 2 left
    13     1     flags (0)
    14     2     feature dimension d
    16     4     liveness score 0.0–1.0 (float32; 1.0 in a template)
    20     4     scale (float32): feature i = int8[i] × scale
    24     d     int8 features (the quantised direction of the feature vector)

With d = 64 a sample or a template is 88 bytes."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from vein_sdk_stub.errors import Code, SdkError

MAGIC = b"PVSB"
VERSION = 1
FORMAT_OWNER = 0xFFFE
FORMAT_TYPE = 0x0001
MAX_DIM = 4096
_HEADER = struct.Struct("<4sBBHHBBBBHf")  # 20 bytes
_SCALE = struct.Struct("<f")
HEADER_SIZE = _HEADER.size + _SCALE.size  # 24


class DataType(IntEnum):
    SAMPLE = 1
    TEMPLATE = 2


class Purpose(IntEnum):
    NONE = 0
    VERIFY = 1
    IDENTIFY = 2
    ENROL = 3


class Hand(IntEnum):
    UNKNOWN = 0
    RIGHT = 1
    LEFT = 2


def quantise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows → (int8 codes, float32 scales), one scale per row so nothing clips."""
    v = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    peak = np.abs(v).max(axis=1)
    peak[peak == 0.0] = 1.0
    scales = (peak / 127.0).astype(np.float32)
    codes = np.rint(v / scales.astype(np.float64)[:, None]).clip(-127, 127).astype(np.int8)
    return codes, scales


def unit_rows(codes: np.ndarray, scales: np.ndarray | None = None) -> np.ndarray:
    """Dequantised rows, normalised to unit length (float64). The scale cancels out, but it is
    applied so the rows are the stored features, not just their direction."""
    v = np.atleast_2d(codes).astype(np.float64)
    if scales is not None:
        v = v * np.asarray(scales, dtype=np.float64).reshape(-1, 1)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0
    return v / norms


@dataclass(frozen=True)
class Bir:
    data_type: DataType
    purpose: Purpose
    quality: int
    liveness: float
    hand: Hand
    data: bytes  # the biometric data block: scale (float32) + int8 features
    format_owner: int = FORMAT_OWNER
    format_type: int = FORMAT_TYPE

    @classmethod
    def from_features(cls, data_type: DataType, purpose: Purpose, quality: int, liveness: float,
                      hand: Hand, codes: np.ndarray, scale: float) -> Bir:
        data = _SCALE.pack(float(scale)) + np.asarray(codes, dtype=np.int8).tobytes()
        return cls(DataType(data_type), Purpose(purpose), int(quality),
                   float(np.float32(liveness)), Hand(hand), data)

    @property
    def dim(self) -> int:
        return len(self.data) - _SCALE.size

    @property
    def scale(self) -> float:
        return float(_SCALE.unpack_from(self.data)[0])

    @property
    def codes(self) -> np.ndarray:
        return np.frombuffer(self.data, dtype=np.int8, offset=_SCALE.size)

    def unit_vector(self) -> np.ndarray:
        return unit_rows(self.codes, np.array([self.scale]))[0]

    def to_bytes(self) -> bytes:
        head = _HEADER.pack(MAGIC, VERSION, int(self.data_type), self.format_owner, self.format_type,
                            int(self.purpose), self.quality, int(self.hand), 0, self.dim,
                            self.liveness)
        return head + self.data

    @classmethod
    def from_bytes(cls, blob: bytes) -> Bir:
        """Parse strictly; anything malformed is INVALID_BIR."""
        if not isinstance(blob, bytes | bytearray | memoryview):
            raise SdkError(Code.INVALID_BIR, "a BIR is bytes")
        blob = bytes(blob)
        if len(blob) < HEADER_SIZE + 1 or len(blob) > HEADER_SIZE + MAX_DIM:
            raise SdkError(Code.INVALID_BIR, f"a BIR of {len(blob)} bytes is not plausible")
        (magic, version, data_type, owner, ftype, purpose, quality, hand, flags, dim,
         liveness) = _HEADER.unpack_from(blob)
        if magic != MAGIC or version != VERSION:
            raise SdkError(Code.INVALID_BIR, "not a version-1 PVSB record")
        if data_type not in (1, 2) or purpose > 3 or hand > 2 or flags != 0 or quality > 100:
            raise SdkError(Code.INVALID_BIR, "header field out of range")
        if dim != len(blob) - HEADER_SIZE:
            raise SdkError(Code.INVALID_BIR, "feature length does not match the header")
        if not (math.isfinite(liveness) and 0.0 <= liveness <= 1.0):
            raise SdkError(Code.INVALID_BIR, "liveness score out of range")
        bir = cls(DataType(data_type), Purpose(purpose), quality, float(liveness), Hand(hand),
                  blob[_HEADER.size:], owner, ftype)
        scale = bir.scale
        if not (math.isfinite(scale) and scale > 0.0) or not bir.codes.any():
            raise SdkError(Code.INVALID_BIR, "empty or invalid feature data")
        return bir
