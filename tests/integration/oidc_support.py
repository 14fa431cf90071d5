"""What the OpenID provider's tests share: a relying party registered and approved, a user of a
group allowed to use it, logged on through the pages (Flask's test client), and the protocol's
requests (authorize with PKCE, token, userinfo)."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet

from authsvc.domain import relying_party
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, groups, service_clients
from tests.conftest import COMPANY
from tests.integration.support import CHOSEN, add_contract, next_totp, totp_worker

BASE = "https://localhost"
REDIRECT = "http://127.0.0.1:9/cb"
GROUP = "設計部"
SYSADMIN = Actor("sysadm", frozenset({Role.SYSTEM_ADMIN}), company=COMPANY)


@dataclass
class Party:
    client_id: str
    secret: str


def register(deps: Deps, operator: Actor, account_admin: Actor, client_id: str = "rp1",
             groups_: tuple[str, ...] = (GROUP,), **reg: Any) -> Party:
    """An approved relying party of the tests' company, usable by the members of `groups_`
    (the company's contract and the groups are made when missing)."""
    if COMPANY not in _companies(deps):
        add_contract(deps, operator)
    for name in groups_:
        ensure_group(deps, operator, account_admin, name)
    fields: dict[str, Any] = {"name": "設計図書サービス", "redirect_uris": [REDIRECT]} | reg
    made = service_clients.create(deps, account_admin, client_id, [], None,
                                  oidc=relying_party.parse(**fields), groups=list(groups_))
    service_clients.approve(deps, SYSADMIN, client_id)
    return Party(client_id, made.secret)


def _companies(deps: Deps) -> set[str]:
    with deps.uow(read_only=True) as uow:
        return {c.company for c in uow.contracts()}


def ensure_group(deps: Deps, operator: Actor, account_admin: Actor, group: str) -> None:
    if group not in {g.name for g in groups.list_groups(deps, operator, COMPANY)}:
        groups.create(deps, account_admin, group, ["totp", "vein", "webauthn"], [], COMPANY)


def member(deps: Deps, operator: Actor, account_admin: Actor, user_id: str, group: str = GROUP) -> None:
    """`user_id` an approved member of `group` (created when missing)."""
    ensure_group(deps, operator, account_admin, group)
    groups.request_member(deps, account_admin, group, user_id, COMPANY)
    groups.approve_member(deps, SYSADMIN, group, user_id, COMPANY)


def csrf(web, path: str = "/") -> str:
    page = web.get(path, base_url=BASE).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def post(web, path: str, data: dict[str, str], token: str | None = None):
    return web.post(path, base_url=BASE, data={**data, "csrf_token": token or csrf(web)},
                    headers={"Referer": BASE + "/"})


def log_on(web, deps: Deps, user_id: str, secret: str, password: str = CHOSEN[0]) -> None:
    """A password + TOTP logon through the pages; the test client keeps the session cookie."""
    resp = post(web, "/login", {"user_id": user_id, "password": password})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert resp.headers["Location"].endswith("/factor")
    resp = post(web, "/factor/totp", {"code": next_totp(deps, secret)}, csrf(web, "/factor"))
    assert resp.status_code == 302, resp.get_data(as_text=True)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(web, client_id: str = "rp1", redirect_uri: str = REDIRECT, **extra: str):
    """GET the authorization endpoint; returns (response, verifier)."""
    verifier, challenge = pkce()
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
              "scope": "openid profile", "state": "st-1", "nonce": "n-1", "code_challenge": challenge,
              "code_challenge_method": "S256"} | extra
    params = {k: v for k, v in params.items() if v is not None}
    return web.get("/oidc/authorize?" + urlencode(params), base_url=BASE), verifier


def location(resp) -> str:
    """Where the provider sends the browser: a redirect, or (back from the logon pages) a page
    that moves on by itself (the pages' CSP forbids a form's redirect chain to another origin)."""
    if resp.status_code == 302:
        return resp.headers["Location"]
    found = re.search(r'http-equiv="refresh" content="0;url=([^"]+)"', resp.get_data(as_text=True))
    assert resp.status_code == 200 and found, resp.get_data(as_text=True)
    return html.unescape(found.group(1))


def code_of(resp) -> str:
    loc = urlsplit(location(resp))
    query = parse_qs(loc.query)
    assert "code" in query, loc
    assert query["state"] == ["st-1"]
    return query["code"][0]


def token(web, party: Party, code: str, verifier: str | None, redirect_uri: str = REDIRECT):
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        form["code_verifier"] = verifier
    return web.post("/oidc/token", base_url=BASE, data=form, auth=(party.client_id, party.secret))


def refresh(web, party: Party, refresh_token: str):
    return web.post("/oidc/token", base_url=BASE, auth=(party.client_id, party.secret),
                    data={"grant_type": "refresh_token", "refresh_token": refresh_token})


def userinfo(web, access_token: str):
    return web.get("/oidc/userinfo", base_url=BASE, headers={"Authorization": f"Bearer {access_token}"})


def verified(web, id_token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(web.get("/oidc/jwks", base_url=BASE).get_json())
    return dict(jwt.decode(id_token, keys).claims)


def worker(deps: Deps, operator: Actor, account_admin: Actor) -> str:
    """kato, with a TOTP app (its secret returned), a member of GROUP."""
    secret = totp_worker(deps, operator, account_admin)
    member(deps, operator, account_admin, "kato")
    return secret
