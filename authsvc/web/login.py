"""The user's logon surface: ID + password, the forced change of an initial password (R2),
one generic failure message for every refusal (R5)."""

from __future__ import annotations

import time

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from authsvc.domain.errors import DomainError, PasswordRejected
from authsvc.domain.roles import Actor
from authsvc.messages import text
from authsvc.services import Deps, logon, passwords

bp = Blueprint("login", __name__)
CHANGE_WINDOW_S = 600  # how long after the password step the forced change may be made
FIELD_MAX = 4096


def _deps() -> Deps:
    return current_app.extensions["authsvc"]


def _field(name: str) -> str:
    return (request.form.get(name) or "")[:FIELD_MAX]


def _client() -> tuple[str, str]:
    return request.headers.get("User-Agent", "")[:100], (request.remote_addr or "")[:100]


@bp.get("/")
def index() -> str:
    return render_template("login.html")


@bp.post("/login")
def do_login() -> Response | tuple[str, int]:
    terminal, source = _client()
    step = logon.start(_deps(), _field("user_id"), _field("password"), terminal, source)
    session.clear()  # a fresh session after every attempt: no fixation
    if step.outcome is logon.Outcome.PASSWORD_CHANGE_REQUIRED:
        session["pwchange"] = {"user_id": step.user_id, "at": time.time()}
        return redirect(url_for("login.password_form"))
    if step.outcome is logon.Outcome.PASSWORD_OK:
        # Fail closed: a logon needs a second factor (R10), which arrives with issue [2 of 8].
        return render_template("message.html", code="second_factor_unavailable"), 403
    return render_template("login.html", error="logon_failed"), 401


def _pending_change() -> str | None:
    pending = session.get("pwchange")
    if not pending or time.time() - pending.get("at", 0) > CHANGE_WINDOW_S:
        return None
    return pending["user_id"]


@bp.get("/password")
def password_form() -> Response | str:
    if _pending_change() is None:
        return redirect(url_for("login.index"))
    return render_template("password.html")


@bp.post("/password")
def password_change() -> Response | tuple[str, int] | str:
    user_id = _pending_change()
    if user_id is None:
        session.clear()
        return render_template("login.html", error="change_expired"), 401
    new, again = _field("new_password"), _field("confirm_password")
    if new != again:
        return render_template("password.html", errors=[text("pw_mismatch", g.lang)]), 400
    terminal, source = _client()
    try:
        passwords.change_password(_deps(), Actor(user_id, terminal=terminal, source=source),
                                  user_id, new)
    except PasswordRejected as exc:
        params = {**_rule_params(), **exc.params}
        errors = [text(code, g.lang, **params) for code in exc.reasons]
        return render_template("password.html", errors=errors), 400
    except DomainError:
        session.clear()
        return render_template("login.html", error="change_expired"), 401
    session.clear()
    return render_template("message.html", code="password_changed", back=True)


def _rule_params() -> dict[str, int]:
    s = _deps().settings.password
    return {"min_length": s.min_length, "max_length": s.max_length,
            "min_classes": s.min_classes, "history": s.history}


def register_errors(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(_exc: CSRFError) -> tuple[str, int]:
        return render_template("message.html", code="request_invalid", back=True), 400

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _db_down(exc: Exception) -> tuple[str, int]:
        current_app.logger.error("database error: %s", type(exc).__name__)
        return render_template("message.html", code="service_unavailable"), 503

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[str, int]:
        return render_template("message.html", code="request_invalid", back=True), exc.code or 400
