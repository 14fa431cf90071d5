"""Enrolment of many palms at once, for the benchmarks: the same presentations, the same
acceptance rules and the same template computation as the emulator's capture → enrol path
(tests/unit/test_vein_sdk_stub.py checks they give byte-identical templates), vectorised."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vein_sdk_stub.bir import FORMAT_OWNER, FORMAT_TYPE, MAGIC, VERSION, DataType, Hand, quantise, unit_rows
from vein_sdk_stub.calibration import cos_for_fmr
from vein_sdk_stub.matcher import (
    CONSISTENCY_MAX_FMR,
    ENROL_MIN_QUALITY,
    ENROL_SAMPLES,
    _record_dtype,
    template_features,
)
from vein_sdk_stub.population import Population, Presentations


@dataclass(frozen=True)
class Enrolled:
    codes: np.ndarray  # (n, d) int8 template features
    scales: np.ndarray  # (n,) float32
    quality: np.ndarray  # (n,) lowest sample quality used
    ok: np.ndarray  # (n,) bool: False = failure to enrol within the attempts
    attempts: int  # presentations 0..attempts-1 of every palm were used


def sample_units(pres: Presentations) -> np.ndarray:
    """Unit vectors of the samples as the matcher sees them (quantised, then dequantised)."""
    codes, scales = quantise(pres.vectors)
    return unit_rows(codes, scales)


def enrol_batch(pop: Population, palms: np.ndarray, hand: Hand, *, attempts: int = 6,
                min_capture_quality: int = 40, liveness_threshold: float = 0.5) -> Enrolled:
    """Present each palm up to `attempts` times; the first ENROL_SAMPLES presentations that pass
    the reader (quality ≥ min_capture_quality, liveness ≥ threshold) and count for enrolment
    (quality ≥ ENROL_MIN_QUALITY) make the template, as `create_template` would."""
    palms = np.asarray(palms, dtype=np.int64)
    n, d = palms.size, pop.params.dim
    units = np.empty((n, attempts, d))
    quality = np.empty((n, attempts), dtype=np.int16)
    good = np.empty((n, attempts), dtype=bool)
    for k in range(attempts):
        pres = pop.presentations(palms, hand, k)
        units[:, k] = sample_units(pres)
        quality[:, k] = pres.quality
        good[:, k] = ((pres.quality >= max(min_capture_quality, ENROL_MIN_QUALITY))
                      & (pres.liveness >= np.float32(liveness_threshold)))
    ok = good.sum(axis=1) >= ENROL_SAMPLES
    # indices of the first ENROL_SAMPLES good presentations (stable sort keeps their order)
    order = np.argsort(~good, axis=1, kind="stable")[:, :ENROL_SAMPLES]
    chosen = np.take_along_axis(units, order[:, :, None], axis=1)
    codes, scales = template_features(chosen)
    q = np.take_along_axis(quality, order, axis=1).min(axis=1)
    # the consistency check of create_template (matcher.consistent), for all rows at once
    sims = np.einsum("nkd,nld->nkl", chosen, chosen)
    upper = np.triu_indices(ENROL_SAMPLES, 1)
    ok &= sims[:, upper[0], upper[1]].min(axis=1) >= cos_for_fmr(CONSISTENCY_MAX_FMR, d)
    return Enrolled(codes, scales, q, ok, attempts)


def template_records(codes: np.ndarray, scales: np.ndarray, quality: np.ndarray,
                     hand: Hand) -> list[bytes]:
    """Template BIR bytes for many rows at once (the layout of bir.Bir.to_bytes)."""
    n, d = codes.shape
    rec = np.zeros(n, dtype=_record_dtype(d))
    rec["magic"], rec["version"], rec["data_type"] = MAGIC, VERSION, DataType.TEMPLATE
    rec["owner"], rec["ftype"], rec["hand"], rec["dim"] = FORMAT_OWNER, FORMAT_TYPE, int(hand), d
    rec["quality"], rec["liveness"], rec["scale"], rec["codes"] = quality, 1.0, scales, codes
    blob, size = rec.tobytes(), rec.dtype.itemsize
    return [blob[i * size:(i + 1) * size] for i in range(n)]
