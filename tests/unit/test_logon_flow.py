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
