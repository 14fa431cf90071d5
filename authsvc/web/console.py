"""The administrators' console (R8): its own surface under /console, reached only through its
own logon with fresh MFA (the logon blueprint at /console/logon), a session a user session
cannot stand in for. Here: attending a remote palm registration (R14), enrolling a palm in
person at the registration station, recording consent to remote registration, and the
agency's registration records with their evidence."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, g, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from authsvc.domain import identifiers
from authsvc.domain.errors import DomainError, Forbidden
from authsvc.domain.roles import Perm, Role
from authsvc.services import registration, sessions, vein
from authsvc.web.auth import console_required
from authsvc.web.common import client, cookie_token, deps, field, set_token
from authsvc.web.enrolment import challenges, script_messages, sent_captures
from authsvc.web.jsonbody import json_body

bp = Blueprint("console", __name__, url_prefix="/console")
ID_DOCUMENTS = ("driving_licence", "my_number_card", "passport", "residence_card", "other")
# Every page and call but logoff is `console_required`: a console session the console gate
# (services/console_gate.py) admits on each request; else the console's logon, or 401.


@bp.get("/")
@console_required
def index() -> Any:
    return render_template("console/index.html", actor=g.actor, Perm=Perm, Role=Role,
                           agency=registration.is_agency(deps(), g.actor),
                           station=registration.is_agency(deps(), g.actor, Perm.ENROL_BIOMETRICS))


@bp.post("/logoff")
def logoff() -> Any:
    sessions.logoff(deps(), cookie_token(), client())
    resp = redirect(url_for("console_logon.index"))
    set_token(resp, None)
    return resp


# ---- remote registration: the attending administrator ---------------------------------------


@bp.get("/registrations")
@console_required
def registrations() -> Any:
    waiting = registration.waiting_for(deps(), g.actor)
    return render_template("console/registrations.html", waiting=waiting, state=_list_state(waiting))


def _list_state(waiting: list[registration.SessionView]) -> str:
    return " ".join(s.id for s in waiting)


@bp.get("/registrations.json")
@console_required
def registrations_state() -> Any:
    """What the waiting list's page polls: it reloads when someone opens or is taken."""
    return jsonify(state=_list_state(registration.waiting_for(deps(), g.actor)))


@bp.get("/registrations/<sid>")
@console_required
def registration_page(sid: str) -> Any:
    view = registration.get(deps(), g.actor, sid)
    attending = identifiers.canonical(view.admin or "-") == identifiers.canonical(g.actor.id)
    return render_template("console/registration.html", view=view, attending=attending,
                           messages=script_messages())


@bp.get("/registrations/<sid>/state.json")
@console_required
def registration_state(sid: str) -> Any:
    return jsonify(state=registration.get(deps(), g.actor, sid).state)


@bp.get("/registrations/<sid>/id")
@console_required
def registration_id(sid: str) -> Any:
    """The photo ID just captured, for the attending administrator (never cached)."""
    data, kind = registration.view_id(deps(), g.actor, sid)
    return Response(data, mimetype=kind, headers={"Content-Disposition": "inline"})


ACTIONS: dict[str, Callable[..., registration.SessionView]] = {
    "join": registration.join, "confirm": registration.confirm, "close": registration.close,
}


@bp.post("/registrations/<sid>/<action>")
@console_required
def registration_act(sid: str, action: str) -> Any:
    if action == "reject":
        registration.reject(deps(), g.actor, sid, field("reason")[:200])
    elif action in ACTIONS:
        ACTIONS[action](deps(), g.actor, sid)
    else:
        raise DomainError("registration_wrong_step")
    if action == "close":
        return redirect(url_for(".registrations"))
    return redirect(url_for(".registration_page", sid=sid))


# ---- the agency's records --------------------------------------------------------------------


@bp.get("/records")
@console_required
def records() -> Any:
    return render_template("console/records.html", rows=registration.recent(deps(), g.actor))


@bp.get("/records/<sid>/evidence")
@console_required
def evidence(sid: str) -> Any:
    data = registration.read_evidence(deps(), g.actor, sid)
    kind = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    return Response(data, mimetype=kind, headers={"Content-Disposition": "inline"})


# ---- in person, at the registration station -------------------------------------------------


def _station_subject(user_id: str) -> str:
    return f"station:{identifiers.canonical(g.actor.id)}:{identifiers.canonical(user_id)[:64]}"


def _station_form() -> dict[str, str]:
    data = json_body()
    return {k: str(data.get(k, ""))[:100] for k in ("user_id", "id_document", "id_checked")}


def _station() -> bool:
    """The registration station is the agency's: its staff and administrators, its operators."""
    return registration.is_agency(deps(), g.actor, Perm.ENROL_BIOMETRICS)


def _checked_station(form: dict[str, str]) -> None:
    """The staff member may enrol palms, ticked that they checked the photo ID, and named it."""
    if not _station():
        raise Forbidden()
    if not form["user_id"] or form["id_checked"] != "yes" or form["id_document"] not in ID_DOCUMENTS:
        raise DomainError("station_id_check_required")


@bp.get("/enrol")
@console_required
def enrol() -> Any:
    if not _station():
        raise Forbidden()
    return render_template("console/enrol.html", documents=ID_DOCUMENTS, messages=script_messages(),
                           done=request.args.get("done", "")[:64])


@bp.post("/enrol/challenges")
@console_required
def enrol_challenges() -> Any:
    form = _station_form()
    _checked_station(form)
    return challenges(vein.issue_enrol_challenges(deps(), _station_subject(form["user_id"]),
                                                  registration.ENROL_SAMPLES))


@bp.post("/enrol/vein")
@console_required
def enrol_vein() -> Any:
    form = _station_form()
    _checked_station(form)
    take = vein.enrol_captures(deps(), g.actor, form["user_id"], _station_subject(form["user_id"]),
                               sent_captures())
    done = registration.enrol_in_person(deps(), g.actor, form["user_id"], deps().vein, take,
                                        form["id_document"])  # unreadable samples: 422 (errors.py)
    return jsonify(next=url_for(".enrol", done=done["user_id"]))


# ---- consent to remote registration ----------------------------------------------------------


@bp.get("/consent")
@console_required
def consent() -> Any:
    return render_template("console/consent.html", done=request.args.get("done", "")[:64],
                           given=request.args.get("given", ""))


@bp.post("/consent")
@console_required
def consent_record() -> Any:
    user, given = field("user_id")[:64], field("given") == "yes"
    registration.record_consent(deps(), g.actor, user, given)
    return redirect(url_for(".consent", done=user, given="yes" if given else "no"))
