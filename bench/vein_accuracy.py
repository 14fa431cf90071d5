"""Accuracy of the palm-vein emulator (R13): FMR and FNMR at the default threshold with 95 %
upper bounds, the calibration of the score scale (FMR requested vs measured), the EER, a DET
curve (PNG) and the liveness check's APCER/BPCER. Figures are printed, never asserted.

    .venv/bin/python bench/vein_accuracy.py                  # ~1 min on the 2-core VM
    .venv/bin/python bench/vein_accuracy.py --persons 1500 --probes 15 --out /tmp/det.png

Identities are palms: `--persons` people × both hands. Every identity is enrolled the way the
reader enrols (vein_sdk_stub.bulk, byte-identical to capture → enrol through EmulatedVeinReader,
checked below), then presented `--probes` more times. Genuine comparisons: each accepted probe
against its own template; impostor comparisons: each accepted probe against every other
identity's template (the other hand of the same person included)."""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from adapters.vein import (  # noqa: E402
    DEFAULT_LIVENESS_THRESHOLD,
    DEFAULT_MAX_FMR,
    DEFAULT_MIN_QUALITY,
    EmulatedVeinReader,
    PoorQuality,
    PresentationAttack,
)
from vein_sdk_stub import Hand, Population, PopulationParams, cos_for_fmr, score_from_cos  # noqa: E402
from vein_sdk_stub.bulk import enrol_batch, sample_units, template_records  # noqa: E402
from vein_sdk_stub.matcher import CONSISTENCY_MAX_FMR, ENROL_MIN_QUALITY  # noqa: E402

LEVELS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)
BINS = 40_000  # cosine histogram over [-1, 1]: bins of 5e-5
TARGET_FMR, TARGET_FNMR, TARGET_PAD = 1e-6, 1e-3, 1e-2


# -- statistics -----------------------------------------------------------------------------
def _binom_cdf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0 if k < n else 1.0
    lp, lq, ln = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    terms = [ln - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
             for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def upper95(k: int, n: int) -> tuple[float, str]:
    """One-sided 95 % upper confidence bound of a rate: rule of three for zero errors,
    Clopper–Pearson (exact) up to 2,000 errors, Wilson above."""
    if n == 0:
        return math.nan, "-"
    if k == 0:
        return 3.0 / n, "rule of three"
    if k <= 2000:
        lo, hi = k / n, 1.0
        for _ in range(100):
            mid = (lo + hi) / 2
            if _binom_cdf(k, n, mid) > 0.05:
                lo = mid
            else:
                hi = mid
        return hi, "Clopper-Pearson"
    z, p = 1.6448536269514722, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre + half, "Wilson"


def verdict(value: float, target: float) -> str:
    return "meets" if value <= target else "MISSES"


# -- the experiment -------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--persons", type=int, default=2500, help="people; both hands enrolled (default 2500)")
    ap.add_argument("--probes", type=int, default=20, help="genuine presentations per identity (default 20)")
    ap.add_argument("--spoofs", type=int, default=20_000, help="presentation attacks (default 20000)")
    ap.add_argument("--bona-fide", type=int, default=100_000,
                    help="bona fide presentations for BPCER (default 100000)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--noise", type=float, default=None,
                    help="override the emulator's noise σ0 (exploration)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "det.png"), help="DET curve PNG")
    args = ap.parse_args()
    t_start = time.perf_counter()
    params = PopulationParams() if args.noise is None else replace(PopulationParams(), noise=args.noise)
    pop = Population(args.seed, params)
    d = pop.params.dim
    palms = np.arange(args.persons, dtype=np.int64)
    hands = (Hand.RIGHT, Hand.LEFT)
    attempts = 6  # enrolment presentations 0..5; probes use the indices after them

    print(f"authsvc palm-vein accuracy benchmark — {platform.node()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}")
    print(f"emulator: seed {args.seed}, d = {d}, noise σ0 = {pop.params.noise}; "
          f"{args.persons} persons × 2 hands = {2 * args.persons} identities")

    # enrolment
    templates, fte = [], 0
    for hand in hands:
        en = enrol_batch(pop, palms, hand, attempts=attempts, min_capture_quality=DEFAULT_MIN_QUALITY,
                         liveness_threshold=DEFAULT_LIVENESS_THRESHOLD)
        fte += int((~en.ok).sum())
        templates.append(np.where(en.ok[:, None], _units(en.codes, en.scales), np.nan))
    tmpl = np.vstack(templates)  # (2P, d); a failed enrolment is a NaN row
    n_ids = tmpl.shape[0]
    enrolled = ~np.isnan(tmpl[:, 0])

    # probes: accepted bona fide presentations (others are failures to acquire or PAD rejects)
    G = args.probes
    probe = np.full((G, n_ids, d), np.nan)
    fta = bpcer_probe = 0
    for h, hand in enumerate(hands):
        for k in range(G):
            pres = pop.presentations(palms, hand, attempts + k)
            live = pres.liveness >= np.float32(DEFAULT_LIVENESS_THRESHOLD)
            good_q = pres.quality >= DEFAULT_MIN_QUALITY
            bpcer_probe += int((~live).sum())
            fta += int((live & ~good_q).sum())
            rows = h * palms.size + palms
            keep = live & good_q & enrolled[rows]
            probe[k, rows[keep]] = sample_units(pres)[keep]
    valid = ~np.isnan(probe[:, :, 0])  # (G, n_ids)
    presented = G * n_ids
    t_gen = time.perf_counter() - t_start

    # genuine: every accepted probe against its own template
    tmpl0 = np.nan_to_num(tmpl)
    probe0 = np.nan_to_num(probe)
    genuine = np.concatenate([np.einsum("ij,ij->i", probe0[k][valid[k]], tmpl0[valid[k]]) for k in range(G)])
    n_gen = genuine.size

    # impostors, independent: one comparison per unordered identity pair {i, j}, i < j: the
    # template of i against probe number (i + j) mod G of j. (Comparisons that share an
    # identity's probes are not independent; see the cross figures below.)
    thresholds = {f: cos_for_fmr(f, d) for f in LEVELS}
    t_default = cos_for_fmr(DEFAULT_MAX_FMR, d)
    imp_hist = np.zeros(BINS, dtype=np.int64)
    imp_count = {f: 0 for f in LEVELS}
    imp_default = n_imp = 0
    cross_default = cross_1e6 = n_cross = 0
    t_cmp = time.perf_counter()
    j_idx = np.arange(n_ids)
    for k in range(G):
        for r0 in range(0, n_ids, 1024):
            i_idx = np.arange(r0, min(n_ids, r0 + 1024))
            block = tmpl0[i_idx] @ probe0[k].T  # (rows, n_ids) cosines, float64
            usable = enrolled[i_idx][:, None] & valid[k][None, :] & (i_idx[:, None] != j_idx[None, :])
            n_cross += int(usable.sum())
            cross_default += int(np.count_nonzero(usable & (block >= t_default)))
            cross_1e6 += int(np.count_nonzero(usable & (block >= thresholds[1e-6])))
            pick = usable & (j_idx[None, :] > i_idx[:, None]) & ((i_idx[:, None] + j_idx[None, :]) % G == k)
            vals = block[pick]
            n_imp += vals.size
            imp_hist += np.histogram(vals, bins=BINS, range=(-1.0, 1.0))[0]
            for f, t in thresholds.items():
                imp_count[f] += int(np.count_nonzero(vals >= t))
            imp_default += int(np.count_nonzero(vals >= t_default))
    t_cmp = time.perf_counter() - t_cmp

    # liveness: bona fide vs artefacts
    spoof_live, bona_live = [], []
    per_idx = max(1, math.ceil(args.spoofs / palms.size))
    for k in range(per_idx):
        spoof_live.append(pop.presentations(palms, Hand.RIGHT, k, kind="spoof").liveness)
    n_bona_idx = max(1, math.ceil(args.bona_fide / (2 * palms.size)))
    for hand in hands:
        for k in range(100, 100 + n_bona_idx):
            bona_live.append(pop.presentations(palms, hand, k).liveness)
    spoof_scores = np.concatenate(spoof_live)[: args.spoofs]
    bona_scores = np.concatenate(bona_live)[: args.bona_fide]
    thr = np.float32(DEFAULT_LIVENESS_THRESHOLD)
    apcer_k = int((spoof_scores >= thr).sum())
    bpcer_k = int((bona_scores < thr).sum())

    # stub path agrees with the bulk path (byte-identical templates)
    agree = stub_agreement(args.seed, 5) if args.noise is None else False

    # ---- report ----
    print(f"enrolment: {n_ids - fte} of {n_ids} identities enrolled (failure to enrol {fte}); "
          f"first 3 presentations with quality ≥ {ENROL_MIN_QUALITY} of up to {attempts}; samples "
          f"consistent at FMR {CONSISTENCY_MAX_FMR:g}")
    print(f"stub path: templates of 5 palms enrolled through EmulatedVeinReader are "
          f"{'byte-identical' if agree else 'DIFFERENT'} to this benchmark's")
    print(f"probes: {presented:,} bona fide presentations → {n_gen:,} accepted; failure to acquire "
          f"(quality < {DEFAULT_MIN_QUALITY}) {fta} = {fta / presented:.2e}; "
          f"liveness rejections {bpcer_probe}")
    print(f"comparisons: {n_gen:,} genuine; {n_imp:,} impostor, one per pair of identities "
          f"(independent); generation {t_gen:.1f} s, comparisons {t_cmp:.1f} s")
    print()

    fmr_k = imp_default
    fmr = fmr_k / n_imp
    fmr_up, fmr_how = upper95(fmr_k, n_imp)
    fnmr_k = int((genuine < t_default).sum())
    fnmr = fnmr_k / n_gen
    fnmr_up, fnmr_how = upper95(fnmr_k, n_gen)
    score_t = -math.log10(DEFAULT_MAX_FMR)
    print(f"default threshold: max FMR requested {DEFAULT_MAX_FMR:g} "
          f"(score ≥ {score_t:g}, cosine ≥ {t_default:.4f})")
    print(f"  FMR   {fmr:9.2e}  ({fmr_k:,} / {n_imp:,}); 95 % upper {fmr_up:.2e} ({fmr_how})"
          f"   target ≤ {TARGET_FMR:g}: {verdict(fmr_up, TARGET_FMR)}")
    print(f"  FNMR  {fnmr:9.2e}  ({fnmr_k:,} / {n_gen:,}); 95 % upper {fnmr_up:.2e} ({fnmr_how})"
          f"   target ≤ {TARGET_FNMR:g}: {verdict(fnmr_up, TARGET_FNMR)}")
    print(f"  cross check, every probe × every other template: {cross_default:,} / {n_cross:,} = "
          f"{cross_default / n_cross:.2e} at the default, {cross_1e6 / n_cross:.2e} at 1e-6 (the {G} probes "
          f"of an identity share its palm, so these\n  comparisons are not independent and their bounds "
          f"would overstate the evidence: false matches come in clumps of one identity pair)")
    print("  published PalmSecure class: FAR < 8e-7, FRR 1e-4; NIST SP 800-63B-4 minimum FMR ≤ 1e-4")
    print()

    print("calibration (score = −log10 FMR): requested vs measured false-match rate, and FNMR")
    print(f"  {'requested':>9}  {'cosine':>7}  {'expected':>10}  {'false matches':>13}  {'measured':>9}  "
          f"{'95% upper':>9}  {'FNMR':>9}")
    for f in LEVELS:
        k = imp_count[f]
        up, _ = upper95(k, n_imp)
        fn = int((genuine < thresholds[f]).sum())
        print(f"  {f:9.0e}  {thresholds[f]:7.4f}  {f * n_imp:10.1f}  {k:13,}  {k / n_imp:9.2e}  {up:9.2e}  "
              f"{fn / n_gen:9.2e}")
    print()

    # DET and EER from the histograms
    edges = np.linspace(-1.0, 1.0, BINS + 1)[:-1]
    imp_ge = np.cumsum(imp_hist[::-1])[::-1] / n_imp  # FMR at each bin's lower edge
    gen_hist = np.histogram(genuine, bins=BINS, range=(-1.0, 1.0))[0]
    gen_lt = (np.cumsum(gen_hist) - gen_hist) / n_gen  # FNMR at each lower edge
    eer, eer_cos = equal_error(edges, imp_ge, gen_lt)
    at_eer = int((genuine < eer_cos).sum())
    print(f"EER {eer:.2e} at cosine {eer_cos:.4f} (score {score_from_cos(eer_cos, d):.2f}; "
          f"{at_eer} genuine and "
          f"{int(imp_ge[np.searchsorted(edges, eer_cos)] * n_imp)} impostor errors there"
          f"{', a rough estimate' if at_eer < 10 else ''}); genuine cosine median {np.median(genuine):.3f}, "
          f"0.1 % quantile {np.quantile(genuine, 1e-3):.3f}")
    print()

    apcer, bpcer = apcer_k / spoof_scores.size, bpcer_k / bona_scores.size
    ap_up, ap_how = upper95(apcer_k, spoof_scores.size)
    bp_up, bp_how = upper95(bpcer_k, bona_scores.size)
    print(f"liveness (presentation attack detection) at threshold {DEFAULT_LIVENESS_THRESHOLD}:")
    print(f"  APCER {apcer:7.2%}  ({apcer_k:,} / {spoof_scores.size:,} artefacts accepted); 95 % upper "
          f"{ap_up:.2%} ({ap_how})   target ≤ 1 %: {verdict(ap_up, TARGET_PAD)}")
    print(f"  BPCER {bpcer:7.2%}  ({bpcer_k:,} / {bona_scores.size:,} live hands rejected); 95 % upper "
          f"{bp_up:.2%} ({bp_how})   target ≤ 1 %: {verdict(bp_up, TARGET_PAD)}")
    print()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(out, imp_ge, gen_lt, genuine, n_imp, (fmr, fnmr), eer, thresholds, imp_count, d)
    print(f"DET curve written to {out}")
    print(f"total {time.perf_counter() - t_start:.1f} s")


def _units(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    from vein_sdk_stub.bir import unit_rows

    return unit_rows(codes, scales)


def equal_error(edges: np.ndarray, fmr: np.ndarray, fnmr: np.ndarray) -> tuple[float, float]:
    """Where FMR (falling) meets FNMR (rising), interpolated between histogram edges."""
    diff = fmr - fnmr
    i = int(np.flatnonzero(diff <= 0)[0])  # first edge where FNMR ≥ FMR
    if i == 0:
        return float(fmr[0]), float(edges[0])
    w = diff[i - 1] / (diff[i - 1] - diff[i])
    e = fmr[i - 1] + w * (fmr[i] - fmr[i - 1])
    return float(e), float(edges[i - 1] + w * (edges[i] - edges[i - 1]))


def stub_agreement(seed: int, palms: int) -> bool:
    """Enrol a few palms through EmulatedVeinReader and compare with the bulk templates."""
    pop = Population(seed)
    en = enrol_batch(pop, np.arange(palms), Hand.RIGHT)
    bulk = template_records(en.codes, en.scales, en.quality, Hand.RIGHT)
    challenge = bytes(32)
    with EmulatedVeinReader(seed) as reader:
        for palm in range(palms):
            captures = []
            for _ in range(en.attempts):
                reader.control.present(palm)
                try:
                    captures.append(reader.capture("enrol", challenge, timeout_s=2))
                except (PoorQuality, PresentationAttack):
                    continue
                result = reader.enrol(captures)
                if result.complete:
                    if result.template != bulk[palm]:
                        return False
                    break
    return True


def plot(out: Path, imp_ge: np.ndarray, gen_lt: np.ndarray, genuine: np.ndarray, n_imp: int,
         default: tuple[float, float], eer: float, thresholds: dict[float, float],
         imp_count: dict[float, int], d: int) -> None:
    n_gen = genuine.size
    fig, (ax, cal) = plt.subplots(1, 2, figsize=(12, 5.2))
    both = (imp_ge > 0) & (gen_lt > 0)
    ax.loglog(imp_ge[both], gen_lt[both], lw=1.6, label="measured (both rates > 0)")
    # the model's FMR at each genuine score (exact for this emulator, see the calibration panel)
    g = np.sort(genuine)
    m = np.unique(np.geomspace(1, n_gen // 2, 400).astype(int))
    model_fmr = [10.0 ** -score_from_cos(float(g[i]), d) for i in m]
    ax.loglog(model_fmr, m / n_gen, ls="--", lw=1.2, color="C0", alpha=0.7,
              label="calibrated FMR × measured FNMR")
    ax.axvline(TARGET_FMR, color="grey", ls=":", lw=1)
    ax.axhline(TARGET_FNMR, color="grey", ls=":", lw=1)
    if default[1] > 0:
        ax.plot([max(default[0], 1e-12)], [default[1]], "o", color="C3",
                label=f"default (max FMR {DEFAULT_MAX_FMR:g})")
    ax.plot([8e-7], [1e-4], "s", color="C2", label="PalmSecure published (FAR 8e-7, FRR 1e-4)")
    ax.plot([eer], [eer], "x", color="k", label=f"EER {eer:.1e}")
    ax.set_xlim(1e-12, 1)
    ax.set_ylim(0.5 / n_gen, 1)
    ax.set_xlabel("false match rate (FMR)")
    ax.set_ylabel("false non-match rate (FNMR)")
    ax.set_title(f"DET: {n_gen:,} genuine, {n_imp:,} impostor comparisons")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    req = np.array(sorted(thresholds))
    meas = np.array([imp_count[f] / n_imp for f in req])
    cal.loglog(req, req, color="grey", ls="--", label="requested = measured")
    shown = meas > 0
    cal.loglog(req[shown], meas[shown], "o-", color="C0", label="measured")
    cal.axhline(1 / n_imp, color="grey", ls=":", lw=1, label="1 / impostor comparisons")
    cal.set_xlabel("max FMR requested (score threshold = −log10)")
    cal.set_ylabel("measured FMR")
    cal.set_title(f"score calibration (d = {d})")
    cal.grid(True, which="both", alpha=0.3)
    cal.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
