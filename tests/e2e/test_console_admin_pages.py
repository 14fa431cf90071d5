"""The console's remaining administration pages (R7, R10, R12, R24, R26): a second factor taken
away and a maintenance window set from the account page, the company's devices, its groups and
their members (requested by one administrator, approved by another), and the agency's contracts.
Each action is audited with its reason; another company's administrator gets the answer of an
unknown record and changes nothing; a user session reaches none of it; every post needs its
CSRF token; English on request.

Flask's test client against the real app, on the rig of test_console_accounts."""

from __future__ import annotations

import base64
import re
from html import unescape
from typing import Any
from urllib.parse import unquote

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from authsvc.domain import relying_party
from authsvc.domain.messages import text
from authsvc.services import Deps, accounts, devices, groups, operators, service_clients
from authsvc.services import directory_sync as directories
from authsvc.services.sessions import Client
from tests.conftest import AGENCY
from tests.e2e.test_console_accounts import (  # noqa: F401  (rig: the fixture)
    COMPANY,
    OPERATOR,
    OTHER,
    get,
    html,
    post,
    rig,
    state,
    where,
    without_tokens,
)
from tests.integration.support import events

DEVICE = "TERM-0001"


def _key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw,
                                                                 serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def device(deps: Deps, device_id: str = DEVICE) -> devices.DeviceView:
    [found] = [d for d in devices.list_devices(deps, AGENCY) if d.device_id == device_id]
    return found


def group(deps: Deps, name: str, company: str = COMPANY) -> groups.GroupView:
    [found] = [v for v in groups.list_groups(deps, AGENCY, company) if v.name == name]
    return found


def members(deps: Deps, name: str) -> dict[str, str]:
    return {m["user_id"]: "approved" if m["approved_at"] else "requested"
            for m in group(deps, name).members}


def contract(deps: Deps, number: str) -> dict[str, Any]:
    [found] = [c for c in accounts.list_contracts(deps, AGENCY) if c["contract"] == number]
    return found


@pytest.fixture
def made(rig):  # noqa: F811
    """The rig with a terminal of the company and a group of it."""
    devices.register(rig.deps, OPERATOR, DEVICE, _key(), description="受付端末", company=COMPANY)
    groups.create(rig.deps, OPERATOR, "設計部", ["totp"], ["wiki"], COMPANY)
    return rig


def back(resp: Any) -> str:
    """Where a redirect leads, its query decoded."""
    return unquote(where(resp))


def ok_reasons(deps: Deps, action: str, subject: str) -> list[tuple[str, str]]:
    return [(e.actor, e.data.get("reason", "")) for e in events(deps, action, subject) if e.result == "ok"]


# ---- the account page: a factor taken away, a maintenance window -----------------------------


def test_reset_factor_from_the_account_page_is_audited_with_the_reason(made):
    client = made.console("kato")  # the company's account administrator
    page = html(get(client, "/console/accounts/tanaka"))
    assert 'id="reset-factor"' in page and '<option value="totp">' in page
    assert 'id="reset-factor"' not in html(get(client, "/console/accounts/kato"))  # not their own
    assert 'id="reset-factor"' not in html(get(made.console("kimura"), "/console/accounts/tanaka"))
    refused = post(client, "/console/accounts/tanaka/reset-factor", {"factor": "totp", "reason": " "})
    assert refused.status_code == 400 and operators.page(made.deps, AGENCY, "tanaka").factors
    resp = post(client, "/console/accounts/tanaka/reset-factor", {"factor": "totp", "reason": "端末紛失"})
    assert where(resp) == "/console/accounts/tanaka?done=reset-factor"
    assert "認証要素の登録を削除しました" in html(get(client, where(resp)))
    assert "totp" not in operators.page(made.deps, AGENCY, "tanaka").factors
    [event] = events(made.deps, "account.reset_factor", "tanaka")
    assert event.actor == "kato" and event.data["reason"] == "端末紛失" and event.data["factor"] == "totp"
    # nothing left to take away: the message, and the way back
    again = post(client, "/console/accounts/tanaka/reset-factor", {"factor": "totp", "reason": "再度"})
    assert again.status_code == 404 and 'href="/console/accounts"' in html(again)
    english = html(get(client, "/console/accounts/yamada?lang=en"))
    assert "Remove a factor" in english and "Set the maintenance window" not in english  # kato: no right


def test_a_maintenance_window_from_the_account_page(made):
    client = made.console("sato")  # a system administrator approves identifiers
    page = html(get(client, "/console/accounts/tanaka"))
    assert 'id="window"' in page and 'id="window-from"' in page
    assert 'id="window"' not in html(get(made.console("kato"), "/console/accounts/tanaka"))
    missing = post(client, "/console/accounts/tanaka/window", {"starts_at": "2026-04-02T09:00",
                                                                "reason": "保守作業"})
    assert missing.status_code == 400 and text("field_required", "ja", field="終了日時") in html(missing)
    backwards = post(client, "/console/accounts/tanaka/window",
                     {"starts_at": "2026-04-02T18:00", "ends_at": "2026-04-02T09:00", "reason": "保守作業"})
    assert backwards.status_code == 400 and state(made.deps, "tanaka").window_ends_at is None
    resp = post(client, "/console/accounts/tanaka/window",
                {"starts_at": "2026-04-02T09:00", "ends_at": "2026-04-02T18:00", "reason": "保守作業"})
    assert where(resp) == "/console/accounts/tanaka?done=window"
    after = html(get(client, where(resp)))
    assert "保守用アカウントの期間を設定しました。" in after and "2026年4月2日 18:00" in after
    assert (state(made.deps, "tanaka").window_ends_at or "").startswith("2026-04-02T18:00:00")
    [event] = events(made.deps, "account.window", "tanaka")
    assert event.actor == "sato" and event.data["reason"] == "保守作業"
    assert "Set the maintenance window" in html(get(client, "/console/accounts/tanaka?lang=en"))


# ---- devices -------------------------------------------------------------------------------


def test_devices_are_suspended_resumed_and_revoked_with_a_reason(made):
    client = made.console("sato")
    page = html(get(client, "/console/devices"))
    assert f'data-device="{DEVICE}" data-status="active"' in page and "受付端末" in page
    assert 'id="menu-devices"' in html(get(client, "/console/"))
    assert 'id="menu-devices"' not in html(get(made.console("kato"), "/console/"))
    assert get(made.console("kato"), "/console/devices").status_code == 403
    assert post(client, f"/console/devices/{DEVICE}/suspend", {"reason": ""}).status_code == 400
    assert device(made.deps).status == "active"
    for action, status in (("suspend", "suspended"), ("resume", "active"), ("revoke", "revoked")):
        resp = post(client, f"/console/devices/{DEVICE}/{action}", {"reason": f"理由 {action}"})
        assert where(resp) == f"/console/devices?done={action}&device={DEVICE}"
        assert device(made.deps).status == status
    assert f"機器 {DEVICE} を失効させました。" in html(get(client, where(resp)))
    assert ok_reasons(made.deps, "device.revoke", DEVICE) == [("sato", "理由 revoke")]
    assert [e.data["reason"] for e in events(made.deps, subject=DEVICE) if e.actor == "sato"
            and e.action != "device.list"] == ["理由 suspend", "理由 resume", "理由 revoke"]
    # revoked: final (its ID released); the page offers nothing more, the service refuses
    assert f'data-device="{DEVICE}" data-status="revoked"' in html(get(client, "/console/devices"))
    assert 'class="resume"' not in html(get(client, "/console/devices"))
    assert post(client, f"/console/devices/{DEVICE}/resume", {"reason": "x"}).status_code == 404
    assert post(client, f"/console/devices/{DEVICE}/erase", {"reason": "x"}).status_code == 404
    english = html(get(client, "/console/devices?lang=en"))
    assert "Devices" in english and "Revoked" in english and "機器の管理" not in english


# ---- groups --------------------------------------------------------------------------------


def test_a_group_is_created_and_a_member_requested_approved_and_removed(made):
    kato, sato = made.console("kato"), made.console("sato")
    assert 'id="menu-groups"' in html(get(kato, "/console/"))
    page = html(get(kato, "/console/groups"))
    assert 'data-group="設計部"' in page and "ワンタイムコード" in page and "wiki" in page
    assert 'class="approve"' not in page  # kato may not approve
    resp = post(kato, "/console/groups/create", {"group": "製造部", "factors": ["vein", "totp"],
                                                 "services": "cad, wiki、 mail"})
    assert back(resp) == "/console/groups?done=create&group=製造部"
    made_group = group(made.deps, "製造部")
    assert sorted(made_group.factors) == ["totp", "vein"] and made_group.services == ["cad", "mail", "wiki"]
    assert "グループ「製造部」を作成しました。" in html(get(kato, where(resp)))
    assert post(kato, "/console/groups/create", {"group": "空", "services": ""}).status_code == 400
    # requested by one administrator
    resp = post(kato, "/console/groups/request", {"group": "設計部", "company": COMPANY, "user_id": "tanaka"})
    assert back(resp) == "/console/groups?done=request&group=設計部&user=tanaka"
    assert members(made.deps, "設計部") == {"tanaka": "requested"}
    assert 'data-member="tanaka" data-state="requested"' in html(get(sato, "/console/groups"))
    # ... approved by another, never by the one who asked (the app's message, the way back)
    post(sato, "/console/groups/request", {"group": "設計部", "user_id": "yamada"})
    four_eyes = post(sato, "/console/groups/approve", {"group": "設計部", "user_id": "yamada"})
    assert four_eyes.status_code == 403 and text("four_eyes", "ja") in html(four_eyes)
    assert 'href="/console/groups"' in html(four_eyes)
    resp = post(sato, "/console/groups/approve", {"group": "設計部", "user_id": "tanaka"})
    assert back(resp) == "/console/groups?done=approve&group=設計部&user=tanaka"
    assert members(made.deps, "設計部") == {"tanaka": "approved", "yamada": "requested"}
    resp = post(kato, "/console/groups/remove", {"group": "設計部", "user_id": "tanaka"})
    assert back(resp).endswith("done=remove&group=設計部&user=tanaka")
    assert "tanaka をグループ「設計部」から外しました。" in html(get(kato, where(resp)))
    assert members(made.deps, "設計部") == {"yamada": "requested"}
    assert [e.actor for e in events(made.deps, subject="tanaka") if e.action.startswith("group.")
            and e.result == "ok"] == ["kato", "sato", "kato"]
    english = html(get(kato, "/console/groups?lang=en"))
    assert "Groups" in english and "Request a member" in english and "グループ名" not in english


# ---- contracts -----------------------------------------------------------------------------


def test_an_agency_operator_changes_a_contracts_period_with_a_reason(made):
    client = made.console("unyo")
    assert 'id="menu-contracts"' in html(get(client, "/console/"))
    page = html(get(client, "/console/contracts"))
    assert 'data-contract="C-1"' in page and 'data-contract="C-9"' in page
    assert post(client, "/console/contracts", {"contract": "C-1", "starts_on": "2026-04-01",
                                               "reason": ""}).status_code == 400
    assert post(client, "/console/contracts", {"contract": "C-1", "starts_on": "2027-04-01",
                                               "ends_on": "2027-03-31", "reason": "x"}).status_code == 400
    resp = post(client, "/console/contracts", {"contract": "C-1", "starts_on": "2026-04-01",
                                               "ends_on": "2028-03-31", "reason": "契約延長"})
    assert where(resp) == "/console/contracts?done=C-1"
    assert "契約 C-1 の期間を変更しました。" in html(get(client, where(resp)))
    assert contract(made.deps, "C-1")["ends_on"] == "2028-03-31"
    assert ok_reasons(made.deps, "contract.period", "C-1") == [("unyo", "契約延長")]
    unknown = post(client, "/console/contracts", {"contract": "C-404", "starts_on": "2026-04-01",
                                                  "reason": "x"})
    assert unknown.status_code == 404 and 'href="/console/contracts"' in html(unknown)
    english = html(get(client, "/console/contracts?lang=en"))
    assert "Contracts" in english and "Change the period" in english and "契約の管理" not in english


def test_a_companys_administrator_has_no_contracts_page(made):
    client = made.console("sato")
    assert 'id="menu-contracts"' not in html(get(client, "/console/"))
    assert get(client, "/console/contracts").status_code == 403
    before = contract(made.deps, "C-1")
    refused = post(client, "/console/contracts", {"contract": "C-1", "starts_on": "2026-04-01",
                                                  "ends_on": "2030-03-31", "reason": "x"})
    assert refused.status_code == 403 and contract(made.deps, "C-1") == before


# ---- another company, a user session, CSRF -------------------------------------------------


def test_another_companys_administrator_gets_the_unknown_answer_and_changes_nothing(made):
    post(made.console("kato"), "/console/groups/request", {"group": "設計部", "user_id": "tanaka"})
    before = (state(made.deps, "tanaka"), operators.page(made.deps, AGENCY, "tanaka").factors,
              device(made.deps), group(made.deps, "設計部"))
    client = made.console("suzuki")  # the other company's system administrator

    def same(theirs_path: str, unknown_path: str, form: dict[str, Any], names: tuple[str, str],
             theirs_form: dict[str, Any] | None = None) -> None:
        theirs, unknown = post(client, theirs_path, theirs_form or form), post(client, unknown_path, form)
        assert theirs.status_code == unknown.status_code == 404, theirs_path
        assert (without_tokens(html(theirs)).replace(names[0], "ID")
                == without_tokens(html(unknown)).replace(names[1], "ID")), theirs_path

    window = {"starts_at": "2026-04-02T09:00", "ends_at": "2026-04-02T18:00", "reason": "他社"}
    same("/console/accounts/tanaka/reset-factor", "/console/accounts/nobody/reset-factor",
         {"factor": "totp", "reason": "他社"}, ("tanaka", "nobody"))
    same("/console/accounts/tanaka/window", "/console/accounts/nobody/window", window, ("tanaka", "nobody"))
    for action in ("suspend", "resume", "revoke"):
        same(f"/console/devices/{DEVICE}/{action}", f"/console/devices/NOBODY-1/{action}",
             {"reason": "他社"}, (DEVICE, "NOBODY-1"))
    for action in ("request", "approve", "remove"):
        same(f"/console/groups/{action}", f"/console/groups/{action}",
             {"group": "存在しない", "user_id": "tanaka"}, ("設計部", "存在しない"),
             {"group": "設計部", "user_id": "tanaka"})
        # naming the company does not help: another company's group is no group of theirs
        assert post(client, f"/console/groups/{action}", {"group": "設計部", "company": COMPANY,
                                                          "user_id": "tanaka"}).status_code == 404
    assert DEVICE not in html(get(client, "/console/devices"))
    assert "設計部" not in html(get(client, "/console/groups"))
    assert (state(made.deps, "tanaka"), operators.page(made.deps, AGENCY, "tanaka").factors,
            device(made.deps), group(made.deps, "設計部")) == before
    assert not [e for e in events(made.deps) if e.actor == "suzuki" and e.result == "ok"
                and e.action in CHANGES]
    refused = {e.action for e in events(made.deps) if e.actor == "suzuki" and e.result == "refused"}
    assert {"account.reset_factor", "account.window", "device.change"} <= refused


CHANGES = ("account.reset_factor", "account.window", "device.suspend", "device.resume",
           "device.revoke", "group.create", "group.request", "group.approve", "group.remove",
           "contract.period")
NEW_PAGES = ("/console/devices", "/console/groups", "/console/contracts", "/console/clients",
             "/console/directory")
NEW_POSTS: dict[str, dict[str, Any]] = {
    "/console/accounts/tanaka/reset-factor": {"factor": "totp", "reason": "x"},
    "/console/accounts/tanaka/window": {"starts_at": "2026-04-02T09:00", "ends_at": "2026-04-02T18:00",
                                        "reason": "x"},
    f"/console/devices/{DEVICE}/suspend": {"reason": "x"},
    "/console/groups/create": {"group": "新設", "factors": "totp"},
    "/console/groups/request": {"group": "設計部", "user_id": "yamada"},
    "/console/contracts": {"contract": "C-1", "starts_on": "2026-04-01", "ends_on": "2030-03-31",
                           "reason": "x"},
    "/console/clients/create": {"client_id": "new-rp", "name": "x", "redirect_uris": "https://x.example/cb",
                                "auth_method": "client_secret_basic"},
    "/console/directory/sync": {"company": COMPANY, "mode": "full"},
    "/console/directory/export": {"company": COMPANY},
}


def _unchanged(deps: Deps) -> tuple[Any, ...]:
    return (state(deps, "tanaka"), operators.page(deps, AGENCY, "tanaka").factors, device(deps),
            sorted(v.name for v in groups.list_groups(deps, AGENCY, COMPANY)),
            members(deps, "設計部"), contract(deps, "C-1"), service_clients.list_clients(deps, AGENCY))


def test_a_user_session_reaches_none_of_the_new_pages(made):
    before = _unchanged(made.deps)
    client = made.client()
    assert where(made.log_on(client, "unyo")) == "/home"  # an agency operator, on the user pages
    token = client.get_cookie("authsvc_session", domain="localhost", path="/").value
    for cookie in (None, token):
        if cookie:
            client.set_cookie("authsvc_console", cookie, domain="localhost", path="/console")
        for page in NEW_PAGES:
            assert where(get(client, page)) == "/console/logon/", page
        for path, form in NEW_POSTS.items():
            assert post(client, path, form).status_code == 401, path
    assert _unchanged(made.deps) == before


def test_every_new_action_needs_the_csrf_token(made):
    before = _unchanged(made.deps)
    for who in ("sato", "unyo"):
        client = made.console(who)
        for token in (None, "forged-token"):
            for path, form in NEW_POSTS.items():
                resp = post(client, path, form, token=token)
                assert resp.status_code == 400 and text("request_invalid", "ja") in html(resp), (path, token)
    assert _unchanged(made.deps) == before
    assert not [e for e in events(made.deps) if e.action in CHANGES and e.actor in ("sato", "unyo")]


def test_a_refusal_on_a_new_page_leads_back_to_it(made):
    client = made.console("sato")
    for path, form, back in (
            (f"/console/devices/{DEVICE}/resume", {"reason": "x"}, "/console/devices"),
            ("/console/groups/remove", {"group": "設計部", "user_id": "yamada"}, "/console/groups")):
        resp = post(client, path, form)
        assert resp.status_code in (404, 409) and f'href="{back}"' in html(resp), path
    assert re.search(r'href="/console/accounts"', html(post(
        client, "/console/accounts/tanaka/reset-factor", {"factor": "bogus", "reason": "x"})))


# ---- service and OpenID Connect clients (R6, R18) ---------------------------------------------

RP = {"client_id": "wiki-rp", "name": "社内Wiki", "redirect_uris": "https://wiki.example.jp/cb\r\n"
      "http://127.0.0.1:8000/cb\r\n", "post_logout_uris": "", "backchannel_uri": "",
      "auth_method": "client_secret_basic", "jwks": "", "refresh": "yes", "groups": "設計部"}


def secret_of(resp: Any) -> str:
    assert resp.status_code == 200, html(resp)[:500]
    return re.search(r'<code id="client-secret">([^<]+)</code>', html(resp)).group(1)


def test_an_oidc_client_is_registered_approved_and_managed_from_the_clients_page(made):
    kato = made.console("kato")  # the company's account administrator: creates, approves nothing
    assert 'id="menu-clients"' in html(get(kato, "/console/"))
    assert 'id="menu-clients"' not in html(get(made.console("kimura"), "/console/"))  # staff
    page = html(get(kato, "/console/clients"))
    assert 'id="no-clients"' in page and 'id="client-new"' in page and 'id="client-company"' not in page
    issued = post(kato, "/console/clients/create", RP)
    secret = secret_of(issued)
    assert len(secret) >= 43 and 'id="client-pending"' in html(issued)
    assert group(made.deps, "設計部").services == ["wiki", "wiki-rp"]
    page = html(get(kato, "/console/clients"))
    assert 'data-client="wiki-rp" data-kind="oidc" data-status="pending"' in page
    assert "https://wiki.example.jp/cb" in page and "設計部" in page and secret not in page
    assert 'class="approve"' not in page
    sato = made.console("sato")
    assert 'class="approve"' in html(get(sato, "/console/clients"))
    resp = post(sato, "/console/clients/wiki-rp/approve", {})
    assert back(resp) == "/console/clients?done=approve&client=wiki-rp"
    assert "クライアント wiki-rp を承認しました。" in html(get(sato, where(resp)))
    assert post(sato, "/console/clients/wiki-rp/suspend", {"reason": " "}).status_code == 400
    for action in ("suspend", "resume"):
        resp = post(sato, f"/console/clients/wiki-rp/{action}", {"reason": f"理由 {action}"})
        assert back(resp) == f"/console/clients?done={action}&client=wiki-rp"
    fresh = secret_of(post(sato, "/console/clients/wiki-rp/rotate", {"reason": "定期"}))
    assert fresh != secret
    rp_server = Client("wiki/1.0", "10.0.0.9", False)
    assert service_clients.authenticate(made.deps, "wiki-rp", fresh, rp_server, kind="oidc") is not None
    assert service_clients.authenticate(made.deps, "wiki-rp", fresh, rp_server) is None  # not the admin API
    post(sato, "/console/clients/wiki-rp/revoke", {"reason": "廃止"})
    revoked = html(get(sato, "/console/clients"))
    assert 'data-client="wiki-rp" data-kind="oidc" data-status="revoked"' in revoked
    assert post(sato, "/console/clients/wiki-rp/erase", {"reason": "x"}).status_code == 404
    assert ok_reasons(made.deps, "client.suspend", "wiki-rp") == [("sato", "理由 suspend")]
    assert [e.action for e in events(made.deps, subject="wiki-rp") if e.result == "ok"
            and e.action != "client.authenticate"] == [
        "client.create", "client.approve", "client.suspend", "client.resume", "client.rotate",
        "client.revoke"]
    english = html(get(sato, "/console/clients?lang=en"))
    assert "Register an OpenID Connect client" in english and "Revoked" in english


def test_a_bad_registration_is_named_and_a_key_client_gets_no_secret(made):
    kato = made.console("kato")
    bad = post(kato, "/console/clients/create", {**RP, "redirect_uris": "http://wiki.example.jp/cb"})
    assert bad.status_code == 400 and text("oidc_redirect_uri_invalid", "ja") in unescape(html(bad))
    unknown = post(kato, "/console/clients/create", {**RP, "groups": "存在しない"})
    assert unknown.status_code == 404 and service_clients.list_clients(made.deps, AGENCY) == []
    key = ('{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "' + _key() + '"}]}')
    keyed = post(kato, "/console/clients/create", {**RP, "auth_method": "private_key_jwt", "jwks": key})
    assert keyed.status_code == 200 and 'id="client-no-secret"' in html(keyed)
    assert 'id="client-secret"' not in html(keyed)
    page = html(get(made.console("sato"), "/console/clients"))
    assert 'data-client="wiki-rp"' in page and 'class="rotate"' not in page  # nothing to rotate


def test_the_agency_sees_every_client_and_makes_agency_wide_ones(made):
    unyo = made.console("unyo")
    assert 'id="client-company"' in html(get(unyo, "/console/clients"))
    refused = post(unyo, "/console/clients/create", {**RP, "company": ""})  # agency-wide: no groups here
    assert refused.status_code == 400 and text("oidc_groups_of_company", "ja") in unescape(html(refused))
    secret_of(post(unyo, "/console/clients/create", {**RP, "groups": "", "company": ""}))
    secret_of(post(unyo, "/console/clients/create", {**RP, "client_id": "ours-rp", "company": COMPANY}))
    page = html(get(unyo, "/console/clients"))
    assert 'data-client="wiki-rp"' in page and 'data-client="ours-rp"' in page
    assert 'data-client="wiki-rp"' not in html(get(made.console("sato"), "/console/clients"))


def test_another_companys_administrator_gets_the_unknown_answer_for_our_clients(made):
    reg = relying_party.parse("社内Wiki", ["https://wiki.example.jp/cb"])
    service_clients.create(made.deps, OPERATOR, "wiki-rp", [], COMPANY, oidc=reg, groups=["設計部"])
    before = (service_clients.list_clients(made.deps, AGENCY), group(made.deps, "設計部"))
    suzuki = made.console("suzuki")  # the other company's system administrator
    assert "wiki-rp" not in html(get(suzuki, "/console/clients"))
    for action in ("approve", "rotate", "suspend", "revoke"):
        theirs = post(suzuki, f"/console/clients/wiki-rp/{action}", {"reason": "他社"})
        unknown = post(suzuki, f"/console/clients/nobody-rp/{action}", {"reason": "他社"})
        assert theirs.status_code == unknown.status_code == 404, action
        assert (without_tokens(html(theirs)).replace("wiki-rp", "ID")
                == without_tokens(html(unknown)).replace("nobody-rp", "ID")), action
    # nor one made for our company, nor in our group
    assert post(suzuki, "/console/clients/create", {**RP, "client_id": "evil-rp", "company": COMPANY,
                                                    "groups": ""}).status_code == 404
    assert post(suzuki, "/console/clients/create", {**RP, "client_id": "evil-rp"}).status_code == 404
    assert (service_clients.list_clients(made.deps, AGENCY), group(made.deps, "設計部")) == before
    refused = [(e.action, e.data["reason"]) for e in events(made.deps)
               if e.actor == "suzuki" and e.result == "refused"]
    assert refused == [(f"client.{a}", "other_company")
                       for a in ("approve", "rotate", "suspend", "revoke", "create")]


# ---- directory sync ([9 of 12], R20) -----------------------------------------------------------


@pytest.fixture
def synced(made):
    """The rig with a directory for the company (two people, one whose uid is no user ID); the
    other company has none."""
    from tests.e2e.test_admin_api import FakeDirectory, directory_person, directory_source, with_directories

    fake = FakeDirectory(directory_source(COMPANY, "C-1"), [directory_person("dir-1", "連携 一郎", 1),
                                                            directory_person("../bad", "不正 二郎", 2)])
    made.deps = with_directories(made.deps, {COMPANY: fake})
    made.app.extensions["authsvc"] = made.deps
    made.fake = fake
    return made


def runs(deps: Deps) -> list[dict[str, Any]]:
    return directories.runs(deps, AGENCY, None, 100)


def test_the_directory_page_runs_a_dry_run_and_shows_what_would_change(synced):
    sato = synced.console("sato")
    assert 'id="menu-directory"' in html(get(sato, "/console/"))
    page = html(get(sato, "/console/directory"))
    assert "ディレクトリ連携" in page and 'id="no-runs"' in page
    for form in ("directory-sync", "directory-export"):  # each form posts its CSRF token
        assert re.search(rf'<form[^>]+id="{form}"[^>]*><input type="hidden" name="csrf_token" value="[^"]+">',
                         page), form
    assert 'id="sync-dry-run" checked' in page and f'<span id="sync-company">{COMPANY}</span>' in page
    report = post(sato, "/console/directory/sync", {"mode": "full", "dry_run": "yes"})
    assert report.status_code == 200, html(report)[:500]
    shown = html(report)
    assert 'id="report-dry-run"' in shown and "何も書き込んでいません" in shown
    assert re.search(r'<ul id="report-created"><li>dir-1</li></ul>', shown)
    assert "uid=../bad,ou=people,dc=example,dc=jp: user_id_invalid" in shown
    assert 'href="/console/directory"' in shown
    found = accounts.list_accounts(synced.deps, AGENCY, None, None, None, COMPANY, "連携")
    assert found == []  # nothing written
    listed = html(get(sato, "/console/directory"))
    assert f'data-company="{COMPANY}" data-result="ok"' in listed and "（試行）" in listed
    done = html(post(sato, "/console/directory/sync", {"mode": "incremental"}))
    assert 'id="report-done"' in done and "dir-1" in done
    assert accounts.show(synced.deps, AGENCY, "dir-1").status == "pending"
    exported = html(post(sato, "/console/directory/export", {"dry_run": "yes"}))
    assert re.search(r'<ul id="report-added">.*<li>dir-1</li>', exported) and synced.fake.exported == {}
    english = html(get(sato, "/console/directory?lang=en"))
    assert "Directory sync" in english and "Run the sync" in english and "Recent runs" in english
    again = html(post(sato, "/console/directory/sync?lang=en", {"dry_run": "yes"}))  # all known now
    assert "A dry run: nothing was written" in again and "Entries skipped (why)" in again
    assert 'id="report-created"' not in again
    assert [(r["actor"], r["dry_run"]) for r in runs(synced.deps)] == [
        ("sato", True), ("sato", False), ("sato", True)]


def test_a_staff_member_sees_the_runs_but_runs_no_sync(synced):
    kimura = synced.console("kimura")  # staff: reads accounts, manages none
    page = html(get(kimura, "/console/directory"))
    assert 'id="directory-sync"' not in page and 'id="directory-export"' in page
    refused = post(kimura, "/console/directory/sync", {"dry_run": "yes"})
    assert refused.status_code == 403 and runs(synced.deps) == []


def test_refusals_on_the_directory_page_are_polite_and_lead_back(synced):
    sato, unyo = synced.console("sato"), synced.console("unyo")
    missing = post(unyo, "/console/directory/sync", {"company": OTHER, "dry_run": "yes"})
    assert missing.status_code == 404
    assert text("directory_not_configured", "ja", company=OTHER) in html(missing)
    assert 'href="/console/directory"' in html(missing)
    no_company = post(unyo, "/console/directory/sync", {"company": " "})
    assert no_company.status_code == 400 and 'href="/console/directory"' in html(no_company)
    synced.fake.down = True
    stopped = post(sato, "/console/directory/sync?lang=en", {"mode": "full"})
    assert stopped.status_code == 409 and 'href="/console/directory"' in html(stopped)
    assert "no account was removed or suspended" in html(stopped) and "directory_unavailable" in html(stopped)
    assert 'data-result="stopped"' in html(get(sato, "/console/directory"))
    assert post(sato, "/console/directory/export", {}).status_code == 409


def test_another_companys_operator_sees_no_runs_of_ours_and_gets_the_unknown_answer(synced):
    post(synced.console("sato"), "/console/directory/sync", {"dry_run": "yes"})
    before = runs(synced.deps)
    suzuki = synced.console("suzuki")  # the other company's system administrator
    page = html(get(suzuki, "/console/directory"))
    assert 'id="no-runs"' in page and f'data-company="{COMPANY}"' not in page
    for action in ("sync", "export"):
        theirs = post(suzuki, f"/console/directory/{action}", {"company": COMPANY, "dry_run": "yes"})
        unknown = post(suzuki, f"/console/directory/{action}", {"company": "無い会社", "dry_run": "yes"})
        assert theirs.status_code == unknown.status_code == 404, action
        assert (without_tokens(html(theirs)).replace(COMPANY, "X")
                == without_tokens(html(unknown)).replace("無い会社", "X")), action
    # their own company has no directory: the same polite answer
    assert post(suzuki, "/console/directory/sync", {"dry_run": "yes"}).status_code == 404
    assert runs(synced.deps) == before
    refused = [(e.action, e.data["reason"]) for e in events(synced.deps)
               if e.actor == "suzuki" and e.result == "refused" and e.subject == COMPANY]
    assert refused == [("directory.sync", "other_company"), ("directory.export", "other_company")]


def test_the_directory_forms_need_the_csrf_token(synced):
    sato = synced.console("sato")
    for token in (None, "forged-token"):
        for action in ("sync", "export"):
            resp = post(sato, f"/console/directory/{action}", {"mode": "full"}, token=token)
            assert resp.status_code == 400 and text("request_invalid", "ja") in html(resp)
    assert runs(synced.deps) == [] and synced.fake.exported == {}
