"""Matching: templates from samples, 1:1 comparison and the prepared population for 1:N.
Pure computation on records; no sensor needed, so the server runs it without a reader."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Iterator

import numpy as np

from vein_sdk_stub.bir import (
    FORMAT_OWNER,
    FORMAT_TYPE,
    HEADER_SIZE,
    MAGIC,
    VERSION,
    Bir,
    DataType,
    quantise,
    unit_rows,
)
from vein_sdk_stub.calibration import DIM, cos_for_fmr
from vein_sdk_stub.errors import Code, SdkError

ENROL_SAMPLES = 3  # good samples a template needs
ENROL_MIN_QUALITY = 50  # a sample below this does not count toward enrolment
CONSISTENCY_MAX_FMR = 1e-4  # every pair of enrolment samples must match at this FMR


def row_norms(v: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row, summed along the contiguous axis so one row or a million
    give bit-identical results (the emulator and the benchmarks must agree to the byte)."""
    return np.sqrt((v * v).sum(axis=-1))


def template_features(unit_samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(…, k, d) unit sample vectors → (…, d) int8 template features and scales: the direction
    of the samples' sum, quantised."""
    s = np.asarray(unit_samples, dtype=np.float64)
    acc = s[..., 0, :].copy()
    for i in range(1, s.shape[-2]):  # explicit order: identical in every batch shape
        acc = acc + s[..., i, :]
    flat = acc.reshape(-1, acc.shape[-1])
    return quantise(flat / row_norms(flat)[:, None])


def consistent(unit_samples: np.ndarray, dim: int = DIM) -> bool:
    """True when every pair of samples matches at CONSISTENCY_MAX_FMR (one palm, not two)."""
    s = np.asarray(unit_samples, dtype=np.float64)
    sims = s @ s.T
    return bool(sims[np.triu_indices(len(s), 1)].min() >= cos_for_fmr(CONSISTENCY_MAX_FMR, dim))


def check_pair(probe: Bir, template: Bir) -> None:
    if probe.data_type != DataType.SAMPLE or template.data_type != DataType.TEMPLATE:
        raise SdkError(Code.INVALID_BIR, "compare a sample (probe) with a template")
    if (probe.format_owner, probe.format_type, probe.dim) != (
            template.format_owner, template.format_type, template.dim):
        raise SdkError(Code.INCOMPATIBLE_FORMAT, "probe and template formats differ")


def cosine(probe: Bir, template: Bir) -> float:
    check_pair(probe, template)
    return float(np.dot(probe.unit_vector(), template.unit_vector()))


def _record_dtype(dim: int) -> np.dtype:
    return np.dtype([("magic", "S4"), ("version", "u1"), ("data_type", "u1"), ("owner", "<u2"),
                     ("ftype", "<u2"), ("purpose", "u1"), ("quality", "u1"), ("hand", "u1"),
                     ("flags", "u1"), ("dim", "<u2"), ("liveness", "<f4"), ("scale", "<f4"),
                     ("codes", "i1", (dim,))])


class PreparedPopulation:
    """An in-memory 1:N gallery (BioAPI's BIR database, prepared for fast search): one float32
    matrix of unit template vectors, so a search is one matrix-vector product, a threshold
    filter and a sort of the few rows above it. Rows are keyed by the caller's identifiers."""

    def __init__(self, dim: int = DIM, capacity: int = 1024) -> None:
        self.dim = dim
        self._m = np.zeros((max(1, capacity), dim), dtype=np.float32)
        self._keys: list[Hashable] = []
        self._row: dict[Hashable, int] = {}
        self._lock = threading.RLock()

    # -- building -------------------------------------------------------------------------
    @classmethod
    def from_templates(cls, items: Iterable[tuple[Hashable, bytes | Bir]],
                       dim: int = DIM) -> PreparedPopulation:
        """Bulk load. Equal-length template bytes (the usual case) are parsed in one vectorised
        pass; anything else goes through Bir.from_bytes one by one."""
        items = list(items)
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            raise SdkError(Code.INVALID_PARAMETER, "duplicate keys in the population")
        blobs = [t for _, t in items]
        pop = cls(dim, capacity=len(items))
        if blobs and all(isinstance(b, bytes) and len(b) == HEADER_SIZE + dim for b in blobs):
            rec = np.frombuffer(b"".join(blobs), dtype=_record_dtype(dim))  # type: ignore[arg-type]
            ok = ((rec["magic"] == MAGIC) & (rec["version"] == VERSION)
                  & (rec["data_type"] == DataType.TEMPLATE) & (rec["owner"] == FORMAT_OWNER)
                  & (rec["ftype"] == FORMAT_TYPE) & (rec["dim"] == dim) & (rec["flags"] == 0)
                  & (rec["purpose"] <= 3) & (rec["hand"] <= 2) & (rec["quality"] <= 100)
                  & np.isfinite(rec["scale"]) & (rec["scale"] > 0) & rec["codes"].any(axis=1))
            if ok.all():
                codes = rec["codes"].astype(np.float32)
                pop._m[: len(items)] = codes / row_norms(codes)[:, None]
                pop._keys = keys
                pop._row = {k: i for i, k in enumerate(keys)}
                return pop
        for key, blob in items:
            pop.add(key, blob)
        return pop

    @staticmethod
    def _template_row(template: bytes | Bir, dim: int) -> np.ndarray:
        bir = template if isinstance(template, Bir) else Bir.from_bytes(template)
        if bir.data_type != DataType.TEMPLATE:
            raise SdkError(Code.INVALID_BIR, "only templates go into a population")
        if (bir.format_owner, bir.format_type, bir.dim) != (FORMAT_OWNER, FORMAT_TYPE, dim):
            raise SdkError(Code.INCOMPATIBLE_FORMAT, "template format differs from the population's")
        return unit_rows(bir.codes)[0].astype(np.float32)

    def add(self, key: Hashable, template: bytes | Bir) -> None:
        """Add a template, or replace the one stored under `key`."""
        row = self._template_row(template, self.dim)
        with self._lock:
            if key in self._row:
                self._m[self._row[key]] = row
                return
            n = len(self._keys)
            if n == len(self._m):
                grown = np.zeros((2 * n, self.dim), dtype=np.float32)
                grown[:n] = self._m
                self._m = grown
            self._m[n] = row
            self._keys.append(key)
            self._row[key] = n

    def remove(self, key: Hashable) -> None:
        with self._lock:
            i = self._row.pop(key)  # KeyError for an unknown key
            last = len(self._keys) - 1
            if i != last:
                self._m[i] = self._m[last]
                moved = self._keys[last]
                self._keys[i] = moved
                self._row[moved] = i
            self._keys.pop()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._row

    def keys(self) -> Iterator[Hashable]:
        return iter(list(self._keys))

    @property
    def matrix(self) -> np.ndarray:
        """The live rows (a view; read-only by convention)."""
        return self._m[: len(self._keys)]

    # -- searching ------------------------------------------------------------------------
    def search(self, probe: np.ndarray, cos_threshold: float,
               max_results: int) -> list[tuple[Hashable, float]]:
        """Rows whose cosine with the unit `probe` reaches the threshold, best first."""
        p = np.asarray(probe, dtype=np.float32)
        with self._lock:
            n = len(self._keys)
            if n == 0 or max_results <= 0:
                return []
            scores = self._m[:n] @ p
            hits = np.flatnonzero(scores >= np.float32(cos_threshold))
            if hits.size > max_results:
                hits = hits[np.argpartition(-scores[hits], max_results - 1)[:max_results]]
            hits = hits[np.argsort(-scores[hits], kind="stable")]
            return [(self._keys[i], float(scores[i])) for i in hits]
