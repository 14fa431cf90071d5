"""The replayed-sample check (adapters/vein/replay.py) on the emulated population: how often a
fresh genuine capture would be taken for a replay (false alarms), how close a doctored replay
must stay to be caught, and what the check costs. Figures are printed, never asserted.

    .venv/bin/python bench/vein_replay.py                  # 200,000 palms, 20,000 replays
    .venv/bin/python bench/vein_replay.py --palms 20000 --replays 2000

Genuine pairs are two presentations of one palm that the reader would accept (quality ≥ 40,
liveness ≥ 0.5), quantised to the int8 sample as the stub does. The test on bit patterns
(`replay.near`) is what the keyed digests compare; the run checks that the digest path agrees."""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from adapters.vein import replay  # noqa: E402
from vein_sdk_stub import Hand, Population  # noqa: E402
from vein_sdk_stub.bir import quantise, unit_rows  # noqa: E402

CHUNK = 10_000


def accepted(pop: Population, palms: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit sample vectors of presentation `index` of each palm, int8 codes and the reader's verdict."""
    pres = pop.presentations(palms, Hand.RIGHT, index)
    codes, scales = quantise(pres.vectors)
    ok = (pres.quality >= 40) & (pres.liveness >= 0.5)
    return unit_rows(codes, scales), codes, ok


def outside_flips(stored: np.ndarray, query: np.ndarray, margins: np.ndarray) -> np.ndarray:
    """Per table, the bits that differ outside the query's PROBE least certain ones (a table
    can only match at 0)."""
    differ = stored != query
    order = np.argsort(margins, axis=-1)[..., :replay.PROBE]
    probed = np.zeros_like(differ)
    np.put_along_axis(probed, order, True, axis=-1)
    return (differ & ~probed).sum(axis=-1)


def binom_cdf(j: int, n: int, p: np.ndarray) -> np.ndarray:
    """P(X ≤ j) for X ~ Binomial(n, p), elementwise over p (no SciPy needed)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-300, 1 - 1e-16)
    terms = [np.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                    + i * np.log(p) + (n - i) * np.log1p(-p)) for i in range(j + 1)]
    return np.sum(terms, axis=0)


def perturb(rng: np.random.Generator, u: np.ndarray, cos: float) -> np.ndarray:
    """Each row turned by exactly acos(cos) in a random direction, then quantised again (the
    attacker must send an int8 sample)."""
    phi = math.acos(cos)
    n = rng.standard_normal(u.shape)
    n -= (n * u).sum(1, keepdims=True) * u
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    codes, scales = quantise(math.cos(phi) * u + math.sin(phi) * n)
    return unit_rows(codes, scales)


def nudge_codes(rng: np.random.Generator, codes: np.ndarray, count: int) -> np.ndarray:
    """`count` int8 features of each row moved by ±1."""
    out = codes.astype(np.int16)
    for row in out:
        at = rng.choice(row.size, count, replace=False)
        row[at] = np.clip(row[at] + rng.choice((-1, 1), count), -127, 127)
    return unit_rows(out.astype(np.int8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--palms", type=int, default=200_000)
    ap.add_argument("--replays", type=int, default=20_000)
    ap.add_argument("--hard", type=int, default=200, help="closest genuine pairs re-tested under many keys")
    ap.add_argument("--keys", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    key = os.urandom(32)
    pop = Population(args.seed)
    palms = np.arange(args.palms)
    print(f"emulator: seed {args.seed}, d = {pop.params.dim}; check: {replay.TABLES} tables × {replay.BITS} "
          f"bits, probes: up to {replay.FLIPS} of the {replay.PROBE} least certain bits "
          f"({len(replay._FLIPS)} per table); {replay.RECORD} bytes kept per sample, "
          f"{replay.HISTORY} samples per person")

    # -- genuine pairs: false alarms -------------------------------------------------------
    t0 = time.perf_counter()
    u0, codes0, ok0 = accepted(pop, palms, 0)
    u1, _, ok1 = accepted(pop, palms, 1)
    both = ok0 & ok1
    u0, u1, codes0 = u0[both], u1[both], codes0[both]
    cos = np.einsum("ij,ij->i", u0, u1)
    alarms, fewest = 0, replay.BITS
    flips_by_pair = np.empty((len(u0), replay.TABLES), dtype=np.int32)
    for a in range(0, len(u0), CHUNK):
        b0, _ = replay.table_bits(key, u0[a:a + CHUNK])
        b1, m1 = replay.table_bits(key, u1[a:a + CHUNK])
        alarms += int(replay.near(b0, b1, m1).sum())
        flips_by_pair[a:a + CHUNK] = outside_flips(b0, b1, m1)
    fewest = int(flips_by_pair.min())
    n = len(u0)
    angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    print(f"\ngenuine pairs (presentations 0 and 1 of {args.palms:,} palms, both accepted): {n:,} "
          f"in {time.perf_counter() - t0:.1f} s")
    print(f"  cosine: median {np.median(cos):.4f}, 99.99 % {np.quantile(cos, 0.9999):.4f}, "
          f"max {cos.max():.4f} (smallest angle {angle.min():.1f}°)")
    print(f"  false alarms: {alarms} of {n:,} pairs"
          + (f" (95 % upper {3 / n:.1e} per pair, rule of three)" if alarms == 0 else ""))
    print(f"  bits differing outside the probed ones, per table (a match needs 0): mean "
          f"{flips_by_pair.mean():.1f}, fewest {fewest}")

    # -- the closest genuine pairs under many keys; a model for the rate below resolution ---------
    # Given a pair, each projection separates its two vectors independently (the projections are
    # independent), so the bits differing outside the probed ones are binomial over BITS - PROBE
    # bits, with a mean that grows with the pair's angle. A table matches only at 0.
    rest = replay.BITS - replay.PROBE
    theta = np.arccos(np.clip(cos, -1, 1))
    slope, intercept = np.polyfit(theta, flips_by_pair.mean(axis=1), 1)
    hard = np.argsort(cos)[-args.hard:]
    t0 = time.perf_counter()
    per_pair = np.zeros((args.hard, replay.BITS + 1), dtype=np.int64)
    hits = 0
    for _ in range(args.keys):
        sub = os.urandom(32)
        b0, _ = replay.table_bits(sub, u0[hard])
        b1, m1 = replay.table_bits(sub, u1[hard])
        hits += int(replay.near(b0, b1, m1).sum())
        flips = outside_flips(b0, b1, m1)
        for t in range(replay.TABLES):
            per_pair[np.arange(args.hard), flips[:, t]] += 1
    counts = per_pair.sum(axis=0)
    trials = int(counts.sum())
    observed = np.cumsum(counts) / trials
    mu = (per_pair * np.arange(replay.BITS + 1)).sum(axis=1) / per_pair.sum(axis=1)
    modelled = np.array([binom_cdf(j, rest, mu / rest).mean() for j in range(16)])
    print(f"\nthe {args.hard} closest genuine pairs (cosine ≥ {cos[hard].min():.4f}), each under "
          f"{args.keys} keys: {trials:,} table comparisons in {time.perf_counter() - t0:.1f} s; "
          f"matches {hits}")
    print("  share of tables with at most j bits differing outside the probed ones, "
          "observed / binomial model:")
    print("   " + ", ".join(f"{j}: {observed[j]:.1e} / {modelled[j]:.1e}" for j in range(4, 16, 2)))
    est = np.clip(slope * theta + intercept, 0.0, rest)
    p_pair = replay.TABLES * binom_cdf(0, rest, est / rest)
    print(f"  mean differing bits outside the probed ones ≈ {slope:.1f} × angle (rad) {intercept:+.1f}; "
          f"at the closest pair ({np.degrees(theta.min()):.1f}°): {est.min():.1f}")
    print(f"  estimated false-alarm rate (model, averaged over the {n:,} pairs): "
          f"{p_pair.mean():.1e} per pair, "
          f"{p_pair.mean() * replay.HISTORY:.1e} per capture against {replay.HISTORY} kept samples; "
          f"closest pair alone {p_pair.max():.1e} per pair")

    # -- replays: caught ----------------------------------------------------------------------
    m = min(args.replays, n)
    base = u0[:m]
    b0, _ = replay.table_bits(key, base)
    print(f"\nreplays of {m:,} recorded samples, doctored and signed again (caught = refused):")
    cases = [("identical sample", base), ("4 of 64 int8 features ±1", nudge_codes(rng, codes0[:m], 4)),
             ("16 of 64 int8 features ±1", nudge_codes(rng, codes0[:m], 16))]
    cases += [(f"turned to cosine {c}", perturb(rng, base, c))
              for c in (0.9999, 0.9995, 0.999, 0.998, 0.995, 0.99)]
    for name, q in cases:
        got = np.einsum("ij,ij->i", base, q)
        bq, mq = replay.table_bits(key, q)
        caught = replay.near(b0, bq, mq)
        print(f"  {name:28s} (angle {np.degrees(np.arccos(min(1.0, got.min()))):4.1f}° at most): "
              f"caught {caught.mean() * 100:7.3f} %")

    # -- the digest path agrees, and what it costs ------------------------------------------------
    agree, total = 0, 0
    times_sketch, times_seen = [], []
    history = b""
    for i in range(replay.HISTORY):
        history = replay.remember(history, replay.sketch(key, os.urandom(88), u0[(i + 7) % n]))
    for i in range(100):
        stored, probe = u0[i], (u1[i] if i % 2 else perturb(rng, u0[i:i + 1], 0.9995)[0])
        t0 = time.perf_counter()
        s = replay.sketch(key, os.urandom(88), probe)
        times_sketch.append(time.perf_counter() - t0)
        kept = replay.remember(history, replay.sketch(key, os.urandom(88), stored))
        t0 = time.perf_counter()
        found = replay.seen(kept, s)
        times_seen.append(time.perf_counter() - t0)
        bs, _ = replay.table_bits(key, stored)
        bq, mq = replay.table_bits(key, probe)
        agree += found == bool(replay.near(bs, bq, mq)[0])
        total += 1
    print(f"\ndigest path agrees with the pattern test: {agree} of {total}")
    print(f"cost: sketch {statistics.median(times_sketch) * 1e3:.1f} ms, check against "
          f"{replay.HISTORY} kept samples {statistics.median(times_seen) * 1e3:.1f} ms (medians)")


if __name__ == "__main__":
    main()
