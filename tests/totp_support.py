"""TOTP as the second factor, for the tests that drive it: the service's rules over the
in-memory fakes (tests/unit/test_totp_service.py) and what needs a real database
(tests/integration/test_totp.py)."""

from __future__ import annotations

import pyotp

from authsvc.domain.roles import Actor
from authsvc.services import Deps, totp
from tests.integration.support import active_account, add_contract

TANAKA = Actor("tanaka", terminal="pc-1", source="10.0.0.5")
SUZUKI = Actor("suzuki", terminal="pc-2", source="10.0.0.6")


def add_users(deps: Deps, operator: Actor, account_admin: Actor) -> Deps:
    """The default contract with the approved accounts tanaka and suzuki; returns `deps`."""
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "tanaka")
    active_account(deps, account_admin, operator, "suzuki", name="鈴木 花子")
    return deps


def code(secret: str, clock, offset: int = 0) -> str:
    """The TOTP code of `secret` at `clock`'s time step, moved by `offset` steps."""
    return pyotp.TOTP(secret).at(clock.now(), counter_offset=offset)


def enrol(deps: Deps, clock, actor: Actor = TANAKA) -> str:
    """Enrol and confirm `actor`'s TOTP; returns the secret. The confirming code is used up."""
    enrolment = totp.begin_enrolment(deps, actor, actor.id)
    totp.confirm_enrolment(deps, actor, actor.id, code(enrolment.secret, clock))
    return enrolment.secret
