"""1:N identification over a million enrolled palm-vein templates: time per search through
`VeinReader.identify` (probe record → SDK identify_match → prepared gallery: one float32
matrix-vector product, a threshold filter, a sort of the few hits, calibration of the hits), and
its ratio to a plain `gallery @ probe` over the same matrix. Figures are printed, never asserted.

    .venv/bin/python bench/vein_identify.py                    # 1,000,000 templates, 50 probes
    .venv/bin/python bench/vein_identify.py --n 200000 --probes 30

Templates are enrolled by vein_sdk_stub.bulk (the emulator's own enrolment, vectorised) and
loaded from their bytes, as a service would load them from storage."""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from adapters.vein import DEFAULT_MAX_FMR, Capture, Purpose, open_reader  # noqa: E402
from vein_sdk_stub import Bir, DataType, Hand, Population  # noqa: E402
from vein_sdk_stub import Purpose as SdkPurpose  # noqa: E402
from vein_sdk_stub.bir import quantise  # noqa: E402
from vein_sdk_stub.bulk import enrol_batch, template_records  # noqa: E402

CHUNK = 65_536
TARGET_MS, TARGET_RATIO = 100.0, 1.5


def rss_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def probe_capture(pop: Population, palm: int, index: int, key: Ed25519PrivateKey) -> Capture | None:
    """A signed capture of presentation `index` of `palm` (None if the reader would refuse it)."""
    pres = pop.presentations(palm, Hand.RIGHT, index)
    if pres.quality[0] < 40 or pres.liveness[0] < 0.5:
        return None
    codes, scales = quantise(pres.vectors)
    bir = Bir.from_features(DataType.SAMPLE, SdkPurpose.IDENTIFY, int(pres.quality[0]),
                            float(pres.liveness[0]), Hand.RIGHT, codes[0], float(scales[0]))
    return Capture("FFFE:0001", Purpose.IDENTIFY, bir.quality, True, bir.liveness, "vein-bench",
                   datetime.now(UTC), bytes(32), bir.to_bytes()).signed(key)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="enrolled templates (default 1,000,000)")
    ap.add_argument("--probes", type=int, default=50, help="timed searches (default 50, at least 20)")
    ap.add_argument("--max-fmr", type=float, default=DEFAULT_MAX_FMR, help="per-comparison max FMR")
    ap.add_argument("--dedup-fmr", type=float, default=1e-10,
                    help="a stricter max FMR, reported untimed (default 1e-10)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    n, n_probes = args.n, max(20, args.probes)
    print(f"authsvc palm-vein 1:N benchmark — {platform.node()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    pop = Population(args.seed)
    t0 = time.perf_counter()
    records: dict[int, bytes] = {}
    failed = 0
    start = 0
    while len(records) < n:  # palms 0, 1, 2, … until n are enrolled (failures to enrol left out)
        palms = np.arange(start, start + min(CHUNK, n - len(records)))
        start = int(palms[-1]) + 1
        en = enrol_batch(pop, palms, Hand.RIGHT)
        failed += int((~en.ok).sum())
        blobs = template_records(en.codes, en.scales, en.quality, Hand.RIGHT)
        records.update((int(p), b) for p, b, ok in zip(palms, blobs, en.ok, strict=True) if ok)
    t_enrol = time.perf_counter() - t0
    size = len(next(iter(records.values())))
    print(f"enrolled {len(records):,} palms (of {start:,} presented; {failed} failed to enrol) in "
          f"{t_enrol:.1f} s; template {size} bytes, {len(records) * size / 2**20:.0f} MiB in all")

    reader = open_reader("emulated", seed=args.seed, unit_id=None)  # a matcher only, as on the server
    t0 = time.perf_counter()
    gallery = reader.prepare_gallery(records)
    t_load = time.perf_counter() - t0
    del records
    gc.collect()
    matrix = gallery.population.matrix
    print(f"gallery: {len(gallery):,} × {matrix.shape[1]} {matrix.dtype} = {matrix.nbytes / 2**20:.0f} MiB, "
          f"loaded from bytes in {t_load:.1f} s; process RSS {rss_mib():.0f} MiB")

    key = Ed25519PrivateKey.generate()
    rng = np.random.default_rng(args.seed)
    mated, unmated = [], []
    index = 10  # a presentation after the enrolment attempts
    for palm in rng.choice(start, size=4 * n_probes, replace=False):
        c = probe_capture(pop, int(palm), index, key)
        if c is not None and int(palm) in gallery and len(mated) < n_probes - n_probes // 3:
            mated.append((int(palm), c))
    for palm in range(start, start + 4 * n_probes):
        c = probe_capture(pop, palm, index, key)
        if c is not None and len(unmated) < n_probes // 3:
            unmated.append(c)
    probes = [c for _, c in mated] + unmated
    units = [Bir.from_bytes(c.sample).unit_vector().astype(np.float32) for c in probes]

    for c, u in zip(probes[:3], units[:3], strict=True):  # warm-up
        reader.identify(c, gallery, args.max_fmr, 10)
        matrix @ u
    t_ident, t_plain, results = [], [], []
    for c, u in zip(probes, units, strict=True):
        t = time.perf_counter()
        _ = matrix @ u
        t_plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        results.append(reader.identify(c, gallery, args.max_fmr, 10))
        t_ident.append(time.perf_counter() - t)

    med_i, med_p = statistics.median(t_ident) * 1e3, statistics.median(t_plain) * 1e3
    ratio = med_i / med_p
    hits = sum(1 for (palm, _), r in zip(mated, results, strict=False) if r and r[0].id == palm)
    false_cand = sum(len(r) for r in results[len(mated):])
    print(f"searches: {len(probes)} probes ({len(mated)} of enrolled palms, {len(unmated)} of palms not "
          f"enrolled), max FMR {args.max_fmr:g} per comparison, at most 10 candidates")
    print(f"  identify (VeinReader.identify)  median {med_i:6.1f} ms   p90 "
          f"{np.percentile(t_ident, 90) * 1e3:6.1f} ms   target < {TARGET_MS:.0f} ms: "
          f"{'meets' if med_i < TARGET_MS else 'MISSES'}")
    print(f"  plain gallery @ probe           median {med_p:6.1f} ms   p90 "
          f"{np.percentile(t_plain, 90) * 1e3:6.1f} ms")
    print(f"  ratio identify / plain           {ratio:6.2f}        target ≤ {TARGET_RATIO}: "
          f"{'meets' if ratio <= TARGET_RATIO else 'MISSES'}")
    print(f"  rank-1: {hits} of {len(mated)} enrolled palms found first; false candidates for the "
          f"{len(unmated)} others: {false_cand} (expected per search ≈ N × FMR = {n * args.max_fmr:.2g})")
    strict = args.dedup_fmr
    res = [reader.identify(c, gallery, strict, 10) for c in probes]
    hits = sum(1 for (palm, _), r in zip(mated, res, strict=False) if r and r[0].id == palm)
    false_cand = sum(len(r) for r in res[len(mated):])
    print(f"  at max FMR {strict:g} (for duplicate checks, R14): rank-1 {hits} of {len(mated)}; false "
          f"candidates {false_cand} (expected per search ≈ {n * strict:.2g})")
    print(f"process RSS {rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
