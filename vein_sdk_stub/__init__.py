"""Stand-in for a BioAPI-style palm-vein vendor SDK (the shape of Fujitsu PalmSecure's BioAPI 2.0
SDK), driving a deterministic synthetic population. It is what `adapters.vein.SdkVeinReader`
calls; a real terminal would load the vendor's binding with the same functions instead.

    sdk = load_module(seed=0)
    handle = sdk.attach("vein0")
    sdk.control("vein0").execute("present 42")       # the emulator's control channel
    bir = sdk.capture(handle, Purpose.VERIFY, 5000)    # → Bir (quality, liveness, sample)
    result = sdk.create_template([b1, b2, b3])         # → TemplateResult (OK | MORE_SAMPLES_NEEDED)
    matched, fmr = sdk.verify_match(1e-7, bir, result.template)
    ranked = sdk.identify_match(1e-7, bir, sdk.prepare_population({...}), 10)
    level, code, detail = sdk.get_error_info()
    sdk.detach(handle); sdk.unload()

Failures raise `SdkError(level, code, detail)`. See docs/decisions/0003-vein.md."""

from vein_sdk_stub.bir import Bir, DataType, Hand, Purpose
from vein_sdk_stub.calibration import DIM, cos_for_fmr, fmr_from_score, score_from_cos
from vein_sdk_stub.control import Control, ControlError, ControlServer, Outcome
from vein_sdk_stub.errors import CODE_HINTS, HINT_CODES, Code, Level, SdkError
from vein_sdk_stub.matcher import ENROL_MIN_QUALITY, ENROL_SAMPLES, PreparedPopulation
from vein_sdk_stub.module import (
    GuiCallback,
    GuiResponse,
    GuiState,
    SdkModule,
    TemplateResult,
    UnitInfo,
    load_module,
)
from vein_sdk_stub.population import Population, PopulationParams, Presentations

__all__ = [
    "CODE_HINTS",
    "DIM",
    "ENROL_MIN_QUALITY",
    "ENROL_SAMPLES",
    "HINT_CODES",
    "Bir",
    "Code",
    "Control",
    "ControlError",
    "ControlServer",
    "DataType",
    "GuiCallback",
    "GuiResponse",
    "GuiState",
    "Hand",
    "Level",
    "Outcome",
    "Population",
    "PopulationParams",
    "PreparedPopulation",
    "Presentations",
    "Purpose",
    "SdkError",
    "SdkModule",
    "TemplateResult",
    "UnitInfo",
    "cos_for_fmr",
    "fmr_from_score",
    "load_module",
    "score_from_cos",
]
