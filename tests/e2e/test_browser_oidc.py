"""The OpenID provider ([8 of 12], R18) with a real relying party (tests/e2e/rp_app.py: Authlib's
Flask client, on http://127.0.0.1:<port>, another site than the provider's
http://localhost:<port>), driven by headless Chromium: the full password + palm-vein logon and
the verified ID token (signature with the JWKS, nonce, acr, amr, auth_time); back-channel logout
reaching the relying party on logoff, idle end and an operator's action; step-up to the palm;
max_age=0; RP-initiated logout; the signing key's rotation.

One user for all: sato, password changed, palm 42 enrolled at the station and a TOTP app, an
approved member of the group allowed to use the relying party. The palm logons go through the
terminal agent (an emulated reader keyed by the registered terminal TERMINAL-1); the other
logons use TOTP, which is quicker. `devices.require_terminal` is off (the tests' default), so a
palm logon reaches urn:dsg:acr:vein, not vein+terminal. Back-channel deliveries run in a thread
of the provider: the tests poll the relying party for them, with a bound."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from playwright.sync_api import Page, expect

from authsvc.domain import relying_party
from authsvc.domain.relying_party import ACR_MFA, ACR_VEIN
from authsvc.domain.roles import Actor, Role
from authsvc.services import backchannel, groups, operators, service_clients, totp
from authsvc.services.passwords import change_password
from tests.e2e import rp_app
from tests.e2e.browser_support import (
    COMPANY,
    NEW_PASSWORD,
    OPERATOR,
    USER_ID,
    LiveServer,
    Terminal,
    create_user,
    enrol_palm,
    enter_code,
    logon,
    loopback_socket,
    palm_step,
    path_is,
    service_with_terminal,
    wait_for,
)
from tests.integration.support import events

TERMINAL = "TERMINAL-1"
PALM = 42
GROUP = "設計部"
CLIENT_ID = "docs-rp"
ACCOUNT_ADMIN = Actor("acctadm", frozenset({Role.ACCOUNT_ADMIN}), terminal="console-2", company=COMPANY)
SYSADMIN = Actor("sysadm", frozenset({Role.SYSTEM_ADMIN}), company=COMPANY)


# ---- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def rig(tmp_path) -> Iterator[Terminal]:
    with service_with_terminal(tmp_path / "instance", TERMINAL) as t:
        yield t


@pytest.fixture
def server(rig: Terminal) -> LiveServer:  # the conftest's browser context goes to this service
    return rig.server


@pytest.fixture
def secret(server: LiveServer) -> str:
    """sato: password changed, palm enrolled, a TOTP app (its secret returned), an approved
    member of GROUP."""
    deps = server.deps
    create_user(deps)
    change_password(deps, Actor(USER_ID), USER_ID, NEW_PASSWORD)
    enrol_palm(server, USER_ID, PALM)
    made = totp.begin_enrolment(deps, Actor(USER_ID), USER_ID)
    totp.confirm_enrolment(deps, Actor(USER_ID), USER_ID, server.totp(made.secret))
    groups.create(deps, ACCOUNT_ADMIN, GROUP, ["totp", "vein", "webauthn"], [], COMPANY)
    groups.request_member(deps, ACCOUNT_ADMIN, GROUP, USER_ID, COMPANY)
    groups.approve_member(deps, SYSADMIN, GROUP, USER_ID, COMPANY)
    server.clock.advance(seconds=30)  # the enrolment's code is spent: the next logon needs a new one
    return made.secret


@pytest.fixture
def rp(server: LiveServer, secret: str) -> Iterator[rp_app.RelyingParty]:
    """The relying party, registered by the company's account administrator for GROUP and
    approved by its system administrator, running on its own loopback port."""
    sock = loopback_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        registration = relying_party.parse("設計図書サービス", **rp_app.endpoints(base))
        made = service_clients.create(server.deps, ACCOUNT_ADMIN, CLIENT_ID, [], None, oidc=registration,
                                      groups=[GROUP])
        service_clients.approve(server.deps, SYSADMIN, CLIENT_ID)
        with rp_app.running(sock, server.url, CLIENT_ID, made.secret,
                            now=lambda: server.clock.now().timestamp()) as party:
            yield party
    finally:
        sock.close()


# ---- steps ----------------------------------------------------------------------------------


def at_rp(page: Page, rp: rp_app.RelyingParty, path: str) -> None:
    """Wait until the browser shows the relying party's `path` (query string ignored)."""
    expect(page).to_have_url(re.compile(rf"^{re.escape(rp.url(path))}(\?.*)?$"))


def rp_login(page: Page, rp: rp_app.RelyingParty, **asked: str) -> None:
    """The user opens the relying party and clicks its login link (which passes `asked` on to
    the provider): a navigation from the relying party's site to the provider's."""
    page.goto(rp.url("/") + ("?" + urlencode(asked) if asked else ""))
    page.click("#login")


def signed_in(page: Page, rp: rp_app.RelyingParty) -> rp_app.Login:
    """Back at the relying party, signed in: its newest verified logon."""
    at_rp(page, rp, "/")
    expect(page.locator("#who")).to_be_visible()
    login = rp.logins[-1]
    expect(page.locator("#sub")).to_have_text(login.claims["sub"])
    return login


def totp_logon(page: Page, server: LiveServer, secret: str) -> None:
    """Password + TOTP at the provider's own pages (a code of a new time step each time)."""
    logon(page, USER_ID, NEW_PASSWORD)
    path_is(page, "/factor")
    enter_code(page, server.totp(secret))
    path_is(page, "/home")
    server.clock.advance(seconds=30)


def now(server: LiveServer) -> int:
    return int(server.clock.now().timestamp())


def provider_pages(page: Page) -> list[str]:
    """Record the URLs of the provider the browser navigates to from now on (each hop of a
    redirect too)."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url)
            if r.is_navigation_request() and r.frame == page.main_frame
            and r.url.startswith("http://localhost") else None)
    return seen


def paths(urls: list[str]) -> list[str]:
    return [urlsplit(u).path for u in urls]


def told(rp: rp_app.RelyingParty, count: int) -> list[dict]:
    """The relying party's first `count` verified logout tokens, once it has them (sent by a
    thread of the provider: polled, at most 10 s)."""
    def received() -> list[dict] | None:
        got = rp.logout_tokens
        return got[:count] if len(got) >= count else None

    return wait_for(f"{count} logout token(s) at the relying party", received)


def ended_at_rp(page: Page, rp: rp_app.RelyingParty, login: rp_app.Login, token: dict) -> None:
    """The logout token names the logon's session and user, and the relying party ended it."""
    assert token["sid"] == login.claims["sid"] and token["sub"] == login.claims["sub"]
    assert token["iss"] == login.claims["iss"] and token["aud"] == rp.client_id
    assert login.claims["sid"] not in rp.active() and login.claims["sid"] in rp.got.ended
    page.goto(rp.url("/"))
    expect(page.locator("#login")).to_be_visible()


def post_logout_token(rp: rp_app.RelyingParty, token: str) -> int:
    """POST `token` to the relying party's back-channel endpoint as the provider would; the status."""
    req = urllib.request.Request(rp.url("/backchannel"), method="POST",
                                 data=urlencode({"logout_token": token}).encode(),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def forged(login: rp_app.Login, client_id: str) -> str:
    """A logout token for the logon's session, right in every claim but signed by another key
    (under the provider's key ID)."""
    claims = {"iss": login.claims["iss"], "aud": client_id, "iat": login.claims["iat"],
              "exp": login.claims["exp"], "jti": "forged-1", "sid": login.claims["sid"],
              "sub": login.claims["sub"], "events": {backchannel.EVENT: {}}}
    key = ECKey.generate_key("P-256", parameters={"kid": login.header["kid"]})
    return jwt.encode({"alg": "ES256", "kid": login.header["kid"], "typ": "logout+jwt"}, claims, key)


# ---- the tests ------------------------------------------------------------------------------


def test_password_and_palm_logon_gives_the_rp_a_verified_id_token_and_logoff_reaches_it(
        page, server, rig, rp, secret):
    shown = provider_pages(page)
    rp_login(page, rp)
    path_is(page, "/")  # the provider's logon page
    # first the bounce (a navigation from another site does not carry the provider's
    # SameSite=Strict cookie; one hop from its own page does), then the logon page
    assert paths(shown)[:2] == ["/oidc/authorize", "/oidc/authorize"] and "b=1" in shown[1], shown
    logon(page, USER_ID, NEW_PASSWORD)
    palm_step(page, rig.reader, PALM)
    login = signed_in(page, rp)

    claims = login.claims  # verified by Authlib: signature (the JWKS), iss, aud, exp, nonce
    assert claims["iss"] == server.url and claims["aud"] == rp.client_id
    assert claims["nonce"] == login.nonce
    assert claims["acr"] == ACR_VEIN  # devices.require_terminal is off: no terminal proof asked
    assert {"pwd", "vein"} <= set(claims["amr"]) and "otp" not in claims["amr"]
    assert claims["auth_time"] == now(server)  # the logon's time (the clock has not moved)
    assert claims["preferred_username"] == USER_ID and claims["sub"] != USER_ID
    assert claims["company"] == COMPANY and claims["groups"] == [GROUP]
    assert login.header["kid"] in rp.cached_kids()
    assert rp.refusals == []
    [issued] = events(server.deps, "oidc.token_issued")
    assert issued.data["acr"] == ACR_VEIN and issued.data["client"] == CLIENT_ID

    # what is not a logout token of the provider's is refused (400) and ends nothing
    assert post_logout_token(rp, login.id_token) == 400  # an ID token: typ JWT, no event
    assert post_logout_token(rp, forged(login, rp.client_id)) == 400  # another key, same kid
    assert len(rp.got.bad_logout_tokens) == 2 and login.claims["sid"] in rp.active()

    # logoff at the provider: the relying party is told and ends its session
    page.goto(server.url + "/home")
    path_is(page, "/home")
    page.click("#logoff")
    expect(page.locator("p.message")).to_be_visible()
    [token] = told(rp, 1)
    ended_at_rp(page, rp, login, token)
    assert backchannel.EVENT in token["events"] and "nonce" not in token
    assert len(rp.got.bad_logout_tokens) == 2  # the provider's own token was accepted
    [delivered] = wait_for("the delivery audited",
                           lambda: events(server.deps, "oidc.logout_delivered"))
    assert delivered.data["client"] == CLIENT_ID


def test_idle_end_and_an_operators_action_reach_the_rp(page, server, rp, secret):
    totp_logon(page, server, secret)
    rp_login(page, rp)
    first = signed_in(page, rp)
    assert first.claims["acr"] == ACR_MFA and {"pwd", "otp"} <= set(first.claims["amr"])

    # idle: the session locks itself; the sweep finds it and tells the relying party
    server.clock.advance(minutes=server.deps.settings.sessions.idle_minutes, seconds=1)
    assert backchannel.sweep(server.deps) == 1
    [token] = told(rp, 1)
    ended_at_rp(page, rp, first, token)

    # the user unlocks (password + TOTP), signs in to the relying party again; an operator ends
    # the account's sessions: the relying party is told again
    page.goto(server.url + "/home")
    path_is(page, "/lock")
    page.fill("#password", NEW_PASSWORD)
    page.click("#unlock")
    path_is(page, "/factor")
    enter_code(page, server.totp(secret))
    path_is(page, "/home")
    rp_login(page, rp)
    second = signed_in(page, rp)
    assert second.claims["sid"] in rp.active()
    assert operators.end_sessions(server.deps, OPERATOR, USER_ID, "端末紛失の届出") == 1
    token = told(rp, 2)[1]
    ended_at_rp(page, rp, second, token)
    assert rp.got.bad_logout_tokens == []
    reasons = [e.data["reason"] for e in events(server.deps, "oidc.session_ended")]
    assert reasons == ["session_expired", "ended_by_operator"]


def test_a_demanded_palm_runs_only_the_palm_step(page, server, rig, rp, secret):
    totp_logon(page, server, secret)  # the session: password + TOTP (urn:dsg:acr:mfa)
    shown = provider_pages(page)
    rp_login(page, rp, acr_values=ACR_VEIN)
    path_is(page, "/factor")
    expect(page.locator("#code")).to_have_count(0)  # only the missing factor is offered
    palm_step(page, rig.reader, PALM)
    login = signed_in(page, rp)
    assert login.claims["acr"] == ACR_VEIN
    assert {"pwd", "otp", "vein"} <= set(login.claims["amr"])
    assert login.claims["auth_time"] == now(server)  # the step-up is the newest authentication
    assert login.claims["nonce"] == login.nonce
    # no password asked again: neither the logon page nor the re-authentication one
    assert not {"/", "/reauth", "/lock", "/unlock", "/login"} & set(paths(shown)), shown
    assert "/factor/vein" in paths(shown)


def test_max_age_zero_asks_for_a_fresh_logon(page, server, rig, rp, secret):
    totp_logon(page, server, secret)
    rp_login(page, rp)
    first = signed_in(page, rp)
    server.clock.advance(seconds=30)
    rp_login(page, rp, max_age="0")
    path_is(page, "/reauth")  # the password again, on the session the user has
    expect(page.locator("strong")).to_have_text(USER_ID)
    page.fill("#password", NEW_PASSWORD)
    page.click("#unlock")
    palm_step(page, rig.reader, PALM)  # and a second factor
    second = signed_in(page, rp)
    assert second.claims["auth_time"] == now(server) > first.claims["auth_time"]
    assert second.claims["sid"] == first.claims["sid"]  # the same session, authenticated again
    assert second.asked == {"max_age": "0"} and second.claims["nonce"] == second.nonce


def test_a_password_and_totp_logon_started_at_the_rp_comes_back_to_it(page, server, rp, secret):
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    rp_login(page, rp)
    path_is(page, "/")
    logon(page, USER_ID, NEW_PASSWORD)
    path_is(page, "/factor")
    enter_code(page, server.totp(secret))
    # back at the relying party, or refused by the browser: whichever comes first (bounded)
    deadline = time.monotonic() + 15
    while not (page.url.startswith(rp.url("/")) or blocked) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert page.url.startswith(rp.url("/")) and not blocked, (page.url, blocked)
    login = signed_in(page, rp)
    assert login.claims["acr"] == ACR_MFA and {"pwd", "otp"} <= set(login.claims["amr"])


def test_rp_initiated_logout_ends_the_provider_session_and_comes_back(page, server, rp, secret):
    totp_logon(page, server, secret)
    rp_login(page, rp)
    login = signed_in(page, rp)
    page.click("#logout")
    at_rp(page, rp, "/logged-out")
    expect(page.locator("#logged-out")).to_be_visible()
    [state] = rp.got.logout_states
    assert rp.got.returned_states == [state]  # back with its state (Authlib checked it)
    assert login.claims["sid"] not in rp.active()
    assert server.deps.sessions.of_user(USER_ID) == {}  # the provider's session is over
    page.goto(server.url + "/home")
    path_is(page, "/")


def test_a_token_signed_with_the_previous_key_still_verifies_after_rotation(page, server, rp, secret):
    totp_logon(page, server, secret)
    rp_login(page, rp)
    old = signed_in(page, rp)
    old_kid = old.header["kid"]
    assert rp.cached_kids() == {old_kid}
    server.clock.advance(minutes=1)  # later than the first key (see the report: equal times tie)
    new_kid = server.deps.signing_keys.rotate().kid
    assert new_kid != old_kid

    # the next logon at the relying party (the provider's session still on: no logon page)
    # comes with a token of the new key: the relying party fetches the JWKS again
    rp_login(page, rp)
    new = signed_in(page, rp)
    assert new.header["kid"] == new_kid
    assert {old_kid, new_kid} <= rp.cached_kids()
    # the token of the previous key still verifies (signature, iss, aud, exp)
    assert rp.verify_id_token(old.id_token)["sid"] == old.claims["sid"]
    # and a logout token of the new key is accepted
    page.goto(server.url + "/home")
    page.click("#logoff")
    [token] = told(rp, 1)
    assert token["sid"] == new.claims["sid"] and rp.active() == {}

