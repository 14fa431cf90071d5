"""The logon pages in a real browser (headless Chromium through Playwright) against the real
service over HTTP: the forced change of an initial password (R2), TOTP and WebAuthn as second
factors with their first enrolment (R10, R11), the idle lock and its MFA unlock (R16), Japanese
by default and English on request (R18)."""

from __future__ import annotations

import json

from playwright.sync_api import expect

from tests.e2e.browser_support import (
    NEW_PASSWORD,
    USER_ID,
    change_password,
    enter_code,
    first_logon_with_totp,
    is_png,
    japanese_glyphs_render,
    logoff,
    logon,
    path_is,
    virtual_authenticator,
)


def test_first_logon_forced_change_totp_enrolment_and_second_logon(page, context, server,
                                                                   initial_password):
    logon(page, USER_ID, initial_password)
    path_is(page, "/password")
    # nothing but the change is reachable (R2)
    page.goto("/home")
    path_is(page, "/password")
    # a weak password: refused, each failed rule named, in Japanese
    change_password(page, "password1234")
    errors = page.locator("ul.error")
    expect(errors).to_contain_text("よく使われている")
    expect(errors).to_contain_text("英大文字")
    path_is(page, "/password")
    change_password(page, NEW_PASSWORD, NEW_PASSWORD + "x")
    expect(page.locator("ul.error")).to_contain_text("一致しません")
    change_password(page, NEW_PASSWORD)
    path_is(page, "/enrol")
    page.click("#enrol-totp")
    path_is(page, "/enrol/totp")
    expect(page.locator(".qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    enter_code(page, "000000" if server.totp(secret) != "000000" else "111111")
    path_is(page, "/factor/totp")  # a wrong code: the same enrolment again, with the message
    expect(page.locator("p.error")).to_contain_text("ログオンできませんでした")
    # the same secret and QR code: the user's authenticator app still matches
    assert page.locator("#totp-secret").inner_text().strip() == secret
    first_code = server.totp(secret)
    enter_code(page, first_code)
    path_is(page, "/home")
    expect(page.locator("h1")).to_have_text("ようこそ、佐藤 花子 さん")  # the person's name
    expect(page.locator("#user-id")).to_have_text(USER_ID)
    expect(page.locator("#history")).to_contain_text("ログオン完了")
    expect(page.locator("#sessions")).to_contain_text("127.0.0.1")

    # the session cookie is Secure, HttpOnly, SameSite=Strict, and kept on http://localhost
    cookies = {c["name"]: c for c in context.cookies()}
    session = cookies["authsvc_session"]
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Strict"
    assert "authsvc_session" not in page.evaluate("document.cookie")

    logoff(page)
    assert "authsvc_session" not in {c["name"] for c in context.cookies()}

    # the second logon: password, then a code of a new time step; the spent one is refused (R11)
    server.clock.advance(seconds=30)
    logon(page, USER_ID, NEW_PASSWORD)
    path_is(page, "/factor")
    expect(page.locator("#use-webauthn")).to_have_count(0)  # only TOTP is enrolled
    enter_code(page, first_code)
    path_is(page, "/factor/totp")  # the same form again, with the one generic message
    expect(page.locator("p.error")).to_contain_text("ログオンできませんでした")
    enter_code(page, server.totp(secret))
    path_is(page, "/home")
    expect(page.locator("#logoff")).to_be_visible()


def _capture_verify(page, bodies):
    """Record each JSON body the page posts to /webauthn/verify, passing it on unchanged."""
    def handler(route):
        bodies.append(route.request.post_data)
        route.continue_()
    page.route("**/webauthn/verify", handler)


def test_webauthn_enrolment_logon_and_failures(page, context, server, initial_password):
    authenticator = virtual_authenticator(context, page)
    verified: list[str] = []
    _capture_verify(page, verified)
    logon(page, USER_ID, initial_password)
    change_password(page, NEW_PASSWORD)
    path_is(page, "/enrol")
    page.click("#enrol-webauthn")
    path_is(page, "/factor/webauthn")
    page.click("#webauthn-go")
    path_is(page, "/home")
    expect(page.locator("#webauthn-error")).to_have_count(0)
    assert len(authenticator.credentials()) == 1
    registration = json.loads(verified[-1])
    assert registration["credential"]["response"]["attestationObject"]
    logoff(page)

    # the second logon: password, then the security key
    logon(page, USER_ID, NEW_PASSWORD)
    path_is(page, "/factor")
    expect(page.locator("#code")).to_have_count(0)  # only WebAuthn is enrolled
    page.click("#use-webauthn")
    path_is(page, "/factor/webauthn")
    page.click("#webauthn-go")
    path_is(page, "/home")
    assertion = json.loads(verified[-1])
    assert assertion["credential"]["response"]["signature"]
    assert authenticator.credentials()[0]["signCount"] >= 1
    logoff(page)

    # a replayed assertion (its challenge already used) is refused by the server (R11)
    logon(page, USER_ID, NEW_PASSWORD)
    page.click("#use-webauthn")
    path_is(page, "/factor/webauthn")
    replay = page.evaluate("""async (body) => {
        const csrf = document.querySelector("meta[name=csrf-token]").content;
        const r = await fetch("/webauthn/verify", {method: "POST", body,
            headers: {"Content-Type": "application/json", "X-CSRFToken": csrf}});
        return r.status;
    }""", verified[-1])
    assert replay == 401
    page.goto("/home")
    path_is(page, "/factor")  # still only the pending logon: no session

    # the authenticator has lost its credential: the ceremony fails visibly, no session
    authenticator.clear()
    page.goto("/factor/webauthn")
    page.click("#webauthn-go")
    expect(page.locator("#webauthn-error")).to_be_visible()
    expect(page.locator("#webauthn-error")).to_contain_text("セキュリティキーで確認できませんでした")
    expect(page.locator("#webauthn-go")).to_be_enabled()  # the user may try again
    path_is(page, "/factor/webauthn")
    page.goto("/home")
    path_is(page, "/factor")
    assert server.deps.sessions.of_user(USER_ID) == {}


def test_idle_session_locks_and_unlocks_with_mfa(page, server, initial_password):
    secret = first_logon_with_totp(page, server, initial_password)
    idle = server.deps.settings.sessions.idle_minutes
    server.clock.advance(minutes=idle - 0.5)
    page.reload()
    path_is(page, "/home")  # activity within the idle period keeps the session open
    server.clock.advance(minutes=idle, seconds=1)
    page.reload()
    path_is(page, "/lock")
    expect(page.locator("p.message")).to_be_visible()
    expect(page.locator("strong")).to_have_text(USER_ID)
    page.goto("/home")
    path_is(page, "/lock")  # nothing of the session is reachable while locked
    page.fill("#password", "Wrong-pass-123")
    page.click("#unlock")
    path_is(page, "/unlock")
    expect(page.locator("p.error")).to_contain_text("ログオンできませんでした")
    page.fill("#password", NEW_PASSWORD)
    page.click("#unlock")
    path_is(page, "/factor")
    enter_code(page, server.totp(secret))
    path_is(page, "/home")
    expect(page.locator("#history")).to_contain_text("ロック解除")
    # and the lock button locks at once (R16: leaving the desk)
    page.click("#lock")
    path_is(page, "/lock")


def test_japanese_by_default_english_on_request(page):
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.locator("#logon")).to_have_text("ログオン")
    page.click("a.lang")
    expect(page.locator("#logon")).to_have_text("Log on")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    # the choice is remembered: a plain navigation stays English
    page.goto("/")
    expect(page.locator("#logon")).to_have_text("Log on")
    page.goto("/password")  # redirected to the logon page: still English
    path_is(page, "/")
    expect(page.locator("#logon")).to_have_text("Log on")
    page.click("a.lang")
    expect(page.locator("#logon")).to_have_text("ログオン")
    page.goto("/")
    expect(page.locator("#logon")).to_have_text("ログオン")
    # on a page that answered a form (a failed logon, shown at POST /login), the link works too
    logon(page, "nobody", "Xq9#mT4!kLw2")
    expect(page.locator("p.error")).to_contain_text("ログオンできませんでした")
    page.click("a.lang")
    expect(page.locator("#logon")).to_have_text("Log on")
    logon(page, "nobody", "Xq9#mT4!kLw2")
    expect(page.locator("p.error")).to_contain_text("Logon failed")


def test_screenshots_of_logon_and_home(page, server, initial_password, tmp_path):
    page.set_viewport_size({"width": 1024, "height": 768})
    page.goto("/")
    logon_png = tmp_path / "logon.png"
    page.screenshot(path=str(logon_png), full_page=True)
    assert is_png(logon_png), logon_png.stat().st_size
    assert japanese_glyphs_render(page, "h1")  # real glyphs, not rows of "tofu" boxes
    first_logon_with_totp(page, server, initial_password)
    home_png = tmp_path / "home.png"
    page.screenshot(path=str(home_png), full_page=True)
    assert is_png(home_png), home_png.stat().st_size
    assert logon_png.read_bytes() != home_png.read_bytes()
