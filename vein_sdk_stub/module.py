"""The SDK's call shape, after BioAPI 2.0 (Fujitsu PalmSecure's SDK has this shape): load the
module, attach a unit → handle, capture → BIR, create a template from several BIRs, verify
match (max FMR requested → FMR achieved), identify match against a population, error info,
detach, unload. Matching functions take no handle: they are pure computation, so a server
runs them without a sensor."""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import ParamSpec, TypeVar

import numpy as np

from vein_sdk_stub import errors
from vein_sdk_stub.bir import Bir, DataType, Hand, Purpose, quantise, unit_rows
from vein_sdk_stub.calibration import cos_for_fmr, fmr_from_score, score_from_cos
from vein_sdk_stub.control import Control, Outcome
from vein_sdk_stub.errors import HINT_CODES, Code, SdkError
from vein_sdk_stub.matcher import (
    ENROL_MIN_QUALITY,
    ENROL_SAMPLES,
    PreparedPopulation,
    check_pair,
    consistent,
    cosine,
    template_features,
)
from vein_sdk_stub.population import Population, PopulationParams

P = ParamSpec("P")
R = TypeVar("R")

MAX_TIMEOUT_MS = 600_000
VENDOR = "authsvc"
MODEL = "PV-EMU (vein_sdk_stub)"


class GuiState(IntEnum):
    """States reported to the GUI callback (BioAPI_GUI_STATE_CALLBACK)."""

    WAITING = 1  # place your hand
    GUIDANCE = 2  # a positioning hint
    CAPTURING = 3  # hold still
    DONE = 4


class GuiResponse(IntEnum):
    OK = 0
    CANCEL = 1


# (state, message code, progress 0–100) → response; message codes are stable identifiers
# ("place_hand", "move_left", "hold_flat", "hold_still", "captured", …) for the UI to translate.
GuiCallback = Callable[[GuiState, str, int], "GuiResponse | None"]
HINT_MESSAGES = {"left": "move_left", "right": "move_right", "closer": "move_closer",
                 "farther": "move_farther", "tilt": "hold_flat"}


@dataclass(frozen=True)
class UnitInfo:
    unit_id: str
    vendor: str
    model: str
    serial: str
    present: bool


@dataclass(frozen=True)
class TemplateResult:
    """create_template's answer: status OK with a template, or MORE_SAMPLES_NEEDED."""

    status: Code
    template: Bir | None
    samples_needed: int
    rejected: tuple[tuple[int, str], ...]


@dataclass
class _Handle:
    unit_id: str
    generation: int
    busy: bool = False
    cancelled: bool = False


def _api(fn: Callable[P, R]) -> Callable[P, R]:
    """Every entry point: check the module is loaded, remember a failure for get_error_info."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        self = args[0]
        try:
            if not self._loaded:  # type: ignore[attr-defined]
                raise SdkError(Code.MODULE_NOT_LOADED, "the module was unloaded")
            return fn(*args, **kwargs)
        except SdkError as exc:
            errors.record(exc)
            raise

    return wrapper


class SdkModule:
    """One loaded BSP with its emulated units. Thread-safe."""

    def __init__(self, seed: int = 0, params: PopulationParams | None = None,
                 units: Sequence[str] = ("vein0",), tick_s: float = 0.005) -> None:
        if not units or len(set(units)) != len(units):
            raise ValueError("a module has one or more distinct unit ids")
        self.population = Population(seed, params)
        self.seed = seed
        self._controls = {unit: Control() for unit in units}
        self._handles: dict[int, _Handle] = {}
        self._next_handle = 1
        self._next_index: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()
        self._tick = tick_s
        self._loaded = True

    @property
    def dim(self) -> int:
        return self.population.params.dim

    # -- units and handles ----------------------------------------------------------------
    @_api
    def enumerate_units(self) -> list[UnitInfo]:
        return [UnitInfo(unit, VENDOR, MODEL, f"EMU-{self.seed:04d}-{unit}", c.plugged)
                for unit, c in self._controls.items()]

    def control(self, unit_id: str = "vein0") -> Control:
        """The unit's control channel (emulator only; a real SDK has no such thing)."""
        try:
            return self._controls[unit_id]
        except KeyError:
            raise SdkError(Code.INVALID_UNIT_ID, f"no unit {unit_id!r}") from None

    @_api
    def attach(self, unit_id: str = "vein0") -> int:
        control = self.control(unit_id)
        with self._lock:
            if not control.plugged:
                raise SdkError(Code.UNIT_NOT_PRESENT, f"unit {unit_id} is not plugged in")
            handle = self._next_handle
            self._next_handle += 1
            self._handles[handle] = _Handle(unit_id, control.generation)
            return handle

    @_api
    def detach(self, handle: int) -> None:
        with self._lock:
            if self._handles.pop(handle, None) is None:
                raise SdkError(Code.INVALID_HANDLE, f"no handle {handle}")

    @_api
    def cancel(self, handle: int) -> None:
        """Cancel a capture running on `handle` from another thread (BioAPI_Cancel)."""
        with self._lock:
            h = self._handles.get(handle)
        if h is None:
            raise SdkError(Code.INVALID_HANDLE, f"no handle {handle}")
        h.cancelled = True
        control = self._controls[h.unit_id]
        with control.condition:
            control.condition.notify_all()

    @_api
    def unload(self) -> None:
        with self._lock:
            self._handles.clear()
            self._loaded = False

    def get_error_info(self) -> tuple[errors.Level, int, str]:
        """(level, code, detail) of this thread's last failure (BioAPI_GetLastErrorInfo)."""
        return errors.last_error()

    def _live_handle(self, handle: int) -> tuple[_Handle, Control]:
        with self._lock:
            h = self._handles.get(handle)
            if h is None:
                raise SdkError(Code.INVALID_HANDLE, f"no handle {handle}")
            control = self._controls[h.unit_id]
            if h.generation != control.generation or not control.plugged:
                del self._handles[handle]
                raise SdkError(Code.UNIT_REMOVED, f"unit {h.unit_id} was removed")
            return h, control

    # -- capture --------------------------------------------------------------------------
    @_api
    def capture(self, handle: int, purpose: Purpose, timeout_ms: int,
                gui_callback: GuiCallback | None = None) -> Bir:
        """Wait for a presentation (scripted on the unit's control channel) and return its
        processed sample. Raises SdkError for every non-OK outcome."""
        if purpose not in (Purpose.VERIFY, Purpose.IDENTIFY, Purpose.ENROL):
            raise SdkError(Code.INVALID_PARAMETER, "purpose is verify, identify or enrol")
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or not (
                0 < timeout_ms <= MAX_TIMEOUT_MS):
            raise SdkError(Code.INVALID_PARAMETER, f"timeout is 1..{MAX_TIMEOUT_MS} ms")
        h, control = self._live_handle(handle)
        with self._lock:
            if h.busy:
                raise SdkError(Code.UNIT_IN_USE, "a capture is already running on this handle")
            h.busy, h.cancelled = True, False
        try:
            outcome = self._wait_for_outcome(handle, h, control, timeout_ms, gui_callback)
            return self._perform(outcome, Purpose(purpose), gui_callback)
        finally:
            h.busy = False

    @staticmethod
    def _gui(callback: GuiCallback | None, state: GuiState, message: str, progress: int) -> None:
        if callback is not None and callback(state, message, progress) == GuiResponse.CANCEL:
            raise SdkError(Code.USER_CANCELLED, "cancelled by the application")

    def _wait_for_outcome(self, handle: int, h: _Handle, control: Control, timeout_ms: int,
                          callback: GuiCallback | None) -> Outcome:
        start = time.monotonic()
        deadline = start + timeout_ms / 1000.0
        hold_until = start + control.take_delay_ms() / 1000.0
        timing_out = False
        while True:
            if h.cancelled:
                raise SdkError(Code.USER_CANCELLED, "cancelled")
            self._gui(callback, GuiState.WAITING, "place_hand", 0)
            if h.generation != control.generation or not control.plugged:
                with self._lock:
                    self._handles.pop(handle, None)
                raise SdkError(Code.UNIT_REMOVED, f"unit {h.unit_id} was removed during capture")
            now = time.monotonic()
            if now >= deadline:
                raise SdkError(Code.TIMEOUT_EXPIRED, f"no capture within {timeout_ms} ms")
            if not timing_out and now >= hold_until:
                outcome = control.take()
                if outcome is not None and outcome.kind == "timeout":
                    timing_out = True
                elif outcome is not None:
                    return outcome
            with control.condition:
                control.condition.wait(max(0.0, min(self._tick, deadline - now)))

    def _perform(self, outcome: Outcome, purpose: Purpose, callback: GuiCallback | None) -> Bir:
        if outcome.kind == "no_hand":
            raise SdkError(Code.NO_HAND, "no hand detected")
        if outcome.kind == "reposition":
            hint = outcome.hint or "tilt"
            self._gui(callback, GuiState.GUIDANCE, HINT_MESSAGES[hint], 0)
            raise SdkError(HINT_CODES[hint], hint)
        if outcome.kind == "error":
            raise SdkError(outcome.code or Code.HARDWARE_FAULT, "scripted failure")
        self._gui(callback, GuiState.CAPTURING, "hold_still", 50)
        key = (outcome.palm, int(outcome.hand))
        with self._lock:
            index = self._next_index.get(key, 0)
            self._next_index[key] = index + 1
        kind = {"present": "bona_fide", "spoof": "spoof", "poor_quality": "poor"}[outcome.kind]
        pres = self.population.presentations(outcome.palm, outcome.hand, index, kind,  # type: ignore[arg-type]
                                             outcome.quality)
        codes, scales = quantise(pres.vectors)
        bir = Bir.from_features(DataType.SAMPLE, purpose, int(pres.quality[0]), float(pres.liveness[0]),
                                outcome.hand, codes[0], float(scales[0]))
        self._gui(callback, GuiState.DONE, "captured", 100)
        return bir

    # -- enrolment and matching -----------------------------------------------------------
    @staticmethod
    def _bir(value: Bir | bytes) -> Bir:
        return value if isinstance(value, Bir) else Bir.from_bytes(value)

    @_api
    def create_template(self, birs: Sequence[Bir | bytes]) -> TemplateResult:
        """A template from the good samples among `birs` (all of them, at least three):
        MORE_SAMPLES_NEEDED until then; INCONSISTENT_SAMPLES if they are not one palm's."""
        good: list[Bir] = []
        rejected: list[tuple[int, str]] = []
        for i, item in enumerate(birs):
            b = self._bir(item)
            if b.data_type != DataType.SAMPLE:
                rejected.append((i, "not_a_sample"))
            elif b.purpose != Purpose.ENROL:
                rejected.append((i, "not_for_enrolment"))
            elif b.quality < ENROL_MIN_QUALITY:
                rejected.append((i, "quality"))
            else:
                good.append(b)
        if len(good) < ENROL_SAMPLES:
            return TemplateResult(Code.MORE_SAMPLES_NEEDED, None, ENROL_SAMPLES - len(good),
                                  tuple(rejected))
        first = good[0]
        if any((b.format_owner, b.format_type, b.dim) != (first.format_owner, first.format_type, first.dim)
               for b in good):
            raise SdkError(Code.INCOMPATIBLE_FORMAT, "enrolment samples of different formats")
        if any(b.hand != first.hand for b in good):
            raise SdkError(Code.INCONSISTENT_SAMPLES, "enrolment samples of different hands")
        units = np.vstack([unit_rows(b.codes, np.array([b.scale])) for b in good])
        if not consistent(units, first.dim):
            raise SdkError(Code.INCONSISTENT_SAMPLES, "enrolment samples are not of one palm")
        codes, scales = template_features(units)
        template = Bir.from_features(DataType.TEMPLATE, Purpose.NONE, min(b.quality for b in good), 1.0,
                                     first.hand, codes[0], float(scales[0]))
        return TemplateResult(Code.OK, template, 0, tuple(rejected))

    @staticmethod
    def _check_fmr(max_fmr_requested: float) -> float:
        if isinstance(max_fmr_requested, bool) or not isinstance(max_fmr_requested, int | float) or not (
                math.isfinite(max_fmr_requested) and 0.0 < max_fmr_requested <= 1.0):
            raise SdkError(Code.INVALID_PARAMETER, "max FMR requested is in (0, 1]")
        return -math.log10(max_fmr_requested)

    @_api
    def verify_match(self, max_fmr_requested: float, probe: Bir | bytes,
                     template: Bir | bytes) -> tuple[bool, float]:
        """1:1 → (matched, FMR achieved = 10^−score)."""
        required = self._check_fmr(max_fmr_requested)
        p, t = self._bir(probe), self._bir(template)
        score = score_from_cos(cosine(p, t), p.dim)
        return score >= required, fmr_from_score(score)

    @_api
    def prepare_population(self, templates: Mapping[Hashable, Bir | bytes]
                           | Iterable[tuple[Hashable, Bir | bytes]]) -> PreparedPopulation:
        items = templates.items() if isinstance(templates, Mapping) else templates
        return PreparedPopulation.from_templates(items, self.dim)

    @_api
    def identify_match(self, max_fmr_requested: float, probe: Bir | bytes,
                       population: PreparedPopulation | Sequence[Bir | bytes],
                       max_results: int) -> list[tuple[Hashable, float]]:
        """1:N → [(key or index, FMR achieved)], best first, only those within the FMR
        requested (a per-comparison rate: over N templates expect about N × FMR false hits)."""
        required = self._check_fmr(max_fmr_requested)
        if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1:
            raise SdkError(Code.INVALID_PARAMETER, "max results is a positive integer")
        p = self._bir(probe)
        if not isinstance(population, PreparedPopulation):
            population = PreparedPopulation.from_templates(enumerate(population), p.dim)
        if p.data_type != DataType.SAMPLE or p.dim != population.dim:
            raise SdkError(Code.INCOMPATIBLE_FORMAT, "the probe does not fit the population")
        slack = 1e-6  # float32 rounding; the exact score decides below
        hits = population.search(p.unit_vector(), cos_for_fmr(max_fmr_requested, p.dim) - slack,
                                 max_results)
        out = []
        for key, cos in hits:
            score = score_from_cos(cos, p.dim)
            if score >= required:
                out.append((key, fmr_from_score(score)))
        return out


def load_module(seed: int = 0, params: PopulationParams | None = None,
                units: Sequence[str] = ("vein0",), tick_s: float = 0.005) -> SdkModule:
    """Load the BSP (BioAPI_BSPLoad + ModuleAttach, in one step here)."""
    return SdkModule(seed, params, units, tick_s)


__all__ = ["GuiCallback", "GuiResponse", "GuiState", "Hand", "SdkModule", "TemplateResult",
           "UnitInfo", "check_pair", "load_module"]
