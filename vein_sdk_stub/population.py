"""The deterministic synthetic population behind the emulator.

A palm is (person N, hand); N is any integer in [0, 2**31), so the population is unbounded and
nothing is stored: every number is drawn from a counter-based stream keyed by
(seed, stream tag, hand, capture index, block of 1024 palms). The same seed therefore always
gives the same palms, the same captures and the same templates, whether one palm is captured
through the SDK API or a million are generated at once by a benchmark (same code, same streams).

Model (d = 64 dimensions):
- latent feature vector of a palm: L ~ N(0, I/d)  (|L| ≈ 1)
- quality of a bona fide presentation: round(N(82, 7)) clipped to 0–100; with probability 3 % a
  poor presentation, uniform in 35–70 (hand moved, partly outside the field, cold hand)
- a capture: x = L + σ(q) · n, n ~ N(0, I/d), σ(q) = 0.36 · (1 + ((100 − q) / 50)²)
  (σ = 0.41 at q = 82, 0.72 at q = 50): poorer samples give lower genuine scores
- liveness score: sigmoid(N(3.0, 1.1)) for a live hand, sigmoid(N(−3.0, 1.1)) for an
  artefact (a printed or moulded vein pattern)
- a spoof of palm N carries palm N's pattern (noise 1.5 × σ(q)): the matcher alone would accept
  it, only the liveness check stops it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vein_sdk_stub.bir import Hand
from vein_sdk_stub.calibration import DIM

BLOCK = 1024
MAX_PALM = 2**31 - 1
Kind = Literal["bona_fide", "spoof", "poor"]

_TAG_LATENT = 1
_TAG_NOISE = 2
_TAG_QUALITY = 3
_TAG_LIVENESS = 4
_TAG_SPOOF_NOISE = 5
_TAG_SPOOF_LIVENESS = 6


@dataclass(frozen=True)
class PopulationParams:
    dim: int = DIM
    noise: float = 0.36  # calibrated: see docs/decisions/0003-vein.md
    quality_mean: float = 82.0
    quality_sd: float = 7.0
    poor_presentation_rate: float = 0.03
    poor_presentation_quality: tuple[float, float] = (35.0, 70.0)
    scripted_poor_quality: tuple[float, float] = (10.0, 35.0)  # the control channel's poor_quality
    liveness_live: tuple[float, float] = (3.0, 1.1)  # logit mean, sd
    liveness_spoof: tuple[float, float] = (-3.0, 1.1)
    spoof_noise_factor: float = 1.5

    def noise_scale(self, quality: np.ndarray) -> np.ndarray:
        q = np.asarray(quality, dtype=np.float64)
        return self.noise * (1.0 + ((100.0 - q) / 50.0) ** 2)


@dataclass(frozen=True)
class Presentations:
    """A batch of presentations: raw feature vectors (n, d), quality (n,), liveness (n,)."""

    vectors: np.ndarray
    quality: np.ndarray
    liveness: np.ndarray


class Population:
    def __init__(self, seed: int = 0, params: PopulationParams | None = None) -> None:
        if not isinstance(seed, int) or seed < 0:
            raise ValueError("the population seed is a non-negative integer")
        self.seed = seed
        self.params = params or PopulationParams()
        self._latent_cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    def _rng(self, tag: int, hand: int, index: int, block: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, tag, hand, index, block])

    @staticmethod
    def _check(palms: np.ndarray | int, hand: Hand | int) -> tuple[np.ndarray, int]:
        p = np.atleast_1d(np.asarray(palms, dtype=np.int64))
        if p.ndim != 1 or (p.size and (p.min() < 0 or p.max() > MAX_PALM)):
            raise ValueError(f"palm numbers are integers in [0, {MAX_PALM}]")
        h = int(hand)
        if h not in (Hand.RIGHT, Hand.LEFT):
            raise ValueError("hand is right or left")
        return p, h

    def _by_block(self, palms: np.ndarray, width: int, make: Callable[[int], np.ndarray]) -> np.ndarray:
        """Rows for `palms`, each block of 1024 palms drawn once by `make(block)`."""
        out = np.empty((palms.size, width)) if width else np.empty(palms.size)
        blocks = palms // BLOCK
        for block in np.unique(blocks):
            rows = np.flatnonzero(blocks == block)
            out[rows] = make(int(block))[palms[rows] % BLOCK]
        return out

    def _latent_block(self, hand: int, block: int, cache: bool) -> np.ndarray:
        key = (hand, block)
        if key in self._latent_cache:
            self._latent_cache.move_to_end(key)
            return self._latent_cache[key]
        d = self.params.dim
        values = self._rng(_TAG_LATENT, hand, 0, block).standard_normal((BLOCK, d)) / np.sqrt(d)
        if cache:
            self._latent_cache[key] = values
            while len(self._latent_cache) > 16:
                self._latent_cache.popitem(last=False)
        return values

    def latents(self, palms: np.ndarray | int, hand: Hand | int = Hand.RIGHT) -> np.ndarray:
        p, h = self._check(palms, hand)
        cache = p.size <= BLOCK
        return self._by_block(p, self.params.dim, lambda b: self._latent_block(h, b, cache))

    def _quality_block(self, hand: int, index: int, block: int, kind: Kind) -> np.ndarray:
        pp = self.params
        rng = self._rng(_TAG_QUALITY, hand, index, block)
        base = rng.normal(pp.quality_mean, pp.quality_sd, BLOCK)
        poor_flag = rng.random(BLOCK) < pp.poor_presentation_rate
        poor = rng.uniform(*pp.poor_presentation_quality, BLOCK)
        scripted = rng.uniform(*pp.scripted_poor_quality, BLOCK)
        q = scripted if kind == "poor" else np.where(poor_flag, poor, base)
        return np.clip(np.rint(q), 0, 100)

    def _noise_block(self, hand: int, index: int, block: int, spoof: bool) -> np.ndarray:
        tag = _TAG_SPOOF_NOISE if spoof else _TAG_NOISE
        d = self.params.dim
        return self._rng(tag, hand, index, block).standard_normal((BLOCK, d)) / np.sqrt(d)

    def _liveness_block(self, hand: int, index: int, block: int, spoof: bool) -> np.ndarray:
        tag, (mean, sd) = ((_TAG_SPOOF_LIVENESS, self.params.liveness_spoof) if spoof
                           else (_TAG_LIVENESS, self.params.liveness_live))
        logit = self._rng(tag, hand, index, block).normal(mean, sd, BLOCK)
        return 1.0 / (1.0 + np.exp(-logit))

    def presentations(self, palms: np.ndarray | int, hand: Hand | int, index: int,
                      kind: Kind = "bona_fide", quality: int | None = None) -> Presentations:
        """Presentation number `index` of each palm (each a fresh, independent capture)."""
        p, h = self._check(palms, hand)
        if index < 0:
            raise ValueError("the capture index is non-negative")
        spoof = kind == "spoof"
        if quality is None:
            q = self._by_block(p, 0, lambda b: self._quality_block(h, index, b, kind))
        else:
            q = np.full(p.size, float(min(100, max(0, int(quality)))))
        sigma = self.params.noise_scale(q) * (self.params.spoof_noise_factor if spoof else 1.0)
        noise = self._by_block(p, self.params.dim, lambda b: self._noise_block(h, index, b, spoof))
        vectors = self.latents(p, h) + sigma[:, None] * noise
        live = self._by_block(p, 0, lambda b: self._liveness_block(h, index, b, spoof))
        return Presentations(vectors, q.astype(np.int16), live.astype(np.float32))
