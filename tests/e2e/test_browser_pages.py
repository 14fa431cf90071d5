"""Every page as a person sees it, in headless Chromium: each page of the logon, the user's own
pages, the palm and registration pages and the console, in Japanese and in English, at a
desktop (1280 px) and a phone's (390 px) width. For each: a full-page screenshot (kept, for a
person to look at), no horizontal overflow and no clipped text, and axe-core (vendored in
tests/e2e/vendor/axe-core, injected by Playwright) finds no serious or critical violation of
WCAG 2.2 AA. Also: the authorised-use notice stands before the ID field, a logon works with the
keyboard alone, dates and the person's name read right in both languages, the language link
keeps the page, and /favicon.ico is served.

Screenshots go to $AUTHSVC_SCREENS if set (e.g. artifacts/screens, ignored by git), else to
the test's own tmp folder: <tmp>/screens/<lang>-<page>-<width>.png, with what axe found
beside them (axe-<walk>-<lang>.json)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from adapters.vein import Capture, open_reader
from authsvc.domain.messages import text
from authsvc.domain.roles import Actor, Role
from authsvc.services import accounts, totp, vein
from authsvc.services.accounts import OPERATIONS_CONTRACT
from authsvc.services.passwords import change_password
from authsvc.web.pages import terminal_name, when
from tests.e2e.browser_support import (
    COMPANY,
    NEW_PASSWORD,
    OPERATOR,
    TIMEOUT_MS,
    USER_ID,
    LiveServer,
    Terminal,
    create_user,
    path_is,
    service_with_terminal,
)

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
WIDTHS = (1280, 390)
LANGS = ("ja", "en")
NAME = "佐藤 花子"  # create_user's person
WEAK = "password1234"
WRONG = "Xq9#mT4!kLw2"
PALM, OTHER_PALM = 42, 7

# what a person would call clipped: a box that hides part of its own text
LAYOUT = """() => {
    const doc = document.documentElement;
    const clipped = [];
    for (const el of document.body.querySelectorAll("*")) {
        const skip = ["INPUT", "SELECT", "TEXTAREA", "VIDEO", "IMG"];
        if (!(el instanceof HTMLElement) || skip.includes(el.tagName)) continue;
        if (el.classList.contains("visually-hidden") || el.closest("[hidden], noscript, script")) continue;
        const cs = getComputedStyle(el);
        if (cs.display === "none" || cs.visibility === "hidden") continue;
        const hides = (v) => v === "hidden" || v === "clip";
        const wide = hides(cs.overflowX) && el.scrollWidth > el.clientWidth + 1;
        const tall = hides(cs.overflowY) && el.scrollHeight > el.clientHeight + 1;
        const ellipsis = cs.textOverflow === "ellipsis" && el.scrollWidth > el.clientWidth + 1;
        if (wide || tall || ellipsis) {
            const what = el.textContent.trim().slice(0, 40);
            clipped.push(`${el.tagName.toLowerCase()}#${el.id}.${el.className}: ${what}`);
        }
    }
    return {scrollWidth: doc.scrollWidth, innerWidth: window.innerWidth, clipped};
}"""

RUN_AXE = """async () => {
    const r = await axe.run(document, {resultTypes: ["violations"]});
    return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}));
}"""


class Screens:
    """Takes and checks each page: a screenshot at each width, the overflow and clipping checks
    at each, axe at the desktop width. Failures are collected and reported together."""

    def __init__(self, folder: Path, lang: str, walk: str) -> None:
        self.folder, self.lang, self.walk = folder, lang, walk
        self.folder.mkdir(parents=True, exist_ok=True)
        self.problems: list[str] = []
        self.axe: dict[str, list[dict[str, Any]]] = {}
        self.taken: list[str] = []

    def check(self, page: Page, name: str) -> None:
        page.wait_for_load_state("load")
        expect(page.locator("html")).to_have_attribute("lang", self.lang)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            shot = self.folder / f"{self.lang}-{name}-{width}.png"
            page.screenshot(path=str(shot), full_page=True, animations="disabled")
            self.taken.append(shot.name)
            layout = page.evaluate(LAYOUT)
            if layout["scrollWidth"] > layout["innerWidth"]:
                self.problems.append(f"{name} @{width}: the page is {layout['scrollWidth']} px wide "
                                     f"in a {layout['innerWidth']} px window")
            self.problems += [f"{name} @{width}: clipped {c}" for c in layout["clipped"]]
        page.set_viewport_size({"width": WIDTHS[0], "height": 900})
        page.add_script_tag(path=str(AXE))
        found = page.evaluate(RUN_AXE)
        self.axe[name] = found
        self.problems += [f"{name}: axe {v['impact']} {v['id']} ({v['help']}) at {v['nodes']}"
                          for v in found if v["impact"] in ("serious", "critical")]

    def finish(self) -> None:
        (self.folder / f"axe-{self.walk}-{self.lang}.json").write_text(
            json.dumps(self.axe, ensure_ascii=False, indent=1), encoding="utf-8")
        assert self.problems == [], "\n".join(self.problems)


@pytest.fixture
def screens_dir(tmp_path: Path) -> Path:
    return Path(os.environ["AUTHSVC_SCREENS"]) if os.environ.get("AUTHSVC_SCREENS") else tmp_path / "screens"


def _context(browser: Browser, server: LiveServer, lang: str) -> BrowserContext:
    # axe is injected as an inline script: the pages' CSP (script-src 'self') would refuse it,
    # so this context bypasses CSP (the other browser tests check the CSP itself)
    context = browser.new_context(base_url=server.url, locale="en-US", bypass_csp=True)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"/help?lang={lang}")  # the language cookie for the whole walk
    page.close()
    return context


def _lang_link(page: Page, expected_path: str) -> None:
    """The language link leads to the same page (path and query) in the other language."""
    href = page.locator("a.lang").get_attribute("href") or ""
    assert re.fullmatch(rf"{re.escape(expected_path)}\?(.+&)?lang=(ja|en)", href), href


def _operator(server: LiveServer) -> str:
    """An agency operator ("admin"), its password changed and a TOTP app enrolled."""
    deps = server.deps
    accounts.create_contract(deps, OPERATOR, OPERATIONS_CONTRACT, "DSG運用", deps.clock.now().date(), None)
    accounts.create_account(deps, OPERATOR, "admin", "運用 一郎", OPERATIONS_CONTRACT,
                            Role.AGENCY_OPERATOR.value)
    accounts.approve_identifier(deps, OPERATOR, "admin")
    change_password(deps, Actor("admin"), "admin", NEW_PASSWORD)
    made = totp.begin_enrolment(deps, Actor("admin"), "admin")
    totp.confirm_enrolment(deps, Actor("admin"), "admin", server.totp(made.secret))
    return made.secret


@pytest.mark.parametrize("lang", LANGS)
def test_every_user_and_console_page_in_both_languages(browser, server, initial_password, lang,
                                                      screens_dir):
    shots = Screens(screens_dir, lang, "pages")
    other = "en" if lang == "ja" else "ja"
    context = _context(browser, server, lang)
    try:
        page = context.new_page()
        page.goto("/")
        notice = page.locator("#use-notice")
        expect(notice).to_contain_text(getattr(server.deps.settings.ui, f"notice_{lang}"))
        shots.check(page, "logon")
        page.fill("#user_id", "nobody")
        page.fill("#password", WRONG)
        page.click("#logon")
        expect(page.locator("#form-error")).to_contain_text(text("logon_failed", lang))
        expect(page.locator("#user_id")).to_have_attribute("aria-invalid", "true")
        _lang_link(page, "/")
        shots.check(page, "logon-refused")

        page.fill("#user_id", USER_ID)
        page.fill("#password", initial_password)
        page.click("#logon")
        path_is(page, "/password")
        shots.check(page, "password")
        page.fill("#new_password", WEAK)
        page.fill("#confirm_password", WEAK)
        page.click("#change")
        expect(page.locator("ul.error")).to_be_visible()
        assert "password-errors" in (page.locator("#new_password").get_attribute("aria-describedby") or "")
        _lang_link(page, "/password")  # a refused candidate: the link keeps the page
        shots.check(page, "password-refused")
        page.fill("#new_password", NEW_PASSWORD)
        page.fill("#confirm_password", NEW_PASSWORD)
        page.click("#change")
        path_is(page, "/enrol")
        shots.check(page, "enrol")
        page.click("#enrol-webauthn")
        path_is(page, "/factor/webauthn")
        shots.check(page, "webauthn")
        page.goto("/enrol")
        page.click("#enrol-totp")
        path_is(page, "/enrol/totp")
        shots.check(page, "enrol-totp")
        secret = page.locator("#totp-secret").inner_text().strip()
        page.fill("#code", server.totp(secret))
        page.click("#confirm")
        path_is(page, "/home")

        # the person's name, dates as a person reads them, terminals by name
        greeting = text("ui_page_home", lang, name=NAME)
        expect(page.locator("h1")).to_have_text(greeting)
        expect(page).to_have_title(re.compile(re.escape(greeting)))
        moment = (r"\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d" if lang == "ja"
                  else r"\d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d JST")
        expect(page.locator("#history td.when").first).to_have_text(re.compile(rf"^{moment}$"))
        expect(page.locator("#sessions td.when").first).to_have_text(re.compile(rf"^{moment}$"))
        expect(page.locator("#sessions td.terminal").first).to_have_text(re.compile(r"^Chrome"))
        assert "Mozilla/" not in page.locator("#sessions").inner_text()
        shots.check(page, "home")

        page.click("#lock")
        path_is(page, "/lock")
        unlock, logoff = page.locator("#unlock").bounding_box(), page.locator("#logoff").bounding_box()
        assert unlock and logoff and logoff["y"] - (unlock["y"] + unlock["height"]) >= 16  # a gap
        shots.check(page, "lock")
        page.fill("#password", WRONG)
        page.click("#unlock")
        expect(page.locator("#form-error")).to_be_visible()
        shots.check(page, "lock-refused")
        page.fill("#password", NEW_PASSWORD)
        page.click("#unlock")
        path_is(page, "/factor")
        _lang_link(page, "/factor")
        shots.check(page, "factor")
        server.clock.advance(seconds=30)
        page.fill("#code", server.totp(secret))
        page.click("#confirm")
        path_is(page, "/home")
        page.click("#logoff")
        expect(page.locator("p.message")).to_have_text(text("logged_off", lang))
        shots.check(page, "logged-off")
        page.goto("/help")
        shots.check(page, "help")
        page.goto("/no-such-page")
        expect(page.locator("p.message")).to_have_text(text("request_invalid", lang))
        shots.check(page, "not-found")
        page.goto(f"/help?x=1&lang={lang}")
        _lang_link(page, "/help")
        assert (page.locator("a.lang").get_attribute("href") or "") == f"/help?x=1&lang={other}"

        # the console: its own logon, then every page its menu offers an agency operator
        operator = _operator(server)
        server.clock.advance(seconds=30)
        page.goto("/console/")
        path_is(page, "/console/logon/")
        shots.check(page, "console-logon")
        page.fill("#user_id", "admin")
        page.fill("#password", NEW_PASSWORD)
        page.click("#logon")
        path_is(page, "/console/logon/factor")
        page.fill("#code", server.totp(operator))
        page.click("#confirm")
        path_is(page, "/console/")
        shots.check(page, "console")
        menu = [(a.get_attribute("id") or "", a.get_attribute("href") or "")
                for a in page.locator("ul.menu a").all()]
        assert len(menu) >= 6, menu
        for ident, href in menu:
            page.goto(href)
            expect(page.locator("h1")).not_to_be_empty()
            shots.check(page, "console-" + ident.removeprefix("menu-"))
        page.goto(f"/console/accounts/{USER_ID}")
        expect(page.locator("#account-name")).to_have_text(NAME)
        shots.check(page, "console-account")
        page.click("#console-logoff")
        path_is(page, "/console/logon/")
    finally:
        context.close()
    print(f"\nscreenshots: {screens_dir} ({len(shots.taken)})")
    shots.finish()


# ---- the palm, the terminal and the registration pages ----------------------------------------


@pytest.fixture
def terminal_rig(tmp_path) -> Iterator[Terminal]:
    with service_with_terminal(tmp_path / "instance", "TERMINAL-1") as made:
        yield made


def _palm_user(rig: Terminal, user_id: str = USER_ID, enrol: bool = True) -> None:
    """An account with its password changed and, if `enrol`, palm 42 enrolled at the station."""
    deps = rig.server.deps
    if user_id == USER_ID:
        create_user(deps, user_id)  # with its contract, C-1
    else:
        accounts.create_account(deps, OPERATOR, user_id, "山田 太郎", "C-1", "user")
        accounts.approve_identifier(deps, OPERATOR, user_id)
    change_password(deps, Actor(user_id), user_id, NEW_PASSWORD)
    if not enrol:
        return
    staff = Actor("staff1", frozenset({Role.STAFF}), terminal="STATION-1", company=COMPANY)
    with open_reader("emulated", seed=0, reader_id="STATION-1", clock=rig.server.clock) as station:
        def take(challenge: bytes) -> Capture:
            station.control.present(PALM)
            return station.capture("enrol", challenge)

        vein.enrol(deps, staff, user_id, station, take)


@pytest.mark.parametrize("lang", LANGS)
def test_the_palm_and_registration_pages(browser, terminal_rig, lang, screens_dir):
    rig = terminal_rig
    shots = Screens(screens_dir, lang, "palm")
    _palm_user(rig)
    context = _context(browser, rig.server, lang)
    try:
        page = context.new_page()
        page.goto("/")
        page.fill("#user_id", USER_ID)
        page.fill("#password", NEW_PASSWORD)
        page.click("#logon")
        path_is(page, "/factor")
        shots.check(page, "factor-palm")
        page.goto("/factor/vein")
        shots.check(page, "vein")
        rig.reader.control.present(OTHER_PALM)
        page.click("#vein-go")
        # a refused palm is read again: no "check your input"
        expect(page.locator("#vein-error")).to_have_text(text("vein_read_again", lang))
        assert "vein-error" in (page.locator("#vein-go").get_attribute("aria-describedby") or "")
        shots.check(page, "vein-refused")
        # one press of 「手のひら静脈で確認する」 on the second-factor page reads the palm
        page.goto("/factor")
        rig.reader.control.present(PALM)
        page.click("#use-vein")
        path_is(page, "/home")
        expect(page.locator("h1")).to_have_text(text("ui_page_home", lang, name=NAME))
        # during an unlock too, another palm is answered with "read it again"
        page.click("#lock")
        path_is(page, "/lock")
        page.fill("#password", NEW_PASSWORD)
        page.click("#unlock")
        path_is(page, "/factor")
        rig.reader.control.present(OTHER_PALM)
        page.click("#use-vein")
        expect(page.locator("#vein-error")).to_have_text(text("vein_read_again", lang))
        expect(page.locator("#vein-error")).not_to_contain_text(text("invalid_input", lang))
        rig.reader.control.present(PALM)
        page.click("#vein-go")
        path_is(page, "/home")

        # a user with no palm yet stops at the registration page
        _palm_user(rig, "yamada", enrol=False)
        other = browser.new_context(base_url=rig.server.url, locale="en-US", bypass_csp=True)
        try:
            reg = other.new_page()
            reg.goto(f"/help?lang={lang}")
            reg.goto("/")
            reg.fill("#user_id", "yamada")
            reg.fill("#password", NEW_PASSWORD)
            reg.click("#logon")
            path_is(reg, "/register/")
            shots.check(reg, "register")
        finally:
            other.close()
    finally:
        context.close()
    shots.finish()


@pytest.mark.parametrize("lang", LANGS)
def test_the_terminal_page(browser, tmp_path, lang, screens_dir):
    shots = Screens(screens_dir, lang, "terminal")
    with service_with_terminal(tmp_path / "instance", "TERMINAL-1",
                               devices={"require_terminal": True}) as rig:
        _palm_user(rig, enrol=False)
        made = totp.begin_enrolment(rig.server.deps, Actor(USER_ID), USER_ID)
        totp.confirm_enrolment(rig.server.deps, Actor(USER_ID), USER_ID, rig.server.totp(made.secret))
        rig.server.clock.advance(seconds=30)
        context = _context(browser, rig.server, lang)
        try:
            page = context.new_page()
            page.route(rig.agent_url + "/attest", lambda route: route.abort())  # no agent here
            page.goto("/")
            page.fill("#user_id", USER_ID)
            page.fill("#password", NEW_PASSWORD)
            page.click("#logon")
            path_is(page, "/factor")
            page.fill("#code", rig.server.totp(made.secret))
            page.click("#confirm")
            path_is(page, "/terminal")
            expect(page.locator("#terminal-error")).to_have_text(text("terminal_agent_unreachable", lang))
            shots.check(page, "terminal")
        finally:
            context.close()
    shots.finish()


# ---- the notice, the keyboard, the favicon, dates and names --------------------------------


def test_the_authorised_use_notice_stands_before_the_id_field(page, server):
    page.goto("/")
    notice = page.locator("#use-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(server.deps.settings.ui.notice_ja)
    before = page.evaluate("""() => !!(document.getElementById("use-notice").compareDocumentPosition(
        document.getElementById("user_id")) & Node.DOCUMENT_POSITION_FOLLOWING)""")
    assert before
    box, field = notice.bounding_box(), page.locator("#user_id").bounding_box()
    assert box and field and box["y"] + box["height"] <= field["y"]
    page.click("a.lang")
    expect(page.locator("#use-notice")).to_contain_text(server.deps.settings.ui.notice_en)


def test_a_logon_with_the_keyboard_alone(page, server, initial_password):
    page.goto("/")
    expect(page.locator("#user_id")).to_be_focused()  # the first field takes the focus
    page.keyboard.type(USER_ID)
    page.keyboard.press("Tab")
    expect(page.locator("#password")).to_be_focused()
    page.keyboard.type(initial_password)
    page.keyboard.press("Tab")
    expect(page.locator("#logon")).to_be_focused()
    page.keyboard.press("Enter")
    path_is(page, "/password")
    expect(page.locator("#new_password")).to_be_focused()
    page.keyboard.type(NEW_PASSWORD)
    page.keyboard.press("Tab")
    page.keyboard.type(NEW_PASSWORD)
    page.keyboard.press("Enter")
    path_is(page, "/enrol")
    page.locator("#enrol-totp").focus()  # the choices are links: Tab reaches them in order
    page.keyboard.press("Enter")
    path_is(page, "/enrol/totp")
    secret = page.locator("#totp-secret").inner_text().strip()
    expect(page.locator("#code")).to_be_focused()
    page.keyboard.type(server.totp(secret))
    page.keyboard.press("Enter")
    path_is(page, "/home")
    # the skip link is the first stop, and leads to the page's content
    page.goto("/home")
    page.keyboard.press("Tab")
    expect(page.locator("a.skip-link")).to_be_focused()
    expect(page.locator("a.skip-link")).to_be_visible()


def test_the_tab_order_follows_the_logon_form(page):
    page.goto("/")
    expect(page.locator("#user_id")).to_be_focused()

    def focused() -> str:
        return str(page.evaluate("document.activeElement.id || document.activeElement.className"))

    forward = []
    for _ in range(3):
        page.keyboard.press("Tab")
        forward.append(focused())
    assert forward == ["password", "logon", "help-link"], forward
    page.locator("#user_id").focus()
    back = []
    for _ in range(3):
        page.keyboard.press("Shift+Tab")
        back.append(focused())
    assert back == ["lang", "", "skip-link"], back  # the language link, the service's name, the skip link


def test_the_favicon_is_served(page, server):
    shown = page.goto("/favicon.ico")
    assert shown is not None and shown.status == 200
    assert shown.headers["content-type"].startswith("image/svg+xml")
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
    page.goto("/")
    page.wait_for_load_state("networkidle")
    assert missing == []


@pytest.mark.parametrize(("lang", "shown"), [("ja", "2026年11月30日 08:38"), ("en", "30 Nov 2026 08:38 JST")])
def test_dates_read_as_people_write_them(lang, shown):
    assert when("2026-11-30T08:38:16.123456+09:00", lang) == shown
    assert when("2026-11-29T23:38:16+00:00", lang) == shown  # shown in Japan time
    assert when(None, lang) == ""


def test_terminals_by_name():
    ua = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "HeadlessChrome/131.0.0.0 Safari/537.36")
    assert terminal_name(ua, "ja") == "Chrome（Linux）"
    assert terminal_name(ua, "en") == "Chrome (Linux)"
    assert terminal_name("TERMINAL-1", "ja") == "TERMINAL-1"  # a registered terminal: its ID
