"""The Flask application factory: binds the services built by bootstrap, the blueprints,
flask-login over our server-side sessions (auth.py), every error answer (errors.py), CSRF
protection, language choice and strict security headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, g, redirect, request
from flask_wtf.csrf import CSRFProtect

from authsvc.bootstrap import build, instance_key
from authsvc.domain.messages import LANGS, label, text
from authsvc.services import Deps, health
from authsvc.services.registration import MAX_IMAGE_BYTES
from authsvc.settings import LOOPBACK_HOSTS, Settings, load_settings
from authsvc.web import auth, errors, jsonbody

csrf = CSRFProtect()

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _to_public_loopback_name(settings: Settings) -> Callable[[], Response | None]:
    """A page opened at http://127.0.0.1:8080/ when server.public_url says localhost (or the
    reverse) goes to the same page at the public URL: the browser's origin must be the one
    WebAuthn and the terminal agent accept, or the palm step fails as "reader unreachable".
    Only page views (GET or HEAD asking for HTML), on the public URL's port; not the APIs."""
    public = urlsplit(settings.server.public_url)
    default = {"http": 80, "https": 443}.get(public.scheme)
    public_port = public.port or default

    def redirect_page() -> Response | None:
        if public.hostname not in LOOPBACK_HOSTS or request.method not in ("GET", "HEAD") \
                or not any(kind == "text/html" for kind, _q in request.accept_mimetypes):
            return None  # (a browser's page view names text/html; a scraper's */* does not)
        asked = urlsplit(f"//{request.host}")
        try:
            asked_port = asked.port or default
        except ValueError:
            return None
        if asked.hostname in LOOPBACK_HOSTS and asked.hostname != public.hostname \
                and asked_port == public_port:
            query = request.query_string.decode("ascii", "replace")
            target = settings.server.public_url + request.path + (f"?{query}" if query else "")
            return redirect(target, 302)
        return None

    return redirect_page


# the uploads of usage applications and rosters: larger than a form (each file is checked again)
APPLICATION_UPLOADS = frozenset({"admin_api.application_submit", "admin_api.roster_upload",
                                 "console.application_upload", "console.roster_upload"})


def create_app(settings: Settings | None = None, deps: Deps | None = None) -> Flask:
    settings = settings or (deps.settings if deps else load_settings())
    if deps is None:  # a service start (gunicorn's workers): its configuration is audited
        deps = build(settings, upgrade=False)
        health.config_started(deps)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=instance_key(settings, "secret.key", "AUTHSVC_SECRET_KEY"),
        SESSION_COOKIE_NAME="authsvc",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Strict",
        MAX_CONTENT_LENGTH=64 * 1024,  # logon forms are small; larger bodies are refused (413)
        WTF_CSRF_TIME_LIMIT=3600,
    )
    app.extensions["authsvc"] = deps
    app.before_request(_to_public_loopback_name(settings))  # 127.0.0.1 vs localhost: one origin
    jsonbody.install(app)  # every JSON body bounded; a refused one answers 400 invalid_json
    errors.install(app)  # every other error answer, for every blueprint
    auth.install(app)  # current_user, login_required, console_required

    @app.before_request
    def _image_upload_limit() -> None:
        # before the CSRF check reads the body: the photo ID still may be larger than a form
        if request.endpoint == "register.capture_id":
            request.max_content_length = MAX_IMAGE_BYTES + 1
        elif request.endpoint in APPLICATION_UPLOADS:  # workbooks and rosters ([11 of 12])
            request.max_content_length = settings.applications.max_bytes * 8 + 64 * 1024

    csrf.init_app(app)

    from authsvc.web import admin_api, api, console, login, oidc, register

    app.register_blueprint(login.bp)
    app.register_blueprint(login.bp, url_prefix="/console/logon", name="console_logon")
    app.register_blueprint(register.bp)
    app.register_blueprint(console.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin_api.bp)
    app.register_blueprint(oidc.bp)
    for bearer in (api.bp, admin_api.bp):
        csrf.exempt(bearer)  # bearer tokens, no cookies: nothing for a cross-site request to ride on
    # the relying parties' own requests (token, userinfo) authenticate otherwise; the logout
    # confirmation checks its CSRF token itself (web/oidc.py)
    csrf.exempt(oidc.bp)
    from authsvc.web import metrics  # GET /metrics: Prometheus, internal networks only

    app.register_blueprint(metrics.bp)
    csrf.exempt(metrics.bp)  # a scraper has no session and no form
    oidc.install(app)
    from authsvc.web import pages  # the frame of every page: notice, help, dates, favicon

    pages.install(app)

    @app.before_request
    def _choose_language() -> None:
        # Japanese unless English was chosen explicitly (R18), whatever the browser's
        # Accept-Language says: a shared terminal's browser settings are not the user's choice.
        asked = request.args.get("lang") or request.cookies.get("lang")
        g.lang = asked if asked in LANGS else "ja"

    # the logon page may talk to the terminal agent on the user's own machine (palm vein)
    csp = SECURITY_HEADERS["Content-Security-Policy"] + f"; connect-src 'self' {settings.vein.agent_url}"

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.update(SECURITY_HEADERS)
        if "cache_control" in g:  # a public document may say how long it may be cached
            resp.headers["Cache-Control"] = g.cache_control
        resp.headers["Content-Security-Policy"] = csp
        if request.args.get("lang") in LANGS:
            resp.set_cookie("lang", request.args["lang"], samesite="Strict", secure=True,
                            httponly=True, max_age=365 * 86400)
        return resp

    @app.context_processor
    def _i18n() -> dict[str, Any]:
        lang = getattr(g, "lang", "ja")
        other = "en" if lang == "ja" else "ja"
        return {"t": lambda code, **kw: text(code, lang, **kw), "lang": lang, "other_lang": other,
                "tl": lambda prefix, value: label(prefix, value, lang)}

    return app
