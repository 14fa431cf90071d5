"""What the logon pages and the JSON API share: the services, the client's address and
terminal, and the session token (a cookie for pages, a bearer token for the API)."""

from __future__ import annotations

import base64
import binascii

from flask import current_app, g, request
from werkzeug.wrappers import Response

from authsvc.domain import network
from authsvc.domain.errors import DomainError, Forbidden, InvalidInput, NotFound
from authsvc.services import Deps
from authsvc.services.sessions import CONSOLE, USER, Client

TOKEN_COOKIE = "authsvc_session"  # noqa: S105 (a cookie name)
CONSOLE_COOKIE = "authsvc_console"  # the console's own session (R8), sent only under /console
CONSOLE_PATH = "/console"
FIELD_MAX = 4096


def deps() -> Deps:
    return current_app.extensions["authsvc"]


def client() -> Client:
    if "client" not in g:
        s = deps().settings.network
        address = network.client_address(
            request.remote_addr or "", request.headers.get("X-Forwarded-For"),
            network.networks(s.trusted_proxies))
        g.client = Client(
            terminal=request.headers.get("User-Agent", "")[:100], source=address,
            remote=network.is_remote(address, network.networks(s.internal)))
    return g.client


def field(name: str) -> str:
    value = request.form.get(name)
    return value[:FIELD_MAX] if isinstance(value, str) else ""


def surface() -> str:
    """Which surface this request is on: the console (its own session) or the user's pages."""
    return CONSOLE if request.path.startswith(CONSOLE_PATH + "/") else USER


def cookie_token() -> str:
    return request.cookies.get(CONSOLE_COOKIE if surface() == CONSOLE else TOKEN_COOKIE, "")[:100]


def set_token(resp: Response, token: str | None) -> None:
    """Hand the browser the surface's session token, or take it away (None)."""
    name, path = (CONSOLE_COOKIE, CONSOLE_PATH) if surface() == CONSOLE else (TOKEN_COOKIE, "/")
    if token:
        resp.set_cookie(name, token, secure=True, httponly=True, samesite="Strict", path=path)
    else:
        resp.delete_cookie(name, path=path)


def bearer_token() -> str:
    auth = request.headers.get("Authorization", "")
    return auth[7:107].strip() if auth.startswith("Bearer ") else ""


BASIC_MAX = 512  # the longest Basic credentials read (a client ID is at most 64, a secret 43)


def basic_credentials() -> tuple[str, str] | None:
    """(client_id, secret) of `Authorization: Basic base64(client_id:secret)`; ("", "") for a
    Basic header that cannot be read (refused, as no client's attempt); None without one (then
    a bearer token may be presented instead)."""
    auth = request.headers.get("Authorization", "")
    if auth[:6].lower() != "basic ":
        return None
    try:
        raw = base64.b64decode(auth[6:].strip()[:BASIC_MAX], validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return "", ""
    client_id, colon, secret = raw.partition(":")
    return (client_id, secret) if colon and client_id and secret else ("", "")


def status_of(exc: DomainError) -> int:
    """The HTTP status of a refusal by the rules: 400 for input that can never be right (a
    malformed ID, an unknown status, a period that ends before it starts), 409 for a request
    the current state refuses."""
    if isinstance(exc, InvalidInput):
        return 413 if exc.code == "registration_image_too_large" else 400
    if isinstance(exc, Forbidden | NotFound):
        return 403 if isinstance(exc, Forbidden) else 404
    return 400 if exc.code.endswith(("_invalid", "_unknown", "_required")) else 409
