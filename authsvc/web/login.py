"""The user's logon pages: ID and password, the forced change of an initial password (R2), a
second factor or its first enrolment (R10), the proof of the registered terminal through its
agent (R12), the self-service page with logon history and
sessions (R9), the lock screen and its MFA unlock (R16), logoff. One generic failure message
for every refusal (R5)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, make_response, redirect, render_template, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from authsvc.domain.errors import PasswordRejected
from authsvc.domain.logon_flow import Step
from authsvc.domain.messages import text
from authsvc.services import logon, sessions
from authsvc.web.auth import session_view
from authsvc.web.common import client, cookie_token, deps, field, set_token, surface
from authsvc.web.jsonbody import json_body
from authsvc.web.steps import STEP_PAGES, Page, go, next_page

# This blueprint serves the user's logon at / and, registered a second time, the console's
# own logon at /console/logon (R8): the same steps, its own cookie, its own kind of session.
bp = Blueprint("login", __name__)


def _pending() -> logon.State:
    return logon.pending(deps(), cookie_token())


@bp.get("/")
def index() -> Page:
    view = session_view()
    if view is not None:
        return redirect(url_for(".lock_screen") if view.locked else next_page(Step.DONE))
    state = _pending()
    if not state.failed and state.step in STEP_PAGES:
        return redirect(next_page(state.step))
    return render_template("login.html")


@bp.post("/login")
def do_login() -> Page:
    return go(logon.begin(deps(), field("user_id"), field("password"), client(), surface()))


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
    return go(state)


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
    return go(state)


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
             "vein_reposition", "vein_busy", "vein_reader_error", "vein_agent_unreachable", "logon_failed",
             "agent_wrong_address",
             "vein_read_again"]  # a palm refused by the service: read it again, not "check your input"
    return render_template("vein.html", messages={c: text(c, g.lang) for c in codes})


@bp.post("/vein/challenge")
def vein_challenge() -> Response | tuple[Response, int]:
    made = logon.vein_challenge(deps(), cookie_token())
    if made is None:
        return jsonify(error="logon_failed", message=text("logon_failed", g.lang)), 401
    return jsonify(challenge_id=made.id, challenge=made.challenge,
                   agent_url=deps().settings.vein.agent_url,
                   origins=list(deps().settings.webauthn.origins))  # the pages the agent answers


@bp.post("/vein/verify")
def vein_verify() -> Response | tuple[Response, int]:
    body = json_body()
    if not isinstance(body.get("capture"), dict):
        return jsonify(error="request_invalid", message=text("request_invalid", g.lang)), 400
    state = logon.vein_step(deps(), cookie_token(), str(body.get("challenge_id", ""))[:100],
                            body["capture"], client())
    return _json_step(state)


# ---- the registered terminal (R12) ----------------------------------------------------------

AGENT_CODES = ("terminal_agent_unreachable", "logon_failed", "agent_wrong_address")


@bp.get("/terminal")
def terminal() -> Page:
    if _pending().step is not Step.TERMINAL:
        return redirect(url_for(".index"))
    return render_template("terminal.html", messages={c: text(c, g.lang) for c in AGENT_CODES})


@bp.post("/terminal/challenge")
def terminal_challenge() -> Response | tuple[Response, int]:
    made = logon.terminal_challenge(deps(), cookie_token())
    if made is None:
        return jsonify(error="logon_failed", message=text("logon_failed", g.lang)), 401
    return jsonify(challenge_id=made.id, challenge=made.challenge,
                   agent_url=deps().settings.vein.agent_url,
                   origins=list(deps().settings.webauthn.origins))  # the pages the agent answers


@bp.post("/terminal/verify")
def terminal_verify() -> Response | tuple[Response, int]:
    body = json_body()
    if not isinstance(body.get("proof"), dict):
        return jsonify(error="request_invalid", message=text("request_invalid", g.lang)), 400
    state = logon.terminal_step(deps(), cookie_token(), str(body.get("challenge_id", ""))[:100],
                                body["proof"], client())
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
    resp = jsonify(next=next_page(state.step))
    if state.token:
        set_token(resp, state.token)
    return resp


# ---- the session: self-service, lock, unlock, logoff ----------------------------------------


@bp.get("/home")
@login_required  # an unlocked user session; else the lock screen, or the logon page
def home() -> Page:
    view = current_user.view
    sessions.touch(deps(), current_user.token)
    return render_template("home.html", view=view, name=sessions.display_name(deps(), view.user_id),
                           history=sessions.history(deps(), view.user_id),
                           sessions=sessions.sessions_of(deps(), view.user_id))


@bp.post("/sessions/end")
def end_session() -> Page:
    sessions.end_session(deps(), cookie_token(), field("sid"), client())
    return redirect(url_for(".home"))


@bp.post("/lock")
def lock() -> Page:
    sessions.lock(deps(), cookie_token(), client())
    return redirect(url_for(".lock_screen"))


@bp.get("/lock")
def lock_screen() -> Page:
    view = session_view()
    if view is None:
        return redirect(url_for(".index"))
    if not view.locked:
        return redirect(url_for(".index"))
    return render_template("locked.html", user_id=view.user_id)


@bp.get("/reauth")
def reauth() -> Page:
    """A relying party asked for a fresh logon ([8 of 12]: max_age, prompt=login): the password
    and a second factor again, on the session the user has."""
    view = session_view()
    if view is None or view.locked:
        return redirect(url_for(".index"))
    return render_template("locked.html", user_id=view.user_id, again=True)


@bp.post("/unlock")
def unlock() -> Page:
    again = field("again") == "1"
    state = logon.begin_unlock(deps(), cookie_token(), field("password"), client(), again=again)
    if state.step is Step.PASSWORD or state.failed:
        if session_view() is None:
            return go(logon.FAILED)
        view_user = state.user_id or ""
        return render_template("locked.html", user_id=view_user, error="logon_failed", again=again), 401
    return go(state)


@bp.post("/logoff")
def logoff() -> Page:
    sessions.logoff(deps(), cookie_token(), client())
    resp = make_response(render_template("message.html", code="logged_off", back=True))
    set_token(resp, None)
    return resp
