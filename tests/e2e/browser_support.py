"""Support for the browser tests: the real service on a loopback port (waitress in a thread,
embedded SQLite, a FixedClock the test moves), headless Chromium from the system, a WebAuthn
virtual authenticator over the DevTools protocol, and page steps shared by the tests.

The browser goes to http://localhost:<port>: Chromium treats localhost as a secure context, so
the service's `Secure` cookies are kept and WebAuthn works, with RP ID "localhost" and the origin
configured exactly as `webauthn.origins`."""

from __future__ import annotations

import base64
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect
from waitress.server import create_server

from adapters.clock import FixedClock
from adapters.vein import open_reader
from authsvc.bootstrap import build
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, accounts, devices, vein
from authsvc.web import create_app
from tests.conftest import START, make_settings

# The browser's waits (not timed assertions): the machines are shared and noisy, and one palm
# logon under a loaded CI once needed more than Playwright's default 5 s to reach /home.
expect.set_options(timeout=15_000)

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 10_000  # a step that has not happened in 10 s will not happen

USER_ID = "sato"
COMPANY = "株式会社テスト"  # the company of the user's contract C-1 (create_user)
NEW_PASSWORD = "Vt8$wQ3#nRz7"
# the agency operator: contracts and terminals that serve every company, and approvals anywhere
OPERATOR = Actor("ops1", frozenset({Role.AGENCY_OPERATOR}), terminal="console-1", source="127.0.0.1")


# ---- the browser ----------------------------------------------------------------------------


def launch_chromium(playwright: Playwright, extra_args: tuple[str, ...] = ()) -> Browser:
    """The system Chromium, headless. Missing is a failure, never a skip: the tests exist to
    prove the pages work in a real browser."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium is required at {CHROMIUM} for the browser tests "
                    "(install the distribution's chromium package); it is missing", pytrace=False)
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=[*LAUNCH_ARGS, *extra_args])


@dataclass
class Authenticator:
    """A CTAP2 platform authenticator with user verification, simulated by Chromium."""

    cdp: Any
    authenticator_id: str

    def credentials(self) -> list[dict[str, Any]]:
        return self.cdp.send("WebAuthn.getCredentials",
                             {"authenticatorId": self.authenticator_id})["credentials"]

    def clear(self) -> None:
        self.cdp.send("WebAuthn.clearCredentials", {"authenticatorId": self.authenticator_id})


def virtual_authenticator(context: BrowserContext, page: Page) -> Authenticator:
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    made = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True}})
    return Authenticator(cdp, made["authenticatorId"])


# ---- the service ----------------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    deps: Deps
    clock: FixedClock

    def totp(self, secret: str) -> str:
        """The code an authenticator app would show at the server's (test) time."""
        return pyotp.TOTP(secret).at(self.clock.now())


@contextmanager
def live_server(instance_dir: Path, **sections: dict[str, Any]) -> Iterator[LiveServer]:
    """The service on a free loopback port until the block ends; then the listening socket,
    every connection and the worker threads are closed, and the database engine disposed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    url = f"http://localhost:{port}"
    clock = FixedClock(START)
    settings = make_settings(str(instance_dir), **{
        "webauthn": {"rp_id": "localhost", "origins": [url]}, **sections})
    deps = build(settings, clock=clock)
    server = create_server(create_app(deps=deps), sockets=[sock], threads=4,
                           clear_untrusted_proxy_headers=True)
    thread = threading.Thread(target=server.run, name=f"waitress-{port}", daemon=True)
    thread.start()
    try:
        yield LiveServer(url, deps, clock)
    finally:
        _stop(server, thread)
        deps.engine.dispose()


def _stop(server: Any, thread: threading.Thread) -> None:
    def close_all() -> None:  # runs in the server's own loop thread
        for dispatcher in list(server._map.values()):
            dispatcher.close()

    try:
        server.trigger.pull_trigger(close_all)
    except OSError:  # the loop has ended already and closed its trigger (seen once in CI)
        for dispatcher in list(server._map.values()):
            dispatcher.close()
    thread.join(timeout=10)
    server.task_dispatcher.shutdown(timeout=5)
    assert not thread.is_alive(), "the test server did not stop"


def create_user(deps: Deps, user_id: str = USER_ID) -> str:
    """An approved account on a new contract; returns its initial password (R2)."""
    accounts.create_contract(deps, OPERATOR, "C-1", COMPANY, deps.clock.now().date(), None)
    issued = accounts.create_account(deps, OPERATOR, user_id, "佐藤 花子", "C-1", "user")
    accounts.approve_identifier(deps, OPERATOR, user_id)
    return issued.initial_password


# ---- page steps -----------------------------------------------------------------------------


def path_is(page: Page, path: str) -> None:
    """Wait until the browser shows `path` (query string ignored)."""
    expect(page).to_have_url(re.compile(rf"^http://localhost:\d+{re.escape(path)}(\?.*)?$"))


def logon(page: Page, user_id: str, password: str) -> None:
    page.goto("/")
    page.fill("#user_id", user_id)
    page.fill("#password", password)
    page.click("#logon")


def change_password(page: Page, new: str, confirm: str | None = None) -> None:
    path_is(page, "/password")
    page.fill("#new_password", new)
    page.fill("#confirm_password", new if confirm is None else confirm)
    page.click("#change")


def enter_code(page: Page, code: str) -> None:
    page.fill("#code", code)
    page.click("#confirm")


def enrol_totp(page: Page, server: LiveServer) -> str:
    """At /enrol: choose TOTP, read the secret shown under the QR code, confirm a code."""
    path_is(page, "/enrol")
    page.click("#enrol-totp")
    path_is(page, "/enrol/totp")
    expect(page.locator(".qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
    enter_code(page, server.totp(secret))
    path_is(page, "/home")
    return secret


def first_logon_with_totp(page: Page, server: LiveServer, initial: str) -> str:
    logon(page, USER_ID, initial)
    change_password(page, NEW_PASSWORD)
    return enrol_totp(page, server)


def logoff(page: Page) -> None:
    page.click("#logoff")
    expect(page.locator("p.message")).to_be_visible()
    page.goto("/home")
    path_is(page, "/")  # the session is gone on the server


def is_png(path: Path, min_bytes: int = 5 * 1024) -> bool:
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > min_bytes


def japanese_glyphs_render(page: Page, selector: str) -> bool:
    """True when the font of `selector` has Japanese glyphs: two different kana drawn on a
    canvas in that font differ. Without a CJK font both come out as the same missing-glyph
    box (what a screenshot would show as "tofu")."""
    return bool(page.evaluate("""(selector) => {
        const font = getComputedStyle(document.querySelector(selector)).font;
        const draw = (ch) => {
            const canvas = document.createElement("canvas");
            canvas.width = canvas.height = 64;
            const ctx = canvas.getContext("2d");
            ctx.font = font.replace(/\\d+(\\.\\d+)?px/, "40px");
            ctx.fillText(ch, 4, 48);
            return Array.from(ctx.getImageData(0, 0, 64, 64).data).join(",");
        };
        const blank = draw(" ");
        const a = draw("ロ"), b = draw("グ");
        return a !== blank && b !== blank && a !== b;
    }""", selector))


# ---- the terminal agent (palm vein) ----------------------------------------------------------


def loopback_socket() -> socket.socket:
    """A listening-ready socket on a free 127.0.0.1 port (bound now, so the port is known
    before the service that must be told about it starts)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def live_agent(reader: Any, device_id: str, origins: tuple[str, ...], sock: socket.socket) -> Iterator[str]:
    """The terminal agent (authsvc.agent) on `sock` (waitress in a thread) until the block ends;
    yields its URL, http://127.0.0.1:<port>. A capture still waiting for a hand at the end is
    ended by unplugging the emulated reader, so the worker threads stop."""
    from authsvc.agent import create_agent

    port = sock.getsockname()[1]
    server = create_server(create_agent(reader, device_id, origins), sockets=[sock], threads=4,
                           clear_untrusted_proxy_headers=True)
    thread = threading.Thread(target=server.run, name=f"agent-{port}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if hasattr(reader, "control"):
            reader.control.unplug()
        _stop(server, thread)


@dataclass
class Terminal:
    """The service and a registered terminal: its agent (an emulated reader keyed by the
    terminal's Ed25519 key) on a loopback port the service's pages are told about."""

    server: LiveServer
    agent_url: str
    reader: Any


@contextmanager
def service_with_terminal(instance_dir: Path, terminal: str,
                          **sections: dict[str, Any]) -> Iterator[Terminal]:
    """The service (with config `sections` on top) and the terminal `terminal`: its key
    registered, its agent on a loopback port the service's pages are told about."""
    sock = loopback_socket()
    agent_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        with live_server(instance_dir, vein={"agent_url": agent_url}, **sections) as live:
            reader = open_reader("emulated", seed=0, key=Ed25519PrivateKey.generate(),
                                 reader_id=terminal, clock=live.clock)
            raw = base64.urlsafe_b64encode(reader.public_key_bytes()).decode().rstrip("=")
            devices.register(live.deps, OPERATOR, terminal, raw)
            try:
                with live_agent(reader, terminal, (live.url,), sock) as url:
                    yield Terminal(live, url, reader)
            finally:
                reader.close()
    finally:
        sock.close()


# ---- the tests' own servers, the palm at the terminal, waiting for other threads -------------


@contextmanager
def serve(app: Any, sock: socket.socket, name: str) -> Iterator[str]:
    """A WSGI app of the tests' own (a relying party …) on `sock` (waitress in a thread) until
    the block ends; yields its URL, http://127.0.0.1:<port>."""
    port = sock.getsockname()[1]
    server = create_server(app, sockets=[sock], threads=4, clear_untrusted_proxy_headers=True)
    thread = threading.Thread(target=server.run, name=f"{name}-{port}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(server, thread)


def enrol_palm(server: LiveServer, user_id: str, palm: int, station: str = "STATION-1") -> None:
    """Palm `palm` enrolled for `user_id` in person by staff of its company at the registration
    station (its own reader, not registered: enrolment is local)."""
    staff = Actor("staff1", frozenset({Role.STAFF}), terminal=station, company=COMPANY)
    with open_reader("emulated", seed=0, reader_id=station, clock=server.clock) as reader:
        def take(challenge: bytes) -> Any:
            reader.control.present(palm)
            return reader.capture("enrol", challenge)

        vein.enrol(server.deps, staff, user_id, reader, take)
    assert vein.is_enrolled(server.deps, user_id)


def palm_step(page: Page, reader: Any, palm: int) -> None:
    """At /factor: hold `palm` over the terminal's emulated reader, then press
    「手のひら静脈で確認する」 once (the palm page it opens reads at once)."""
    path_is(page, "/factor")
    reader.control.present(palm)
    page.click("#use-vein")


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `predicate` until it gives something true, for at most `timeout` seconds: for what
    another thread delivers (a back-channel logout …). Not a timing assertion: only a bound."""
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: still not there after {timeout:g} s")
        time.sleep(0.05)
    return found
