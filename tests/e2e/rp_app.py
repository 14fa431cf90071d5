"""A real relying party for the browser tests of the OpenID provider ([8 of 12]): a small Flask
app whose protocol is Authlib's Flask OAuth client (discovery, authorization code with PKCE
S256 and a nonce, client_secret_basic, the ID token's signature checked against the provider's
JWKS, its nonce, issuer and audience), which also checks `acr`, `amr` and `auth_time` itself,
keeps its own server-side sessions keyed by the ID token's `sid`, ends them when a
back-channel logout token (verified with joserfc) names that `sid`, and logs out through the
provider (RP-initiated logout).

It runs on http://127.0.0.1:<port> (waitress in a thread, `running`): another site than the
provider's http://localhost:<port>, as a real relying party is. The test reads what it received
(verified logins, logout tokens, refusals, its live sessions) in-process, from `RelyingParty`.

Time: the relying party's clock is the test's (`now`), the provider's FixedClock, as a
deployed relying party and provider share real time."""

from __future__ import annotations

import html
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from authlib.oidc.core import CodeIDToken
from flask import Flask, redirect, request, session
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from tests.e2e.browser_support import serve

EVENT = "http://schemas.openid.net/event/backchannel-logout"
LEEWAY = 120  # seconds of clock skew accepted, as Authlib's default
PASSED = ("max_age", "acr_values", "prompt")  # what /login passes on to the provider


@dataclass
class Login:
    """One logon the relying party accepted: the verified ID token and what it asked for."""

    claims: dict[str, Any]
    header: dict[str, Any]
    id_token: str
    nonce: str
    asked: dict[str, str]


@dataclass
class Received:
    """What reached the relying party, for the test to read (guarded by `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    logins: list[Login] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)       # what /cb turned away, and why
    logout_tokens: list[dict[str, Any]] = field(default_factory=list)  # verified ones' claims
    bad_logout_tokens: list[str] = field(default_factory=list)         # why each was refused
    sessions: dict[str, Login] = field(default_factory=dict)  # its own sessions, by `sid`
    ended: list[str] = field(default_factory=list)          # sids ended by a logout token
    logout_states: list[str] = field(default_factory=list)  # RP-initiated logouts sent
    returned_states: list[str] = field(default_factory=list)  # ... and back, state checked


def endpoints(base: str) -> dict[str, Any]:
    """The registration's URIs of a relying party at `base` (relying_party.parse's arguments)."""
    return {"redirect_uris": [base + "/cb"], "post_logout_redirect_uris": [base + "/logged-out"],
            "backchannel_logout_uri": base + "/backchannel"}


class RelyingParty:
    def __init__(self, provider: str, client_id: str, client_secret: str, base: str,
                 now: Callable[[], float] = time.time) -> None:
        self.provider = provider.rstrip("/")
        self.client_id = client_id
        self.base = base
        self.now = now
        self.got = Received()
        self.app = self._app(client_secret)

    # ---- what the test reads ------------------------------------------------------------

    @property
    def logins(self) -> list[Login]:
        with self.got.lock:
            return list(self.got.logins)

    @property
    def logout_tokens(self) -> list[dict[str, Any]]:
        with self.got.lock:
            return list(self.got.logout_tokens)

    @property
    def refusals(self) -> list[str]:
        with self.got.lock:
            return list(self.got.refusals)

    def active(self) -> dict[str, Login]:
        with self.got.lock:
            return dict(self.got.sessions)

    def cached_kids(self) -> set[str]:
        """The key IDs of the provider's JWKS as the relying party last fetched it."""
        jwks = self.client.server_metadata.get("jwks") or {"keys": []}
        return {k.get("kid") for k in jwks["keys"]}

    def url(self, path: str = "/") -> str:
        return self.base + path

    # ---- verification -------------------------------------------------------------------

    def _claims_cls(self) -> type[CodeIDToken]:
        clock = self.now

        class IdToken(CodeIDToken):
            def validate(self, now: Any = None, leeway: int = 0) -> None:
                super().validate(int(clock()), leeway)

        return IdToken

    def verify(self, token: str, typ: str = "JWT") -> Any:
        """The token's signature checked with the provider's JWKS (fetched again once when its
        key ID is not among the keys known: the provider has rotated its key); its header's
        `typ` must be `typ`. Returns joserfc's Token."""
        algs = self.client.load_server_metadata().get("id_token_signing_alg_values_supported")
        try:
            found = jwt.decode(token, KeySet.import_key_set(self.client.fetch_jwk_set()), algorithms=algs)
        except InvalidKeyIdError:
            found = jwt.decode(token, KeySet.import_key_set(self.client.fetch_jwk_set(force=True)),
                               algorithms=algs)
        if found.header.get("typ") != typ:
            raise JoseError(f"typ {found.header.get('typ')!r}, not {typ!r}")
        return found

    def verify_id_token(self, token: str) -> dict[str, Any]:
        """An ID token received earlier, verified again now (signature, iss, aud, exp)."""
        found = self.verify(token)
        self._registry().validate(found.claims)
        return dict(found.claims)

    def _registry(self, **extra: Any) -> JWTClaimsRegistry:
        issuer = self.client.load_server_metadata()["issuer"]
        return JWTClaimsRegistry(now=lambda: int(self.now()), leeway=LEEWAY,
                                 iss={"essential": True, "value": issuer},
                                 aud={"essential": True, "value": self.client_id},
                                 exp={"essential": True}, iat={"essential": True}, **extra)

    def verify_logout_token(self, token: str) -> dict[str, Any]:
        """Back-Channel Logout 1.0 §2.6: signed by the provider, iss, aud (this client), iat,
        exp, jti (once), the back-channel logout event, no nonce; and a sid (this relying
        party keeps its sessions by sid)."""
        found = self.verify(token, typ="logout+jwt")
        claims = dict(found.claims)
        self._registry(jti={"essential": True}, sid={"essential": True},
                       events={"essential": True}).validate(claims)
        events = claims["events"]
        if not isinstance(events, dict) or not isinstance(events.get(EVENT), dict):
            raise JoseError("no back-channel logout event")
        if "nonce" in claims:
            raise JoseError("a logout token has no nonce")
        with self.got.lock:
            if any(t["jti"] == claims["jti"] for t in self.got.logout_tokens):
                raise JoseError("jti seen before")
        return claims

    def _check(self, claims: dict[str, Any], asked: dict[str, str], nonce: str) -> str | None:
        """What this relying party demands beyond what Authlib checked; None when satisfied."""
        levels = self.client.load_server_metadata().get("acr_values_supported") or []
        acr = claims.get("acr")
        if acr not in levels:
            return f"acr {acr!r} unknown"
        wanted = [a for a in asked.get("acr_values", "").split() if a in levels]
        if wanted and levels.index(acr) < min(levels.index(a) for a in wanted):
            return f"acr {acr!r} below {wanted}"
        amr = claims.get("amr")
        if not isinstance(amr, list) or not amr or not all(isinstance(m, str) for m in amr):
            return f"amr {amr!r}"
        auth_time, now = claims.get("auth_time"), self.now()
        if not isinstance(auth_time, int) or auth_time > now + LEEWAY:
            return f"auth_time {auth_time!r}"
        if asked.get("max_age") and now - auth_time > int(asked["max_age"]) + LEEWAY:
            return f"auth_time {auth_time} older than max_age {asked['max_age']}"
        if claims.get("nonce") != nonce:
            return "nonce"
        if not isinstance(claims.get("sid"), str) or not claims["sid"]:
            return "no sid"
        return None

    # ---- the app ------------------------------------------------------------------------

    def _app(self, client_secret: str) -> Flask:
        app = Flask("relying_party")
        app.config.update(SECRET_KEY=secrets.token_bytes(32), SESSION_COOKIE_NAME="rp_session")
        oauth = OAuth(app)
        self.client = oauth.register(
            "dsg", client_id=self.client_id, client_secret=client_secret,
            server_metadata_url=self.provider + "/.well-known/openid-configuration",
            client_kwargs={"scope": "openid profile", "code_challenge_method": "S256",
                           "token_endpoint_auth_method": "client_secret_basic"})
        got = self.got

        @app.get("/")
        def index() -> str:
            """Who is signed in here, and a login link passing on what this page was asked
            (`/?acr_values=…` links to `/login?acr_values=…`)."""
            asked = {k: request.args[k] for k in PASSED if request.args.get(k)}
            link = html.escape("/login" + ("?" + urlencode(asked) if asked else ""))
            sid = session.get("sid")
            with got.lock:
                mine = got.sessions.get(sid) if sid else None
            if mine is None:
                return f'<p id="anonymous">not signed in</p><a id="login" href="{link}">log in</a>'
            sub = html.escape(str(mine.claims["sub"]))
            return (f'<p id="who">signed in as <span id="sub">{sub}</span></p>'
                    f'<a id="login" href="{link}">log in again</a> <a id="logout" href="/logout">log out</a>')

        @app.get("/login")
        def login() -> Any:
            nonce = secrets.token_urlsafe(16)
            asked = {k: request.args[k] for k in PASSED if request.args.get(k)}
            session["pending"] = {"nonce": nonce, "asked": asked}
            return self.client.authorize_redirect(self.base + "/cb", nonce=nonce, **asked)

        @app.get("/cb")
        def callback() -> Any:
            pending = session.pop("pending", None) or {}
            if "error" in request.args:  # the provider's refusal, sent back here
                with got.lock:
                    got.refusals.append(request.args["error"])
                return f'<p id="refused">{html.escape(request.args["error"])}</p>', 403
            try:
                token = self.client.authorize_access_token(claims_cls=self._claims_cls(), leeway=LEEWAY)
            except (OAuthError, JoseError) as exc:
                with got.lock:
                    got.refusals.append(f"{type(exc).__name__}: {exc}")
                return '<p id="refused">invalid</p>', 400
            claims = dict(token["userinfo"])
            problem = self._check(claims, pending.get("asked", {}), pending.get("nonce", ""))
            if problem:
                with got.lock:
                    got.refusals.append(problem)
                return f'<p id="refused">{html.escape(problem)}</p>', 403
            header = dict(self.verify(token["id_token"]).header)
            done = Login(claims, header, token["id_token"], pending.get("nonce", ""),
                         pending.get("asked", {}))
            with got.lock:
                got.logins.append(done)
                got.sessions[claims["sid"]] = done
            session["sid"] = claims["sid"]
            return redirect("/")

        @app.get("/logout")
        def logout() -> Any:
            sid = session.pop("sid", None)
            with got.lock:
                mine = got.sessions.pop(sid, None) if sid else None
            if mine is None:
                return redirect("/")
            resp = self.client.logout_redirect(post_logout_redirect_uri=self.base + "/logged-out",
                                               id_token_hint=mine.id_token)
            state = parse_qs(urlsplit(resp.headers["Location"]).query)["state"][0]
            with got.lock:
                got.logout_states.append(state)
            return resp

        @app.get("/logged-out")
        def logged_out() -> Any:
            try:
                self.client.validate_logout_response()
            except OAuthError as exc:
                return f'<p id="refused">{html.escape(str(exc))}</p>', 400
            with got.lock:
                got.returned_states.append(request.args["state"])
            return '<p id="logged-out">logged out</p><a id="login" href="/login">log in</a>'

        @app.post("/backchannel")
        def backchannel() -> Any:
            token = request.form.get("logout_token", "")
            try:
                claims = self.verify_logout_token(token)
            except (JoseError, ValueError, KeyError, TypeError) as exc:
                with got.lock:
                    got.bad_logout_tokens.append(f"{type(exc).__name__}: {exc}")
                return {"error": "invalid_request"}, 400, {"Cache-Control": "no-store"}
            with got.lock:
                got.logout_tokens.append(claims)
                if got.sessions.pop(claims["sid"], None) is not None:
                    got.ended.append(claims["sid"])
            return "", 200, {"Cache-Control": "no-store"}

        return app


@contextmanager
def running(sock: socket.socket, provider: str, client_id: str, client_secret: str,
            now: Callable[[], float] = time.time) -> Iterator[RelyingParty]:
    """The relying party on `sock` (bound already: its URIs were registered with its port)
    until the block ends."""
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    rp = RelyingParty(provider, client_id, client_secret, base, now)
    with serve(rp.app, sock, "relying-party"):
        yield rp
