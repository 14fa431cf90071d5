"""Every error answer of the service, for every blueprint, installed once by `create_app`: a
refusal by the rules (a DomainError, its status by `status_of`), a backend that does not answer
(503, fail closed), palm samples that would not make a template (422), a missing or bad CSRF
token, and HTTP errors (404, 405, 413, ...). Each is JSON for the API and the pages' scripts,
else a page with the message; the same error gets the same answer wherever it happens. (A
refused JSON body, 400 `invalid_json`, is answered by `jsonbody.install`, which the terminal
agent shares.)"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g, jsonify, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from authsvc import faults
from authsvc.domain.errors import DomainError
from authsvc.domain.messages import text
from authsvc.services.registration import MAX_IMAGE_BYTES
from authsvc.web.common import status_of

# Where the message page of a refusal by the rules leads back to: the first endpoint prefix
# that matches. Elsewhere (and for every other error) the page leads back to the logon page.
BACK = (
    ("console.registration", "console.registrations"),
    ("console.records", "console.records"),
    ("console.evidence", "console.records"),
    ("console.consent", "console.consent"),
    ("console.enrol", "console.enrol"),
    ("console.account", "console.account_search"),
    ("console.alert", "console.alert_inbox"),
    ("console.device", "console.device_list"),
    ("console.group", "console.group_list"),
    ("console.contract", "console.contract_list"),
    ("console.client", "console.client_list"),
    ("console.directory", "console.directory_page"),
    ("console.", "console.index"),
    ("register.", "register.index"),
)
# Codes a script cannot act on, answered as the step the user takes next.
SCRIPT_CODES = {"vein_more_samples": "vein_enrol_again"}  # the captures are spent: read again


def lang() -> str:
    return getattr(g, "lang", "ja")  # a CSRF refusal comes before the language is chosen


def wants_json() -> bool:
    """Whether this request came from the API or a page's script (which reads JSON), not from
    a browser following a link or sending a form."""
    path = request.path
    return (path.startswith("/api/") or "/webauthn/" in path or "/vein/" in path
            or path.endswith((".json", "/id")) or request.is_json)


def back_url() -> str | None:
    endpoint = request.endpoint or ""
    return next((url_for(to) for prefix, to in BACK if endpoint.startswith(prefix)), None)


def answer(code: str, status: int) -> tuple[Response | str, int]:
    """An error that is no refusal by the rules, as JSON (error, message) or as the message
    page leading back to the logon page, with `status`."""
    if wants_json():
        return jsonify(error=code, message=text(code, lang())), status
    return render_template("message.html", code=code, back=True), status


def refused(exc: DomainError) -> tuple[Response | str, int]:
    """A refusal by the rules: its code and message, and the status of its kind."""
    status = status_of(exc)
    if wants_json():
        if exc.code in SCRIPT_CODES:
            exc = DomainError(SCRIPT_CODES[exc.code])
        return jsonify(error=exc.code, message=exc.message(lang())), status
    return render_template("message.html", code=exc.code, params=exc.params, back=True,
                           back_url=back_url()), status


def install(app: Flask) -> None:
    """Answer every error of `app` here."""

    @app.errorhandler(DomainError)
    def _refused(exc: DomainError) -> Any:
        return refused(exc)

    @app.errorhandler(CSRFError)
    def _csrf(_exc: CSRFError) -> Any:
        return answer("request_invalid", 400)

    def _unavailable(exc: Exception) -> Any:
        current_app.logger.error("database unavailable: %s", type(exc).__name__)
        return answer("service_unavailable", 503)

    for kind in faults.BACKEND_UNAVAILABLE:
        app.register_error_handler(kind, _unavailable)

    def _unreadable(_exc: Exception) -> Any:
        return answer("vein_not_read", 422)

    for kind in faults.UNREADABLE_SAMPLES:
        app.register_error_handler(kind, _unreadable)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        if exc.code == 413 and request.endpoint == "register.capture_id":
            return jsonify(error="registration_image_too_large", message=text(
                "registration_image_too_large", lang(), limit=MAX_IMAGE_BYTES // (1024 * 1024))), 413
        body, status = answer("request_invalid", exc.code or 400)
        # the error's own headers (Allow on a 405), but not the content type of its HTML page
        return body, status, [h for h in exc.get_headers() if h[0].lower() != "content-type"]
