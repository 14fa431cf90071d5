"""Step-up ([8 of 12]): a relying party demands a level the session lacks; the logon state
machine runs only the missing factor (the palm vein, then the registered terminal), on the
session the user has, and the session states the new level from then on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.vein import VeinReader
from authsvc.domain import relying_party as rules
from authsvc.domain.logon_flow import Step
from authsvc.services import groups, logon, oidc, sessions
from authsvc.services.oidc import Need, RelyingParty
from tests.conftest import COMPANY
from tests.integration.oidc_support import member
from tests.integration.support import CHOSEN, add_contract, confirmed_totp, events, next_totp, totp_worker
from tests.vein_support import CLIENT, capture_for, enrolled_user, station_readers

RP = RelyingParty("rp1", None, rules.parse("rp", ["https://rp.example/cb"]))


@pytest.fixture
def deps(make_deps):
    return make_deps("sqlite")


@pytest.fixture
def station(deps, operator) -> Iterator[dict[str, VeinReader]]:
    yield from station_readers(deps, operator)


def allowed(deps, operator, account_admin, user_id: str) -> None:
    """`user_id` a member of a group whose members may use rp1 (R8)."""
    groups.create(deps, account_admin, "設計部", ["totp", "vein", "webauthn"], ["rp1"], COMPANY)
    member(deps, operator, account_admin, user_id, "設計部")


@pytest.fixture
def yamada(deps, operator, account_admin, station) -> str:
    """yamada, with a palm enrolled and a TOTP app (its secret), allowed to use rp1."""
    enrolled_user(deps, operator, account_admin, station["station"])
    allowed(deps, operator, account_admin, "yamada")
    return confirmed_totp(deps, "yamada")


def totp_session(deps, secret: str) -> str:
    state = logon.begin(deps, "yamada", CHOSEN[0], CLIENT)
    state = logon.totp_step(deps, state.token, next_totp(deps, secret), CLIENT)
    assert state.step is Step.DONE
    return state.token


def test_a_demanded_palm_runs_only_the_palm_step(deps, yamada, station):
    token = totp_session(deps, yamada)
    before = sessions.current(deps, token)
    decision = oidc.decide(deps, token, RP, None, rules.ACR_VEIN, False, None)
    assert decision.need is Need.STEP_UP and decision.vein and not decision.terminal
    assert decision.proof.acr == rules.ACR_MFA
    state = logon.begin_step_up(deps, token, decision.vein, decision.terminal)
    assert state.step is Step.SECOND_FACTOR and state.options == ("vein",)  # no password asked
    assert sessions.current(deps, token) is not None  # the session goes on meanwhile
    made, cap = capture_for(deps, token, station["terminal"])
    done = logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT)
    assert done.step is Step.DONE and done.token != token  # a new token, the same session
    assert sessions.current(deps, token) is None
    after = oidc.decide(deps, done.token, RP, None, rules.ACR_VEIN, False, None)
    assert after.need is Need.OK and after.proof.acr == rules.ACR_VEIN
    assert after.proof.ref == decision.proof.ref  # relying parties know it by the same sid
    assert after.proof.amr == ["pwd", "otp", "vein", "mfa"]
    assert sessions.current(deps, done.token).created_at == before.created_at
    assert [e.result for e in events(deps, "logon.stepup")] == ["ok"]
    assert len(events(deps, "logon.password")) == 1  # the first logon's only


def test_a_palm_not_enrolled_cannot_be_demanded(deps, operator, account_admin):
    add_contract(deps, operator)
    secret = totp_worker(deps, operator, account_admin)
    allowed(deps, operator, account_admin, "kato")
    state = logon.begin(deps, "kato", CHOSEN[0], CLIENT)
    token = logon.totp_step(deps, state.token, next_totp(deps, secret), CLIENT).token
    decision = oidc.decide(deps, token, RP, None, rules.ACR_VEIN, False, None)
    assert decision.need is Need.STEP_UP
    refused = logon.begin_step_up(deps, token, True, False)
    assert refused.step is Step.NO_FACTOR
    assert sessions.current(deps, token) is not None  # refused, and the session untouched


def test_max_age_and_a_fresh_logon(deps, yamada):
    token = totp_session(deps, yamada)
    assert oidc.decide(deps, token, RP, 600, None, False, None).need is Need.OK
    deps.clock.advance(seconds=601)
    sessions.touch(deps, token)
    asked = deps.clock.now().timestamp()
    assert oidc.decide(deps, token, RP, 600, None, False, None).need is Need.REAUTH
    assert oidc.decide(deps, token, RP, None, None, True, None).need is Need.REAUTH  # prompt=login
    state = logon.begin_unlock(deps, token, CHOSEN[0], CLIENT, again=True)
    assert state.step is Step.SECOND_FACTOR
    fresh = logon.totp_step(deps, state.token, next_totp(deps, yamada), CLIENT)
    assert fresh.step is Step.DONE
    assert oidc.decide(deps, fresh.token, RP, 0, None, True, asked).need is Need.OK
