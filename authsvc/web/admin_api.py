"""The administrators' JSON API under /api/v1/admin (R8, R24): the console's operations for
other tools. A console session's token as `Authorization: Bearer <token>` (opened with
`POST /api/v1/logon {"surface": "console"}` and its second factor), passing the console gate
on every request; or a service client's own credentials, `Authorization: Basic
base64(client_id:secret)` (R6), acting within its scopes. Every call is one service call,
scoped to the operator's (or the client's) company there."""

from __future__ import annotations

import base64
import binascii
from datetime import date, datetime
from typing import Any

from flask import Blueprint, g, jsonify, request
from werkzeug.wrappers import Response

from authsvc.domain import relying_party
from authsvc.domain.applications import ApplicationInvalid
from authsvc.domain.calendar import JST
from authsvc.domain.errors import DomainError, InvalidInput
from authsvc.services import (
    accounts,
    alerts,
    applications,
    audit,
    devices,
    groups,
    operators,
    service_clients,
)
from authsvc.services import directory_sync as directories
from authsvc.web.auth import admin_required
from authsvc.web.common import FIELD_MAX, deps, status_of
from authsvc.web.jsonbody import json_body

bp = Blueprint("admin_api", __name__, url_prefix="/api/v1/admin")
ACCOUNT_ACTIONS = ("approve", "suspend", "resume", "delete", "unlock", "reset-password",
                   "end-sessions", "leave", "remote", "window", "reset-factor")
DEVICE_ACTIONS = ("suspend", "resume", "revoke")
CLIENT_ACTIONS = service_clients.ACTIONS  # approve | rotate | suspend | resume | revoke
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _text(data: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("field_required", field=name)
    return value[:FIELD_MAX]


def _date(data: dict[str, Any], name: str, required: bool = False) -> date | None:
    value = _text(data, name, required)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("date_invalid", field=name) from None


def _moment(data: dict[str, Any], name: str, required: bool = False) -> datetime | None:
    """An ISO 8601 date and time; without a zone it is Japan time."""
    value = _text(data, name, required)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput("datetime_invalid", field=name) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=JST)


def _bool(data: dict[str, Any], name: str) -> bool:
    """A true/false field of a JSON body (absent: false)."""
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise InvalidInput("field_required", field=name)
    return value


def _flag(name: str) -> bool | None:
    value = request.args.get(name)
    return None if value is None else value.lower() in ("1", "true", "yes")


@bp.get("/accounts")
@admin_required
def search() -> Response:
    a = request.args
    rows = accounts.list_accounts(deps(), g.actor, a.get("status"), a.get("contract"), a.get("role"),
                                  a.get("company"), a.get("name"), _flag("locked"))
    return jsonify(accounts=[r.to_dict() for r in rows])


@bp.post("/accounts")
@admin_required
def create() -> tuple[Response, int]:
    data = json_body()
    person = data.get("person_id")
    issued = accounts.create_account(deps(), g.actor, _text(data, "user_id", True) or "",
                                     _text(data, "name", True) or "", _text(data, "contract", True) or "",
                                     _text(data, "role") or "user",
                                     person if isinstance(person, int) else None)
    return jsonify(account=issued.account.to_dict(), initial_password=issued.initial_password), 201


@bp.get("/accounts/<user_id>")
@admin_required
def account(user_id: str) -> Response:
    return jsonify(operators.page(deps(), g.actor, user_id[:FIELD_MAX]).to_dict())


@bp.patch("/accounts/<user_id>")
@admin_required
def update(user_id: str) -> Response:
    data = json_body()
    view = accounts.update_account(deps(), g.actor, user_id[:FIELD_MAX], _text(data, "name"),
                                   _text(data, "role"))
    return jsonify(account=view.to_dict())


@bp.post("/accounts/<user_id>/<action>")
@admin_required
def act(user_id: str, action: str) -> Response | tuple[Response, int]:
    """One action on an account; each asks for a reason (recorded in the audit event)."""
    if action not in ACCOUNT_ACTIONS:
        return jsonify(error="not_found"), 404
    data, uid, d = json_body(), user_id[:FIELD_MAX], deps()
    reason = _text(data, "reason", required=action != "approve") or ""
    if action == "approve":
        return jsonify(account=accounts.approve_identifier(d, g.actor, uid).to_dict())
    if action == "reset-password":
        issued = accounts.reset_password(d, g.actor, uid, reason)
        return jsonify(account=issued.account.to_dict(), initial_password=issued.initial_password)
    if action == "end-sessions":
        return jsonify(ended=operators.end_sessions(d, g.actor, uid, reason))
    if action == "leave":
        when = _moment(data, "leaves_at") or d.clock.now()
        return jsonify(account=accounts.record_departure(d, g.actor, uid, when, reason).to_dict())
    if action == "remote":
        return jsonify(account=accounts.approve_remote(d, g.actor, uid, _date(data, "until"), reason)
                       .to_dict())
    if action == "reset-factor":
        operators.reset_factor(d, g.actor, uid, _text(data, "factor", True) or "", reason)
        return jsonify(account=accounts.show(d, g.actor, uid).to_dict())
    if action == "window":
        opens, closes = _moment(data, "starts_at", True), _moment(data, "ends_at", True)
        assert opens is not None and closes is not None
        return jsonify(account=accounts.set_window(d, g.actor, uid, opens, closes, reason).to_dict())
    change = {"suspend": accounts.suspend, "resume": accounts.resume, "delete": accounts.delete,
              "unlock": accounts.unlock}[action]
    return jsonify(account=change(d, g.actor, uid, reason).to_dict())


@bp.get("/contracts")
@admin_required
def contracts() -> Response:
    return jsonify(contracts=accounts.list_contracts(deps(), g.actor))


@bp.post("/contracts")
@admin_required
def create_contract() -> tuple[Response, int]:
    data = json_body()
    made = accounts.create_contract(deps(), g.actor, _text(data, "contract", True) or "",
                                    _text(data, "company", True) or "",
                                    _date(data, "starts_on", True) or date.min, _date(data, "ends_on"))
    return jsonify(made), 201


@bp.post("/contracts/<number>/period")
@admin_required
def contract_period(number: str) -> Response:
    data = json_body()
    changed = accounts.change_contract_period(deps(), g.actor, number[:FIELD_MAX],
                                              _date(data, "starts_on", True) or date.min,
                                              _date(data, "ends_on"), _text(data, "reason", True) or "")
    return jsonify(changed)


@bp.get("/devices")
@admin_required
def device_list() -> Response:
    return jsonify(devices=[v.to_dict() for v in devices.list_devices(deps(), g.actor)])


@bp.post("/devices")
@admin_required
def device_register() -> tuple[Response, int]:
    data = json_body()
    view = devices.register(deps(), g.actor, _text(data, "device_id", True) or "",
                            _text(data, "public_key", True) or "", _text(data, "kind") or "terminal",
                            _text(data, "description") or "", _text(data, "company"))
    return jsonify(device=view.to_dict()), 201


@bp.post("/devices/<device_id>/<action>")
@admin_required
def device_change(device_id: str, action: str) -> Response | tuple[Response, int]:
    if action not in DEVICE_ACTIONS:
        return jsonify(error="not_found"), 404
    reason = _text(json_body(), "reason", required=True) or ""
    return jsonify(device=devices.change(deps(), g.actor, device_id[:FIELD_MAX], action, reason).to_dict())


def _list(data: dict[str, Any], name: str) -> list[str] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput("field_required", field=name)
    return [v[:FIELD_MAX] for v in value[:100]]


@bp.get("/groups")
@admin_required
def group_list() -> Response:
    found = groups.list_groups(deps(), g.actor, request.args.get("company"))
    return jsonify(groups=[v.to_dict() for v in found])


@bp.post("/groups")
@admin_required
def group_create() -> tuple[Response, int]:
    data = json_body()
    made = groups.create(deps(), g.actor, _text(data, "name", True) or "", _list(data, "factors") or [],
                         _list(data, "services"), _text(data, "company"))
    return jsonify(group=made.to_dict()), 201


@bp.post("/groups/<name>/policy")
@admin_required
def group_policy(name: str) -> Response:
    data = json_body()
    changed = groups.set_policy(deps(), g.actor, name[:FIELD_MAX], _list(data, "factors"),
                                _list(data, "services"), _text(data, "company"))
    return jsonify(group=changed.to_dict())


@bp.post("/groups/<name>/members")
@admin_required
def group_request(name: str) -> Response:
    data = json_body()
    changed = groups.request_member(deps(), g.actor, name[:FIELD_MAX], _text(data, "user_id", True) or "",
                                    _text(data, "company"))
    return jsonify(group=changed.to_dict())


@bp.post("/groups/<name>/members/<user_id>/approve")
@admin_required
def group_approve(name: str, user_id: str) -> Response:
    changed = groups.approve_member(deps(), g.actor, name[:FIELD_MAX], user_id[:FIELD_MAX],
                                    request.args.get("company"))
    return jsonify(group=changed.to_dict())


@bp.delete("/groups/<name>/members/<user_id>")
@admin_required
def group_remove(name: str, user_id: str) -> Response:
    changed = groups.remove_member(deps(), g.actor, name[:FIELD_MAX], user_id[:FIELD_MAX],
                                   request.args.get("company"))
    return jsonify(group=changed.to_dict())


@bp.get("/alerts")
@admin_required
def alert_inbox() -> Response:
    return jsonify(alerts=alerts.inbox(deps(), g.actor, open_only=_flag("all") is not True))


@bp.post("/alerts/<int(max=2147483647):alert_id>/acknowledge")
@admin_required
def alert_acknowledge(alert_id: int) -> Response:
    return jsonify(alert=alerts.acknowledge(deps(), g.actor, alert_id))


@bp.get("/audit")
@admin_required
def events() -> Response:
    limit = min(max(request.args.get("limit", 50, type=int) or 50, 1), 500)
    return jsonify(events=audit.events(deps(), g.actor, request.args.get("subject"), limit))


@bp.get("/clients")
@admin_required
def client_list() -> Response:
    """The clients (`kind`: service or oidc, only those)."""
    found = service_clients.list_clients(deps(), g.actor, request.args.get("kind"))
    return jsonify(clients=[v.to_dict() for v in found])


def _registration(data: dict[str, Any]) -> relying_party.Registration:
    """An OpenID Connect client's registration from the `oidc` object of a request (the
    domain checks each field and names the one that is wrong)."""
    value = data.get("oidc")
    if not isinstance(value, dict):
        raise InvalidInput("field_required", field="oidc")
    refresh = value.get("refresh", False)
    if not isinstance(refresh, bool):
        raise InvalidInput("field_required", field="oidc.refresh")
    jwks = value.get("jwks")
    if jwks is not None and not isinstance(jwks, dict):
        raise InvalidInput("oidc_jwks_invalid")
    return relying_party.parse(_text(value, "name", True) or "", _list(value, "redirect_uris") or [],
                               _text(value, "auth_method") or "client_secret_basic",
                               _list(value, "post_logout_redirect_uris") or [],
                               _text(value, "backchannel_logout_uri") or "", jwks, refresh,
                               _text(value, "subject_type") or "public")


@bp.post("/clients")
@admin_required
def client_create() -> tuple[Response, int]:
    """A new service client (pending approval), or with `oidc` a relying party (and the
    `groups` of its company whose members may use it); its secret is in the answer, once."""
    data = json_body()
    scopes = _list(data, "scopes")
    oidc = _registration(data) if data.get("oidc") is not None else None
    made = service_clients.create(deps(), g.actor, _text(data, "client_id", True) or "", scopes or [],
                                  _text(data, "company"), oidc=oidc, groups=_list(data, "groups"))
    return jsonify(client=made.client.to_dict(), secret=made.secret), 201


@bp.put("/clients/<client_id>/oidc")
@admin_required
def client_registration(client_id: str) -> Response:
    """Replace a relying party's registration (the `oidc` object, whole), with a `reason`."""
    data = json_body()
    changed = service_clients.update(deps(), g.actor, client_id[:FIELD_MAX], _registration(data),
                                     _text(data, "reason") or "")
    return jsonify(client=changed.to_dict())


@bp.post("/clients/<client_id>/<action>")
@admin_required
def client_act(client_id: str, action: str) -> Response | tuple[Response, int]:
    """approve | rotate (a new secret, once) | suspend | resume | revoke (with a `reason`)."""
    if action not in CLIENT_ACTIONS:
        return jsonify(error="not_found"), 404
    data, cid, d = json_body(), client_id[:FIELD_MAX], deps()
    if action == "approve":
        return jsonify(client=service_clients.approve(d, g.actor, cid).to_dict())
    reason = _text(data, "reason", required=action in ("suspend", "revoke")) or ""
    if action == "rotate":
        made = service_clients.rotate(d, g.actor, cid, reason)
        return jsonify(client=made.client.to_dict(), secret=made.secret)
    change = {"suspend": service_clients.suspend, "resume": service_clients.resume,
              "revoke": service_clients.revoke}[action]
    return jsonify(client=change(d, g.actor, cid, reason).to_dict())


# ---- directory sync ([9 of 12], R20) ---------------------------------------------------------


@bp.post("/directory/<company>/sync")
@admin_required
def directory_sync(company: str) -> Response | tuple[Response, int]:
    """Import the company's users and groups from its directory (`full`, else incremental;
    `dry_run`: the report says exactly what would change, nothing is written). A sync that
    stops before removing anything answers 409 `directory_sync_stopped` (errors.py)."""
    data = json_body()
    try:
        report = directories.sync(deps(), g.actor, company[:FIELD_MAX], full=_bool(data, "full"),
                                  dry_run=_bool(data, "dry_run"))
    except directories.SyncStopped as exc:
        return _stopped(exc)
    return jsonify(report=report.to_dict())


def _stopped(exc: directories.SyncStopped) -> tuple[Response, int]:
    """A sync (or export) that stopped before removing anything: 409, its code and message as
    every refusal, and the `reason` (directory_unavailable, too_few_entries, too_many_removals,
    export_failed) and `detail` for a scheduler to act on."""
    return jsonify(error=exc.code, message=exc.message(getattr(g, "lang", "ja")),
                   reason=exc.params.get("reason"), detail=exc.params.get("detail")), status_of(exc)


@bp.post("/directory/<company>/export")
@admin_required
def directory_export(company: str) -> Response | tuple[Response, int]:
    """Publish the company's accounts to its directory (`dry_run`: what would change)."""
    data = json_body()
    try:
        report = directories.export(deps(), g.actor, company[:FIELD_MAX], dry_run=_bool(data, "dry_run"))
    except directories.SyncStopped as exc:
        return _stopped(exc)
    return jsonify(report=report.to_dict())


@bp.get("/directory/runs")
@admin_required
def directory_runs() -> Response:
    """The newest syncs of the companies the caller reaches (query `company`, `limit`)."""
    limit = min(max(request.args.get("limit", 20, type=int) or 20, 1), 500)
    company = request.args.get("company")
    return jsonify(runs=directories.runs(deps(), g.actor, company[:FIELD_MAX] if company else None, limit))


# ---- usage applications ([11 of 12], R21) -----------------------------------------------------
# Uploads: multipart/form-data (`file`, repeated), or JSON {"files": [{"name", "content"}]} with
# the content in base64 (small workbooks). A workbook with errors: 422 with every error by file,
# row and column; nothing imported.


def _invalid(exc: DomainError) -> tuple[Response, int]:
    lang = getattr(g, "lang", "ja")
    errors = exc.errors if isinstance(exc, ApplicationInvalid) else []
    return jsonify(error=exc.code, message=exc.message(lang),
                   errors=[e.to_dict(lang) for e in errors]), 422


def _uploads() -> list[applications.Upload]:
    """The files of the request: multipart `file` fields, or JSON `files` in base64."""
    if request.files:
        return [applications.Upload(f.filename or "", f.read()) for f in request.files.getlist("file")][:50]
    data = json_body()
    files = data.get("files", [{"name": data.get("name"), "content": data.get("content")}])
    if not isinstance(files, list):
        raise InvalidInput("field_required", field="files")
    out = []
    for item in files[:50]:
        if not isinstance(item, dict) or not isinstance(item.get("content"), str):
            raise InvalidInput("field_required", field="content")
        try:
            content = base64.b64decode(item["content"], validate=True)
        except (ValueError, binascii.Error):
            raise InvalidInput("field_required", field="content") from None
        out.append(applications.Upload(str(item.get("name") or "")[:200], content))
    return out


@bp.get("/applications")
@admin_required
def application_list() -> Response:
    rows = applications.list_applications(deps(), g.actor, request.args.get("state"))
    return jsonify(applications=[r.to_dict() for r in rows])


@bp.post("/applications")
@admin_required
def application_submit() -> tuple[Response, int]:
    try:
        views = applications.submit(deps(), g.actor, _uploads())
    except ApplicationInvalid as exc:
        return _invalid(exc)
    return jsonify(applications=[v.to_dict() for v in views]), 201


@bp.get("/applications/template")
@admin_required
def application_template() -> Response:
    kind = (request.args.get("form") or "users")[:16]
    contract = request.args.get("contract")
    data = applications.template(deps(), g.actor, kind, contract[:64] if contract else None)
    return Response(data, mimetype=XLSX, headers={
        "Content-Disposition": f'attachment; filename="dsg-application-{kind}.xlsx"'})


@bp.get("/applications/<int(max=2147483647):application_id>")
@admin_required
def application(application_id: int) -> Response:
    return jsonify(application=applications.get(deps(), g.actor, application_id).to_dict())


@bp.post("/applications/<int(max=2147483647):application_id>/<action>")
@admin_required
def application_act(application_id: int, action: str) -> Response | tuple[Response, int]:
    """check | approve | issue | reject (with a `reason`). `issue` answers with the parameter
    sheet's password, once."""
    d = deps()
    try:
        if action == "reject":
            reason = _text(json_body(), "reason", True) or ""
            return jsonify(application=applications.reject(d, g.actor, application_id, reason).to_dict())
        if action == "issue":
            sheet = applications.issue(d, g.actor, application_id)
            return jsonify(application=applications.get(d, g.actor, application_id).to_dict(),
                           sheet=sheet.to_dict())
        step = {"check": applications.check, "approve": applications.approve}.get(action)
        if step is None:
            return jsonify(error="not_found"), 404
        return jsonify(application=step(d, g.actor, application_id).to_dict())
    except ApplicationInvalid as exc:
        return _invalid(exc)


@bp.post("/rosters/<contract>/<kind>")
@admin_required
def roster_upload(contract: str, kind: str) -> Response | tuple[Response, int]:
    files = _uploads()
    if len(files) != 1:
        raise InvalidInput("field_required", field="file")
    try:
        done = applications.upload_roster(deps(), g.actor, contract[:64], kind[:32], files[0])
    except ApplicationInvalid as exc:
        return _invalid(exc)
    return jsonify(roster=done)


@bp.get("/companies")
@admin_required
def company_list() -> Response:
    return jsonify(companies=applications.list_companies(deps(), g.actor))


@bp.put("/companies/<name>")
@admin_required
def company_set(name: str) -> Response:
    data = json_body()
    row = applications.set_company(deps(), g.actor, name[:FIELD_MAX], _text(data, "subscription", True) or "",
                                   _date(data, "subscribed_on"), _text(data, "folder"))
    return jsonify(company=row)


@bp.put("/contracts/<number>/terms")
@admin_required
def contract_terms(number: str) -> Response:
    data = json_body()
    row = applications.set_terms(deps(), g.actor, number[:FIELD_MAX], _date(data, "concluded_on"),
                                 _text(data, "eligibility"), _text(data, "exemption_note"),
                                 _text(data, "prime"))
    return jsonify(contract=row)
