"""The administrators' console (R8): its own surface under /console, reached only through its
own logon with fresh MFA (the logon blueprint at /console/logon), a session a user session
cannot stand in for. Here: attending a remote palm registration (R14), enrolling a palm in
person at the registration station, recording consent to remote registration, the agency's
registration records with their evidence, account administration (search, the account's page
with the real refusal reasons, and its actions: R4, R6, R7, R9, R16, R17) and the alert inbox
(R25), and the company's devices (R12), groups (R10), service and OpenID Connect clients (R6,
R18), directory sync (R20) and, for the agency, its contracts (R7).
Every view is one service call, scoped to the operator's company there; a refusal is
answered by errors.py (another company's account like an unknown one)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, abort, g, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from authsvc.domain import identifiers, relying_party
from authsvc.domain.applications import ROSTER_KINDS, ApplicationInvalid
from authsvc.domain.calendar import JST
from authsvc.domain.errors import DomainError, Forbidden, InvalidInput
from authsvc.domain.lifecycle import Status
from authsvc.domain.messages import text
from authsvc.domain.roles import Perm, Role
from authsvc.services import (
    accounts,
    alerts,
    applications,
    audit_report,
    console_gate,
    devices,
    groups,
    guard,
    operators,
    registration,
    service_clients,
    sessions,
    vein,
)
from authsvc.services import directory_sync as directories
from authsvc.web import auth
from authsvc.web.common import FIELD_MAX, client, cookie_token, deps, field, set_token
from authsvc.web.enrolment import challenges, script_messages, sent_captures
from authsvc.web.jsonbody import json_body

bp = Blueprint("console", __name__, url_prefix="/console")
T = TypeVar("T")
ID_DOCUMENTS = ("driving_licence", "my_number_card", "passport", "residence_card", "other")
# Every page and call but logoff is `console_required`: a console session the console gate
# (services/console_gate.py) admits on each request; else the console's logon, or 401. A data
# manager (console_gate.approver_only) reaches only the pages of their approvals (003 §6); any
# other answers 403, audited as a refused use of privileges.
APPROVER_PAGES = frozenset({"index", "application_list", "application_page", "application_act"})


def console_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """auth.console_required, and a data manager only on APPROVER_PAGES."""
    @wraps(view)
    def within(*args: Any, **kwargs: Any) -> Any:
        if view.__name__ not in APPROVER_PAGES and console_gate.approver_only(g.actor):
            refusal = Forbidden()
            guard.refused(deps(), g.actor, request.endpoint or "console", request.path[:100],
                          refusal.code)
            raise refusal
        return view(*args, **kwargs)
    return auth.console_required(within)


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


# ---- account administration (R4, R6, R7, R9, R16, R17) ---------------------------------------

SEARCH_FIELDS = ("name", "status", "contract", "company")
REASON_MAX = 200  # what the audit event keeps of an operator's reason
# The actions of the account page; each but approve asks for a reason (kept in its audit event).
ACCOUNT_ACTIONS = ("unlock", "reset-password", "suspend", "resume", "end-sessions", "approve",
                   "leave", "remote", "reset-factor", "window")
SECOND_FACTORS = ("totp", "webauthn", "vein")  # what `reset-factor` may take away
STATUS_CHANGES: dict[str, Callable[..., accounts.AccountView]] = {
    "unlock": accounts.unlock, "suspend": accounts.suspend, "resume": accounts.resume,
}


def _query(name: str) -> str:
    return request.args.get(name, "").strip()[:200]


@bp.get("/accounts")
@console_required
def account_search() -> Any:
    """The search form and its results: the accounts of the operator's company (an agency
    operator: every company's, or the one named)."""
    form = {name: _query(name) for name in SEARCH_FIELDS}
    locked = request.args.get("locked") == "1"
    rows = accounts.list_accounts(deps(), g.actor, form["status"] or None, form["contract"] or None,
                                  None, form["company"] or None, form["name"] or None,
                                  True if locked else None)
    return render_template("console/accounts.html", rows=rows, form=form, locked=locked,
                           statuses=[s.value for s in Status], everywhere=g.actor.everywhere)


@bp.get("/accounts/<user_id>")
@console_required
def account_page(user_id: str) -> Any:
    """One account as an operator sees it: state, lock, validity, factors, live sessions and
    the logon history with the real reason of each refusal; the actions the operator may take."""
    found = operators.page(deps(), g.actor, user_id[:FIELD_MAX])
    done = request.args.get("done", "")
    return render_template(
        "console/account.html", page=found, actor=g.actor, Perm=Perm,
        own=identifiers.canonical(found.account.user_id) == identifiers.canonical(g.actor.id),
        done=done if done in ACCOUNT_ACTIONS and done != "reset-password" else "",
        ended=request.args.get("n", 0, type=int))


def _reason() -> str:
    """The operator's reason for an action: required."""
    reason = " ".join(field("reason").split())[:REASON_MAX]
    if not reason:
        raise InvalidInput("field_required", field=text("ui_reason", g.lang))
    return reason


def _moment(name: str, label: str) -> datetime | None:
    """A date and time from a form (an HTML datetime-local: Japan time); empty: None."""
    value = field(name).strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput("date_invalid", field=text(label, g.lang)) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=JST)


def _required(value: T | None, label: str) -> T:
    """A form value that must be given."""
    if value is None:
        raise InvalidInput("field_required", field=text(label, g.lang))
    return value


def _date(name: str, label: str) -> date | None:
    value = field(name).strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("date_invalid", field=text(label, g.lang)) from None


@bp.post("/accounts/<user_id>/<action>")
@console_required
def account_act(user_id: str, action: str) -> Any:
    """One action on the account, then back to its page with what was done; a new initial
    password is shown once, on a page of its own (never kept, never logged)."""
    if action not in ACCOUNT_ACTIONS:
        abort(404)
    uid, d = user_id[:FIELD_MAX], deps()
    reason = "" if action == "approve" else _reason()
    ended = 0
    if action == "reset-password":
        issued = accounts.reset_password(d, g.actor, uid, reason)
        return render_template("console/issued.html", account=issued.account,
                               initial_password=issued.initial_password)
    if action == "approve":
        accounts.approve_identifier(d, g.actor, uid)
    elif action == "end-sessions":
        ended = operators.end_sessions(d, g.actor, uid, reason)
    elif action == "leave":
        leaves_at = _moment("leaves_at", "ui_leaves_at") or d.clock.now()
        accounts.record_departure(d, g.actor, uid, leaves_at, reason)
    elif action == "remote":
        accounts.approve_remote(d, g.actor, uid, _date("until", "ui_remote_until"), reason)
    elif action == "reset-factor":
        operators.reset_factor(d, g.actor, uid, field("factor")[:20], reason)
    elif action == "window":
        opens = _required(_moment("starts_at", "ui_window_from"), "ui_window_from")
        closes = _required(_moment("ends_at", "ui_window_to"), "ui_window_to")
        accounts.set_window(d, g.actor, uid, opens, closes, reason)
    else:
        STATUS_CHANGES[action](d, g.actor, uid, reason)
    extra = {"n": ended} if action == "end-sessions" else {}
    return redirect(url_for(".account_page", user_id=uid, done=action, **extra))


# ---- the alert inbox (R25) -------------------------------------------------------------------


@bp.get("/alerts")
@console_required
def alert_inbox() -> Any:
    """The open alerts of the operator's company (an agency operator: every alert)."""
    return render_template("console/alerts.html", rows=alerts.inbox(deps(), g.actor, open_only=True),
                           done=request.args.get("done", 0, type=int))


@bp.post("/alerts/<int(max=2147483647):alert_id>/acknowledge")
@console_required
def alert_acknowledge(alert_id: int) -> Any:
    alerts.acknowledge(deps(), g.actor, alert_id)
    return redirect(url_for(".alert_inbox", done=alert_id))


# ---- audit reports (R22) ---------------------------------------------------------------------

REPORT_DOWNLOADS = {"csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}
REPORT_DAYS = 30  # the form's default period: the last 30 days


def _report_form(values: Any) -> tuple[date, date, str | None, str]:
    """The period, company and format of a report form (a POST) or of the chart's link (GET)."""
    def day(name: str, label: str) -> date:
        raw = str(values.get(name, "")).strip()[:20]
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise InvalidInput("date_invalid", field=text(label, g.lang)) from None

    start, end = day("from", "ui_report_from"), day("to", "ui_report_to")
    company = str(values.get("company", "")).strip()[:FIELD_MAX] or None
    fmt = str(values.get("format", "html"))[:10]
    return start, end, company, fmt


@bp.get("/audit/report")
@console_required
def audit_report_page() -> Any:
    """The report form (the last 30 days by default): the company's report for its system
    administrators and staff, any company's or every company's for the agency."""
    g.actor.require(Perm.READ_AUDIT)
    today = deps().clock.now().astimezone(JST).date()
    form = {"from": (today - timedelta(days=REPORT_DAYS - 1)).isoformat(), "to": today.isoformat(),
            "company": "", "format": "html"}
    return render_template("console/audit_report.html", form=form, report=None, actor=g.actor)


@bp.post("/audit/report")
@console_required
def audit_report_run() -> Any:
    """Make the report (audited): HTML shown here, CSV and PDF downloaded."""
    start, end, company, fmt = _report_form(request.form)
    rep = audit_report.report(deps(), g.actor, start, end, company, g.lang, fmt)
    if fmt in REPORT_DOWNLOADS:
        body = audit_report.csv_bytes(rep) if fmt == "csv" else audit_report.to_pdf(rep)
        name = f"audit-report-{start.isoformat()}-{end.isoformat()}.{fmt}"
        return Response(body, mimetype=REPORT_DOWNLOADS[fmt],
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    form = {"from": start.isoformat(), "to": end.isoformat(), "company": company or "", "format": fmt}
    return render_template("console/audit_report.html", form=form, report=rep, actor=g.actor,
                           summary=audit_report.summary(rep))


@bp.get("/audit/report/chart.png")
@console_required
def audit_report_chart() -> Any:
    """The report's chart as an image of its own (the console's pages take images from
    'self' only: no data URI), made again for the same period and company, and audited so."""
    start, end, company, _ = _report_form(request.args)
    rep = audit_report.report(deps(), g.actor, start, end, company, g.lang, "png")
    return Response(audit_report.chart_png(rep.charts[0]), mimetype="image/png")


# ---- devices (R12) ---------------------------------------------------------------------------

DEVICE_ACTIONS = ("suspend", "resume", "revoke")


@bp.get("/devices")
@console_required
def device_list() -> Any:
    """The company's terminals and readers (an agency operator: every device)."""
    done = request.args.get("done", "")
    return render_template("console/devices.html", rows=devices.list_devices(deps(), g.actor),
                           done=done if done in DEVICE_ACTIONS else "",
                           device=request.args.get("device", "")[:64])


@bp.post("/devices/<device_id>/<action>")
@console_required
def device_change(device_id: str, action: str) -> Any:
    """suspend | resume | revoke a device, with a reason (kept in its audit event)."""
    if action not in DEVICE_ACTIONS:
        abort(404)
    changed = devices.change(deps(), g.actor, device_id[:FIELD_MAX], action, _reason())
    return redirect(url_for(".device_list", done=action, device=changed.device_id))


# ---- groups (R10): membership requested by one administrator, approved by another ----------

GROUP_ACTIONS = ("create", "request", "approve", "remove")


@bp.get("/groups")
@console_required
def group_list() -> Any:
    """The company's groups with their factors, services and members (requested, approved)."""
    done = request.args.get("done", "")
    return render_template("console/groups.html", rows=groups.list_groups(deps(), g.actor),
                           actor=g.actor, Perm=Perm, factors=SECOND_FACTORS,
                           done=done if done in GROUP_ACTIONS else "",
                           group=request.args.get("group", "")[:100],
                           user=request.args.get("user", "")[:64])


@bp.post("/groups/<action>")
@console_required
def group_act(action: str) -> Any:
    """create (group, factors, services) | request, approve, remove (group, user_id); the
    group's company for an agency operator. The group and the user are form fields: a group's
    name may hold any character, '/' too."""
    if action not in GROUP_ACTIONS:
        abort(404)
    d, name, user = deps(), field("group")[:FIELD_MAX], field("user_id").strip()[:FIELD_MAX]
    company = field("company").strip()[:FIELD_MAX] or None  # the group's (as the API names it)
    if action == "create":
        services = [s for s in field("services").replace("、", ",").split(",") if s.strip()]
        made = groups.create(d, g.actor, name, request.form.getlist("factors")[:10], services[:100],
                             company)
        return redirect(url_for(".group_list", done=action, group=made.name))
    if not user:
        raise InvalidInput("field_required", field=text("ui_user_id", g.lang))
    change = {"request": groups.request_member, "approve": groups.approve_member,
              "remove": groups.remove_member}[action]
    changed = change(d, g.actor, name, user, company)
    return redirect(url_for(".group_list", done=action, group=changed.name, user=user))


# ---- the agency's contracts (R7) -------------------------------------------------------------


def _contracts_right() -> None:
    if not g.actor.can(Perm.MANAGE_CONTRACTS):
        raise Forbidden()


@bp.get("/contracts")
@console_required
def contract_list() -> Any:
    """The contracts with the companies (the agency's operators)."""
    _contracts_right()
    return render_template("console/contracts.html", rows=accounts.list_contracts(deps(), g.actor),
                           done=request.args.get("done", "")[:64])


@bp.post("/contracts")
@console_required
def contract_period() -> Any:
    """A contract's new period (an extension, an earlier end), with a reason. The contract is a
    form field: a contract number may hold '/'."""
    _contracts_right()
    number = field("contract").strip()[:FIELD_MAX]
    if not number:
        raise InvalidInput("field_required", field=text("ui_contract", g.lang))
    starts = _required(_date("starts_on", "ui_contract_starts"), "ui_contract_starts")
    changed = accounts.change_contract_period(deps(), g.actor, number, starts,
                                              _date("ends_on", "ui_contract_ends"), _reason())
    return redirect(url_for(".contract_list", done=changed["contract"]))


# ---- service clients and OpenID Connect clients (R6, R18) ------------------------------------

CLIENT_ACTIONS = ("approve", "rotate", "suspend", "resume", "revoke")
CLIENT_CHANGES: dict[str, Callable[..., service_clients.ClientView]] = {
    "suspend": service_clients.suspend, "resume": service_clients.resume,
    "revoke": service_clients.revoke,
}
JWKS_MAX = 20_000  # a JWK set of five RSA keys fits; more is no key set of a relying party


def _lines(name: str) -> list[str]:
    """A textarea's non-empty lines (one URI a line)."""
    return [line.strip() for line in field(name).splitlines() if line.strip()]


@bp.get("/clients")
@console_required
def client_list() -> Any:
    """The service and OpenID Connect clients of the operator's company (an agency operator:
    every client), the actions the operator may take on each, and the form registering an
    OpenID Connect client."""
    done = request.args.get("done", "")
    return render_template("console/clients.html", rows=service_clients.list_clients(deps(), g.actor),
                           actor=g.actor, Perm=Perm, methods=relying_party.AUTH_METHODS,
                           done=done if done in CLIENT_ACTIONS else "",
                           client_id=request.args.get("client", "")[:64])


@bp.post("/clients/create")
@console_required
def client_create() -> Any:
    """Register an OpenID Connect client (pending until another administrator approves it); its
    secret is shown once, on a page of its own (never kept, never logged)."""
    jwks = (request.form.get("jwks") or "")[:JWKS_MAX].strip()
    oidc = relying_party.parse(field("name"), _lines("redirect_uris"), field("auth_method") or
                               "client_secret_basic", _lines("post_logout_uris"),
                               field("backchannel_uri").strip(), jwks or None, field("refresh") == "yes",
                               "pairwise" if field("pairwise") == "yes" else "public")
    names = [n.strip() for n in field("groups").replace("、", ",").split(",") if n.strip()]
    made = service_clients.create(deps(), g.actor, field("client_id").strip()[:FIELD_MAX], [],
                                  field("company").strip()[:FIELD_MAX] or None, oidc=oidc,
                                  groups=names[:100])
    return render_template("console/client_issued.html", client=made.client, secret=made.secret,
                           rotated=False)


@bp.post("/clients/<client_id>/<action>")
@console_required
def client_change(client_id: str, action: str) -> Any:
    """approve | rotate (a new secret, shown once) | suspend, revoke (with a reason) | resume;
    each audited (the reason in its event)."""
    if action not in CLIENT_ACTIONS:
        abort(404)
    d, cid = deps(), client_id[:FIELD_MAX]
    if action == "approve":
        changed = service_clients.approve(d, g.actor, cid)
    elif action == "rotate":
        made = service_clients.rotate(d, g.actor, cid, " ".join(field("reason").split())[:REASON_MAX])
        return render_template("console/client_issued.html", client=made.client, secret=made.secret,
                               rotated=True)
    else:
        reason = _reason() if action != "resume" else " ".join(field("reason").split())[:REASON_MAX]
        changed = CLIENT_CHANGES[action](d, g.actor, cid, reason)
    return redirect(url_for(".client_list", done=action, client=changed.client_id))


# ---- directory sync ([9 of 12], R20) ---------------------------------------------------------

SYNC_LISTS = ("created", "updated", "linked", "resumed", "suspended", "deleted", "groups",
              "memberships", "skipped")
EXPORT_LISTS = ("added", "changed", "disabled")
RUNS_SHOWN = 50


@bp.get("/directory")
@console_required
def directory_page() -> Any:
    """The recent syncs of the operator's companies (an agency operator: every company's), and
    the forms that run a sync (full or incremental, a dry run by default) or an export."""
    return render_template("console/directory.html", rows=directories.runs(deps(), g.actor, None, RUNS_SHOWN),
                           actor=g.actor, Perm=Perm)


def _directory_company() -> str:
    """The company a form names; a company's operator's own when the form names none (an agency
    operator names one: theirs would be the agency's own)."""
    company = field("company").strip()[:FIELD_MAX] or ("" if g.actor.everywhere else g.actor.company or "")
    if not company:
        raise InvalidInput("field_required", field=text("ui_company", g.lang))
    return company


@bp.post("/directory/sync")
@console_required
def directory_sync() -> Any:
    """Run a sync; the report shows what changed (a dry run: exactly what would). A sync that
    stops removes nothing and is answered with its reason by errors.py (409)."""
    report = directories.sync(deps(), g.actor, _directory_company(), full=field("mode") == "full",
                              dry_run=field("dry_run") == "yes")
    return render_template("console/directory_report.html", report=report.to_dict(), kind="sync",
                           lists=SYNC_LISTS)


@bp.post("/directory/export")
@console_required
def directory_export() -> Any:
    """Run an export of the company's accounts to its directory; the report shows what changed."""
    report = directories.export(deps(), g.actor, _directory_company(), dry_run=field("dry_run") == "yes")
    return render_template("console/directory_report.html", report=report.to_dict(), kind="export",
                           lists=EXPORT_LISTS)


# ---- usage applications ([11 of 12], R21) ------------------------------------------------------

APPLICATION_FORMS = ("users", "access", "media")
APPLICATION_STEPS = ("check", "approve", "reject")


def _application_page(errors: list[Any] | None = None, status: int = 200, done: str = "") -> Any:
    d = deps()
    waiting = console_gate.approver_only(g.actor)  # a data manager: what waits for their approval
    can_list = g.actor.can(Perm.READ_APPLICATIONS) or waiting
    rows = applications.list_applications(d, g.actor) if can_list else []
    contracts = [c["contract"] for c in accounts.list_contracts(d, g.actor)]
    return render_template("console/applications.html", rows=rows, actor=g.actor, Perm=Perm,
                           forms=APPLICATION_FORMS, errors=errors or [], done=done,
                           contracts=contracts, roster_kinds=ROSTER_KINDS, waiting=waiting), status


@bp.get("/applications")
@console_required
def application_list() -> Any:
    """The applications of the company (the agency: every one), the forms to download, the
    upload, and the rosters (the agency and the procuring office)."""
    done = request.args.get("done", "")
    return _application_page(done=done if done in ("submitted", "roster") else "")


@bp.get("/applications/template/<kind>")
@console_required
def application_template(kind: str) -> Any:
    if kind not in APPLICATION_FORMS:
        abort(404)
    data = applications.template(deps(), g.actor, kind, request.args.get("contract", "")[:64] or None)
    return Response(data, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="dsg-application-{kind}.xlsx"'})


@bp.post("/applications")
@console_required
def application_upload() -> Any:
    """Submit workbooks (a prime contractor's own and its subcontractors'): all or nothing,
    every error shown by file, row and column."""
    files = [applications.Upload(f.filename or "", f.read()) for f in request.files.getlist("files")][:50]
    try:
        applications.submit(deps(), g.actor, [f for f in files if f.name or f.data])
    except ApplicationInvalid as exc:
        return _application_page([e.to_dict(g.lang) for e in exc.errors], 422)
    return redirect(url_for(".application_list", done="submitted"))


@bp.post("/rosters")
@console_required
def roster_upload() -> Any:
    upload = request.files.get("file")
    try:
        applications.upload_roster(deps(), g.actor, field("contract").strip()[:64], field("kind")[:32],
                                   applications.Upload(upload.filename or "" if upload else "",
                                                       upload.read() if upload else b""))
    except ApplicationInvalid as exc:
        return _application_page([e.to_dict(g.lang) for e in exc.errors], 422)
    return redirect(url_for(".application_list", done="roster"))


@bp.get("/applications/<int(max=2147483647):application_id>")
@console_required
def application_page(application_id: int) -> Any:
    view = applications.get(deps(), g.actor, application_id)
    return render_template("console/application.html", app=view, actor=g.actor, Perm=Perm, errors=[],
                           done=request.args.get("done", "") == "1")


@bp.post("/applications/<int(max=2147483647):application_id>/<action>")
@console_required
def application_act(application_id: int, action: str) -> Any:
    """check | approve | reject (with a reason) | issue: the password of the parameter sheet is
    shown on the page that answers, once."""
    d = deps()
    try:
        if action == "issue":
            sheet = applications.issue(d, g.actor, application_id)
            return render_template("console/application_issued.html", sheet=sheet)
        if action not in APPLICATION_STEPS:
            abort(404)
        if action == "reject":
            applications.reject(d, g.actor, application_id, _reason())
        else:
            {"check": applications.check, "approve": applications.approve}[action](d, g.actor, application_id)
    except ApplicationInvalid as exc:
        view = applications.get(d, g.actor, application_id)
        return render_template("console/application.html", app=view, actor=g.actor, Perm=Perm,
                               errors=[e.to_dict(g.lang) for e in exc.errors], done=False), 422
    return redirect(url_for(".application_page", application_id=application_id, done="1"))
