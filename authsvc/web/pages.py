"""What every page shares beyond its blueprint: the frame's texts from config (the authorised-use
notice, help and contact), the language link that keeps the page, dates as a person reads them,
terminals by name, the favicon and the help page."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, current_app, g, render_template, request, send_from_directory, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Response

from authsvc.domain.calendar import JST
from authsvc.web.common import CONSOLE_PATH, deps

bp = Blueprint("pages", __name__)

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chromium/", "Chromium"),
            ("HeadlessChrome/", "Chrome"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
SYSTEMS = (("Windows", "Windows"), ("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"),
           ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))
DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def when(value: datetime | str | None, lang: str | None = None) -> str:
    """A moment as a person reads it, in Japan time: `2026年11月30日 08:38` in Japanese,
    `30 Nov 2026 08:38 JST` in English; "" for none. Takes an aware datetime or its ISO text
    (a naive one is taken as Japan time)."""
    if value is None or value == "":
        return ""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    moment = (moment if moment.tzinfo else moment.replace(tzinfo=JST)).astimezone(JST)
    if (lang or getattr(g, "lang", "ja")) == "ja":
        return f"{moment.year}年{moment.month}月{moment.day}日 {moment:%H:%M}"
    return f"{moment.day} {MONTHS[moment.month - 1]} {moment.year} {moment:%H:%M} JST"


def terminal_name(value: str | None, lang: str | None = None) -> str:
    """A terminal as a person knows it: a registered terminal by its device ID (what the logon
    records once the terminal is proven), a browser by its name and system ("Chrome (Linux)")
    rather than a User-Agent cut off mid-word."""
    raw = (value or "").strip()
    if not raw:
        return ""
    if DEVICE_ID.fullmatch(raw):
        return raw
    browser = next((name for mark, name in BROWSERS if mark in raw), "")
    system = next((name for mark, name in SYSTEMS if mark in raw), "")
    if not browser and not system:
        return raw[:40]
    ja = (lang or getattr(g, "lang", "ja")) == "ja"
    label = "ブラウザ" if ja else "browser"
    return f"{browser or label}（{system}）" if ja and system else \
        f"{browser or label} ({system})" if system else browser


# never carried into the language link: a relying party's logout target and token hint are
# checked by the logout page, not repeated in its links (an unregistered URI stays off the page)
NOT_CARRIED = frozenset({"lang", "post_logout_redirect_uri", "id_token_hint"})


def lang_url(other: str) -> str:
    """The same page in the other language: this GET's path and query with `lang` replaced; for
    the answer to a form, the page the form belongs to (its GET of the same path), else the
    surface's start page."""
    path = request.path
    kept = request.args.items(multi=True) if request.method == "GET" else ()
    args = [(k, v) for k, v in kept if k not in NOT_CARRIED]
    if request.method != "GET" and not _has_get(path):
        path = url_for("console.index" if path.startswith(CONSOLE_PATH + "/") else "login.index")
    return f"{path}?{urlencode([*args, ('lang', other)])}"


def _has_get(path: str) -> bool:
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        adapter.match(path, method="GET")
    except RequestRedirect:
        return True
    except HTTPException:
        return False
    return True


@bp.get("/favicon.ico")
def favicon() -> Response:
    g.cache_control = "public, max-age=86400"
    return send_from_directory(current_app.static_folder or "static", "favicon.svg",
                               mimetype="image/svg+xml")


@bp.get("/help")
def help_page() -> str:
    return render_template("help.html")


def install(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_template_filter(when, "when")
    app.add_template_filter(terminal_name, "terminal")

    @app.context_processor
    def _frame() -> dict[str, Any]:
        ui = deps().settings.ui
        ja = getattr(g, "lang", "ja") == "ja"
        return {"ui_notice": ui.notice_ja if ja else ui.notice_en,
                "ui_contact": ui.contact_ja if ja else ui.contact_en,
                "ui_contact_url": ui.contact_url, "ui_help_url": ui.help_url or url_for("pages.help_page"),
                "lang_url": lang_url, "console_page": request.path.startswith(CONSOLE_PATH + "/")}
