"""Palm vein as the second factor, for the tests that drive it: the service's rules over the
in-memory fakes (tests/unit/test_vein_service.py) and what needs a real database
(tests/integration/test_vein_logon.py). The emulated reader plays the registration station
and the user's registered terminal."""

from __future__ import annotations

import base64
import dataclasses
import random
from collections.abc import Iterator
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.vein import Capture, VeinReader, open_reader
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, devices, logon, vein
from authsvc.services.sessions import Client
from tests.conftest import COMPANY
from tests.integration.support import CHOSEN, add_contract, events, ready

PALM = 42
CLIENT = Client("terminal-test", "10.0.0.8", False)
VEIN_POLICY = {"second_factors": ["vein"]}


def registered_reader(deps: Deps, operator: Actor, reader_id: str) -> VeinReader:
    """An emulated reader with its own key, registered as the device `reader_id`."""
    reader = open_reader("emulated", seed=0, key=Ed25519PrivateKey.generate(), reader_id=reader_id,
                         clock=deps.clock)
    devices.register(deps, operator, reader_id, base64.urlsafe_b64encode(reader.public_key_bytes()).decode())
    return reader


def station_readers(deps: Deps, operator: Actor) -> Iterator[dict[str, VeinReader]]:
    """The registration station's reader and the user's terminal, both registered devices;
    closed when the caller (a fixture) resumes."""
    readers = {name: registered_reader(deps, operator, f"{name.upper()}-1")
               for name in ("station", "terminal")}
    yield readers
    for reader in readers.values():
        reader.close()


def borrowed_reader(deps: Deps, operator: Actor) -> Iterator[VeinReader]:
    """Another registered terminal, TERMINAL-2, whose key file the attacker holds; closed when
    the caller (a fixture) resumes."""
    reader = registered_reader(deps, operator, "TERMINAL-2")
    yield reader
    reader.close()


def enrolled_user(deps: Deps, operator: Actor, account_admin: Actor, station: VeinReader) -> str:
    """yamada, password changed to CHOSEN[0], enrolled with PALM at the station, witnessed by
    a staff member of yamada's company (the default contract's)."""
    add_contract(deps, operator)
    ready(deps, account_admin, operator, "yamada", CHOSEN[0])
    staff = Actor("staff1", frozenset({Role.STAFF}), terminal="STATION-1", company=COMPANY)

    def capture(ch: bytes) -> Capture:
        station.control.present(PALM)
        return station.capture("enrol", ch)

    vein.enrol(deps, staff, "yamada", station, capture)
    return "yamada"


def logon_to_vein(deps: Deps) -> str:
    state = logon.begin(deps, "yamada", CHOSEN[0], CLIENT)
    assert state.options == ("vein",), state
    return state.token


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def capture_for(deps: Deps, token: str, terminal: VeinReader, palm: int = PALM,
                challenge: bytes | None = None) -> tuple[vein.Challenge, Capture]:
    made = logon.vein_challenge(deps, token)
    terminal.control.present(palm)
    cap = terminal.capture("verify", challenge or b64d(made.challenge))
    return made, cap


def reasons(deps: Deps, user: str = "yamada") -> list[Any]:
    return [e.data.get("reason") for e in events(deps, "vein.capture", user)]


def forge(deps: Deps, recorded: Capture, key: Ed25519PrivateKey, reader_id: str, challenge: bytes,
          sample: bytes | None = None) -> Capture:
    """A recorded capture's sample bound to a new challenge and signed with a borrowed key."""
    return dataclasses.replace(recorded, reader_id=reader_id, challenge=challenge,
                               created_at=deps.clock.now(), sample=sample or recorded.sample,
                               signature=b"").signed(key)


def nudge(sample: bytes, count: int = 4, seed: int = 1) -> bytes:
    """The sample with `count` of its int8 features moved by ±1 (a doctored copy, far closer to
    the original than any genuine capture)."""
    rng = random.Random(seed)
    raw = bytearray(sample)
    for at in rng.sample(range(24, len(raw)), count):
        value = int.from_bytes(raw[at:at + 1], "little", signed=True)
        value = value + 1 if value < 127 else value - 1
        raw[at:at + 1] = value.to_bytes(1, "little", signed=True)
    return bytes(raw)


def alerts(deps: Deps, user: str = "yamada") -> list[Any]:
    return [e for e in events(deps, "vein.capture", user) if e.result == "alert"]
