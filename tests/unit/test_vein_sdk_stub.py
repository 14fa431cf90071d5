"""The vendor-SDK stand-in: calibration, the deterministic population, the BIR format, the
BioAPI-style module (return codes, handles, templates, matching) and the control channel."""

from __future__ import annotations

import itertools
import math
import socket
import threading
import time

import numpy as np
import pytest

from vein_sdk_stub import (
    Bir,
    Code,
    Control,
    ControlServer,
    DataType,
    GuiResponse,
    Hand,
    Level,
    Population,
    PreparedPopulation,
    Purpose,
    SdkError,
    cos_for_fmr,
    load_module,
    score_from_cos,
)
from vein_sdk_stub.bulk import enrol_batch, template_records
from vein_sdk_stub.calibration import log10_fmr

# -- calibration --------------------------------------------------------------------------


def test_score_is_minus_log10_of_the_impostor_tail():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 64))
    b = rng.standard_normal((500, 64))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    cos = (a @ b.T).ravel()  # 2,000,000 impostor-like pairs
    for fmr in (1e-2, 1e-3, 1e-4):
        measured = np.count_nonzero(cos >= cos_for_fmr(fmr)) / cos.size
        assert abs(measured / fmr - 1) < 0.15, (fmr, measured)


def test_calibration_is_monotone_and_inverts():
    grid = np.linspace(-1, 1, 201)
    scores = [score_from_cos(c) for c in grid]
    assert all(s2 >= s1 for s1, s2 in itertools.pairwise(scores))
    assert scores[0] == 0.0 and scores[-1] == 99.0
    assert math.isclose(score_from_cos(0.0), math.log10(2), rel_tol=1e-9)
    for fmr in (1e-1, 1e-4, 1e-7, 1e-10):
        assert math.isclose(log10_fmr(cos_for_fmr(fmr)), math.log10(fmr), abs_tol=1e-6)
    with pytest.raises(ValueError):
        cos_for_fmr(0.0)


# -- population ---------------------------------------------------------------------------


def test_population_is_deterministic_per_seed():
    a, b, c = Population(5), Population(5), Population(6)
    assert np.array_equal(a.latents([1, 2, 3000]), b.latents([1, 2, 3000]))
    assert not np.array_equal(a.latents([1]), c.latents([1]))
    assert not np.array_equal(a.latents([1], Hand.RIGHT), a.latents([1], Hand.LEFT))
    pa, pb = a.presentations(np.arange(10), Hand.LEFT, 3), b.presentations(np.arange(10), Hand.LEFT, 3)
    assert np.array_equal(pa.vectors, pb.vectors) and np.array_equal(pa.quality, pb.quality)
    assert np.array_equal(pa.liveness, pb.liveness)


def test_one_palm_or_a_batch_gives_the_same_presentation():
    pop = Population(9)
    batch = pop.presentations(np.array([3, 1500, 70000]), Hand.RIGHT, 2)
    for row, palm in enumerate((3, 1500, 70000)):
        one = pop.presentations(palm, Hand.RIGHT, 2)
        assert np.array_equal(one.vectors[0], batch.vectors[row])
        assert one.quality[0] == batch.quality[row]


def test_presentation_kinds_differ_as_designed():
    pop = Population(1)
    palms = np.arange(2000)
    bona = pop.presentations(palms, Hand.RIGHT, 0)
    spoof = pop.presentations(palms, Hand.RIGHT, 0, kind="spoof")
    poor = pop.presentations(palms, Hand.RIGHT, 0, kind="poor")
    assert np.median(bona.liveness) > 0.9 and np.median(spoof.liveness) < 0.1
    assert poor.quality.max() <= 35 and np.median(bona.quality) > 75
    with pytest.raises(ValueError):
        pop.presentations(-1, Hand.RIGHT, 0)
    with pytest.raises(ValueError):
        pop.presentations(1, Hand.UNKNOWN, 0)


# -- BIR format ---------------------------------------------------------------------------


def _sample(quality=80, liveness=0.9):
    codes = np.arange(-32, 32, dtype=np.int8)
    return Bir.from_features(DataType.SAMPLE, Purpose.VERIFY, quality, liveness, Hand.LEFT, codes, 0.01)


def test_bir_round_trip_and_size():
    bir = _sample()
    blob = bir.to_bytes()
    assert len(blob) == 88
    assert Bir.from_bytes(blob) == bir
    assert bir.dim == 64 and bir.hand == Hand.LEFT


@pytest.mark.parametrize("mutate", [
    lambda b: b[:20],                                   # truncated
    lambda b: b"XXXX" + b[4:],                          # magic
    lambda b: b[:4] + b"\x02" + b[5:],                  # version
    lambda b: b[:5] + b"\x07" + b[6:],                  # data type
    lambda b: b[:11] + b"\x65" + b[12:],                # quality 101
    lambda b: b[:16] + b"\x00\x00\xc0\x7f" + b[20:],    # liveness NaN
    lambda b: b[:20] + b"\x00\x00\x00\x00" + b[24:],    # scale 0
    lambda b: b[:24] + bytes(64),                       # all-zero features
    lambda b: b + b"\x01",                              # dimension mismatch
    lambda b: b"",
])
def test_bir_parser_rejects_malformed_records(mutate):
    with pytest.raises(SdkError) as info:
        Bir.from_bytes(mutate(_sample().to_bytes()))
    assert info.value.code == Code.INVALID_BIR


# -- the module ---------------------------------------------------------------------------


@pytest.fixture
def sdk():
    module = load_module(seed=3, tick_s=0.002)
    yield module


def _enrol(sdk, handle, palm, hand=Hand.RIGHT):
    control = sdk.control()
    birs = []
    while True:
        control.present(palm, hand)
        birs.append(sdk.capture(handle, Purpose.ENROL, 1000))
        result = sdk.create_template(birs)
        if result.status == Code.OK:
            return result.template


def test_capture_of_a_scripted_palm(sdk):
    h = sdk.attach("vein0")
    sdk.control().execute("present 42 left quality 77")
    bir = sdk.capture(h, Purpose.VERIFY, 1000)
    assert (bir.data_type, bir.purpose, bir.hand, bir.quality) == (
        DataType.SAMPLE, Purpose.VERIFY, Hand.LEFT, 77)
    assert 0.0 <= bir.liveness <= 1.0


def test_nothing_scripted_times_out_and_error_info_tells_why(sdk):
    h = sdk.attach()
    t = time.monotonic()
    with pytest.raises(SdkError) as info:
        sdk.capture(h, Purpose.VERIFY, 60)
    assert time.monotonic() - t >= 0.055
    assert info.value.code == Code.TIMEOUT_EXPIRED
    assert sdk.get_error_info() == (Level.BSP, Code.TIMEOUT_EXPIRED, info.value.detail)


@pytest.mark.parametrize(("line", "code"), [
    ("no_hand", Code.NO_HAND),
    ("reposition left", Code.MOVE_LEFT),
    ("reposition right", Code.MOVE_RIGHT),
    ("reposition closer", Code.MOVE_CLOSER),
    ("reposition farther", Code.MOVE_FARTHER),
    ("reposition tilt", Code.HOLD_FLAT),
    ("error hardware_fault", Code.HARDWARE_FAULT),
    ("error 0x0777", 0x0777),
    ("timeout", Code.TIMEOUT_EXPIRED),
])
def test_scripted_failures_return_their_codes(sdk, line, code):
    h = sdk.attach()
    assert sdk.control().execute(line) == "ok"
    with pytest.raises(SdkError) as info:
        sdk.capture(h, Purpose.VERIFY, 80)
    assert info.value.code == code
    level, got, _ = sdk.get_error_info()
    assert got == code and level in (Level.BSP, Level.UNIT)


def test_spoof_and_poor_quality_come_back_as_records(sdk):
    h = sdk.attach()
    sdk.control().execute("spoof 5")
    sdk.control().execute("poor_quality 5")
    spoof = sdk.capture(h, Purpose.VERIFY, 1000)
    poor = sdk.capture(h, Purpose.VERIFY, 1000)
    assert spoof.liveness < 0.5
    assert poor.quality <= 35


def test_delay_holds_the_next_capture(sdk):
    h = sdk.attach()
    sdk.control().execute("delay 80")
    sdk.control().present(1)
    t = time.monotonic()
    sdk.capture(h, Purpose.VERIFY, 1000)
    assert time.monotonic() - t >= 0.075


def test_a_command_arriving_during_the_wait_is_taken(sdk):
    h = sdk.attach()
    threading.Timer(0.05, sdk.control().present, args=(8,)).start()
    assert sdk.capture(h, Purpose.VERIFY, 2000).data_type == DataType.SAMPLE


def test_unplug_kills_handles_until_plugged_again(sdk):
    h = sdk.attach()
    control = sdk.control()
    threading.Timer(0.05, control.unplug).start()
    with pytest.raises(SdkError) as info:
        sdk.capture(h, Purpose.VERIFY, 2000)
    assert info.value.code == Code.UNIT_REMOVED and info.value.level == Level.UNIT
    with pytest.raises(SdkError) as info:
        sdk.attach()
    assert info.value.code == Code.UNIT_NOT_PRESENT
    assert sdk.enumerate_units()[0].present is False
    control.plug()
    h2 = sdk.attach()
    control.present(1)
    assert sdk.capture(h2, Purpose.VERIFY, 1000)
    with pytest.raises(SdkError) as info:
        sdk.capture(h, Purpose.VERIFY, 100)  # the old handle stays dead
    assert info.value.code == Code.INVALID_HANDLE


def test_cancel_and_gui_callback(sdk):
    h = sdk.attach()
    threading.Timer(0.05, sdk.cancel, args=(h,)).start()
    with pytest.raises(SdkError) as info:
        sdk.capture(h, Purpose.VERIFY, 5000)
    assert info.value.code == Code.USER_CANCELLED
    seen = []

    def gui(state, message, progress):
        seen.append(message)
        return GuiResponse.CANCEL if len(seen) > 3 else GuiResponse.OK

    with pytest.raises(SdkError) as info:
        sdk.capture(h, Purpose.VERIFY, 5000, gui)
    assert info.value.code == Code.USER_CANCELLED and seen[0] == "place_hand"


def test_api_misuse_is_reported(sdk):
    with pytest.raises(SdkError) as info:
        sdk.attach("vein9")
    assert info.value.code == Code.INVALID_UNIT_ID
    with pytest.raises(SdkError) as info:
        sdk.capture(999, Purpose.VERIFY, 100)
    assert info.value.code == Code.INVALID_HANDLE and info.value.level == Level.FRAMEWORK
    h = sdk.attach()
    for bad in (0, -5, 10**9, 1.5):
        with pytest.raises(SdkError) as info:
            sdk.capture(h, Purpose.VERIFY, bad)
        assert info.value.code == Code.INVALID_PARAMETER
    sdk.detach(h)
    sdk.unload()
    with pytest.raises(SdkError) as info:
        sdk.attach()
    assert info.value.code == Code.MODULE_NOT_LOADED


def test_create_template_needs_three_good_samples_of_one_palm(sdk):
    h = sdk.attach()
    control = sdk.control()
    birs = []
    for quality in (80, 45, 85):  # 45 is captured but does not count toward enrolment
        control.present(20, quality=quality)
        birs.append(sdk.capture(h, Purpose.ENROL, 1000))
    result = sdk.create_template(birs)
    assert (result.status, result.template, result.samples_needed) == (Code.MORE_SAMPLES_NEEDED, None, 1)
    assert result.rejected == ((1, "quality"),)
    control.present(20)
    birs.append(sdk.capture(h, Purpose.ENROL, 1000))
    result = sdk.create_template(birs)
    assert result.status == Code.OK and result.template.data_type == DataType.TEMPLATE
    assert result.template.quality == 80
    control.present(21)
    other = sdk.capture(h, Purpose.ENROL, 1000)
    with pytest.raises(SdkError) as info:
        sdk.create_template([birs[0], birs[2], other])
    assert info.value.code == Code.INCONSISTENT_SAMPLES
    control.present(20)
    verify_sample = sdk.capture(h, Purpose.VERIFY, 1000)
    result = sdk.create_template([birs[0], birs[2], verify_sample])
    assert result.rejected == ((2, "not_for_enrolment"),)


def test_verify_and_identify_match(sdk):
    h = sdk.attach()
    templates = {palm: _enrol(sdk, h, palm) for palm in range(6)}
    sdk.control().present(4)
    probe = sdk.capture(h, Purpose.VERIFY, 1000)
    matched, fmr = sdk.verify_match(1e-7, probe, templates[4])
    assert matched and fmr < 1e-7
    matched, fmr = sdk.verify_match(1e-7, probe, templates[1])
    assert not matched and fmr > 1e-7
    population = sdk.prepare_population(templates)
    ranked = sdk.identify_match(1e-7, probe, population, 5)
    assert [key for key, _ in ranked] == [4]
    by_index = sdk.identify_match(0.5, probe, list(templates.values()), 3)
    assert by_index[0][0] == 4 and len(by_index) <= 3
    assert [f for _, f in by_index] == sorted(f for _, f in by_index)
    with pytest.raises(SdkError) as info:
        sdk.verify_match(0.0, probe, templates[4])
    assert info.value.code == Code.INVALID_PARAMETER
    with pytest.raises(SdkError) as info:
        sdk.verify_match(1e-7, templates[4], probe)  # swapped: a template is no probe
    assert info.value.code == Code.INVALID_BIR


def test_prepared_population_add_replace_remove(sdk):
    h = sdk.attach()
    t = {palm: _enrol(sdk, h, palm) for palm in range(3)}
    pop = PreparedPopulation(capacity=1)
    for palm, tmpl in t.items():
        pop.add(f"p{palm}", tmpl.to_bytes())
    assert len(pop) == 3 and "p1" in pop
    pop.remove("p0")
    assert sorted(pop.keys()) == ["p1", "p2"]
    sdk.control().present(2)
    probe = sdk.capture(h, Purpose.VERIFY, 1000)
    assert [k for k, _ in sdk.identify_match(1e-7, probe, pop, 3)] == ["p2"]
    pop.add("p2", t[1])  # re-enrolment replaces
    assert sdk.identify_match(1e-7, probe, pop, 3) == []
    with pytest.raises(SdkError):
        pop.add("x", probe)  # a sample is not a template


def test_bulk_enrolment_is_byte_identical_to_the_stub_path():
    palms = np.arange(4)
    en = enrol_batch(Population(3), palms, Hand.RIGHT)
    bulk = template_records(en.codes, en.scales, en.quality, Hand.RIGHT)
    sdk = load_module(seed=3, tick_s=0.002)
    h = sdk.attach()
    for palm in palms:
        control = sdk.control()
        birs = []
        while True:  # what the reader does: refuse quality < 40 and liveness < 0.5
            control.present(int(palm))
            bir = sdk.capture(h, Purpose.ENROL, 1000)
            if bir.quality < 40 or bir.liveness < 0.5:
                continue
            birs.append(bir)
            result = sdk.create_template(birs)
            if result.template is not None:
                break
        assert result.template.to_bytes() == bulk[palm]
    loaded = PreparedPopulation.from_templates(enumerate(bulk))  # the vectorised loader
    one_by_one = PreparedPopulation()
    for i, blob in enumerate(bulk):
        one_by_one.add(i, blob)
    assert np.allclose(loaded.matrix, one_by_one.matrix, atol=1e-7)


# -- the control channel ------------------------------------------------------------------


@pytest.mark.parametrize("line", [
    "present", "present x", "present -1", "present 99999999999", "present 1 middle", "present 1 quality 101",
    "spoof", "reposition up", "reposition", "error nonsense", "error 0", "error 0x10000", "delay -1",
    "delay soon", "unplug now", "fly", "", "present 1 " + "x" * 300, "présent 1",
])
def test_control_rejects_bad_commands_with_a_clear_answer(line):
    control = Control()
    answer = control.execute(line)
    assert answer.startswith("error: ") and control.pending == []


def test_control_queue_status_and_clear():
    control = Control()
    for line in ("present 3", "spoof 4 left", "poor_quality", "delay 10", "no_hand", "timeout"):
        assert control.execute(line) == "ok"
    assert [o.kind for o in control.pending] == ["present", "spoof", "poor_quality", "no_hand", "timeout"]
    assert control.pending[1].hand == Hand.LEFT
    assert control.execute("status") == (
        "ok plugged=yes delay_ms=10 queue=present spoof poor_quality no_hand timeout")
    assert control.execute("HELP").startswith("ok present N")
    control.execute("clear")
    assert control.pending == [] and control.take_delay_ms() == 0


def test_control_over_a_loopback_socket():
    control = Control()
    server = ControlServer(control).start()
    with server, socket.create_connection(server.address, timeout=5) as conn:
        f = conn.makefile("rwb")
        for line, expected in ((b"present 42\n", b"ok"), (b"bogus\n", b"error:"),
                               (b"\xff\xfe\n", b"error:"), (b"unplug\n", b"ok")):
            f.write(line)
            f.flush()
            assert f.readline().startswith(expected)
        f.write(b"quit\n")
        f.flush()
    assert [o.palm for o in control.pending] == [42] and not control.plugged
    with pytest.raises(ValueError):
        ControlServer(control, host="0.0.0.0")
