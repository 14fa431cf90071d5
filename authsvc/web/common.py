"""What the logon pages and the JSON API share: the services, the client's address and
terminal, and the session token (a cookie for pages, a bearer token for the API)."""

from __future__ import annotations

from flask import current_app, g, request

from authsvc.domain import network
from authsvc.services import Deps
from authsvc.services.logon import Client

TOKEN_COOKIE = "authsvc_session"  # noqa: S105 (a cookie name)
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


def cookie_token() -> str:
    return request.cookies.get(TOKEN_COOKIE, "")[:100]


def bearer_token() -> str:
    auth = request.headers.get("Authorization", "")
    return auth[7:107].strip() if auth.startswith("Bearer ") else ""
