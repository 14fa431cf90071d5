"""The registered terminal (R12) for the tests that drive it: a terminal whose emulated reader
holds a device key the test also keeps (to forge what a borrowed key could sign), a user who
logs on with TOTP, and the terminal step of a logon. Used by tests/unit/test_terminal_service.py
(the rules over the in-memory fakes) and tests/integration/test_terminal_agent.py (through the
real agent, on a database)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyotp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.clock import FixedClock
from adapters.vein import TerminalProof, VeinReader, open_reader
from authsvc.domain import logon_flow as lf
from authsvc.domain.roles import Actor
from authsvc.services import Deps, devices, logon, totp
from authsvc.services.passwords import change_password
from authsvc.services.sessions import Client
from tests.integration.support import CHOSEN, active_account

TERMINAL = "TERMINAL-1"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) test browser"
CLIENT = Client(BROWSER, "10.0.0.5")
REQUIRED = {"require_terminal": True}
OTHER_COMPANY = "東和精機株式会社"


@dataclass
class Terminal:
    """A registered terminal: its reader (which signs as `device_id`) and the device key."""

    device_id: str
    reader: VeinReader
    key: Ed25519PrivateKey


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def terminal(deps: Deps, operator: Actor, device_id: str = TERMINAL, company: str | None = None,
             kind: str = "terminal", register: bool = True) -> Terminal:
    """An emulated reader with a key of its own, registered as `device_id` (bound to `company`
    if given) unless `register` is False."""
    key = Ed25519PrivateKey.generate()
    reader = open_reader("emulated", seed=0, key=key, reader_id=device_id, clock=deps.clock)
    if register:
        devices.register(deps, operator, device_id, b64(reader.public_key_bytes()), kind=kind,
                         company=company)
    return Terminal(device_id, reader, key)


def totp_user(deps: Deps, clock: FixedClock, operator: Actor, account_admin: Actor,
              user: str = "alice", role: str = "user") -> str:
    """An approved account of the default contract (made by `add_contract` first), its
    password changed to CHOSEN[0], with TOTP enrolled (the clock then moves on a time step, so
    the next code is a new one); returns the TOTP secret."""
    active_account(deps, account_admin, operator, user, role=role)
    change_password(deps, Actor(user), user, CHOSEN[0])
    made = totp.begin_enrolment(deps, Actor(user), user)
    totp.confirm_enrolment(deps, Actor(user), user, pyotp.TOTP(made.secret).at(clock.now()))
    clock.advance(seconds=30)
    return made.secret


def to_terminal_step(deps: Deps, clock: FixedClock, secret: str, user: str = "alice",
                     client: Client = CLIENT, surface: str = "user") -> logon.State:
    """Password and TOTP; with the policy on, the logon then waits at TERMINAL."""
    state = logon.begin(deps, user, CHOSEN[0], client, surface)
    assert state.step is lf.Step.SECOND_FACTOR, state
    state = logon.totp_step(deps, state.token, pyotp.TOTP(secret).at(clock.now()), client)
    clock.advance(seconds=30)  # the next logon's code is a new one
    return state


def proof_for(deps: Deps, token: str, signer: Terminal) -> tuple[str, dict[str, Any]]:
    """A challenge for the logon, answered by the terminal's reader: (challenge id, proof)."""
    made = logon.terminal_challenge(deps, token)
    assert made is not None
    return made.id, signer.reader.prove_terminal(b64d(made.challenge)).to_dict()


def forged(deps: Deps, challenge: str, device_id: str, key: Ed25519PrivateKey,
           created_at: datetime | None = None) -> dict[str, Any]:
    """A proof for `challenge` claiming `device_id`, signed with `key` (any key), made at
    `created_at` (default: now)."""
    proof = TerminalProof(device_id, created_at or deps.clock.now(), b64d(challenge))
    return proof.signed(key).to_dict()
