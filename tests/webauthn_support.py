"""WebAuthn as the second factor, for the tests that drive it with the software authenticator
(tests/webauthn_soft.py): the service's rules over the in-memory fakes
(tests/unit/test_webauthn_service.py) and what needs a real database
(tests/integration/test_webauthn.py)."""

from __future__ import annotations

from typing import Any

from authsvc.domain.roles import Actor
from authsvc.services import Deps
from authsvc.services import webauthn as wa
from tests.webauthn_soft import SoftAuthenticator

ALICE = Actor("alice", terminal="T-01", source="10.0.0.5")


def enrol(deps: Deps, auth: SoftAuthenticator, user: str = "alice", name: str = "") -> dict[str, Any]:
    """Register `auth` as `user`'s security key; returns the registration response."""
    cid, options = wa.registration_options(deps, user)
    response = auth.create(options)
    wa.register(deps, Actor(user), user, cid, response, name=name)
    return response


def login(deps: Deps, auth: SoftAuthenticator, user: str = "alice", **kw: Any) -> bool:
    """One assertion of `auth` for `user` (`kw` as for SoftAuthenticator.get); whether it passed."""
    cid, options = wa.authentication_options(deps, user)
    return wa.authenticate(deps, user, cid, auth.get(options, **kw))
