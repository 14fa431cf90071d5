"""The user's logon pages: ID and password, the forced change of an initial password (R2), a
second factor or its first enrolment (R10), the self-service page with logon history and
sessions (R9), the lock screen and its MFA unlock (R16), logoff. One generic failure message
for every refusal (R5)."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import CSRFError
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from authsvc.domain.errors import PasswordRejected
from authsvc.domain.logon_flow import Step
from authsvc.messages import text
from authsvc.services import logon
from authsvc.services.registration import MAX_IMAGE_BYTES
from authsvc.web.common import CONSOLE, client, cookie_token, deps, field, set_token, surface
from authsvc.web.jsonbody import json_body

bp = Blueprint("login", __name__)

# This blueprint serves the user's logon at / and, registered a second time, the console's
# own logon at /console/logon (R8): the same steps, its own cookie, its own kind of session.
STEP_PAGES = {
    Step.CHANGE_PASSWORD: ".password_form",
    Step.ENROL: ".enrol",
    Step.SECOND_FACTOR: ".factor",
    Step.REGISTER: "register.index",
    Step.DONE: ".home",
}
Page = Response | str | tuple[str, int]


def _next_page(step: Step | None) -> str:
    if step is Step.DONE and surface() == CONSOLE:
        return url_for("console.index")
    endpoint = STEP_PAGES.get(step, ".index")  # type: ignore[arg-type]
    own = "console_logon" if surface() == CONSOLE else "login"  # also when called from elsewhere
    return url_for(own + endpoint if endpoint.startswith(".") else endpoint)


def _go(state: logon.State, failed_status: int = 401) -> Page:
    """Send the browser to the page of the step it has reached, carrying the new token."""
    if state.step is Step.NO_FACTOR:
        resp: Any = (render_template("message.html", code="second_factor_unavailable", back=True), 403)
    elif state.failed or state.step not in STEP_PAGES:
        resp = (render_template("login.html", error="logon_failed"), failed_status)
    else:
        resp = redirect(_next_page(state.step))
    out = current_app.make_response(resp)
    if state.token or state.failed or state.step is Step.NO_FACTOR:
        set_token(out, state.token)
    return out


def _pending() -> logon.State:
    return logon.pending(deps(), cookie_token())


def _current() -> logon.SessionView | None:
    return logon.current(deps(), cookie_token(), surface())


@bp.get("/")
def index() -> Page:
    view = _current()
    if view is not None:
        return redirect(url_for(".lock_screen") if view.locked else _next_page(Step.DONE))
    state = _pending()
    if not state.failed and state.step in STEP_PAGES:
        return redirect(_next_page(state.step))
    return render_template("login.html")


@bp.post("/login")
def do_login() -> Page:
    return _go(logon.begin(deps(), field("user_id"), field("password"), client(), surface()))


# ---- forced change --------------------------------------------------------------------------


@bp.get("/password")
def password_form() -> Page:
    if _pending().step is not Step.CHANGE_PASSWORD:
        return redirect(url_for(".index"))
    return render_template("password.html")


@bp.post("/password")
def password_change() -> Page:
    new, again = field("new_password"), field("confirm_password")
    if _pending().step is not Step.CHANGE_PASSWORD:
        return render_template("login.html", error="change_expired"), 401
    if new != again:
        return render_template("password.html", errors=[text("pw_mismatch", g.lang)]), 400
    try:
        state = logon.change_password(deps(), cookie_token(), new, client())
    except PasswordRejected as exc:
        params = {**_rule_params(), **exc.params}
        return render_template("password.html", errors=[text(c, g.lang, **params) for c in exc.reasons]), 400
    return _go(state)


def _rule_params() -> dict[str, int]:
    s = deps().settings.password
    return {"min_length": s.min_length, "max_length": s.max_length,
            "min_classes": s.min_classes, "history": s.history}


# ---- second factor and its first enrolment --------------------------------------------------


@bp.get("/enrol")
def enrol() -> Page:
    state = _pending()
    if state.step is not Step.ENROL:
        return redirect(url_for(".index"))
    return render_template("enrol.html", options=state.options)


@bp.get("/enrol/totp")
def enrol_totp() -> Page:
    enrolment = logon.totp_enrolment(deps(), cookie_token(), client())
    if enrolment is None:
        return redirect(url_for(".index"))
    return render_template("totp_enrol.html", enrolment=enrolment)


@bp.get("/factor")
def factor() -> Page:
    state = _pending()
    if state.step is not Step.SECOND_FACTOR:
        return redirect(url_for(".index"))
    return render_template("factor.html", options=state.options)


@bp.post("/factor/totp")
def factor_totp() -> Page:
    state = logon.totp_step(deps(), cookie_token(), field("code"), client())
    if state.retry:
        # a wrong code: the same page again, with the one generic message
        if state.step is Step.ENROL:
            enrolment = logon.totp_enrolment(deps(), cookie_token(), client())
            return render_template("totp_enrol.html", enrolment=enrolment, error="logon_failed"), 401
        return render_template("factor.html", options=state.options, error="logon_failed"), 401
    return _go(state)


@bp.get("/factor/webauthn")
def factor_webauthn() -> Page:
    state = _pending()
    if state.failed or "webauthn" not in state.options:
        return redirect(url_for(".index"))
    return render_template("webauthn.html", register=state.step is Step.ENROL)


@bp.get("/factor/vein")
def factor_vein() -> Page:
    state = _pending()
    if state.failed or "vein" not in state.options:
        return redirect(url_for(".index"))
    codes = ["vein_no_hand", "vein_timeout", "vein_disconnected", "vein_not_read", "vein_cancelled",
             "vein_reposition", "vein_busy", "vein_reader_error", "vein_agent_unreachable", "logon_failed"]
    return render_template("vein.html", messages={c: text(c, g.lang) for c in codes})


@bp.post("/vein/challenge")
def vein_challenge() -> Response | tuple[Response, int]:
    made = logon.vein_challenge(deps(), cookie_token())
    if made is None:
        return jsonify(error="logon_failed", message=text("logon_failed", g.lang)), 401
    return jsonify(challenge_id=made.id, challenge=made.challenge,
                   agent_url=deps().settings.vein.agent_url)


@bp.post("/vein/verify")
def vein_verify() -> Response | tuple[Response, int]:
    body = json_body()
    if not isinstance(body.get("capture"), dict):
        return jsonify(error="request_invalid", message=text("request_invalid", g.lang)), 400
    state = logon.vein_step(deps(), cookie_token(), str(body.get("challenge_id", ""))[:100],
                            body["capture"], client())
    return _json_step(state)


@bp.post("/webauthn/options")
def webauthn_options() -> Response | tuple[Response, int]:
    made = logon.webauthn_options(deps(), cookie_token())
    if made is None:
        return jsonify(error="logon_failed", message=text("logon_failed", g.lang)), 401
    challenge_id, options = made
    return jsonify(challenge_id=challenge_id, publicKey=options)


@bp.post("/webauthn/verify")
def webauthn_verify() -> Response | tuple[Response, int]:
    body = json_body()
    if not isinstance(body.get("credential"), dict):
        return jsonify(error="request_invalid", message=text("request_invalid", g.lang)), 400
    state = logon.webauthn_step(deps(), cookie_token(), str(body.get("challenge_id", ""))[:100],
                                body["credential"], client())
    return _json_step(state)


def _json_step(state: logon.State) -> Response | tuple[Response, int]:
    """The answer to a script-driven factor step: where to go next, or the one refusal."""
    if state.refused:
        return jsonify(error="logon_failed", message=text("logon_failed", g.lang)), 401
    resp = jsonify(next=_next_page(state.step))
    if state.token:
        set_token(resp, state.token)
    return resp


# ---- the session: self-service, lock, unlock, logoff ----------------------------------------


@bp.get("/home")
def home() -> Page:
    view = _current()
    if view is None or view.surface == CONSOLE:
        return redirect(url_for(".index"))
    if view.locked:
        return redirect(url_for(".lock_screen"))
    logon.touch(deps(), cookie_token())
    return render_template("home.html", view=view, history=logon.history(deps(), view.user_id),
                           sessions=logon.sessions_of(deps(), view.user_id))


@bp.post("/sessions/end")
def end_session() -> Page:
    logon.end_session(deps(), cookie_token(), field("sid"), client())
    return redirect(url_for(".home"))


@bp.post("/lock")
def lock() -> Page:
    logon.lock(deps(), cookie_token(), client())
    return redirect(url_for(".lock_screen"))


@bp.get("/lock")
def lock_screen() -> Page:
    view = _current()
    if view is None:
        return redirect(url_for(".index"))
    if not view.locked:
        return redirect(url_for(".index"))
    return render_template("locked.html", user_id=view.user_id)


@bp.post("/unlock")
def unlock() -> Page:
    state = logon.begin_unlock(deps(), cookie_token(), field("password"), client())
    if state.step is Step.PASSWORD or state.failed:
        if _current() is None:
            return _go(logon.FAILED)
        view_user = state.user_id or ""
        return render_template("locked.html", user_id=view_user, error="logon_failed"), 401
    return _go(state)


@bp.post("/logoff")
def logoff() -> Page:
    logon.logoff(deps(), cookie_token(), client())
    resp = current_app.make_response(render_template("message.html", code="logged_off", back=True))
    set_token(resp, None)
    return resp


# ---- errors ---------------------------------------------------------------------------------


def register_errors(app: Flask) -> None:
    def wants_json() -> bool:
        path = request.path
        return (path.startswith("/api/") or "/webauthn/" in path or "/vein/" in path
                or path.endswith(".json") or request.is_json)

    def answer(code: str, status: int) -> Any:
        if wants_json():
            return jsonify(error=code, message=text(code, getattr(g, "lang", "ja"))), status
        return render_template("message.html", code=code, back=True), status

    @app.errorhandler(CSRFError)
    def _csrf(_exc: CSRFError) -> Any:
        return answer("request_invalid", 400)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(RedisError)
    def _db_down(exc: Exception) -> Any:
        current_app.logger.error("database unavailable: %s", type(exc).__name__)
        return answer("service_unavailable", 503)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        if exc.code == 413 and request.endpoint == "register.capture_id":
            return jsonify(error="registration_image_too_large", message=text(
                "registration_image_too_large", getattr(g, "lang", "ja"),
                limit=MAX_IMAGE_BYTES // (1024 * 1024))), 413
        body, status = answer("request_invalid", exc.code or 400)
        # the error's own headers (Allow on a 405), but not the content type of its HTML page
        return body, status, [h for h in exc.get_headers() if h[0].lower() != "content-type"]
