"""The registrant's pages (R14): a logon stopped at the palm-vein registration step opens a
remote registration session (only with consent recorded), holds a photo ID up to the camera,
waits for the attending administrator, then reads the palm on the terminal's reader through
the agent, and goes on to log on with it. Without consent: the way to the registration
station, and no remote option."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, g, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from adapters.vein import VeinError
from authsvc.domain.errors import DomainError
from authsvc.messages import text
from authsvc.services import logon, registration, vein
from authsvc.web.common import client, cookie_token, deps, status_of
from authsvc.web.jsonbody import json_body
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
    return {c: text(c, g.lang, limit=registration.MAX_IMAGE_BYTES // (1024 * 1024))
            for c in VEIN_MESSAGES}


PAGES = ("register.index", "register.open_session", "register.session")  # the rest: the script's


def registrant(view: Callable[..., Any]) -> Callable[..., Any]:
    """A registration page or call: only for a logon waiting at the registration step (its
    user, as an actor, in g.actor); else the logon page, or 401 for the page's script."""
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        user = logon.registrant(deps(), cookie_token())
        if user is None:
            if request.endpoint in PAGES:
                return redirect(url_for("login.index"))
            return jsonify(error="logon_failed", message=text("logon_failed", g.lang)), 401
        g.actor = client().actor(user)
        return view(*args, **kwargs)
    return wrapped


def json_error(exc: DomainError) -> tuple[Response, int]:
    if exc.code == "vein_more_samples":  # the captures sent are spent: a new round of readings
        exc = DomainError("vein_enrol_again")
    return jsonify(error=exc.code, message=exc.message(g.lang)), status_of(exc)


@bp.errorhandler(DomainError)
def _refused(exc: DomainError) -> Any:
    """A refusal: the page's script reads JSON; a page shows the message."""
    if request.endpoint in PAGES:
        return render_template("message.html", code=exc.code, params=exc.params, back=True,
                               back_url=url_for(".index")), status_of(exc)
    return json_error(exc)


@bp.get("/")
@registrant
def index() -> Page:
    live = registration.live_session(deps(), g.actor)
    if live is not None:
        return redirect(url_for(".session", sid=live.id))
    if vein.is_enrolled(deps(), g.actor.id):  # enrolled, yet not usable: disabled after failures
        return render_template("register.html", disabled=True)
    return render_template("register.html", consent=registration.has_consent(deps(), g.actor.id))


@bp.post("/open")
@registrant
def open_session() -> Page:
    try:
        made = registration.open_session(deps(), g.actor, g.actor.id)
    except DomainError as exc:
        return render_template("register.html", error=exc.message(g.lang),
                               consent=registration.has_consent(deps(), g.actor.id)), status_of(exc)
    return redirect(url_for(".session", sid=made.id))


@bp.get("/<sid>")
@registrant
def session(sid: str) -> Page:
    return render_template("register_session.html", view=registration.get(deps(), g.actor, sid),
                           messages=script_messages())


@bp.get("/<sid>/state.json")
@registrant
def state(sid: str) -> Reply:
    return jsonify(state=registration.get(deps(), g.actor, sid).state)


@bp.post("/<sid>/id")
@registrant
def capture_id(sid: str) -> Reply:
    """The still image of the photo ID, as the page's camera took it (JPEG or PNG body; the
    size limit is raised for this endpoint in create_app)."""
    return jsonify(state=registration.capture_id(deps(), g.actor, sid, request.get_data()).state)


@bp.post("/<sid>/vein/challenges")
@registrant
def vein_challenges(sid: str) -> Reply:
    return challenges(registration.enrol_challenges(deps(), g.actor, sid))


def challenges(made: list[vein.Challenge]) -> Response:
    """Challenges for the terminal agent, one per palm reading of an enrolment."""
    return jsonify(challenges=[{"id": c.id, "challenge": c.challenge} for c in made],
                   agent_url=deps().settings.vein.agent_url)


def sent_captures() -> object:
    return json_body().get("captures")


@bp.post("/<sid>/vein/enrol")
@registrant
def vein_enrol(sid: str) -> Reply:
    take = vein.enrol_captures(deps(), g.actor, g.actor.id, registration.capture_subject(sid),
                               sent_captures())
    try:
        registration.enrol(deps(), g.actor, sid, deps().vein, take)
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
