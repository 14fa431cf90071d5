"""The registrant's pages (R14): a logon stopped at the palm-vein registration step opens a
remote registration session (only with consent recorded), holds a photo ID up to the camera,
waits for the attending administrator, then reads the palm on the terminal's reader through
the agent, and goes on to log on with it. Without consent: the way to the registration
station, and no remote option."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from adapters.vein import VeinError
from authsvc.domain.errors import DomainError
from authsvc.messages import text
from authsvc.services import logon, registration, vein
from authsvc.services.logon import Client
from authsvc.web.common import client, cookie_token, deps
from authsvc.web.login import Page, _go

bp = Blueprint("register", __name__, url_prefix="/register")
Reply = Response | tuple[Response, int]

# what the page's script may show: the agent's and the reader's answers, and the service's
VEIN_MESSAGES = ("vein_no_hand", "vein_timeout", "vein_disconnected", "vein_not_read", "vein_cancelled",
                 "vein_reposition", "vein_busy", "vein_reader_error", "vein_agent_unreachable",
                 "vein_enrol_again", "vein_capture_refused", "vein_duplicate_person",
                 "request_invalid", "camera_unavailable", "registration_image_invalid",
                 "registration_image_too_large")


def script_messages() -> dict[str, str]:
    return {c: text(c, g.lang, needed=1, limit=registration.MAX_IMAGE_BYTES // (1024 * 1024))
            for c in VEIN_MESSAGES}


def _registrant() -> tuple[Client, str] | None:
    user = logon.registrant(deps(), cookie_token())
    return None if user is None else (client(), user)


def _status(exc: DomainError) -> int:
    return {"Forbidden": 403, "NotFound": 404}.get(type(exc).__name__, 409)


def json_error(exc: DomainError) -> tuple[Response, int]:
    status = 400 if exc.code in ("request_invalid", "registration_image_invalid") else _status(exc)
    if exc.code == "registration_image_too_large":
        status = 413
    if exc.code == "vein_more_samples":  # the captures sent are spent: a new round of readings
        exc = DomainError("vein_enrol_again")
    return jsonify(error=exc.code, message=exc.message(g.lang)), status


def _unauthorised() -> tuple[Response, int]:
    return jsonify(error="logon_failed", message=text("logon_failed", g.lang)), 401


@bp.get("/")
def index() -> Page:
    who = _registrant()
    if who is None:
        return redirect(url_for("login.index"))
    actor = who[0].actor(who[1])
    live = registration.live_session(deps(), actor)
    if live is not None:
        return redirect(url_for(".session", sid=live.id))
    if vein.is_enrolled(deps(), who[1]):  # enrolled, yet not usable: disabled after failures
        return render_template("register.html", user_id=who[1], disabled=True)
    return render_template("register.html", user_id=who[1],
                           consent=registration.has_consent(deps(), who[1]))


@bp.post("/open")
def open_session() -> Page:
    who = _registrant()
    if who is None:
        return redirect(url_for("login.index"))
    try:
        made = registration.open_session(deps(), who[0].actor(who[1]), who[1])
    except DomainError as exc:
        return render_template("register.html", user_id=who[1], error=exc.message(g.lang),
                               consent=registration.has_consent(deps(), who[1])), _status(exc)
    return redirect(url_for(".session", sid=made.id))


@bp.get("/<sid>")
def session(sid: str) -> Page:
    who = _registrant()
    if who is None:
        return redirect(url_for("login.index"))
    try:
        view = registration.get(deps(), who[0].actor(who[1]), sid)
    except DomainError as exc:
        return render_template("message.html", code=exc.code, back=True,
                               back_url=url_for(".index")), _status(exc)
    return render_template("register_session.html", view=view, messages=script_messages(),
                           agent_url=deps().settings.vein.agent_url)


@bp.get("/<sid>/state.json")
def state(sid: str) -> Reply:
    who = _registrant()
    if who is None:
        return _unauthorised()
    try:
        view = registration.get(deps(), who[0].actor(who[1]), sid)
    except DomainError as exc:
        return json_error(exc)
    return jsonify(state=view.state)


@bp.post("/<sid>/id")
def capture_id(sid: str) -> Reply:
    """The still image of the photo ID, as the page's camera took it (JPEG or PNG body)."""
    who = _registrant()  # (the size limit is raised for this endpoint in create_app)
    if who is None:
        return _unauthorised()
    try:
        view = registration.capture_id(deps(), who[0].actor(who[1]), sid, request.get_data())
    except DomainError as exc:
        return json_error(exc)
    return jsonify(state=view.state)


@bp.post("/<sid>/vein/challenges")
def vein_challenges(sid: str) -> Reply:
    who = _registrant()
    if who is None:
        return _unauthorised()
    try:
        made = registration.enrol_challenges(deps(), who[0].actor(who[1]), sid)
    except DomainError as exc:
        return json_error(exc)
    return jsonify(challenges=[{"id": c.id, "challenge": c.challenge} for c in made],
                   agent_url=deps().settings.vein.agent_url)


@bp.post("/<sid>/vein/enrol")
def vein_enrol(sid: str) -> Reply:
    who = _registrant()
    if who is None:
        return _unauthorised()
    body: Any = request.get_json(silent=True)
    actor = who[0].actor(who[1])
    try:
        take = vein.enrol_captures(deps(), actor, who[1], registration.capture_subject(sid),
                                   body.get("captures") if isinstance(body, dict) else None)
        registration.enrol(deps(), actor, sid, deps().vein, take)
    except DomainError as exc:
        return json_error(exc)
    except VeinError:  # the samples would not make a template: read again
        return jsonify(error="vein_not_read", message=text("vein_not_read", g.lang)), 422
    return jsonify(next=url_for(".session", sid=sid))


@bp.post("/continue")
def resume_logon() -> Page:
    """Registered: the logon goes on to the palm-vein check."""
    state = logon.registered(deps(), cookie_token(), client())
    if state.failed:  # clicked twice, or not registering: the logon page sends it on (cookie kept)
        return redirect(url_for("login.index"))
    return _go(state)
