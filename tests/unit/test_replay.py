"""The replayed-sample check (adapters/vein/replay.py) on the emulated population: identical
and barely doctored samples are recognised, fresh captures of the same palm are not, and what is
kept is a bounded list of 64-byte keyed digests."""

from __future__ import annotations

import os

import numpy as np

from adapters.vein import replay
from vein_sdk_stub import Hand, Population
from vein_sdk_stub.bir import quantise, unit_rows

KEY = replay.derive_key(b"k" * 32)


def captures(palm: int, count: int, seed: int = 3) -> list[np.ndarray]:
    pop = Population(seed)
    out = []
    for index in range(count):
        pres = pop.presentations(palm, Hand.RIGHT, index, quality=100)  # the least noise
        codes, scales = quantise(pres.vectors)
        out.append(unit_rows(codes, scales)[0])
    return out


def turned(u: np.ndarray, degrees: float, seed: int = 0) -> np.ndarray:
    n = np.random.default_rng(seed).standard_normal(u.shape)
    n -= (n @ u) * u
    n /= np.linalg.norm(n)
    phi = np.radians(degrees)
    return np.cos(phi) * u + np.sin(phi) * n


def test_identical_and_barely_changed_samples_are_seen_fresh_captures_are_not():
    first, *fresh = captures(11, 41)
    kept = replay.remember(None, replay.sketch(KEY, b"sample-1", first))
    assert replay.seen(kept, replay.sketch(KEY, b"sample-1", first))  # byte-identical
    assert replay.seen(kept, replay.sketch(KEY, b"header changed", first))  # same features
    assert replay.seen(kept, replay.sketch(KEY, b"x", turned(first, 0.5)))
    assert replay.seen(kept, replay.sketch(KEY, b"x", turned(first, 1.5, seed=1)))
    for i, u in enumerate(fresh):  # every fresh capture against all before it
        s = replay.sketch(KEY, os.urandom(88), u)
        assert not replay.seen(kept, s), i
        kept = replay.remember(kept, s)
    assert not replay.seen(kept, replay.sketch(KEY, b"y", turned(first, 20)))


def test_another_key_sees_nothing_and_unreadable_samples_match_only_byte_for_byte():
    u = captures(12, 1)[0]
    kept = replay.remember(None, replay.sketch(KEY, b"s", u))
    assert not replay.seen(kept, replay.sketch(replay.derive_key(b"other" * 8), b"s", u))
    opaque = replay.remember(None, replay.sketch(KEY, b"vendor blob", None))
    assert replay.seen(opaque, replay.sketch(KEY, b"vendor blob", None))
    assert not replay.seen(opaque, replay.sketch(KEY, b"vendor blob 2", None))
    assert not replay.seen(opaque, replay.sketch(KEY, b"other", u))


def test_the_history_is_bounded_and_keeps_nothing_but_digests():
    sketches = [replay.sketch(KEY, bytes([i]) * 88, turned(captures(13, 1)[0], 30, seed=i)) for i in range(7)]
    kept = replay.remember(None, *sketches, limit=5)
    assert len(kept) == 1 + 5 * replay.RECORD == 321
    assert not replay.seen(kept, sketches[0]) and not replay.seen(kept, sketches[1])  # the oldest left
    assert all(replay.seen(kept, s) for s in sketches[2:])
    assert replay.seen(replay.remember(None, *sketches), sketches[0])  # default: HISTORY
    assert not replay.seen(b"\x09garbage", sketches[0]) and not replay.seen(None, sketches[0])
