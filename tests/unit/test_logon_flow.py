"""The logon state machine (domain/logon_flow.py)."""

import pytest

from authsvc.domain import logon_flow as lf
from authsvc.domain.logon_flow import Step

ALLOWED = ("totp", "webauthn")


def begin(enrolled=(), allowed=ALLOWED):
    return lf.begin("sato", "logon", 1000.0, allowed, enrolled)


def test_initial_password_forces_the_change_before_anything_else():
    flow = lf.password_passed(begin(), must_change=True)
    assert flow.step is Step.CHANGE_PASSWORD and flow.options == ()
    with pytest.raises(lf.FlowError):
        lf.factor_passed(flow, "totp")  # nothing else is reachable (R2)
    enrol = lf.password_changed(flow)
    assert enrol.step is Step.ENROL and enrol.options == ALLOWED
    assert lf.factor_passed(enrol, "totp").step is Step.DONE


def test_enrolled_user_goes_to_the_second_factor():
    flow = lf.password_passed(begin(enrolled=("webauthn",)), must_change=False)
    assert flow.step is Step.SECOND_FACTOR and flow.options == ("webauthn",)
    with pytest.raises(lf.FlowError):
        lf.factor_passed(flow, "totp")  # not enrolled: cannot be used, nor enrolled here
    assert lf.factor_passed(flow, "webauthn").step is Step.DONE


def test_without_a_factor_and_without_an_initial_password_there_is_no_enrolment():
    """A stolen password must not let anyone enrol their own second factor."""
    flow = lf.password_passed(begin(), must_change=False)
    assert flow.step is Step.NO_FACTOR and flow.options == ()


def test_done_needs_two_kinds():
    assert not lf.complete(("password",))
    assert not lf.complete(("totp", "webauthn"))  # two possession factors are one kind
    assert lf.complete(("password", "totp"))
    assert lf.complete(("password", "vein"))


def test_factor_order_is_enforced():
    with pytest.raises(lf.FlowError):
        lf.factor_passed(begin(enrolled=("totp",)), "totp")  # before the password
    with pytest.raises(lf.FlowError):
        lf.password_changed(begin())


def test_policy_limits_the_factors():
    flow = lf.password_passed(begin(enrolled=("totp", "webauthn"), allowed=("webauthn",)), False)
    assert flow.options == ("webauthn",)


def test_round_trip_and_expiry():
    flow = lf.password_passed(begin(enrolled=("totp",)), must_change=False)
    assert lf.Flow.from_dict(flow.to_dict()) == flow
    assert not lf.expired(flow, 1000.0 + 300, 5)
    assert lf.expired(flow, 1000.0 + 301, 5)


def test_palm_required_but_not_enrolled_stops_at_registration():
    """R14: palm vein is never self-enrolled; the logon waits at REGISTER with nothing usable."""
    flow = lf.password_passed(begin(allowed=("vein",)), must_change=False)
    assert flow.step is Step.REGISTER and flow.options == ()
    for factor in ("vein", "totp"):
        with pytest.raises(lf.FlowError):
            lf.factor_passed(flow, factor)
    # after the initial password, a possession factor the policy allows comes first
    first = lf.password_changed(lf.password_passed(begin(allowed=("vein", "totp")), must_change=True))
    assert first.step is Step.ENROL and first.options == ("totp",)


def test_back_from_registration_the_new_palm_is_the_second_factor():
    flow = lf.password_passed(begin(allowed=("vein",)), must_change=False)
    back = lf.registered(flow, ("vein", "totp"), now=5000.0)
    assert back.step is Step.SECOND_FACTOR and back.options == ("vein",)  # totp: not allowed
    assert back.started_at == 5000.0  # the logon's clock starts again
    assert lf.factor_passed(back, "vein").step is Step.DONE
    still = lf.registered(flow, (), now=5000.0)
    assert still.step is Step.REGISTER  # nothing enrolled yet: still registering
    with pytest.raises(lf.FlowError):
        lf.registered(back, ("vein",), now=6000.0)  # only from the REGISTER step


# ---- step-up ([8 of 12]): only what a relying party's demand is missing -------------------------

SESSION = ("password", "totp")


def test_step_up_to_the_palm_runs_only_the_palm_then_ends():
    flow = lf.step_up("sato", 1000.0, SESSION, ("totp", "vein"), vein=True, terminal=False)
    assert flow.step is Step.SECOND_FACTOR and flow.options == ("vein",)
    with pytest.raises(lf.FlowError):
        lf.factor_passed(flow, "totp")  # what the session has proven is not asked again
    done = lf.factor_passed(flow, "vein")
    assert done.step is Step.DONE and done.passed == ("password", "totp", "vein")


def test_step_up_to_the_terminal_after_the_palm_keeps_the_device_its_capture_proved():
    flow = lf.step_up("sato", 1000.0, SESSION, ("vein",), vein=True, terminal=True)
    assert lf.factor_passed(flow, "vein", terminal="TERM-1").step is Step.DONE
    flow = lf.step_up("sato", 1000.0, SESSION, ("vein",), vein=True, terminal=True)
    after = lf.factor_passed(flow, "vein")  # no device in the capture: the terminal step
    assert after.step is Step.TERMINAL
    assert lf.terminal_proven(after, "TERM-1").step is Step.DONE


def test_step_up_without_the_palm_enrolled_cannot_run():
    assert lf.step_up("sato", 1000.0, SESSION, ("totp",), vein=True, terminal=False).step is Step.NO_FACTOR


def test_step_up_with_nothing_missing_is_done_and_a_proven_terminal_counts():
    passed = ("password", "vein")
    assert lf.step_up("sato", 1000.0, passed, ("vein",), vein=True, terminal=False).step is Step.DONE
    flow = lf.step_up("sato", 1000.0, passed, ("vein",), vein=False, terminal=True, device="TERM-1")
    assert flow.step is Step.DONE and flow.terminal == "TERM-1"
    assert lf.step_up("sato", 1000.0, passed, ("vein",), vein=False, terminal=True).step is Step.TERMINAL
