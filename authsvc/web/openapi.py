"""The OpenAPI 3.1 description of the JSON API, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from authsvc.web.jsonbody import MAX_DEPTH

_ERROR = {"type": "object", "required": ["error", "message"],
          "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}
_STATE = {
    "type": "object", "required": ["state", "token", "options"],
    "properties": {
        "state": {"type": "string",
                  "enum": ["change_password", "enrol", "second_factor", "terminal", "done"],
                  "description": "The next step; `terminal`: prove the registered terminal "
                  "(/logon/terminal/challenge, then /logon/terminal); `done`: `token` is the session token."},
        "token": {"type": "string", "description": "Present it as `Authorization: Bearer` next. "
                  "A new token is issued at every logon and unlock."},
        "options": {"type": "array", "items": {"type": "string", "enum": ["vein", "totp", "webauthn"]},
                    "description": "Second factors that can complete this step."},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _body(**props: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, **_json({"type": "object", "required": list(props), "properties": props})}


_STR = {"type": "string", "maxLength": 4096}
_REFUSED = {"description": "Refused. The same status and body for every reason (unknown user, "
            "wrong password or factor, locked, suspended, expired).", **_json(_ERROR)}
_STEP = {"200": {"description": "The logon moved on.", **_json(_STATE)}, "401": _REFUSED,
         "403": {"description": "The password was right but no second factor can finish the logon: "
                 "`second_factor_unavailable` (ask an operator), `vein_disabled` (the palm was "
                 "disabled after failures: ask an operator to re-enrol it) or `vein_registration_required` "
                 "(register the palm in the browser, at /register/). No token.", **_json(_ERROR)}}
_AUTH = [{"bearer": []}]
_INVALID_JSON = (f"`invalid_json`: the body is not one JSON object in UTF-8, nested at most {MAX_DEPTH} "
                 "deep, without duplicate keys or NaN/Infinity. (Over 64 KiB: 413.)")


def _op(summary: str, responses: dict[str, Any], body: dict[str, Any] | None = None,
        auth: bool = True) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body:
        op["requestBody"] = body
        op["responses"] = {"400": {"description": _INVALID_JSON, **_json(_ERROR)}, **responses}
    if auth:
        op["security"] = _AUTH
    return op


# ---- /api/v1/admin: a console session's token (POST /api/v1/logon with "surface": "console"),
# or a service client's own credentials (HTTP Basic, R6) ------------------------------------

_ADMIN_AUTH = [{"bearer": []}, {"basic": []}]
# The refusals every administrative call may answer, described once (components.responses)
# and referred to from each operation: the document stays small enough for a client's parser.
ADMIN_RESPONSES = {
    "AdminUnauthorised": {
        "description": "`unauthorised`: no console session that the console gate admits (a user's "
        "session is none), and no active service client with its current secret (wrong secrets "
        "count toward the client's lockout).", **_json(_ERROR)},
    "AdminForbidden": {
        "description": "Your role may not do this (`forbidden`), or not to your own account "
        "(`own_account`), or you assigned the ID you would approve (`four_eyes`).", **_json(_ERROR)},
    "AdminNotFound": {
        "description": "No such record in your company (another company's answers the same).",
        **_json(_ERROR)},
    "AdminConflict": {"description": "Not in this state (e.g. `bad_transition`); a directory sync "
                      "that stopped before removing anything: `directory_sync_stopped`, with its "
                      "`reason` and `detail` besides `error` and `message`.", **_json(_ERROR)},
}
_ADMIN_REFUSED = {status: {"$ref": f"#/components/responses/{name}"} for status, name in (
    ("401", "AdminUnauthorised"), ("403", "AdminForbidden"), ("404", "AdminNotFound"),
    ("409", "AdminConflict"))}
_OK = {"200": {"description": "Done.", **_json({"type": "object"})}}
_MADE = {"201": {"description": "Created.", **_json({"type": "object"})}}
_REASON = _body(reason=_STR)


_URIS = {"type": "array", "items": _STR, "maxItems": 10}
_REGISTRATION = {
    "type": "object", "required": ["name", "redirect_uris"],
    "description": "An OpenID Connect client's registration ([8 of 12]). URIs: absolute https "
    "(http only on the loopback), at most 500 characters, no fragment, no user info; redirect URIs "
    "are matched exactly. A wrong field answers 400 naming it (`oidc_redirect_uri_invalid`, ...).",
    "properties": {
        "name": {"type": "string", "maxLength": 100},
        "redirect_uris": {**_URIS, "minItems": 1},
        "post_logout_redirect_uris": _URIS,
        "backchannel_logout_uri": _STR,
        "auth_method": {"type": "string", "enum": ["client_secret_basic", "private_key_jwt"],
                        "default": "client_secret_basic"},
        "jwks": {"type": "object", "description": "A JWK set of 1 to 5 public signing keys "
                 "(private_key_jwt only; a private key is refused)."},
        "refresh": {"type": "boolean", "default": False},
        "subject_type": {"type": "string", "enum": ["public", "pairwise"], "default": "public"},
    },
}
_OIDC = {"$ref": "#/components/schemas/OidcRegistration"}


_FLAG = {"type": "boolean", "default": False}
_DIRECTORY_SYNC = {"required": False, **_json({"type": "object", "properties": {"full": _FLAG,
                                                                                 "dry_run": _FLAG}})}
_DIRECTORY_EXPORT = {"required": False, **_json({"type": "object", "properties": {"dry_run": _FLAG}})}
# (a 409 is AdminConflict's; a stopped sync's body adds `reason` and `detail` to `error` and `message`)
_STOP_OK = {"200": {"description": "Done: the `report`.", **_json({"type": "object", "properties": {
    "report": {"type": "object"}}})}}


def _path(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]


def _admin(summary: str, ok: dict[str, Any], body: dict[str, Any] | None = None,
           params: tuple[str, ...] = ()) -> dict[str, Any]:
    op = {**_op(summary + " Scoped to your company (agency operators: every company); audited.",
                {**ok, **_ADMIN_REFUSED}, body), "security": _ADMIN_AUTH}
    return {**op, "parameters": _path(*params)} if params else op


# ---- usage applications ([11 of 12], R21) --------------------------------------------------------
_FILES = {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
    "application/json": {"schema": {"type": "object", "properties": {"files": {
        "type": "array", "items": {"type": "object", "required": ["name", "content"], "properties": {
            "name": _STR, "content": {"type": "string", "contentEncoding": "base64"}}}}}}}}}
_ROW_ERRORS = {"422": {"description": "`application_invalid`: nothing was imported; `errors` lists "
                       "every error with its `file`, `row`, `column`, `code` and `message`.",
                       **_json({"type": "object", "properties": {
                           "error": {"type": "string"}, "message": {"type": "string"},
                           "errors": {"type": "array", "items": {"type": "object"}}}})}}
APPLICATION_PATHS: dict[str, Any] = {
    "/api/v1/admin/applications": {
        "get": _admin("Usage applications of your company and its subcontractors (query `state`).", _OK),
        "post": _admin("Submit application workbooks (.xlsx, the form of /applications/template) "
                       "together: all or none. Formulas, macros, external links, hidden sheets or "
                       "rows, oversized or zip-bomb files are refused.", {**_MADE, **_ROW_ERRORS},
                       _FILES)},
    "/api/v1/admin/applications/template": {
        "get": _admin("The blank form (query `form`: users | access | media; `contract` to fill "
                      "in).", {"200": {"description": "An .xlsx workbook."}})},
    "/api/v1/admin/applications/{application_id}": {
        "get": _admin("One application with its rows.", _OK, params=("application_id",))},
    "/api/v1/admin/applications/{application_id}/{action}": {
        "post": _admin("check (the procuring office) | approve (the agency; access rights: the data "
                       "manager) | issue (the agency: the accounts made, the encrypted parameter sheet "
                       "stored; `sheet.password` answered once) | reject (`reason`). Never by the "
                       "submitter.", {**_OK, **_ROW_ERRORS}, None, ("application_id", "action"))},
    "/api/v1/admin/rosters/{contract}/{kind}": {
        "post": _admin("Replace the contract's roster (kind handlers | system_users) with one "
                       ".xlsx or .csv file: 氏名 and 生年月日 and/or 社員番号 (the agency, the "
                       "procuring office).", {**_OK, **_ROW_ERRORS}, _FILES, ("contract", "kind"))},
    "/api/v1/admin/companies": {
        "get": _admin("The companies' subscription states and folders.", _OK)},
    "/api/v1/admin/companies/{name}": {
        "put": _admin("Record a company's subscription state (`subscription`: applying | complete | "
                      "withdrawn, `subscribed_on`) and its `folder` (the agency).", _OK,
                      _body(subscription=_STR), ("name",))},
    "/api/v1/admin/contracts/{number}/terms": {
        "put": _admin("Record a contract's `concluded_on`, `eligibility` (clause | exemption, with "
                      "`exemption_note`) and `prime` contract (the agency).", _OK,
                      {"required": True, **_json({"type": "object"})}, ("number",))},
}

ADMIN_PATHS: dict[str, Any] = {
    "/api/v1/admin/accounts": {
        "get": _admin("Search accounts: query `company`, `contract`, `status`, `role`, `name` "
                      "(part of the person's name), `locked` (1/0).", _OK),
        "post": _admin("Assign an ID to a new account (pending approval); the initial password "
                       "is in the answer, once.", _MADE,
                       _body(user_id=_STR, name=_STR, contract=_STR, role=_STR))},
    "/api/v1/admin/accounts/{user_id}": {
        "get": _admin("The account's page: state, lock state, factors, sessions, logon history "
                      "with the real reasons.", _OK, params=("user_id",)),
        "patch": _admin("Change the name or the role.", _OK, _body(name=_STR, role=_STR),
                        ("user_id",))},
    "/api/v1/admin/accounts/{user_id}/{action}": {
        "post": _admin("approve | suspend | resume | delete | unlock | reset-password | "
                       "end-sessions | leave (`leaves_at`, default now) | remote (`until`, a "
                       "date; none withdraws) | window (`starts_at`, `ends_at`: a maintenance "
                       "account) | reset-factor (`factor`: totp, webauthn or vein; the user "
                       "enrols it again). Every action but approve needs a `reason`.", _OK, _REASON,
                       ("user_id", "action"))},
    "/api/v1/admin/contracts": {
        "get": _admin("Contracts.", _OK),
        "post": _admin("Register a contract (the agency).", _MADE,
                       _body(contract=_STR, company=_STR, starts_on=_STR, ends_on=_STR))},
    "/api/v1/admin/contracts/{number}/period": {
        "post": _admin("Change a contract's period (the agency): `starts_on`, `ends_on` (none: "
                       "open-ended), `reason`.", _OK, _body(starts_on=_STR, reason=_STR),
                       ("number",))},
    "/api/v1/admin/devices": {
        "get": _admin("Registered devices.", _OK),
        "post": _admin("Register a device with its Ed25519 public key.", _MADE,
                       _body(device_id=_STR, public_key=_STR, kind=_STR, description=_STR,
                             company=_STR))},
    "/api/v1/admin/devices/{device_id}/{action}": {
        "post": _admin("suspend | resume | revoke, with a `reason`.", _OK, _REASON,
                       ("device_id", "action"))},
    "/api/v1/admin/groups": {
        "get": _admin("The company's groups with their factor policy, services and members.", _OK),
        "post": _admin("Create a group: `name`, `factors` (second factors its members' logons may "
                       "use), `services` (DSG services its members may use).", _MADE,
                       _body(name=_STR, factors={"type": "array", "items": _STR}))},
    "/api/v1/admin/groups/{name}/policy": {
        "post": _admin("Change a group's `factors` or `services` (data managers, system "
                       "administrators).", _OK, None, ("name",))},
    "/api/v1/admin/groups/{name}/members": {
        "post": _admin("Request membership for `user_id` (effective once another person "
                       "approves).", _OK, _body(user_id=_STR), ("name",))},
    "/api/v1/admin/groups/{name}/members/{user_id}/approve": {
        "post": _admin("Approve a requested membership (not your own request).", _OK,
                       params=("name", "user_id"))},
    "/api/v1/admin/groups/{name}/members/{user_id}": {
        "delete": _admin("Take the account out of the group.", _OK, params=("name", "user_id"))},
    "/api/v1/admin/alerts": {
        "get": _admin("The alert inbox, newest first: open alerts (`all=1`: acknowledged too).", _OK)},
    "/api/v1/admin/alerts/{alert_id}/acknowledge": {
        "post": _admin("Acknowledge an alert (you have looked at it and act on it).", _OK,
                       params=("alert_id",))},
    "/api/v1/admin/clients": {
        "get": _admin("Service clients (R6): processes with identifiers of their own, and OpenID "
                      "Connect clients (`kind` oidc, with their registration and the `groups` "
                      "whose members may use them). Query `kind` (service or oidc): those only.", _OK),
        "post": _admin("Create a service client (pending until a system administrator other than "
                       "you approves it): `client_id`, `scopes` (accounts:read, accounts:write, "
                       "directory:sync, audit:read, devices:write; within your own rights), "
                       "`company` (default yours; none: the agency's, by the agency only). The "
                       "`secret` is in the answer, once: it authenticates the client as "
                       "`Authorization: Basic base64(client_id:secret)`. With an `oidc` "
                       "registration instead of scopes: an OpenID Connect client (its secret opens "
                       "only the token endpoint, never this API; none for private_key_jwt), and "
                       "`groups` of its company whose members may use it (an agency client takes "
                       "none: each company adds it to its groups' `services`).", _MADE,
                       {"required": True, **_json({
                           "type": "object", "required": ["client_id"],
                           "properties": {"client_id": _STR, "scopes": {"type": "array", "items": _STR},
                                          "company": _STR, "oidc": _OIDC,
                                          "groups": {"type": "array", "items": _STR}}})})},
    "/api/v1/admin/clients/{client_id}/oidc": {
        "put": _admin("Replace an OpenID Connect client's registration as a whole (`oidc`), with "
                      "an optional `reason`. To private_key_jwt: its secret is wiped at once; from "
                      "private_key_jwt to client_secret_basic: it has no secret, and is refused, "
                      "until a `rotate`. A service client has no registration (409 "
                      "`client_not_oidc`).", _OK,
                      {"required": True, **_json({"type": "object", "required": ["oidc"],
                                                  "properties": {"oidc": _OIDC, "reason": _STR}})},
                      ("client_id",))},
    "/api/v1/admin/clients/{client_id}/{action}": {
        "post": _admin("approve (a system administrator, not its creator) | rotate (a new "
                       "`secret`, once; the old one is refused at once; 409 `client_no_secret` "
                       "for an OpenID Connect client with private_key_jwt) | suspend | resume | "
                       "revoke (final). suspend and revoke need a `reason`.", _OK, _REASON,
                       ("client_id", "action"))},
    "/api/v1/admin/audit": {
        "get": _admin("Audit events, newest first: query `subject`, `limit` (a company's "
                      "administrators name a subject of their company).", _OK)},
    "/api/v1/admin/directory/{company}/sync": {
        "post": _admin("Import the company's users and groups from its directory ([9 of 12], R20): "
                       "`full` (every entry; default false: those changed since the last sync), "
                       "`dry_run` (default false: write nothing, the `report` lists exactly what would "
                       "be created, updated, linked, resumed, suspended, deleted, the groups, "
                       "memberships and skipped entries with why). Imported accounts are pending, "
                       "without a password. Needs the right to manage accounts (a service client: "
                       "scope directory:sync). 404 `directory_not_configured` for a company without "
                       "a directory (another company's answers the same); 409 "
                       "`directory_sync_stopped` with its `reason` (directory_unavailable, "
                       "too_few_entries, too_many_removals) and `detail` when it stopped before "
                       "removing anything (an alert is raised).", _STOP_OK, _DIRECTORY_SYNC,
                       ("company",))},
    "/api/v1/admin/directory/{company}/export": {
        "post": _admin("Publish the company's accounts and their state to its directory: added, "
                       "changed, or marked disabled; never a password or its hash; idempotent. "
                       "`dry_run`: the `report` lists what would change. 409 "
                       "`directory_export_not_configured` without an export_base; 409 "
                       "`directory_sync_stopped` (`reason` export_failed) when the directory "
                       "fails.", _STOP_OK, _DIRECTORY_EXPORT, ("company",))},
    "/api/v1/admin/directory/runs": {
        "get": _admin("The newest directory syncs of your companies, newest first: query "
                      "`company`, `limit` (default 20, at most 500).", _OK)},
    **APPLICATION_PATHS,
}


SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "authsvc logon API", "version": "1",
             "description": "Multi-factor logon for the Defense Security Gateway. Messages are "
             "Japanese; add `?lang=en` for English."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                       "basic": {"type": "http", "scheme": "basic",
                                                 "description": "A service client (R6): "
                                                 "client_id and secret, /api/v1/admin only."}},
                   "schemas": {"Error": _ERROR, "State": _STATE, "OidcRegistration": _REGISTRATION},
                   "responses": ADMIN_RESPONSES},
    "paths": {
        "/api/v1/logon": {"post": _op("Start a logon with ID and password (`surface`: \"console\" "
                                      "for an administrator's console session, for /api/v1/admin).",
                                      _STEP, _body(user_id=_STR, password=_STR), auth=False)},
        "/api/v1/logon/password": {"post": _op(
            "Change the initial password (state change_password).",
            {**_STEP, "400": {"description": "`password_rejected`: the new password breaks rules; "
                              "each is named. Or " + _INVALID_JSON,
                              **_json({"oneOf": [{"type": "object", "properties": {
                                  "error": {"type": "string"},
                                  "reasons": {"type": "array", "items": {"type": "string"}},
                                  "messages": {"type": "array", "items": {"type": "string"}}}},
                                  _ERROR]})}},
            _body(new_password=_STR))},
        "/api/v1/logon/totp/enrol": {"post": _op(
            "A new TOTP secret (state enrol); confirm it with /logon/totp.",
            {"200": {"description": "Shown once.", **_json({"type": "object", "properties": {
                "secret": {"type": "string"}, "uri": {"type": "string"}}})}, "401": _REFUSED})},
        "/api/v1/logon/totp": {"post": _op(
            "A TOTP code (enrol: confirms the new secret; second_factor: checks it). A code is "
            "accepted once only.", _STEP, _body(code={"type": "string", "maxLength": 10}))},
        "/api/v1/logon/webauthn/options": {"post": _op(
            "WebAuthn options (enrol: registration; second_factor: assertion), JSON form.",
            {"200": {"description": "Single-use challenge.", **_json({"type": "object", "properties": {
                "challenge_id": {"type": "string"}, "publicKey": {"type": "object"}}})}, "401": _REFUSED})},
        "/api/v1/logon/webauthn": {"post": _op(
            "The credential (PublicKeyCredential.toJSON()) for a challenge.", _STEP,
            _body(challenge_id={"type": "string"}, credential={"type": "object"}))},
        "/api/v1/logon/vein/challenge": {"post": _op(
            "A single-use capture challenge (state second_factor, option vein) for the terminal "
            "agent at `agent_url`, which captures the palm and signs the capture.",
            {"200": {"description": "Challenge.", **_json({"type": "object", "properties": {
                "challenge_id": {"type": "string"}, "challenge": {"type": "string"},
                "expires_at": {"type": "string"}, "agent_url": {"type": "string"}}})},
             "401": _REFUSED})},
        "/api/v1/logon/vein": {"post": _op(
            "The signed capture record from the terminal agent, for a challenge.", _STEP,
            _body(challenge_id={"type": "string"}, capture={"type": "object"}))},
        "/api/v1/logon/terminal/challenge": {"post": _op(
            "A single-use challenge (state terminal), bound to this logon, for the terminal agent at "
            "`agent_url`: its POST /attest {challenge} answers {proof, device_id}, the challenge "
            "signed with the registered terminal's device key (purpose `terminal`).",
            {"200": {"description": "Challenge.", **_json({"type": "object", "properties": {
                "challenge_id": {"type": "string"}, "challenge": {"type": "string"},
                "expires_at": {"type": "string"}, "agent_url": {"type": "string"}}})},
             "401": _REFUSED})},
        "/api/v1/logon/terminal": {"post": _op(
            "The terminal agent's proof for a challenge: a registered, active terminal serving the "
            "user's company (R12). Counted toward the lockout like a factor.", _STEP,
            _body(challenge_id={"type": "string"}, proof={"type": "object"}))},
        "/api/v1/session": {"get": _op("The session: user, factors, locked, remote.", {
            "200": {"description": "Session.", **_json({"type": "object"})},
            "401": {"description": "No session.", **_json(_ERROR)}})},
        "/api/v1/session/lock": {"post": _op("Lock the session (leaving the desk).", {
            "200": {"description": "Locked."}, "401": {"description": "No session."}})},
        "/api/v1/session/unlock": {"post": _op(
            "Unlock: the password, then a second factor through /logon/totp or /logon/webauthn "
            "with the same token.", _STEP, _body(password=_STR))},
        "/api/v1/logoff": {"post": _op("End the session on the server.", {
            "200": {"description": "Ended."},
            "401": {"description": "`unauthorised`: no valid session token; nothing ended.",
                    **_json(_ERROR)}})},
        "/api/v1/history": {"get": _op("The user's own logon history.", {
            "200": {"description": "Newest first."}, "401": {"description": "No session."}})},
        "/api/v1/sessions": {"get": _op("The user's active sessions.", {
            "200": {"description": "Sessions."}, "401": {"description": "No session."}})},
        "/api/v1/sessions/{sid}": {"delete": {
            **_op("End one of the user's sessions.", {"200": {"description": "Ended."},
                                                     "404": {"description": "Not one of yours."}}),
            "parameters": [{"name": "sid", "in": "path", "required": True, "schema": {"type": "string"}}]}},
        "/api/v1/openapi.json": {"get": _op("This document.", {"200": {"description": "OpenAPI 3.1."}},
                                            auth=False)},
        **ADMIN_PATHS,
    },
}
