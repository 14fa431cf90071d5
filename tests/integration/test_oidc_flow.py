"""The OpenID provider's code flow over HTTP (Flask's test client, SQLite): a logon through the
pages, the code with PKCE, tokens, userinfo, refresh, and every refusal the protocol owes a
relying party (each with the OAuth error and an audit event). The browser test with a real
relying party library is tests/e2e/test_browser_oidc.py."""

from __future__ import annotations

import pytest

from authsvc.domain import relying_party as rules
from authsvc.services import oidc, operators
from authsvc.web import create_app
from tests.integration.oidc_support import (
    BASE,
    REDIRECT,
    authorize,
    code_of,
    csrf,
    location,
    log_on,
    post,
    refresh,
    register,
    token,
    userinfo,
    verified,
    worker,
)
from tests.integration.support import CHOSEN, events, next_totp


@pytest.fixture
def web(sqlite_deps):
    app = create_app(deps=sqlite_deps)
    app.config["TESTING"] = True
    return app.test_client()


@pytest.fixture
def party(sqlite_deps, operator, account_admin):
    return register(sqlite_deps, operator, account_admin, refresh=True)


@pytest.fixture
def kato(sqlite_deps, operator, account_admin, web, party):
    secret = worker(sqlite_deps, operator, account_admin)
    log_on(web, sqlite_deps, "kato", secret)
    return secret


def test_code_flow_issues_a_verified_id_token_stating_what_was_proven(web, sqlite_deps, party, kato):
    resp, verifier = authorize(web)
    got = token(web, party, code_of(resp), verifier)
    assert got.status_code == 200, got.get_data(as_text=True)
    body = got.get_json()
    assert body["token_type"].lower() == "bearer" and body["refresh_token"]
    claims = verified(web, body["id_token"])
    assert claims["aud"] == "rp1" and claims["iss"] == "https://localhost"
    assert claims["nonce"] == "n-1"
    assert claims["acr"] == rules.ACR_MFA and claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["company"] == "防衛産業株式会社" and claims["groups"] == ["設計部"]
    assert claims["preferred_username"] == "kato" and claims["sub"] != "kato"
    assert abs(claims["auth_time"] - sqlite_deps.clock.now().timestamp()) < 120
    assert claims["sid"] and claims["at_hash"]
    info = userinfo(web, body["access_token"])
    assert info.status_code == 200 and info.get_json()["sub"] == claims["sub"]
    [issued] = events(sqlite_deps, "oidc.token_issued")
    assert issued.subject == "kato" and issued.data["client"] == "rp1"
    assert issued.data["acr"] == rules.ACR_MFA and issued.data["scope"] == "openid profile"
    assert body["access_token"] not in str(events(sqlite_deps))  # tokens are never logged


def test_a_replayed_code_is_refused_and_revokes_what_it_issued(web, sqlite_deps, party, kato):
    resp, verifier = authorize(web)
    code = code_of(resp)
    first = token(web, party, code, verifier).get_json()
    again = token(web, party, code, verifier)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    assert userinfo(web, first["access_token"]).status_code == 401
    assert refresh(web, party, first["refresh_token"]).get_json()["error"] == "invalid_grant"
    refused = [e.data["reason"] for e in events(sqlite_deps, "oidc.token") if e.result == "refused"]
    assert refused[0] == "code_replayed"


@pytest.mark.parametrize("verifier", [None, "wrong-verifier-" + "x" * 40])
def test_a_missing_or_wrong_pkce_verifier_is_refused(web, sqlite_deps, party, kato, verifier):
    resp, _ = authorize(web)
    got = token(web, party, code_of(resp), verifier)
    assert got.status_code == 400
    assert got.get_json()["error"] in ("invalid_request", "invalid_grant")
    assert any(e.result == "refused" for e in events(sqlite_deps, "oidc.token"))


@pytest.mark.parametrize("extra", [{"code_challenge": None}, {"code_challenge_method": "plain"},
                                   {"code_challenge_method": None}])
def test_pkce_s256_is_required_at_authorization(web, sqlite_deps, party, kato, extra):
    resp, _ = authorize(web, **extra)
    assert resp.status_code == 302 and "error=invalid_request" in resp.headers["Location"]
    assert any(e.result == "refused" for e in events(sqlite_deps, "oidc.authorize"))


@pytest.mark.parametrize("uri", [REDIRECT + "/", REDIRECT + "x", "http://127.0.0.1:9/", REDIRECT + "?a=1",
                                 "https://evil.example/cb"])
def test_a_redirect_uri_not_registered_exactly_gets_a_page_never_a_redirect(web, sqlite_deps, party, kato,
                                                                            uri):
    resp, _ = authorize(web, redirect_uri=uri)
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert any(e.data.get("reason") == "invalid_request" for e in events(sqlite_deps, "oidc.authorize"))


def test_a_token_request_with_another_redirect_uri_is_refused(web, party, kato):
    resp, verifier = authorize(web)
    got = token(web, party, code_of(resp), verifier, redirect_uri=REDIRECT + "/")
    assert got.status_code == 400 and got.get_json()["error"] == "invalid_grant"


def test_an_unknown_client_gets_a_page_and_the_token_endpoint_invalid_client(web, sqlite_deps, party, kato):
    resp, _ = authorize(web, client_id="nosuch")
    assert resp.status_code == 400 and "Location" not in resp.headers
    got = web.post("/oidc/token", base_url=BASE, auth=("nosuch", "x" * 43),
                   data={"grant_type": "authorization_code", "code": "c" * 40, "redirect_uri": REDIRECT})
    assert got.status_code == 401 and got.get_json()["error"] == "invalid_client"
    wrong = web.post("/oidc/token", base_url=BASE, auth=("rp1", "x" * 43),
                     data={"grant_type": "authorization_code", "code": "c" * 40, "redirect_uri": REDIRECT})
    assert wrong.get_json()["error"] == "invalid_client"
    assert [e.data["reason"] for e in events(sqlite_deps, "client.authenticate")] == ["wrong_secret"]


def test_an_expired_code_is_refused(web, sqlite_deps, party, kato):
    resp, verifier = authorize(web)
    code = code_of(resp)
    sqlite_deps.clock.advance(seconds=sqlite_deps.settings.oidc.code_seconds + 1)
    got = token(web, party, code, verifier)
    assert got.status_code == 400 and got.get_json()["error"] == "invalid_grant"
    assert [e.data["reason"] for e in events(sqlite_deps, "oidc.token")] == ["code_expired"]


def test_a_user_outside_the_clients_groups_gets_a_refusal_page_audited(web, sqlite_deps, operator,
                                                                      account_admin, kato):
    register(sqlite_deps, operator, account_admin, "rp2", groups_=())
    resp, _ = authorize(web, client_id="rp2")
    assert resp.status_code == 403
    assert "error=access_denied" in resp.get_data(as_text=True)
    [refused] = [e for e in events(sqlite_deps, "oidc.authorize") if e.result == "refused"]
    assert refused.subject == "kato" and refused.data["reason"] == "group_not_allowed"


def test_refresh_tokens_rotate_and_a_reused_one_revokes_the_family(web, sqlite_deps, party, kato):
    resp, verifier = authorize(web)
    first = token(web, party, code_of(resp), verifier).get_json()
    second = refresh(web, party, first["refresh_token"])
    assert second.status_code == 200, second.get_data(as_text=True)
    second = second.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert userinfo(web, second["access_token"]).status_code == 200
    reused = refresh(web, party, first["refresh_token"])
    assert reused.get_json()["error"] == "invalid_grant"
    assert userinfo(web, second["access_token"]).status_code == 401  # the whole family is gone


def test_tokens_die_with_the_session(web, sqlite_deps, party, kato):
    resp, verifier = authorize(web)
    body = token(web, party, code_of(resp), verifier).get_json()
    post(web, "/logoff", {}, csrf(web, "/home"))
    assert userinfo(web, body["access_token"]).status_code == 401
    assert refresh(web, party, body["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_operator_ending_sessions_revokes_tokens(web, sqlite_deps, party, kato, operator):
    resp, verifier = authorize(web)
    body = token(web, party, code_of(resp), verifier).get_json()
    operators.end_sessions(sqlite_deps, operator, "kato", "test")
    assert userinfo(web, body["access_token"]).status_code == 401
    [ended] = events(sqlite_deps, "oidc.session_ended")
    assert ended.data["reason"] == "ended_by_operator" and ended.data["clients"] == ["rp1"]


def test_without_a_session_the_user_logs_on_and_comes_back(web, sqlite_deps, operator, account_admin, party):
    secret = worker(sqlite_deps, operator, account_admin)
    resp, verifier = authorize(web)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/")
    log_on(web, sqlite_deps, "kato", secret)
    back = web.get("/", base_url=BASE)  # the logon's last page goes back to the request
    assert "/oidc/authorize?" in back.headers["Location"]
    code = code_of(web.get(back.headers["Location"], base_url=BASE))
    assert token(web, party, code, verifier).status_code == 200


def test_max_age_zero_asks_for_a_fresh_logon_then_answers(web, sqlite_deps, party, kato):
    resp, verifier = authorize(web, max_age="0")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/reauth")
    page = web.get("/reauth", base_url=BASE)
    assert page.status_code == 200
    again = post(web, "/unlock", {"password": CHOSEN[0], "again": "1"}, csrf(web, "/reauth"))
    assert again.headers["Location"].endswith("/factor")
    done = post(web, "/factor/totp", {"code": next_totp(sqlite_deps, kato)}, csrf(web, "/factor"))
    assert "/oidc/authorize?" in done.headers["Location"]
    code = code_of(web.get(done.headers["Location"], base_url=BASE))
    claims = verified(web, token(web, party, code, verifier).get_json()["id_token"])
    assert abs(claims["auth_time"] - sqlite_deps.clock.now().timestamp()) <= 1


def test_prompt_none_without_a_session_answers_login_required(web, party):
    resp, _ = authorize(web, prompt="none")
    assert resp.status_code == 302 and "error=login_required" in resp.headers["Location"]


def test_a_demanded_acr_the_session_lacks_runs_only_the_missing_factor(web, sqlite_deps, party, kato):
    resp, _ = authorize(web, acr_values=rules.ACR_VEIN)
    # kato has no palm enrolled: the level cannot be reached, said to the relying party
    assert resp.status_code == 302 and "error=access_denied" in resp.headers["Location"]
    assert oidc.demanded("urn:x " + rules.ACR_VEIN) == rules.ACR_VEIN


def test_a_cross_site_request_is_bounced_once_so_the_strict_cookie_comes_along(web, party, kato):
    from urllib.parse import urlencode

    query = urlencode({"response_type": "code", "client_id": "rp1", "redirect_uri": REDIRECT,
                       "scope": "openid", "code_challenge": "x" * 43, "code_challenge_method": "S256"})
    hop = web.get("/oidc/authorize?" + query, base_url=BASE, headers={"Sec-Fetch-Site": "cross-site"})
    assert hop.status_code == 200 and "&amp;b=1" in hop.get_data(as_text=True)
    again = web.get("/oidc/authorize?" + query + "&b=1", base_url=BASE,
                    headers={"Sec-Fetch-Site": "cross-site"})
    assert again.status_code == 302 and "code=" in again.headers["Location"]  # no second hop


def logout_url(**params: str) -> str:
    from urllib.parse import urlencode

    return "/oidc/logout?" + urlencode(params)


def test_rp_initiated_logout_with_our_hint_ends_the_session_and_goes_back(web, sqlite_deps, operator,
                                                                         account_admin, kato):
    register(sqlite_deps, operator, account_admin, "rp3", post_logout_redirect_uris=["https://rp.example/bye"])
    resp, _ = authorize(web, client_id="rp3")
    assert resp.status_code == 302
    # no hint: a page asks first (a link alone logs nobody off)
    page = web.get(logout_url(), base_url=BASE)
    assert page.status_code == 200 and 'name="confirm"' in page.get_data(as_text=True)
    assert web.get("/home", base_url=BASE).status_code == 200
    # an unregistered URI is never followed
    refused = web.get(logout_url(client_id="rp3", post_logout_redirect_uri="https://evil.example/"),
                      base_url=BASE)
    assert "evil.example" not in refused.get_data(as_text=True)


def test_logout_with_the_id_token_hint_goes_back_with_state(web, sqlite_deps, operator, account_admin,
                                                           kato):
    party = register(sqlite_deps, operator, account_admin, "rp3",
                     post_logout_redirect_uris=["https://rp.example/bye"])
    resp, verifier = authorize(web, client_id="rp3")
    body = token(web, party, code_of(resp), verifier).get_json()
    out = web.get(logout_url(id_token_hint=body["id_token"], state="s-9",
                             post_logout_redirect_uri="https://rp.example/bye"), base_url=BASE)
    assert location(out) == "https://rp.example/bye?state=s-9"
    assert web.get("/home", base_url=BASE).status_code != 200  # the session ended
    assert events(sqlite_deps, "session.logoff")


def test_codes_and_tokens_are_kept_only_as_hashes(web, sqlite_deps, party, kato, caplog):
    from tests.integration.support import dump_all

    caplog.set_level("DEBUG")
    resp, verifier = authorize(web)
    code = code_of(resp)
    body = token(web, party, code, verifier).get_json()
    refreshed = refresh(web, party, body["refresh_token"]).get_json()
    stored = dump_all(sqlite_deps)
    for secret in (code, body["access_token"], body["refresh_token"], refreshed["access_token"],
                   refreshed["refresh_token"], party.secret):
        assert secret not in stored and secret not in caplog.text
