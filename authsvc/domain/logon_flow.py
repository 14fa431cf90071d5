"""The logon state machine (R2, R10, R16): password, then the forced change of an initial
password, then a second factor of another kind (enrolling one first if the user has none),
then, where policy requires it (R12), the proof of a registered terminal, then a session.
Unlocking a locked session runs the same machine for the same user.
Factors are pluggable: each has a name and a kind; a logon is complete only when the factors
passed cover at least two different kinds."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum


class Kind(StrEnum):
    KNOWLEDGE = "knowledge"    # 知識要素
    POSSESSION = "possession"  # 所持要素
    BIOMETRIC = "biometric"    # 生体要素


FACTORS: dict[str, Kind] = {
    "password": Kind.KNOWLEDGE,
    "totp": Kind.POSSESSION,
    "webauthn": Kind.POSSESSION,
    "vein": Kind.BIOMETRIC,  # arrives with issue [3 of 8]
}


# Factors a user may enrol during a logon that began with an initial password; palm vein is
# enrolled only with a witness present (R14).
SELF_ENROL = ("totp", "webauthn")


class Step(StrEnum):
    PASSWORD = "password"  # noqa: S105
    CHANGE_PASSWORD = "change_password"  # noqa: S105 (nothing else is reachable until done, R2)
    ENROL = "enrol"                      # no usable second factor yet: enrol one to finish
    SECOND_FACTOR = "second_factor"
    REGISTER = "register"                # palm vein required but not enrolled: register it (R14)
    TERMINAL = "terminal"                # prove the registered terminal through its agent (R12)
    NO_FACTOR = "no_factor"              # none enrolled and no right to enrol: ask an operator
    DONE = "done"


class FlowError(Exception):
    """A step was attempted that the machine does not allow now."""


@dataclass(frozen=True)
class Flow:
    user_id: str
    purpose: str                          # "logon" | "console" | "unlock"
    started_at: float                     # epoch seconds
    step: Step = Step.PASSWORD
    passed: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()         # second factors the policy allows
    enrolled: tuple[str, ...] = field(default=())  # allowed factors the user has
    # Enrolling a first second factor needs more than a password someone may have stolen: it
    # is allowed only in a logon that began with an initial password (first logon, or after
    # an operator's reset), which reached the user through the confidential channel (R2).
    may_enrol: bool = False
    # R12: the logon must prove a registered terminal (policy), and the device ID that proved it
    # (by a palm capture, or the agent's signed challenge at TERMINAL); "" while none has.
    terminal_required: bool = False
    terminal: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"user_id": self.user_id, "purpose": self.purpose, "started_at": self.started_at,
                "step": self.step.value, "passed": list(self.passed), "allowed": list(self.allowed),
                "enrolled": list(self.enrolled), "may_enrol": self.may_enrol,
                "terminal_required": self.terminal_required, "terminal": self.terminal}

    @staticmethod
    def from_dict(d: dict[str, object]) -> Flow:
        return Flow(
            user_id=str(d["user_id"]), purpose=str(d["purpose"]), started_at=float(d["started_at"]),  # type: ignore[arg-type]
            step=Step(str(d["step"])), passed=tuple(d["passed"]),  # type: ignore[arg-type]
            allowed=tuple(d["allowed"]), enrolled=tuple(d["enrolled"]),  # type: ignore[arg-type]
            may_enrol=bool(d.get("may_enrol")),
            terminal_required=bool(d.get("terminal_required")), terminal=str(d.get("terminal") or ""),
        )

    @property
    def options(self) -> tuple[str, ...]:
        """The second factors that can finish this flow now."""
        done_kinds = {FACTORS[f] for f in self.passed}
        usable = {Step.SECOND_FACTOR: self.enrolled,
                  Step.ENROL: tuple(f for f in self.allowed if f in SELF_ENROL)}.get(self.step, ())
        return tuple(f for f in usable if FACTORS[f] not in done_kinds)


def kinds(passed: tuple[str, ...]) -> set[Kind]:
    return {FACTORS[f] for f in passed}


def complete(passed: tuple[str, ...]) -> bool:
    """R10: at least two different kinds of factor."""
    return len(kinds(passed)) >= 2


def unproven(flow: Flow) -> bool:
    """R12: the policy asks this logon for a registered terminal and none has been proven."""
    return flow.terminal_required and not flow.terminal


def _next(flow: Flow, must_change: bool) -> Flow:
    # R12: a logon whose factors are complete, or that would enrol a first factor, proves the
    # terminal first (a palm capture has proven it on its way)
    if complete(flow.passed):
        return replace(flow, step=Step.TERMINAL if unproven(flow) else Step.DONE)
    if must_change:
        return replace(flow, step=Step.CHANGE_PASSWORD)
    if any(FACTORS[f] not in kinds(flow.passed) for f in flow.enrolled):
        return replace(flow, step=Step.SECOND_FACTOR)
    if flow.may_enrol and any(f in SELF_ENROL for f in flow.allowed):
        return replace(flow, step=Step.TERMINAL if unproven(flow) else Step.ENROL)
    # palm vein is registered with a witness (R14): only the registration pages are reachable
    return replace(flow, step=Step.REGISTER if "vein" in flow.allowed else Step.NO_FACTOR)


def allowed_factors(deployment: tuple[str, ...], groups: list[tuple[str, ...]]) -> tuple[str, ...]:
    """The second factors a logon may use: the deployment's, narrowed by the factor policy of
    every group the account is a member of (R8, R10). No group: the deployment's."""
    return tuple(f for f in deployment if all(f in g for g in groups))


def begin(user_id: str, purpose: str, now: float, allowed: tuple[str, ...],
          enrolled: tuple[str, ...], terminal_required: bool = False) -> Flow:
    return Flow(user_id=user_id, purpose=purpose, started_at=now, allowed=allowed,
                enrolled=tuple(f for f in allowed if f in enrolled),
                terminal_required=terminal_required)


def step_up(user_id: str, now: float, passed: tuple[str, ...], enrolled: tuple[str, ...],
            vein: bool, terminal: bool, device: str = "") -> Flow:
    """A session's logon raised to what a relying party demands ([8 of 12]): only the missing
    part runs, the palm vein (when `vein` and none was passed) and then the proof of a
    registered terminal (when `terminal` and `device` is ""). NO_FACTOR when the palm is needed
    and none is enrolled; DONE when nothing is missing."""
    allowed = ("vein",) if vein and "vein" not in passed else ()
    flow = Flow(user_id=user_id, purpose="stepup", started_at=now, passed=passed, allowed=allowed,
                enrolled=tuple(f for f in allowed if f in enrolled), terminal_required=terminal,
                terminal=device)
    if allowed:
        return replace(flow, step=Step.SECOND_FACTOR if flow.enrolled else Step.NO_FACTOR)
    return replace(flow, step=Step.TERMINAL if unproven(flow) else Step.DONE)


def password_passed(flow: Flow, must_change: bool) -> Flow:
    if flow.step is not Step.PASSWORD:
        raise FlowError(flow.step)
    flow = replace(flow, passed=(*flow.passed, "password"), may_enrol=must_change)
    return _next(flow, must_change)


def password_changed(flow: Flow) -> Flow:
    if flow.step is not Step.CHANGE_PASSWORD:
        raise FlowError(flow.step)
    return _next(flow, must_change=False)


def factor_passed(flow: Flow, factor: str, terminal: str = "") -> Flow:
    """A second factor verified: at SECOND_FACTOR one the user has; at ENROL one just enrolled
    (confirming a new TOTP code or a new WebAuthn credential proves possession). `terminal`:
    the registered device the factor's check proved (a palm capture signed by it), kept when
    the policy asks for one."""
    if flow.step not in (Step.SECOND_FACTOR, Step.ENROL) or factor not in flow.options:
        raise FlowError(f"{flow.step}:{factor}")
    enrolled = flow.enrolled if factor in flow.enrolled else (*flow.enrolled, factor)
    proven = flow.terminal or (terminal if flow.terminal_required else "")
    return _next(replace(flow, passed=(*flow.passed, factor), enrolled=enrolled, terminal=proven),
                 must_change=False)


def terminal_proven(flow: Flow, device_id: str) -> Flow:
    """At TERMINAL: the registered terminal `device_id` proved itself (R12); on to what the
    logon needs next (the session, or the enrolment of a first factor)."""
    if flow.step is not Step.TERMINAL or not device_id:
        raise FlowError(flow.step)
    return _next(replace(flow, terminal=device_id), must_change=False)


def registered(flow: Flow, enrolled: tuple[str, ...], now: float) -> Flow:
    """Back from the registration pages: the factors the user now has decide the next step
    (the palm just registered makes it the second factor); the logon's clock starts again."""
    if flow.step is not Step.REGISTER:
        raise FlowError(flow.step)
    return _next(replace(flow, enrolled=tuple(f for f in flow.allowed if f in enrolled),
                         started_at=now), must_change=False)


def expired(flow: Flow, now: float, minutes: int) -> bool:
    return now - flow.started_at > minutes * 60
