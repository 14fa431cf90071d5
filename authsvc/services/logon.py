"""Logon and sessions (R2, R4, R5, R9, R10, R12, R16, R17): the password step, the forced
change, a second factor of another kind (enrolled on first logon), the proof of a registered
terminal where policy requires it, the session with its idle lock and MFA unlock, logoff.
Every refusal looks the same to the caller; the real reason goes to the audit log and the
logon history for operators. Every factor attempt is counted toward the lockout before it is
evaluated.

One way in, one answer: a logon starts with `begin` (ID and password) and every step answers
with a `State` (`State.failed` when refused; otherwise `State.step`, an `lf.Step`, says what
comes next). The password step itself (`_password_step`) is private to this module: `begin`
and `begin_unlock` run it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from adapters import metrics
from authsvc.domain import identifiers, lockout
from authsvc.domain import logon_flow as lf
from authsvc.domain import session as sess
from authsvc.domain.errors import DomainError
from authsvc.domain.roles import Actor
from authsvc.domain.tokens import new_token, session_id
from authsvc.services import (
    Deps,
    alerts,
    backchannel,
    console_gate,
    devices,
    sessions,
    terminals,
    totp,
    vein,
    webauthn,
)
from authsvc.services import passwords as password_service
from authsvc.services.sessions import CONSOLE, USER, Client
from authsvc.store.models import Account


class _Outcome(StrEnum):
    """What the password step found; its value is the audit event's `next`."""

    FAILED = "failed"                                      # the one answer an attacker sees
    # R2: after an initial password only the change is reachable
    PASSWORD_CHANGE_REQUIRED = "password_change_required"  # noqa: S105
    PASSWORD_OK = "password_ok"  # noqa: S105 (next: the second factor)


@dataclass(frozen=True)
class _PasswordStep:
    """The password step's answer inside this module; callers get a `State` from `begin`."""

    outcome: _Outcome
    user_id: str | None = None  # only set when the password step succeeded
    enrolled: tuple[str, ...] = field(default=(), compare=False)  # the second factors it has
    allowed: tuple[str, ...] = field(default=(), compare=False)  # what its groups let it use


@dataclass(frozen=True)
class State:
    """Where a logon stands. `token` is the session token to present next (a new one at every
    logon and every unlock: no fixation); `step` None means refused; `retry` means this factor
    was refused but the logon stays at its step for another try."""

    token: str | None = None
    step: lf.Step | None = None
    options: tuple[str, ...] = ()
    user_id: str | None = None
    retry: bool = False
    blocked: str = ""  # at REGISTER: why registering is no way on ("vein_disabled": ask an operator)

    @property
    def failed(self) -> bool:
        return self.step is None

    @property
    def refused(self) -> bool:
        """What the caller answers with the one generic refusal."""
        return self.failed or self.retry


FAILED = State()

# ---- the password step ---------------------------------------------------------------------


def _password_step(deps: Deps, user_id: str, password: str, client: Client,
                   step: str = "password") -> _PasswordStep:
    """ID and password, counted toward the lockout before they are evaluated (R4); an unknown
    ID costs the same hash (R5). `step` names the attempt in the audit log and the history."""
    pol = deps.settings.lockout
    now = deps.clock.now()
    with deps.uow(read_only=True) as uow:  # one read: identifier and account
        found: dict[str, Any] = {}

        def known(k: str) -> bool:
            found["ident"], found["acc"] = uow.holder(k)
            return found["ident"] is not None

        key = lockout.throttle_key(user_id, deps.audit_key, known)
        acc = None if key.startswith(lockout.UNKNOWN_PREFIX) else found.get("acc")
        stored = acc.password_hash if acc else None
        account_id = acc.id if acc else None
    actor = client.actor(key)
    # 1. reserve an attempt, atomically and before any hashing: exact under concurrency (R4)
    decision = deps.counters.consume(key, now, pol.max_failures, pol.lock_minutes)
    if not _may_evaluate(deps, decision, now, actor, client, step, key):
        return _PasswordStep(_Outcome.FAILED)
    # 2. verify (a dummy hash when the account is unknown: same work, same time, R5)
    matched = deps.hasher.verify(stored, password)
    # 3. record the outcome, then settle the reservation
    with deps.uow() as uow:
        acc = uow.account_for_update(account_id) if account_id is not None else None
        reason = _refusal(deps, acc, matched, now, client.remote)
        if reason is None:
            assert acc is not None
            acc.first_used_at = acc.first_used_at or now
            acc.last_used_at = now
            if acc.password_hash and deps.hasher.needs_rehash(acc.password_hash):
                acc.password_hash = deps.hasher.hash(password)  # R3: transparent upgrade
            outcome = (_Outcome.PASSWORD_CHANGE_REQUIRED if acc.must_change_password
                       else _Outcome.PASSWORD_OK)
            _note(uow, now, actor, client, step, key, "ok", "", next=outcome.value,
                  **({"maintenance_account": True} if acc.window_ends_at else {}))  # R26
            enrolled = uow.enrolled_factors(acc.id, acc.person_id)
            allowed = lf.allowed_factors(deps.settings.mfa.second_factors,
                                         uow.groups.factor_policies(acc.id))
            uow.commit()
            # the logon is not complete yet: give this attempt back, forgive nothing earlier
            deps.counters.release(key, decision.attempt)
            return _PasswordStep(outcome, acc.user_id, enrolled, allowed)
        _note(uow, now, actor, client, step, key, "failed", reason, failures=decision.failures + 1)
        uow.commit()
    _count_failure(deps, decision, now, actor, key)
    return _PasswordStep(_Outcome.FAILED)


def _may_evaluate(deps: Deps, decision: lockout.Decision, now: datetime, actor: Actor,
                  client: Client, step: str, key: str) -> bool:
    """Audit what the reservation found (a lapsed lock lifted; a refusal: locked, or every
    remaining attempt already being evaluated) and say whether the attempt may be evaluated."""
    if decision.auto_unlocked or not decision.allowed:
        with deps.uow() as uow:
            if decision.auto_unlocked:
                uow.audit(now, actor, "account.auto_unlock", key)
            if not decision.allowed:
                _note(uow, now, actor, client, step, key, "refused",
                      "busy" if decision.busy else "locked")
            uow.commit()
    return decision.allowed


def _count_failure(deps: Deps, decision: lockout.Decision, now: datetime, actor: Actor,
                   key: str) -> lockout.Failure:
    """A failure already in the audit log is counted; the lock it may set is audited and ends
    the account's sessions (R16). Audited first, counted second: every counted failure, and
    so every lock, is explained by the audit trail."""
    pol = deps.settings.lockout
    failure = deps.counters.fail(key, decision.attempt, now, pol.max_failures, pol.lock_minutes)
    if failure.locks_now:
        with deps.uow() as uow:
            uow.audit(now, actor, "account.lock", key, failures=failure.failures,
                      locked_until=failure.locked_until.isoformat() if failure.locked_until else None)
            alerts.lock_storm(uow, deps, now)
            uow.commit()
        metrics.account_locked()
        backchannel.end_all(deps, key, "account_locked")  # R16: locking an account ends all its sessions
    return failure


def _refusal(deps: Deps, acc: Account | None, matched: bool, now: datetime,
             remote: bool) -> str | None:
    """The operator-only reason a logon is refused, or None when it may proceed."""
    return sessions.refusal(deps, acc, now, remote) or (None if matched else "wrong_password")


def _note(uow: Any, now: datetime, actor: Actor, client: Client, step: str, subject: str,
          result: str, reason: str, factors: str = "", **detail: Any) -> None:
    """Audit event and logon-history row of one attempt, in one transaction."""
    uow.audit(now, actor, f"logon.{step}", subject, result, **({"reason": reason} if reason else {}),
              **({"remote": True} if client.remote else {}), **detail)
    uow.record_logon(now, subject, step, result, actor, reason, factors, client.remote)
    metrics.logon(step, result)
    if result == "failed":  # counted toward the lockout: a failure of this factor
        metrics.factor_failed(step.rsplit(".", 1)[-1])


# ---- the state machine ---------------------------------------------------------------------


def _state(token: str, flow: lf.Flow) -> State:
    return State(token, flow.step, flow.options, flow.user_id)


def begin(deps: Deps, user_id: str, password: str, client: Client, surface: str = USER) -> State:
    """The first step of a logon (to the user's pages, or to the console): ID and password.
    Returns a fresh logon token on success."""
    step = _password_step(deps, user_id, password, client,
                          step="password" if surface == USER else "console.password")
    if step.outcome is _Outcome.FAILED or step.user_id is None:
        return FAILED
    canonical = identifiers.canonical(step.user_id)
    flow = lf.begin(canonical, "logon" if surface == USER else CONSOLE, deps.clock.now().timestamp(),
                    step.allowed, step.enrolled, deps.settings.devices.require_terminal)
    flow = lf.password_passed(flow, step.outcome is _Outcome.PASSWORD_CHANGE_REQUIRED)
    return _advance(deps, new_token(), {"kind": "logon", "client": _client_dict(client)}, flow, client)


def _client_dict(client: Client) -> dict[str, Any]:
    return {"terminal": client.terminal[:100], "source": client.source[:100], "remote": client.remote}


def _proven(client: Client, flow: lf.Flow) -> Client:
    """The client as the audit log and the logon history name it: once the logon has proven a
    registered terminal (R12), by its device ID rather than the browser's User-Agent."""
    return replace(client, terminal=flow.terminal) if flow.terminal else client


def _advance(deps: Deps, token: str, data: dict[str, Any], flow: lf.Flow, client: Client) -> State:
    """Store the flow under `token`, or finish it: open the session, or unlock it."""
    if flow.step is lf.Step.REGISTER and flow.purpose != "logon":
        flow = replace(flow, step=lf.Step.NO_FACTOR)  # a palm is registered on the user pages
    if flow.step is lf.Step.NO_FACTOR:
        now = deps.clock.now()
        with deps.uow() as uow:
            _note(uow, now, client.actor(flow.user_id), client, "second_factor", flow.user_id,
                  "refused", "no_factor_enrolled")
            uow.commit()
        deps.sessions.delete(token)
        return State(None, lf.Step.NO_FACTOR, (), flow.user_id)
    if flow.step is lf.Step.DONE:
        return _finish(deps, token, data, flow, client)
    sessions.store(deps, token, {**data, "flow": flow.to_dict()})
    if flow.step is lf.Step.REGISTER and vein.is_enrolled(deps, flow.user_id):
        # enrolled, yet not usable: disabled after failures. Not an invitation to register
        # again: the operators re-enrol (the registration page says so; the API answers so).
        with deps.uow() as uow:
            _note(uow, deps.clock.now(), client.actor(flow.user_id), client, "second_factor",
                  flow.user_id, "refused", "vein_disabled")
            uow.commit()
        return replace(_state(token, flow), blocked="vein_disabled")
    return _state(token, flow)


def _load_flow(deps: Deps, token: str) -> tuple[dict[str, Any], lf.Flow] | None:
    data = deps.sessions.get(token) if isinstance(token, str) and token else None
    return _live_flow(deps, token, data)


def _live_flow(deps: Deps, token: str, data: dict[str, Any] | None) -> tuple[dict[str, Any], lf.Flow] | None:
    if not data or "flow" not in data:
        return None
    flow = lf.Flow.from_dict(data["flow"])
    if lf.expired(flow, deps.clock.now().timestamp(), deps.settings.mfa.logon_minutes):
        if data.get("kind") == "logon":
            deps.sessions.delete(token)
        return None
    return data, flow


def _claim(deps: Deps, token: str, ready: Callable[[lf.Flow], bool]) -> tuple[dict[str, Any], lf.Flow] | None:
    """Take the step in progress under `token` out of the store, if `ready` says it is the one
    asked for: a step is a single-use transition, so of concurrent attempts on one logon
    exactly one can advance it (the others find nothing and are refused). Whoever holds the
    claim puts the logon back (`_store`) when it stays where it was."""
    data = deps.sessions.take(token) if isinstance(token, str) and token else None
    claimed = _live_flow(deps, token, data)
    if claimed is None or not ready(claimed[1]):
        if data and (claimed is not None or data.get("kind") == "session"):
            sessions.store(deps, token, data)  # not this step's: left as it was
        return None
    return claimed


def pending(deps: Deps, token: str) -> State:
    """Where the logon (or unlock) held by `token` stands."""
    loaded = _load_flow(deps, token)
    return FAILED if loaded is None else _state(token, loaded[1])


def change_password(deps: Deps, token: str, new_password: str, client: Client) -> State:
    """The forced change (R2). Raises PasswordRejected with every failed rule."""
    claimed = _claim(deps, token, lambda f: f.step is lf.Step.CHANGE_PASSWORD)
    if claimed is None:
        return FAILED
    data, flow = claimed
    try:
        password_service.change_password(deps, client.actor(flow.user_id), flow.user_id, new_password)
    except Exception:
        sessions.store(deps, token, data)  # refused: the logon stays at the change
        raise
    return _advance(deps, token, data, lf.password_changed(flow), client)


def second_factor(deps: Deps, token: str, factor: str, verify: Callable[[str, bool], bool],
                  client: Client, device: Callable[[], str] | None = None) -> State:
    """Run one second-factor check (or an enrolment's confirmation), counted toward the
    lockout before it is evaluated (R4: a failure of any factor counts). The step is claimed
    first, so one logon can never finish twice. `device`, asked after a success: the
    registered terminal the check proved (a palm capture's), for R12."""
    def check(flow: lf.Flow) -> tuple[str, dict[str, Any]]:
        return ("" if verify(flow.user_id, flow.step is lf.Step.ENROL) else f"wrong_{factor}"), {}

    return _counted_step(deps, token, factor, lambda f: factor in f.options, check,
                         lambda f: lf.factor_passed(f, factor, device() if device else ""), client)


def _counted_step(deps: Deps, token: str, name: str, ready: Callable[[lf.Flow], bool],
                  check: Callable[[lf.Flow], tuple[str, dict[str, Any]]],
                  passed: Callable[[lf.Flow], lf.Flow], client: Client) -> State:
    """One attempt at the step `ready` accepts (a second factor, the terminal proof): claimed,
    counted toward the lockout, checked (`check` answers the refusal's reason, "" when it
    passed, and detail for the audit log), audited with the logon history, and on success
    moved on by `passed`; refused, the logon stays at its step for another try."""
    claimed = _claim(deps, token, ready)
    if claimed is None:
        return FAILED
    data, flow = claimed
    pol, now = deps.settings.lockout, deps.clock.now()
    client = _proven(client, flow)
    actor = client.actor(flow.user_id)
    step = name if flow.purpose == "logon" else f"{flow.purpose}.{name}"
    retry = State(token, flow.step, flow.options, flow.user_id, retry=True)
    decision = deps.counters.consume(flow.user_id, now, pol.max_failures, pol.lock_minutes)
    if not _may_evaluate(deps, decision, now, actor, client, step, flow.user_id):
        if decision.busy:  # others' attempts in flight: this logon may try again
            sessions.store(deps, token, data)
            return retry
        return FAILED
    reason, detail = (check(flow) if sessions.may_logon(deps, flow.user_id, now, client.remote)
                      else (f"wrong_{name}", {}))
    if not reason:
        following = passed(flow)
        client = _proven(client, following)  # a terminal proven by this step names the rows now
        actor = client.actor(flow.user_id)
    with deps.uow() as uow:
        _note(uow, now, actor, client, step, flow.user_id, "failed" if reason else "ok", reason,
              **detail, **({"failures": decision.failures + 1} if reason else {}))
        uow.commit()
    if reason:
        if _count_failure(deps, decision, now, actor, flow.user_id).locks_now:
            return FAILED  # locked: this logon (or unlock) ends with the account's sessions
        sessions.store(deps, token, data)
        return retry
    deps.counters.release(flow.user_id, decision.attempt)
    return _advance(deps, token, data, following, client)


def _finish(deps: Deps, token: str, data: dict[str, Any], flow: lf.Flow, client: Client) -> State:
    """All factors passed: open the session (logon) or lift the lock (unlock), each under a
    brand-new token; the old token dies with it."""
    now = deps.clock.now()
    user = flow.user_id
    factors = ",".join(flow.passed)
    client = _proven(client, flow)
    actor = client.actor(user)
    deps.sessions.delete(token)
    fresh = new_token()
    again = flow.purpose in ("unlock", "stepup")  # on a session whose logon proved the terminal
    if not again and deps.settings.devices.require_terminal and not flow.terminal:
        # R12: no session without a registered terminal (a logon begun before the policy was
        # switched on never went through the terminal step)
        with deps.uow() as uow:
            step = "terminal" if flow.purpose == "logon" else f"{flow.purpose}.terminal"
            _note(uow, now, actor, client, step, user, "refused", "terminal_required")
            uow.commit()
        return FAILED
    if again:
        # a fresh authentication on the same session (its `ref` kept): what it proved now is
        # what the session states from here on ([8 of 12]: acr, amr, auth_time)
        unlocked = sess.Record.of(data)
        assert unlocked is not None  # an unlock or a step-up runs on a session
        session = replace(unlocked, locked=False, last_seen=now.timestamp(), flow=None,
                          factors=flow.passed, auth_time=now.timestamp(),
                          device=flow.terminal or unlocked.device,
                          ref=unlocked.ref or new_token()[:32]).data()  # named if it was not
        deps.sessions.put(fresh, session, user, sessions.ttl(deps, session))
        with deps.uow() as uow:
            _note(uow, now, actor, client, flow.purpose, user, "ok", "", factors)
            uow.commit()
        return State(fresh, lf.Step.DONE, (), user)
    surface = CONSOLE if flow.purpose == CONSOLE else USER
    if surface == CONSOLE and not console_gate.may_open(deps, user, client):
        with deps.uow() as uow:
            _note(uow, now, actor, client, "console", user, "refused", "not_administrator")
            uow.commit()
        return FAILED
    others = {sid: d for sid, d in deps.sessions.of_user(user).items()
              if d.get("surface", USER) == surface}
    if others and deps.settings.sessions.concurrent == "refuse":
        with deps.uow() as uow:
            _note(uow, now, actor, client, "session", user, "refused", "concurrent_session",
                  sessions=len(others))
            uow.commit()
        return FAILED
    origin = {**data.get("client", _client_dict(client)),
              **({"terminal": flow.terminal} if flow.terminal else {})}  # R12: the device, not the browser
    idle = deps.settings.sessions.idle_minutes * 60
    elsewhere = sorted({d.get("terminal", "") for d in others.values()
                        if d.get("terminal", "") != origin["terminal"] and not d.get("locked")
                        and now.timestamp() - float(d.get("last_seen", 0)) < idle})
    for sid in others:
        deps.sessions.delete_id(sid)
    if others:  # the relying parties that relied on the replaced sessions are told ([8 of 12])
        backchannel.ended(deps, user, "replaced")
    ended = len(others)
    session = sess.Record(user, flow.passed, now.timestamp(), now.timestamp(), False, surface,
                          bool(origin["remote"]), origin["terminal"], origin["source"],
                          ref=new_token()[:32], auth_time=now.timestamp(), device=flow.terminal).data()
    deps.sessions.put(fresh, session, user, sessions.ttl(deps, session))
    deps.counters.succeed(user)
    with deps.uow() as uow:
        # a second logon of the same account is flagged: sharing IDs is prohibited (003)
        _note(uow, now, actor, client, "complete" if surface == USER else "console", user, "ok", "",
              factors,
              **({"ended_sessions": ended} if ended else {}))
        if elsewhere:  # in use on another terminal a moment ago: one ID, two people? (R25)
            acc = uow.account(user)
            alerts.note(uow, now, "shared_id_suspected", user, acc.contract.company if acc else None,
                        terminals=[*elsewhere, origin["terminal"]][:5])
        uow.commit()
    return State(fresh, lf.Step.DONE, (), user)


def begin_unlock(deps: Deps, token: str, password: str, client: Client, again: bool = False) -> State:
    """Unlocking a locked session: the same user's password, then a second factor. `again`: the
    same on a session that is not locked, when a relying party asks for a fresh logon
    ([8 of 12]: `max_age`, `prompt=login`)."""
    view = sessions.current(deps, token)
    if view is None or not (view.locked or again):
        return FAILED
    step = _password_step(deps, view.user_id, password, client, step="unlock.password")
    if step.outcome is _Outcome.FAILED:
        return State(token, lf.Step.PASSWORD, (), view.user_id)  # still locked; try again
    flow = lf.begin(view.user_id, "unlock", sessions.time_now(deps), step.allowed, step.enrolled)
    flow = lf.password_passed(flow, must_change=False)
    data = deps.sessions.get(token) or {}
    return _advance(deps, token, data, flow, client)


def begin_step_up(deps: Deps, token: str, vein_needed: bool, terminal_needed: bool) -> State:
    """Raise an unlocked user session to what a relying party demands ([8 of 12]): only the
    missing palm vein and/or registered terminal, on the factor and terminal pages; the session
    goes on as it was meanwhile. NO_FACTOR (the session untouched) when the palm is needed and
    the user has none enrolled."""
    view = sessions.current(deps, token)
    if view is None or view.locked:
        return FAILED
    with deps.uow(read_only=True) as uow:
        acc = uow.account(view.user_id)
        enrolled = uow.enrolled_factors(acc.id, acc.person_id) if acc is not None else ()
    rec = sess.Record.of(deps.sessions.get(token))
    if rec is None:
        return FAILED
    flow = lf.step_up(view.user_id, sessions.time_now(deps), rec.factors, enrolled, vein_needed,
                      terminal_needed, rec.device)
    if flow.step is lf.Step.NO_FACTOR:
        return State(None, lf.Step.NO_FACTOR, (), view.user_id)
    if flow.step is lf.Step.DONE:
        return State(token, lf.Step.DONE, (), view.user_id)
    sessions.store(deps, token, {**rec.data(), "flow": flow.to_dict()})
    return _state(token, flow)


# ---- second factors, as the web pages and the API call them --------------------------------


def totp_enrolment(deps: Deps, token: str, client: Client) -> totp.Enrolment | None:
    """At the ENROL step: the TOTP secret for the user to add to their authenticator app (the
    pending one again if there is one, so reloading or mistyping keeps the same QR code)."""
    loaded = _load_flow(deps, token)
    if loaded is None or loaded[1].step is not lf.Step.ENROL or "totp" not in loaded[1].options:
        return None
    user = loaded[1].user_id
    actor = client.actor(user)
    return totp.pending_enrolment(deps, actor, user) or totp.begin_enrolment(deps, actor, user)


def _succeeds(action: Callable[[], None]) -> bool:
    try:
        action()
    except DomainError:
        return False
    return True


def totp_step(deps: Deps, token: str, code: str, client: Client) -> State:
    """A TOTP code: confirms the new secret at ENROL, or checks the enrolled one."""
    def verify(user: str, enrolling: bool) -> bool:
        if enrolling:
            return _succeeds(lambda: totp.confirm_enrolment(deps, client.actor(user), user, code))
        return totp.verify(deps, user, code)

    return second_factor(deps, token, "totp", verify, client)


def webauthn_options(deps: Deps, token: str) -> tuple[str, dict[str, Any]] | None:
    """Options for the browser: registration at ENROL, an assertion at SECOND_FACTOR."""
    loaded = _load_flow(deps, token)
    if loaded is None or "webauthn" not in loaded[1].options:
        return None
    user = loaded[1].user_id
    if loaded[1].step is lf.Step.ENROL:
        return webauthn.registration_options(deps, user)
    return webauthn.authentication_options(deps, user)


def webauthn_step(deps: Deps, token: str, challenge_id: str, credential: dict[str, Any],
                  client: Client) -> State:
    """A WebAuthn response: registers the new credential at ENROL, or checks an assertion."""
    def verify(user: str, enrolling: bool) -> bool:
        if enrolling:
            return _succeeds(lambda: webauthn.register(deps, client.actor(user), user, challenge_id,
                                                       credential, ""))
        return webauthn.authenticate(deps, user, challenge_id, credential, actor=client.actor(user))

    return second_factor(deps, token, "webauthn", verify, client)


def vein_challenge(deps: Deps, token: str) -> vein.Challenge | None:
    """A capture challenge for the terminal agent, at the SECOND_FACTOR step."""
    loaded = _load_flow(deps, token)
    if loaded is None or loaded[1].step is not lf.Step.SECOND_FACTOR or "vein" not in loaded[1].options:
        return None
    return vein.issue_challenge(deps, loaded[1].user_id)


def vein_step(deps: Deps, token: str, challenge_id: str, capture: dict[str, Any], client: Client) -> State:
    """A signed palm-vein capture from the user's registered terminal: accepted, it also proves
    that terminal (R12)."""
    def verify(user: str, enrolling: bool) -> bool:
        return not enrolling and vein.verify(deps, user, challenge_id, capture, client.actor(user))

    def device() -> str:  # the capture's signature held for this active device's key
        found = devices.active_device(deps, str(capture.get("reader_id", ""))[:128])
        return found.device_id if found is not None else ""

    return second_factor(deps, token, "vein", verify, client, device)


# ---- the registered terminal (R12) ----------------------------------------------------------


def terminal_challenge(deps: Deps, token: str) -> vein.Challenge | None:
    """At the TERMINAL step: a challenge for the terminal agent to sign, bound to this logon."""
    loaded = _load_flow(deps, token)
    if loaded is None or loaded[1].step is not lf.Step.TERMINAL:
        return None
    return terminals.issue_challenge(deps, session_id(token))


def terminal_step(deps: Deps, token: str, challenge_id: str, proof: dict[str, Any], client: Client) -> State:
    """The terminal agent's signed answer to the challenge: proves the registered terminal,
    counted toward the lockout like a factor; refused, audited with the real reason."""
    proven: list[terminals.Proven] = []

    def check(flow: lf.Flow) -> tuple[str, dict[str, Any]]:
        proven.append(terminals.verify(deps, flow.user_id, session_id(token), challenge_id, proof))
        return proven[0].reason, ({"device": proven[0].claimed} if proven[0].claimed else {})

    return _counted_step(deps, token, "terminal", lambda f: f.step is lf.Step.TERMINAL, check,
                         lambda f: lf.terminal_proven(f, proven[0].device_id), client)


# ---- the console (R8) and the palm-vein registration step (R14) ----------------------------

REFRESH_S = 60  # how often the registration pages' use restarts the waiting logon's clock


def registrant(deps: Deps, token: str) -> str | None:
    """The user of a logon waiting at the palm-vein registration step: the only thing its
    password-checked token may do is take part in a registration (R14). Every use restarts
    the logon's clock, so a registration attended at length does not lose the logon."""
    loaded = _load_flow(deps, token)
    if loaded is None or loaded[1].step is not lf.Step.REGISTER:
        return None
    data, flow = loaded
    if sessions.time_now(deps) - flow.started_at >= REFRESH_S:  # not a write on every poll of the pages
        flow = replace(flow, started_at=sessions.time_now(deps))
        sessions.store(deps, token, {**data, "flow": flow.to_dict()})
    return flow.user_id


def registered(deps: Deps, token: str, client: Client) -> State:
    """Back from registration: with the palm now enrolled the logon goes on to its check."""
    claimed = _claim(deps, token, lambda f: f.step is lf.Step.REGISTER)
    if claimed is None:
        return FAILED
    data, flow = claimed
    with deps.uow(read_only=True) as uow:
        acc = uow.account(flow.user_id)
        have = uow.enrolled_factors(acc.id, acc.person_id) if acc is not None else ()
    return _advance(deps, token, data, lf.registered(flow, tuple(have), sessions.time_now(deps)), client)
