"""The JSON API over the same logon state machine, for other front-ends (R18). The session
token travels as `Authorization: Bearer <token>`; every refused logon step answers 401 with
one and the same body, whatever the reason (R5). Described at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from authsvc.domain.errors import PasswordRejected
from authsvc.domain.logon_flow import Step
from authsvc.domain.messages import text
from authsvc.services import logon
from authsvc.services import sessions as session_service
from authsvc.services.sessions import CONSOLE, USER
from authsvc.web.auth import session_required
from authsvc.web.common import FIELD_MAX, bearer_token, client, deps
from authsvc.web.jsonbody import json_body
from authsvc.web.openapi import SPEC

bp = Blueprint("api", __name__, url_prefix="/api/v1")
Reply = Response | tuple[Response, int]


def _str(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    return value[:FIELD_MAX] if isinstance(value, str) else ""


def _refused() -> tuple[Response, int]:
    return jsonify(error="logon_failed", message=text("logon_failed", g.lang)), 401


def _state(state: logon.State) -> Reply:
    if state.failed:
        return _refused()
    if state.step in (Step.NO_FACTOR, Step.REGISTER):  # a palm is registered in the browser
        code = ("second_factor_unavailable" if state.step is Step.NO_FACTOR
                else state.blocked or "vein_registration_required")
        return jsonify(error=code, message=text(code, g.lang)), 403
    return jsonify(state=state.step.value if state.step else None, token=state.token,
                   options=list(state.options))


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(SPEC)


@bp.post("/logon")
def begin() -> Reply:
    data = json_body()  # {"surface": "console"}: a console session, for /api/v1/admin (R8)
    on = CONSOLE if data.get("surface") == CONSOLE else USER
    return _state(logon.begin(deps(), _str(data, "user_id"), _str(data, "password"), client(), on))


@bp.post("/logon/password")
def change_password() -> Reply:
    try:
        state = logon.change_password(deps(), bearer_token(), _str(json_body(), "new_password"), client())
    except PasswordRejected as exc:
        s = deps().settings.password
        params = {"min_length": s.min_length, "max_length": s.max_length,
                  "min_classes": s.min_classes, "history": s.history, **exc.params}
        return jsonify(error="password_rejected", reasons=exc.reasons,
                       messages=[text(c, g.lang, **params) for c in exc.reasons]), 400
    return _state(state)


@bp.post("/logon/totp/enrol")
def totp_enrol() -> Reply:
    enrolment = logon.totp_enrolment(deps(), bearer_token(), client())
    if enrolment is None:
        return _refused()
    return jsonify(secret=enrolment.secret, uri=enrolment.uri)


@bp.post("/logon/totp")
def totp() -> Reply:
    token = bearer_token()
    state = logon.totp_step(deps(), token, _str(json_body(), "code"), client())
    return _refused() if state.refused else _state(state)


@bp.post("/logon/webauthn/options")
def webauthn_options() -> Reply:
    made = logon.webauthn_options(deps(), bearer_token())
    if made is None:
        return _refused()
    return jsonify(challenge_id=made[0], publicKey=made[1])


@bp.post("/logon/webauthn")
def webauthn() -> Reply:
    data, token = json_body(), bearer_token()
    credential = data.get("credential")
    if not isinstance(credential, dict):
        return _refused()
    state = logon.webauthn_step(deps(), token, _str(data, "challenge_id"), credential, client())
    return _refused() if state.refused else _state(state)


@bp.post("/logon/vein/challenge")
def vein_challenge() -> Reply:
    made = logon.vein_challenge(deps(), bearer_token())
    if made is None:
        return _refused()
    return jsonify(challenge_id=made.id, challenge=made.challenge,
                   expires_at=made.expires_at.isoformat(), agent_url=deps().settings.vein.agent_url)


@bp.post("/logon/vein")
def vein() -> Reply:
    data, token = json_body(), bearer_token()
    capture = data.get("capture")
    if not isinstance(capture, dict):
        return _refused()
    state = logon.vein_step(deps(), token, _str(data, "challenge_id"), capture, client())
    return _refused() if state.refused else _state(state)


@bp.post("/logon/terminal/challenge")
def terminal_challenge() -> Reply:
    made = logon.terminal_challenge(deps(), bearer_token())
    if made is None:
        return _refused()
    return jsonify(challenge_id=made.id, challenge=made.challenge,
                   expires_at=made.expires_at.isoformat(), agent_url=deps().settings.vein.agent_url)


@bp.post("/logon/terminal")
def terminal() -> Reply:
    data, token = json_body(), bearer_token()
    proof = data.get("proof")
    if not isinstance(proof, dict):
        return _refused()
    state = logon.terminal_step(deps(), token, _str(data, "challenge_id"), proof, client())
    return _refused() if state.refused else _state(state)


# ---- the session ----------------------------------------------------------------------------
# current_user: the session of the bearer token (auth.py). login_required: an unlocked one;
# session_required: locked too. Without one: 401 `unauthorised`. Lock, unlock and ending a
# session hand the token to the service, which decides (a locked session may lock again).


def _unauthorised() -> tuple[Response, int]:
    return jsonify(error="unauthorised", message=text("logon_failed", g.lang)), 401


@bp.get("/session")
@session_required
def session() -> Reply:
    view = current_user.view
    if not view.locked:
        session_service.touch(deps(), current_user.token)
    return jsonify(user_id=view.user_id, factors=list(view.factors), locked=view.locked,
                   remote=view.remote, sid=view.sid)


@bp.post("/session/lock")
def lock() -> Reply:
    if not session_service.lock(deps(), bearer_token(), client()):
        return _unauthorised()
    return jsonify(locked=True)


@bp.post("/session/unlock")
def unlock() -> Reply:
    state = logon.begin_unlock(deps(), bearer_token(), _str(json_body(), "password"), client())
    if state.step is Step.PASSWORD:
        return _refused()
    return _state(state)


@bp.post("/logoff")
@session_required
def logoff() -> Reply:
    session_service.logoff(deps(), current_user.token, client())
    return jsonify(logged_off=True)


@bp.get("/history")
@login_required
def history() -> Reply:
    return jsonify(history=session_service.history(deps(), current_user.view.user_id))


@bp.get("/sessions")
@login_required
def sessions() -> Reply:
    view = current_user.view
    return jsonify(sessions=session_service.sessions_of(deps(), view.user_id), current=view.sid)


@bp.delete("/sessions/<sid>")
def end_session(sid: str) -> Reply:
    if not session_service.end_session(deps(), bearer_token(), sid[:64], client()):
        return jsonify(error="not_found", message=text("not_found", g.lang)), 404
    return jsonify(ended=True)
