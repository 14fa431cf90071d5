"""Remote biometric registration (R14): the state machine of a registration session and the
rules on who may open, attend and act in it. Pure: no storage, no clock of its own.

    waiting --join--> joined --capture_id--> id_captured --confirm--> confirmed --enrol--> enrolled
                                             (capture_id again)  \\--reject--> rejected    \\--stop--> stopped
    joined | id_captured | confirmed | enrolled | rejected | stopped --close--> closed
    any state but closed/expired --expire--> expired (left idle)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from authsvc.domain.errors import DomainError, Forbidden, InvalidInput


class State(StrEnum):
    WAITING = "waiting"          # opened by the registrant, no administrator yet
    JOINED = "joined"            # the administrator attends
    ID_CAPTURED = "id_captured"  # the photo ID image is captured, awaiting the administrator
    CONFIRMED = "confirmed"      # identity confirmed: the palm may be enrolled
    REJECTED = "rejected"        # identity rejected: no enrolment in this session
    ENROLLED = "enrolled"        # palm enrolled
    STOPPED = "stopped"          # the palm matched another person: registration stopped
    CLOSED = "closed"            # closed by the administrator (final)
    EXPIRED = "expired"          # left idle too long (final)


class Party(StrEnum):
    REGISTRANT = "registrant"
    ADMIN = "admin"
    SYSTEM = "system"


FINAL = frozenset({State.CLOSED, State.EXPIRED})

# (state, event) -> next state
TRANSITIONS: dict[tuple[State, str], State] = {
    (State.WAITING, "join"): State.JOINED,
    (State.JOINED, "capture_id"): State.ID_CAPTURED,
    (State.ID_CAPTURED, "capture_id"): State.ID_CAPTURED,  # a clearer image replaces the view
    (State.ID_CAPTURED, "confirm"): State.CONFIRMED,
    (State.ID_CAPTURED, "reject"): State.REJECTED,
    (State.CONFIRMED, "enrol"): State.ENROLLED,
    (State.CONFIRMED, "stop"): State.STOPPED,
    **{(s, "close"): State.CLOSED for s in (State.JOINED, State.ID_CAPTURED, State.CONFIRMED,
                                            State.ENROLLED, State.REJECTED, State.STOPPED)},
    **{(s, "expire"): State.EXPIRED for s in State if s not in FINAL},
}

# who may cause each event
ACTORS: dict[str, Party] = {
    "join": Party.ADMIN, "capture_id": Party.REGISTRANT, "confirm": Party.ADMIN,
    "reject": Party.ADMIN, "enrol": Party.REGISTRANT, "close": Party.ADMIN,
    "stop": Party.SYSTEM, "expire": Party.SYSTEM,
}

IMAGE_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


def step(state: State | str, event: str, by: Party) -> State:
    """The next state, or DomainError: the event is not allowed now, or not by this party."""
    if ACTORS.get(event) is None:
        raise InvalidInput("registration_wrong_step", state=str(state), event=event)
    if ACTORS[event] is not by:
        raise Forbidden("registration_not_your_step", event=event)
    nxt = TRANSITIONS.get((State(state), event))
    if nxt is None:
        raise DomainError("registration_wrong_step", state=str(state), event=event)
    return nxt


def is_idle(state: State | str, last_activity: datetime, now: datetime, idle_minutes: int) -> bool:
    return State(state) not in FINAL and now - last_activity > timedelta(minutes=idle_minutes)


@dataclass(frozen=True)
class Person:
    """An account as far as these rules care."""

    account_id: int
    person_id: int
    company: str
    role: str
    status: str


def check_can_open(status: str, must_change_password: bool, consent: bool, enrolled: bool) -> None:
    """The registrant may open a remote session: an active account whose initial password has
    been changed, consent recorded, and no palm enrolled for the person yet."""
    if enrolled:
        raise DomainError("registration_not_needed")  # the person's existing enrolment applies
    if status != "active":
        raise DomainError("registration_account_inactive")
    if must_change_password:
        raise DomainError("registration_password_first")
    if not consent:
        raise DomainError("registration_no_consent")


def check_attendant(registrant: Person, admin: Person) -> None:
    """The attending administrator: a different human, a system administrator, active, of the
    registrant's company."""
    if admin.account_id == registrant.account_id or admin.person_id == registrant.person_id:
        raise Forbidden("registration_self_attend")
    if admin.role != "system_admin" or admin.status != "active":
        raise Forbidden("registration_not_admin")
    if admin.company != registrant.company:
        raise Forbidden("registration_other_company")


def check_image(data: bytes, max_bytes: int) -> str:
    """The content type of an acceptable ID image (JPEG or PNG, not empty, not too large)."""
    if not isinstance(data, bytes | bytearray) or not data:
        raise InvalidInput("registration_image_invalid")
    if len(data) > max_bytes:
        raise InvalidInput("registration_image_too_large", limit=max_bytes // (1024 * 1024))
    for magic, kind in IMAGE_TYPES.items():
        if bytes(data[: len(magic)]) == magic:
            return kind
    raise InvalidInput("registration_image_invalid")
