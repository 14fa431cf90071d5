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

from authsvc.domain.errors import DomainError
from authsvc.domain.messages import text
from authsvc.services import logon, registration, vein
from authsvc.web.common import client, cookie_token, deps, status_of
from authsvc.web.enrolment import challenges, script_messages, sent_captures
from authsvc.web.steps import Page, go

bp = Blueprint("register", __name__, url_prefix="/register")
Reply = Response | tuple[Response, int]
PAGES = ("register.index", "register.open_session", "register.session")  # the rest: the script's


def registrant(view: Callable[..., Any]) -> Callable[..., Any]:
    """A registration page or call: only for a logon waiting at the registration step (its
    user, as an actor, in g.actor); else the logon page, or 401 for the page's script. (A
    logon under way, not a session: flask-login's user is not involved.)"""
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


@bp.post("/<sid>/vein/enrol")
@registrant
def vein_enrol(sid: str) -> Reply:
    take = vein.enrol_captures(deps(), g.actor, g.actor.id, registration.capture_subject(sid),
                               sent_captures())
    registration.enrol(deps(), g.actor, sid, deps().vein, take)  # unreadable samples: 422 (errors.py)
    return jsonify(next=url_for(".session", sid=sid))


@bp.post("/continue")
def resume_logon() -> Page:
    """Registered: the logon goes on to the palm-vein check."""
    state = logon.registered(deps(), cookie_token(), client())
    if state.failed:  # clicked twice, or not registering: the logon page sends it on (cookie kept)
        return redirect(url_for("login.index"))
    return go(state)
