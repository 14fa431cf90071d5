"""A session and its rules over time (R8, R16): the typed record the session store keeps, the
absolute lifetime, the idle lock of a user session, and the end of an idle console session
(administration needs a fresh logon). Time is passed in, as epoch seconds."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

USER, CONSOLE = "user", "console"  # the surfaces a session belongs to (R8)


@dataclass(frozen=True)
class Lifetime:
    idle_minutes: int
    absolute_hours: int


@dataclass(frozen=True)
class Record:
    user_id: str
    factors: tuple[str, ...]
    created_at: float
    last_seen: float
    locked: bool = False
    surface: str = USER
    remote: bool = False
    terminal: str = ""
    source: str = ""
    flow: dict[str, Any] | None = None  # an unlock in progress (domain/logon_flow.py)
    # The session's own name, kept across the new tokens of an unlock or a step-up: the `sid`
    # relying parties know it by ([8 of 12]); never derived from the token.
    ref: str = ""
    auth_time: float = 0.0  # when its user last authenticated (logon, unlock, step-up)
    device: str = ""        # the registered terminal its logon proved (R12); "" for none

    @property
    def authenticated_at(self) -> float:
        return self.auth_time or self.created_at

    @staticmethod
    def of(data: dict[str, Any] | None) -> Record | None:
        """The session in a store's entry, or None for anything else (a pending logon)."""
        if not data or data.get("kind") != "session":
            return None
        return Record(str(data["user_id"]), tuple(data["factors"]), float(data["created_at"]),
                      float(data["last_seen"]), bool(data["locked"]), data.get("surface", USER),
                      bool(data.get("remote", False)), str(data.get("terminal", "")),
                      str(data.get("source", "")), data.get("flow"), str(data.get("ref", "")),
                      float(data.get("auth_time") or 0.0), str(data.get("device", "")))

    def data(self) -> dict[str, Any]:
        """The store's entry for this session."""
        out = {"kind": "session", "surface": self.surface, "user_id": self.user_id,
               "factors": list(self.factors), "created_at": self.created_at,
               "last_seen": self.last_seen, "locked": self.locked, "remote": self.remote,
               "terminal": self.terminal, "source": self.source, "ref": self.ref,
               "auth_time": self.auth_time, "device": self.device}
        return {**out, "flow": self.flow} if self.flow is not None else out

    def ends_at(self, life: Lifetime) -> float:
        return self.created_at + life.absolute_hours * 3600


def idle(rec: Record, now: float, life: Lifetime) -> bool:
    return now - rec.last_seen > life.idle_minutes * 60


def seen(rec: Record, now: float, life: Lifetime) -> Record | None:
    """The session as a request at `now` finds it: None when it has ended (its absolute
    lifetime is over, or a console session was left idle: R8); locked when a user session was
    left idle (R16: it needs the password and a second factor again); else as it was."""
    if now > rec.ends_at(life) or (rec.surface == CONSOLE and idle(rec, now, life)):
        return None
    if not rec.locked and idle(rec, now, life):
        return replace(rec, locked=True)
    return rec
