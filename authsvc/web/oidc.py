"""The OpenID provider's endpoints ([8 of 12]): discovery and the JWKS; the authorization
endpoint (code flow, PKCE S256 required), which sends the user through the logon pages (a
logon, an unlock, a fresh logon or only the missing factor) and back; the token endpoint
(codes and refresh tokens; client_secret_basic or private_key_jwt); userinfo; RP-initiated
logout. The protocol is Authlib's; the rules it applies are services/oidc.py's."""

from __future__ import annotations

import logging
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, OAuth2Error
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidRequestError
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode
from authlib.oidc.core.errors import LoginRequiredError
from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import validate_csrf
from joserfc.jwk import KeySet
from werkzeug.wrappers import Response
from wtforms.validators import ValidationError

from authsvc.domain import relying_party as rules
from authsvc.domain.logon_flow import Step
from authsvc.services import logon, oidc, service_clients, sessions
from authsvc.web.common import bearer_token, client, cookie_token, deps, set_token
from authsvc.web.steps import RESUME, next_page

bp = Blueprint("oidc", __name__)


@bp.get("/.well-known/openid-configuration")
def configuration() -> Response:
    d = deps()
    return jsonify(oidc.discovery(d, _issuer()))


@bp.get("/oidc/jwks")
def jwks() -> Response:
    g.cache_control = "public, max-age=300"  # public keys: relying parties may cache them a while
    return jsonify(oidc.jwks(deps()))


def _issuer() -> str:
    return oidc.issuer(deps(), request.host_url)


# ---- Authlib's view of our relying parties, codes and grants -------------------------------


class _Client(ClientMixin):
    """A relying party as Authlib asks about it."""

    def __init__(self, rp: oidc.RelyingParty) -> None:
        self.rp = rp
        self.reg = rp.registration

    def get_client_id(self) -> str:
        return self.rp.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # the request must name one of the registered URIs: no default

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in oidc.SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.reg.redirect_uris  # exactly: no prefix, no trailing slash

    def check_client_secret(self, client_secret: str) -> bool:
        # counted toward the client's lockout and audited like any service client's secret (R6)
        return service_clients.authenticate(deps(), self.rp.client_id, client_secret, client(),
                                            kind="oidc") is not None

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.reg.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code" or (grant_type == "refresh_token" and self.reg.refresh)


class _Code(AuthorizationCodeMixin):
    def __init__(self, grant: oidc.CodeGrant) -> None:
        self.grant = grant
        self.code_challenge = grant.code_challenge
        self.code_challenge_method = grant.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.grant.redirect_uri

    def get_scope(self) -> str:
        return self.grant.scope

    def get_nonce(self) -> str | None:
        return self.grant.nonce

    def get_auth_time(self) -> int:
        return int(self.grant.auth_time.timestamp())

    def get_acr(self) -> str:
        return self.grant.acr

    def get_amr(self) -> list[str]:
        return self.grant.amr


class _Refreshed:
    """The grant a refresh token continues, as Authlib asks about it."""

    def __init__(self, issued: oidc.Issued) -> None:
        self.issued = issued

    def check_client(self, c: _Client) -> bool:
        return c.rp.client_id == self.issued.client_id

    def get_scope(self) -> str:
        return self.issued.scope


def _query_client(client_id: str) -> _Client | None:
    rp = oidc.relying_party(deps(), client_id)
    return _Client(rp) if rp else None


def _save_token(token: dict[str, Any], req: Any) -> None:
    code = getattr(req, "authorization_code", None)
    if isinstance(code, _Code):
        c = code.grant
        issued = oidc.Issued(c.code_hash, c.client_id, c.user_id, c.session_ref, c.scope, c.acr, c.amr,
                             c.auth_time, _issuer())
    else:
        issued = req.refresh_token.issued
    oidc.save_grant(deps(), issued, token["access_token"], token.get("refresh_token"), client())


class _CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(rules.AUTH_METHODS)  # noqa: RUF012 (Authlib's attribute)

    def save_authorization_code(self, code: str, req: Any) -> None:
        data = req.payload.data
        oidc.issue_code(deps(), req.client.rp, req.user, code, req.payload.redirect_uri, req.scope,
                        data.get("nonce") or None, data.get("code_challenge", ""),
                        data.get("code_challenge_method", ""), client())

    def query_authorization_code(self, code: str, c: _Client) -> _Code | None:
        grant = oidc.redeem(deps(), code, c.rp.client_id, client())
        g.oidc_audited = grant is None  # redeem audited the refusal
        return _Code(grant) if grant else None

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        """Nothing: redeeming marked it used (kept until it expires, to recognise a replay)."""

    def authenticate_user(self, authorization_code: _Code) -> oidc.CodeGrant:
        return authorization_code.grant


class _RefreshGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(rules.AUTH_METHODS)  # noqa: RUF012 (Authlib's attribute)
    INCLUDE_NEW_REFRESH_TOKEN = True  # a refresh token is used once; a second use is a theft

    def authenticate_refresh_token(self, refresh_token: str) -> _Refreshed | None:
        issued = oidc.refreshable(deps(), refresh_token, self.request.client.rp.client_id, client())
        g.oidc_audited = issued is None
        return _Refreshed(issued) if issued else None

    def authenticate_user(self, credential: _Refreshed) -> oidc.Issued:
        return credential.issued

    def revoke_old_credential(self, credential: _Refreshed) -> None:
        """Nothing: `refreshable` revoked the old grant when it accepted its refresh token."""


class _S256Only(CodeChallenge):
    """PKCE required, and only S256: a missing or `plain` method is refused."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 (Authlib's class attribute)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        super().validate_code_challenge(grant, redirect_uri)
        if grant.request.payload.data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")


class _IdToken(OpenIDCode):
    """The ID token from services/oidc.py (our keys, our claims); `prompt` is handled by the
    authorization view, which knows the session."""

    def exists_nonce(self, nonce: str, req: Any) -> bool:
        return False  # codes are single-use: a nonce comes back in one ID token only

    def encode_id_token(self, token: dict[str, Any], req: Any) -> str:
        return oidc.id_token(deps(), req.client.rp, req.authorization_code.grant, token["access_token"],
                             _issuer())

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_create_token_response", self.process_token)
        grant.register_hook("after_validate_authorization_request_payload",
                            self.validate_openid_authorization_request)


class _PrivateKeyJwt(JWTBearerClientAssertion):
    CLIENT_AUTH_METHOD = "private_key_jwt"

    def get_audiences(self) -> list[str]:
        return [f"{_issuer()}/oidc/token", _issuer()]

    def resolve_client_public_key(self, c: _Client) -> KeySet:
        return KeySet.import_key_set(c.reg.jwks)

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        return oidc.first_use(deps(), f"{claims.get('sub')}:{jti}")


class _Server(AuthorizationServer):
    def handle_error_response(self, req: Any, error: OAuth2Error) -> Response:
        g.oidc_error = error.error  # for the audit of the refusal (the token view)
        return super().handle_error_response(req, error)


server = _Server()


def install(app: Flask) -> None:
    # Authlib logs the tokens it issues, in clear, at DEBUG ("Issue token {...}"): never at that
    # level here, whatever the root logger's
    logging.getLogger("authlib").setLevel(max(logging.INFO, logging.getLogger("authlib").level))
    d = app.extensions["authsvc"]
    minutes = d.settings.oidc.access_token_minutes * 60
    app.config.update(OAUTH2_REFRESH_TOKEN_GENERATOR=True,
                      OAUTH2_TOKEN_EXPIRES_IN={"authorization_code": minutes, "refresh_token": minutes})
    server.init_app(app, query_client=_query_client, save_token=_save_token)
    server.register_grant(_CodeGrant, [_S256Only(required=True), _IdToken()])
    server.register_grant(_RefreshGrant)
    server.register_client_auth_method(_PrivateKeyJwt.CLIENT_AUTH_METHOD, _PrivateKeyJwt())


# ---- the authorization endpoint ------------------------------------------------------------


@bp.get("/oidc/authorize")
def authorize() -> Any:
    d = deps()
    if (hop := _bounce()) is not None:
        return hop
    try:
        grant = server.get_consent_grant(end_user=None)
    except OAuth2Error as err:
        return _refuse(err)
    rp: oidc.RelyingParty = grant.client.rp
    args = request.args
    max_age = _max_age(args.get("max_age"))
    prompt = set(args.get("prompt", "").split())
    resume = session.get(RESUME) if isinstance(session.get(RESUME), dict) else None
    since = resume["since"] if resume and resume.get("query") == _query() else None
    decision = oidc.decide(d, cookie_token(), rp, max_age, oidc.demanded(args.get("acr_values")),
                           "login" in prompt or max_age == 0, since)
    if decision.need is oidc.Need.OK:
        back_from_logon = session.pop(RESUME, None) is not None
        resp = server.create_authorization_response(grant=grant, grant_user=decision.proof)
        return _page_hop(resp) if back_from_logon else resp
    if decision.need is oidc.Need.REFUSED:
        session.pop(RESUME, None)
        oidc.refusal(d, "authorize", rp.client_id, "group_not_allowed", client(),
                     decision.proof.user_id if decision.proof else "")
        return render_template("message.html", code="oidc_not_allowed",
                               params={"client": rp.registration.name}, back=True,
                               back_url=_error_url(args, "access_denied")), 403
    if "none" in prompt:  # the relying party asked us not to show anything
        session.pop(RESUME, None)
        return _refuse(LoginRequiredError(redirect_uri=args.get("redirect_uri"), state=args.get("state")))
    if decision.need is oidc.Need.STEP_UP:
        state = logon.begin_step_up(d, cookie_token(), decision.vein, decision.terminal)
        if state.step is Step.NO_FACTOR or state.failed:
            session.pop(RESUME, None)
            oidc.refusal(d, "authorize", rp.client_id, "acr_unreachable", client(),
                         decision.proof.user_id if decision.proof else "")
            return _refuse(AccessDeniedError("The requested authentication level cannot be reached.",
                                             redirect_uri=args.get("redirect_uri"), state=args.get("state")))
        if state.step is not Step.DONE:
            _remember(since)
            return redirect(next_page(state.step))
    _remember(since)
    target = {oidc.Need.LOGIN: "login.index", oidc.Need.UNLOCK: "login.lock_screen",
              oidc.Need.REAUTH: "login.reauth"}.get(decision.need, "login.index")
    return redirect(url_for(target))


def _bounce() -> Any:
    """Our session cookie is SameSite=Strict: a navigation from another site does not carry it.
    Such a request is answered with one hop from our own page, which does (the user is not asked
    to log on again for nothing, and a logout finds the session it ends); None otherwise."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site" and "b" not in request.args:
        return render_template("oidc_bounce.html", url=request.full_path + "&b=1"), 200
    return None


def _page_hop(resp: Response) -> Any:
    """A redirect to a relying party, made from a page rather than by a 302: after a logon form,
    a 302 chain to another origin is a form submission the pages' CSP (`form-action 'self'`)
    forbids; a page's navigation is not."""
    location = resp.headers.get("Location") if resp.status_code == 302 else None
    return render_template("oidc_bounce.html", url=location) if location else resp


def _query() -> str:
    return request.query_string.decode("utf-8", "replace").replace("&b=1", "")


def _remember(since: float | None) -> None:
    """Note the request to come back to once the logon pages are done (for the logon's
    lifetime): from then on, a logon at or after `since` counts as the fresh one it asked for."""
    now = deps().clock.now().timestamp()
    session[RESUME] = {"query": _query(), "since": since or now,
                       "until": now + deps().settings.mfa.logon_minutes * 60}


def _max_age(value: str | None) -> int | None:
    try:
        return max(0, int(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _error_url(args: Any, error: str) -> str | None:
    uri = args.get("redirect_uri")
    if not uri:
        return None
    params = [("error", error)] + ([("state", args["state"])] if args.get("state") else [])
    return add_params_to_uri(uri, params)


def _refuse(err: OAuth2Error) -> Any:
    """An authorization request refused: back to the relying party with the OAuth error when
    its redirect URI is the registered one, else a page (never a redirect to an unchecked URI)."""
    args = request.args
    oidc.refusal(deps(), "authorize", str(args.get("client_id", ""))[:64], err.error, client())
    uri = getattr(err, "redirect_uri", None)
    if uri:
        return server.handle_error_response(None, err)
    return render_template("message.html", code="oidc_request_invalid", params={"error": err.error}), 400


# ---- token, userinfo, logout ---------------------------------------------------------------


@bp.post("/oidc/token")
def token() -> Response:
    g.oidc_audited = False
    resp = server.create_token_response()
    if resp.status_code >= 400 and not g.oidc_audited:
        oidc.refusal(deps(), "token", str(request.form.get("client_id") or _basic_id() or ""),
                     str(g.get("oidc_error", "invalid_request")), client())
    return resp


def _basic_id() -> str:
    auth = request.authorization
    return str(auth.username or "")[:64] if auth and auth.type == "basic" else ""


@bp.route("/oidc/userinfo", methods=["GET", "POST"])
def userinfo() -> Response | tuple[Response, int]:
    claims = oidc.userinfo(deps(), bearer_token())
    if claims is None:
        resp = jsonify(error="invalid_token")
        resp.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return resp, 401
    return jsonify(claims)


@bp.route("/oidc/logout", methods=["GET", "POST"])
def logout() -> Any:
    """RP-initiated logout: with an ID token of ours naming this session, at once; without one,
    after the user confirms (a page cannot log anyone off by being loaded). Back to a registered
    post-logout URI only."""
    if request.method == "GET" and (hop := _bounce()) is not None:
        return hop
    d = deps()
    values = request.values
    hint = oidc.logout_hint(d, values.get("id_token_hint", "")[:8192])
    back = oidc.post_logout_uri(d, hint, str(values.get("client_id", ""))[:64],
                                str(values.get("post_logout_redirect_uri", ""))[:600],
                                str(values.get("state", ""))[:500])
    ref = oidc.session_ref(d, cookie_token())
    confirmed = request.method == "POST" and values.get("confirm") == "1" and _csrf_ok()
    if ref and not confirmed and not (hint and hint.sid == ref):
        return render_template("oidc_logout.html", back=back, state=values.get("state", "")[:500],
                               hint=values.get("id_token_hint", "")[:8192],
                               client_id=values.get("client_id", "")[:64],
                               uri=values.get("post_logout_redirect_uri", "")[:600] if back else "")
    if ref:
        sessions.logoff(d, cookie_token(), client())
    page = (render_template("oidc_bounce.html", url=back) if back  # from a page: see _page_hop
            else render_template("message.html", code="logged_off", back=True))
    resp = current_app.make_response((page, 200))
    set_token(resp, None)
    return resp


def _csrf_ok() -> bool:
    """The confirmation form's CSRF token (this blueprint is exempt: its other POSTs are the
    relying parties' own, authenticated otherwise)."""
    try:
        validate_csrf(request.form.get("csrf_token", ""))
    except ValidationError:
        return False
    return True
