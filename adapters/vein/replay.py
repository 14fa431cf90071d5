"""Replayed palm samples (R11, R15): what the server keeps to recognise a sample it has seen
before, and the test. Nothing kept can give a sample back.

A capture is signed by its terminal, but a key can leak: whoever holds a terminal's key and one
of a person's recorded captures could bind the old sample to a new challenge and sign it again.
Two genuine captures of one palm are never identical, nor even close: the emulated population's
closest pair of 197,175 has cosine 0.956 (angle 17°, docs/decisions/0003-vein.md §8), and the
sensor noise of a real reader behaves alike. So a sample identical to one already seen for the
person, or implausibly close to one (angle ≲ 3°), is a replay.

Per sample the server keeps one 64-byte record, never the sample or its features:

- `exact`: keyed BLAKE2b-128 of the sample bytes (byte-identical replays, whatever the format);
- one keyed BLAKE2b-64 digest per table (TABLES tables) of the sign pattern of BITS random
  projections of the feature vector (sign-random-projection LSH, keyed: the projections derive
  from the key). A near-identical sample has the same pattern except on the few projections
  where the vector lies almost on the hyperplane; the check therefore also tries the query's
  PROBE least certain bits flipped, up to FLIPS at a time (multi-probe LSH). A genuine capture
  differs on ~38 of the other bits of every table, so none of its probes meet a stored digest.

A digest is one-way and keyed: without the key it says nothing; with the key, finding a vector
that produces a given 256-bit pattern is a search over the sphere, and the record keeps no
magnitude, no quantisation and no format. The probe digests exist only during the check.

Biometric signal processing, so an adapter: `LshReplayCheck` implements the `ReplayCheck`
port (authsvc/ports.py) that services reach through `deps.replay`; the functions below are
its parts (and what bench/vein_replay.py measures)."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from authsvc.ports import SampleSketch

TABLES = 6  # independent tables of projections
BITS = 256  # sign bits per table
PROBE = 16  # the query's least certain bits (smallest |projection|) per table that may differ
FLIPS = 4  # at most this many of them at once
EXACT = 16  # bytes of the exact digest
DIGEST = 8  # bytes per table digest
RECORD = EXACT + TABLES * DIGEST  # 64 bytes kept per sample
HISTORY = 1000  # samples kept per person, newest first out (64 KB)
VERSION = b"\x01"

_LABEL = b"authsvc.vein.replay/1"


def derive_key(master: bytes) -> bytes:
    """The replay key, derived from a long-term key the service already holds (the audit key).
    Changing it makes every stored record unmatchable: replays of older samples then pass the
    check (no false alarm, a loss of protection), so it must live as long as the records."""
    return hashlib.blake2b(_LABEL, key=master[:64], digest_size=32).digest()


@lru_cache(maxsize=8)
def projections(key: bytes, dim: int) -> np.ndarray:
    """TABLES × BITS × dim standard normal projections, drawn from the key."""
    seed = int.from_bytes(hashlib.blake2b(b"projections", key=key, digest_size=32).digest(), "big")
    out = np.random.default_rng(seed).standard_normal((TABLES, BITS, dim))
    out.setflags(write=False)
    return out


def table_bits(key: bytes, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows of feature vectors (n × dim): the sign bits (n × TABLES × BITS, bool) and their
    margins |projection of the unit vector| (same shape)."""
    v = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0
    z = np.einsum("tkd,nd->ntk", projections(key, v.shape[1]), v / norms)
    return z > 0.0, np.abs(z)


def near(stored: np.ndarray, query: np.ndarray, margins: np.ndarray) -> np.ndarray:
    """The test itself on patterns (what the digests compare, for the benchmark): for stored
    and query bits (… × TABLES × BITS) and the query's margins, True where some table differs
    only on at most FLIPS of the query's PROBE least certain bits."""
    differ = stored != query
    order = np.argsort(margins, axis=-1)[..., :PROBE]
    probed = np.zeros_like(differ)
    np.put_along_axis(probed, order, True, axis=-1)
    outside = (differ & ~probed).sum(axis=-1)
    inside = (differ & probed).sum(axis=-1)
    return ((outside == 0) & (inside <= FLIPS)).any(axis=-1)


def _flip_masks() -> np.ndarray:
    sets = [c for r in range(FLIPS + 1) for c in itertools.combinations(range(PROBE), r)]
    masks = np.zeros((len(sets), PROBE), dtype=bool)
    for i, c in enumerate(sets):
        masks[i, list(c)] = True
    return masks


_FLIPS = _flip_masks()  # 2,517 probes per table


def _digests(key: bytes, table: int, patterns: np.ndarray) -> np.ndarray:
    """Keyed BLAKE2b-64 of each packed pattern row, as unsigned 64-bit integers."""
    packed = np.packbits(patterns, axis=-1)
    person = b"lsh%d" % table
    return np.array([int.from_bytes(hashlib.blake2b(row.tobytes(), key=key, digest_size=DIGEST,
                                                    person=person).digest(), "little")
                     for row in packed], dtype=np.uint64)


@dataclass(frozen=True)
class Sketch:
    """`record` is what is kept (64 bytes); `probes` (per table, the digests of the query's
    probe patterns) lives only for the check."""

    record: bytes
    probes: tuple[np.ndarray, ...]


def sketch(key: bytes, sample: bytes, vector: np.ndarray | None) -> Sketch:
    """The record and probes of one sample. `vector` is its feature vector, or None when the
    sample's format cannot be read (then only byte-identical replays are recognised)."""
    exact = hashlib.blake2b(sample, key=key, digest_size=EXACT, person=b"exact").digest()
    if vector is None:
        empty = np.zeros(0, dtype=np.uint64)
        filler = hashlib.blake2b(sample, key=key, digest_size=TABLES * DIGEST, person=b"none").digest()
        return Sketch(exact + filler, (empty,) * TABLES)  # table digests nothing will match
    bits, margins = table_bits(key, vector)
    own, probes = [], []
    for t in range(TABLES):
        order = np.argsort(margins[0, t])[:PROBE]
        patterns = np.repeat(bits[0, t][None, :], len(_FLIPS), axis=0)
        patterns[:, order] ^= _FLIPS
        digests = _digests(key, t, patterns)
        own.append(int(digests[0]).to_bytes(DIGEST, "little"))  # no bit flipped: the sample's own
        probes.append(digests)
    return Sketch(exact + b"".join(own), tuple(probes))


def _records(history: bytes | None) -> np.ndarray:
    if not history or history[:1] != VERSION or (len(history) - 1) % RECORD:
        return np.zeros((0, RECORD), dtype=np.uint8)  # nothing (or an unknown format) kept yet
    return np.frombuffer(history, dtype=np.uint8, offset=1).reshape(-1, RECORD)


def seen(history: bytes | None, s: Sketch) -> bool:
    """True if `s` is identical or implausibly close to a sample in `history`."""
    rows = _records(history)
    if not len(rows):
        return False
    if s.record[:EXACT] in {r.tobytes() for r in rows[:, :EXACT]}:
        return True
    for t in range(TABLES):
        at = EXACT + t * DIGEST
        stored = np.ascontiguousarray(rows[:, at:at + DIGEST]).view("<u8").ravel()
        if len(s.probes[t]) and np.isin(stored, s.probes[t]).any():
            return True
    return False


def remember(history: bytes | None, *sketches: Sketch, limit: int = HISTORY) -> bytes:
    """`history` with the records of `sketches` appended, keeping the newest `limit`."""
    rows = _records(history).tobytes() + b"".join(s.record for s in sketches)
    return VERSION + rows[-limit * RECORD:] if limit else VERSION


class LshReplayCheck:
    """The replayed-sample check as the service uses it (the `ReplayCheck` port): the key is
    derived once from the service's long-term key (`derive_key`), and a feature vector comes
    as the reader gives it (`VeinReader.sample_vector`)."""

    def __init__(self, master: bytes) -> None:
        self._key = derive_key(master)

    def sketch(self, sample: bytes, vector: Sequence[float] | None) -> Sketch:
        return sketch(self._key, sample, None if vector is None else np.asarray(vector, dtype=np.float64))

    def seen(self, history: bytes | None, sketch: SampleSketch) -> bool:
        return seen(history, _own(sketch))

    def remember(self, history: bytes | None, *sketches: SampleSketch) -> bytes:
        return remember(history, *map(_own, sketches))


def _own(s: SampleSketch) -> Sketch:
    if not isinstance(s, Sketch):
        raise TypeError(f"not a sketch of this replay check: {type(s).__name__}")
    return s
