"""Who is behind a request, through flask-login. The session stays server-side, in our session
store keyed by the token's hash, with every rule it has (absolute lifetime, idle lock, the
console's idle end, surfaces, the account still allowed): the request loader asks
`sessions.current` with the surface's token — the surface's own cookie for pages (common.py),
the bearer token for the API. flask-login keeps nothing: no user id in Flask's session, no
remember-me cookie, no session protection writing to Flask's session; the token's cookie and
its properties stay ours (`common.set_token`).

- `current_user`: a `SessionUser` (a session of this request's surface, locked or not) or
  flask-login's anonymous user; `session_view()` gives the session locked or not.
- `login_required` (flask-login's): an unlocked session of the user's surface.
- `session_required`: any session of the request's surface, locked too.
- `console_required`: a console session that passes the console gate on this request.
- `admin_required` (the administrators' JSON API): `console_required`, or a service client
  authenticating as itself with HTTP Basic (`client_id:secret`, R6) on this request.
Refused, each answers as the views did: the logon page (or the lock screen for a locked
session) on the logon pages, the console's logon for a console page, 401 JSON otherwise."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, g, jsonify, redirect, request, url_for
from flask_login import LoginManager, UserMixin, current_user
from werkzeug.wrappers import Request, Response

from authsvc.domain.messages import text
from authsvc.services import console_gate, service_clients, sessions
from authsvc.services.sessions import CONSOLE, USER, SessionView
from authsvc.web.common import basic_credentials, bearer_token, client, cookie_token, deps, surface

API = "api"  # the blueprint whose token is a bearer token
ADMIN_API = "admin_api"  # the administrators' API: a console session's bearer token, or a
#                          service client's own credentials (HTTP Basic)
CONSOLE_PAGES = "console"  # the blueprint behind console_required


class SessionUser(UserMixin):
    """The session behind the request's token on its surface, locked or not. Authenticated
    (what `login_required` asks) only as an unlocked session of the user's surface: a locked
    one needs MFA again, and a console session is no user session (R8, R16)."""

    def __init__(self, view: SessionView, token: str) -> None:
        self.view = view
        self.token = token

    @property
    def is_authenticated(self) -> bool:
        return not self.view.locked and self.view.surface == USER

    def get_id(self) -> str:
        return self.view.sid


class ServerSideLogin(LoginManager):
    """A LoginManager that knows users only through its request loader: never a user id kept
    in Flask's session and never a remember-me cookie (a `remember_token` a client sends is
    not even read, and none is ever set). The token is our own cookie or bearer token, checked
    on every request; Flask's session is not touched (so no response gains `Vary: Cookie`)."""

    def _load_user(self) -> None:
        self._update_request_context_with_user(self._load_user_from_request(request))

    def _update_remember_cookie(self, response: Response) -> Response:
        return response


login_manager = ServerSideLogin()
login_manager.session_protection = None  # nothing of ours is in Flask's session to protect


@login_manager.request_loader
def _load(req: Request) -> SessionUser | None:
    """The session of the surface's token: the bearer token for the API, else the surface's
    cookie (the console's under /console, the user's elsewhere)."""
    presented = _token(req)
    on = USER if req.blueprint == API else CONSOLE if req.blueprint == ADMIN_API else surface()
    view = sessions.current(deps(), presented, on)
    return SessionUser(view, presented) if view is not None else None


def _token(req: Request) -> str:
    """The bearer token for the APIs, else the surface's cookie."""
    return bearer_token() if req.blueprint in (API, ADMIN_API) else cookie_token()


def session_view() -> SessionView | None:
    """The request's session on its surface, locked or not (None: no session)."""
    user = current_user._get_current_object()  # type: ignore[attr-defined]
    return user.view if isinstance(user, SessionUser) else None


def _refused() -> Any:
    return login_manager.unauthorized()


@login_manager.unauthorized_handler
def _unauthorised() -> Any:
    """What a request without the session it needs gets, as each surface answered it."""
    if request.blueprint == CONSOLE_PAGES:
        if request.method == "GET" and not request.path.endswith(".json"):
            return redirect(url_for("console_logon.index"))
    elif request.blueprint not in (API, ADMIN_API):  # the logon pages, the user's or the console's own
        view = session_view()
        locked = view is not None and view.surface == USER and view.locked
        return redirect(url_for(".lock_screen" if locked else ".index"))
    return jsonify(error="unauthorised", message=text("logon_failed", g.lang)), 401


def session_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Any session of the request's surface, locked too (its state, logoff)."""
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if session_view() is None:
            return _refused()
        return view(*args, **kwargs)
    return wrapped


def console_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """A console page or call: a console session the console gate admits on this request (R8,
    R17; checked on every request, so a role taken away or a request from outside ends it);
    its actor in g.actor."""
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        g.actor = console_gate.admit(deps(), session_view(), _token(request), client())
        if g.actor is None:
            return _refused()
        return view(*args, **kwargs)
    return wrapped


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """A call of the administrators' JSON API: a console session the console gate admits, as
    `console_required`, or a service client authenticating as itself on this request with
    `Authorization: Basic base64(client_id:secret)` (R6: an active client, its scopes bounding
    what it may do, every attempt audited and counted toward its lockout); the actor in g.actor.
    Refused alike (401) either way: no credentials, a bad one, a user's session."""
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        presented = basic_credentials()
        if presented is not None:
            g.actor = service_clients.authenticate(deps(), *presented, client()) if all(presented) \
                else None  # unreadable Basic credentials: no client named, nothing to count
            if g.actor is None:
                return _refused()
            return view(*args, **kwargs)
        return console_required(view)(*args, **kwargs)
    return wrapped


def install(app: Flask) -> None:
    """flask-login on `app`, without its template variable (a page never loads the session
    just by being rendered, not even an error page while the database is down)."""
    login_manager.init_app(app, add_context_processor=False)
