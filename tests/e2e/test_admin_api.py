"""The administrators' API (/api/v1/admin) against the real app on SQLite, and the command line
with --as: every administrative route is scoped to the operator's company (R24). For every
route: no token, a user's session, and an administrator of another company are refused; the
refusal of the other company's administrator is audited with its real reason and changes
nothing; the company's own administrator gets through. The table of calls must name every
route of the blueprint, so a new route without a case here fails the suite."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyotp
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from adapters import workbooks
from adapters.directory import DirectoryError, Entry, Source
from authsvc.cli import main
from authsvc.domain import relying_party
from authsvc.domain.applications import USERS
from authsvc.domain.roles import Actor, Role
from authsvc.services import (
    Deps,
    accounts,
    alerts,
    applications,
    devices,
    directory_sync,
    groups,
    service_clients,
    totp,
)
from authsvc.services.passwords import change_password
from authsvc.web import create_app
from tests.application_support import fill
from tests.integration.support import CHOSEN, active_account, add_contract, dump_all, events, sql

PASSWORD = CHOSEN[0]
A, B = "防衛産業株式会社", "別会社株式会社"
AGENCY = Actor("ops1", frozenset({Role.AGENCY_OPERATOR}), terminal="console-1")
ASSIGN = {A: Actor("acct-a0", frozenset({Role.ACCOUNT_ADMIN}), company=A),
          B: Actor("acct-b0", frozenset({Role.ACCOUNT_ADMIN}), company=B)}
# State that a refused call may change: the audit log (the refusal is recorded), the alert
# inbox (a refused use of privileges is an alert) and the operator's own session (each
# admitted request moves its idle clock).
MAY_CHANGE = ("audit_events.", "audit_head.", "sessions.", "alerts.")


def _key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# ---- a directory for the surfaces' tests ([9 of 12]) --------------------------------------------
# The sync itself runs against a real OpenLDAP slapd in its own tests; the command line, the
# admin API and the console only need a company's directory that lists some entries (or fails).


def directory_source(company: str, contract: str, **more: Any) -> Source:
    return Source(company=company, urls=("ldap://127.0.0.1:1",), bind_dn="cn=sync,dc=example,dc=jp",
                  bind_password_env="AUTHSVC_TEST_NO_PASSWORD", users_base="ou=people,dc=example,dc=jp",
                  contract=contract, export_base="ou=dsg,dc=example,dc=jp", **more)


def directory_person(uid: str, name: str, n: int) -> Entry:
    return Entry(f"uid={uid},ou=people,dc=example,dc=jp", f"entry-{n}",
                 {"uid": (uid,), "displayname": (name,), "modifytimestamp": (f"2026040100000{n}Z",)})


@dataclass
class FakeDirectory:
    """A company's directory as adapters/directory's LdapDirectory presents it: its source, its
    user entries, what was exported to it; `down`: every search fails (the server stopped)."""

    source: Source
    users: list[Entry] = field(default_factory=list)
    down: bool = False
    exported: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def __enter__(self) -> FakeDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def search(self, base: str, flt: str, attributes: list[str]) -> Iterator[Entry]:
        if self.down:
            raise DirectoryError(f"{self.source.urls[0]}: LDAPSocketOpenError: connection refused")
        if base == self.source.export_base:
            return iter([Entry(dn, f"x-{dn}", {k.lower(): tuple(v) for k, v in values.items()})
                         for dn, values in self.exported.items()])
        return iter(list(self.users) if base == self.source.users_base else [])

    def add(self, dn: str, object_classes: list[str], attributes: dict[str, list[str]]) -> None:
        self.exported[dn] = attributes

    def replace(self, dn: str, attributes: dict[str, list[str]]) -> None:
        self.exported[dn] = {**self.exported[dn], **attributes}


def with_directories(deps: Deps, fakes: dict[str, FakeDirectory]) -> Deps:
    """`deps` whose companies named in `fakes` have those directories (others: none)."""
    of: Callable[[str], FakeDirectory | None] = fakes.get
    return dataclasses.replace(deps, directories=of)


@dataclass
class Rig:
    deps: Deps
    client: Any
    secrets: dict[str, str] = field(default_factory=dict)
    directories: dict[str, FakeDirectory] = field(default_factory=dict)

    def account(self, uid: str, company: str, role: str = "user", otp: bool = False) -> str:
        contract = "C-A" if company == A else "C-B"
        active_account(self.deps, ASSIGN[company], AGENCY, uid, contract=contract, role=role)
        change_password(self.deps, Actor(uid), uid, PASSWORD)
        if otp:
            made = totp.begin_enrolment(self.deps, Actor(uid), uid)
            totp.confirm_enrolment(self.deps, Actor(uid), uid, self._code(made.secret))
            self.secrets[uid] = made.secret
        return uid

    def _code(self, secret: str) -> str:
        self.deps.clock.advance(seconds=30)  # each code counts once
        return pyotp.TOTP(secret).at(self.deps.clock.now().timestamp())

    def token(self, uid: str, surface: str = "console") -> str:
        """A session through the API's own logon: password, then a one-time code."""
        first = self.client.post("/api/v1/logon", json={"user_id": uid, "password": PASSWORD,
                                                        "surface": surface})
        assert first.status_code == 200, first.get_json()
        done = self.client.post("/api/v1/logon/totp", json={"code": self._code(self.secrets[uid])},
                                headers=bearer(first.get_json()["token"]))
        assert done.status_code == 200 and done.get_json()["state"] == "done", done.get_json()
        return done.get_json()["token"]

    def call(self, token: str | None, method: str, path: str, body: dict | None = None) -> Any:
        return self.client.open(path, method=method, json=body if method != "GET" else None,
                                headers=bearer(token) if token else {})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def rig(make_deps) -> Rig:
    # company A has a directory (two people, one whose uid is no user ID); company B has none
    fakes = {A: FakeDirectory(directory_source(A, "C-A"), [directory_person("dir-a1", "連携 一郎", 1),
                                                           directory_person("../bad", "不正 二郎", 2)])}
    deps = with_directories(make_deps("sqlite"), fakes)
    app = create_app(deps=deps)
    app.config["TESTING"] = True
    r = Rig(deps, app.test_client(), directories=fakes)
    add_contract(deps, AGENCY, "C-A", A)
    add_contract(deps, AGENCY, "C-B", B)
    for company, tag in ((A, "a"), (B, "b")):
        r.account(f"adm-{tag}", company, "system_admin", otp=True)
        r.account(f"acct-{tag}", company, "account_admin", otp=True)
        r.account(f"user-{tag}", company, otp=True)
        r.account(f"new-{tag}", company)
        r.account(f"mover-{tag}", company)
        devices.register(deps, Actor(f"adm-{tag}", frozenset({Role.SYSTEM_ADMIN}), company=company),
                         f"TERM-{tag.upper()}", _key())
    accounts.create_account(deps, ASSIGN[A], "pending-a", "承認 待ち", "C-A", "user")
    accounts.suspend(deps, AGENCY, r.account("paused-a", A), "休職")
    groups.create(deps, ASSIGN[A], "設計部", ["vein", "totp"])
    groups.request_member(deps, ASSIGN[A], "設計部", "mover-a")
    alerts.raise_alert(deps, "shared_id_suspected", "user-a", A, terminals=["T-1", "T-2"])  # alert 1
    # service clients of company A: one pending, one active, one suspended (R6)
    adm_a = Actor("adm-a", frozenset({Role.SYSTEM_ADMIN}), company=A)
    for client_id in ("sync-a", "job-a", "paused-svc-a"):
        service_clients.create(deps, ASSIGN[A], client_id, ["accounts:read"])
    for client_id in ("job-a", "paused-svc-a"):
        service_clients.approve(deps, adm_a, client_id)
    service_clients.suspend(deps, adm_a, "paused-svc-a", "調査")
    # an OpenID Connect client of company A, the members of its group 設計部 may use ([8 of 12])
    service_clients.create(deps, ASSIGN[A], "rp-a", [], oidc=relying_party.parse("社内Wiki", [RP_CB]),
                           groups=["設計部"])
    directory_sync.sync(deps, ASSIGN[A], A, dry_run=True)  # a run of company A's to list
    # usage applications ([11 of 12]): company A subscribed, C-A concluded with its rosters, and
    # one application of company A's, submitted by its system administrator
    applications.set_terms(deps, AGENCY, "C-A", deps.clock.now().date(), "clause")
    applications.set_company(deps, AGENCY, A, "complete", None, "boei-a")
    for kind in ("handlers", "system_users"):
        applications.upload_roster(deps, AGENCY, "C-A", kind, applications.Upload("r.csv", ROSTER))
    applications.submit(deps, adm_a, [applications.Upload("a.xlsx", base64.b64decode(APPLICATION))])
    return r


def _application(user_id: str) -> str:
    """A usage application of contract C-A registering `user_id` (a person on its rosters), in base64."""
    rows = [["登録", user_id, "申請 太郎", date(1980, 4, 1), "E-1", None, None, "はい", None, None]]
    return base64.b64encode(fill(workbooks.template(USERS), "C-A", A, rows)).decode()


ROSTER = "氏名,生年月日\r\n申請 太郎,1980-04-01\r\n".encode()
APPLICATION, APPLICATION_2 = _application("appl-a1"), _application("appl-a2")
RP_CB = "https://wiki.example.jp/cb"
OIDC = {"name": "社内Wiki", "redirect_uris": [RP_CB, "https://wiki.example.jp/cb2"],
        "post_logout_redirect_uris": ["https://wiki.example.jp/bye"], "refresh": True}
# Every route of the admin API with a call on company A's records: (method, path, body).
CALLS: dict[str, tuple[str, str, dict | None]] = {
    "admin_api.search": ("GET", "/api/v1/admin/accounts?company=" + A, None),
    "admin_api.create": ("POST", "/api/v1/admin/accounts",
                         {"user_id": "made-a", "name": "新 人", "contract": "C-A"}),
    "admin_api.account": ("GET", "/api/v1/admin/accounts/user-a", None),
    "admin_api.update": ("PATCH", "/api/v1/admin/accounts/mover-a", {"name": "改 名"}),
    "admin_api.act": ("POST", "/api/v1/admin/accounts/mover-a/suspend", {"reason": "退職"}),
    "admin_api.contracts": ("GET", "/api/v1/admin/contracts", None),
    "admin_api.contract_period": ("POST", "/api/v1/admin/contracts/C-A/period",
                                  {"starts_on": "2026-04-01", "ends_on": "2027-03-31", "reason": "延長"}),
    "admin_api.create_contract": ("POST", "/api/v1/admin/contracts",
                                  {"contract": "C-A2", "company": A, "starts_on": "2026-04-01"}),
    "admin_api.device_list": ("GET", "/api/v1/admin/devices", None),
    "admin_api.device_register": ("POST", "/api/v1/admin/devices",
                                  {"device_id": "TERM-A2", "public_key": "KEY", "company": A}),
    "admin_api.device_change": ("POST", "/api/v1/admin/devices/TERM-A/suspend", {"reason": "紛失"}),
    "admin_api.events": ("GET", "/api/v1/admin/audit?subject=user-a", None),
    "admin_api.group_list": ("GET", "/api/v1/admin/groups", None),
    "admin_api.alert_inbox": ("GET", "/api/v1/admin/alerts", None),
    "admin_api.alert_acknowledge": ("POST", "/api/v1/admin/alerts/1/acknowledge", {}),
    "admin_api.group_create": ("POST", "/api/v1/admin/groups",
                               {"name": "新設", "factors": ["vein"], "company": A}),
    "admin_api.group_policy": ("POST", "/api/v1/admin/groups/設計部/policy?company=" + A,
                               {"factors": ["totp"], "company": A}),
    "admin_api.group_request": ("POST", "/api/v1/admin/groups/設計部/members",
                                {"user_id": "user-a", "company": A}),
    "admin_api.group_approve": ("POST", f"/api/v1/admin/groups/設計部/members/mover-a/approve?company={A}",
                                {}),
    "admin_api.group_remove": ("DELETE", f"/api/v1/admin/groups/設計部/members/mover-a?company={A}",
                               None),
    "admin_api.client_list": ("GET", "/api/v1/admin/clients", None),
    "admin_api.client_create": ("POST", "/api/v1/admin/clients",
                                {"client_id": "made-svc-a", "scopes": ["accounts:read"], "company": A}),
    "admin_api.client_act": ("POST", "/api/v1/admin/clients/job-a/suspend", {"reason": "調査"}),
    "admin_api.client_registration": ("PUT", "/api/v1/admin/clients/rp-a/oidc",
                                      {"oidc": OIDC, "reason": "URI追加"}),
    "admin_api.directory_sync": ("POST", f"/api/v1/admin/directory/{A}/sync", {"full": True}),
    "admin_api.directory_export": ("POST", f"/api/v1/admin/directory/{A}/export", {"dry_run": False}),
    "admin_api.directory_runs": ("GET", "/api/v1/admin/directory/runs?company=" + A, None),
    "admin_api.application_list": ("GET", "/api/v1/admin/applications", None),
    "admin_api.application_submit": ("POST", "/api/v1/admin/applications",
                                     {"files": [{"name": "b.xlsx", "content": APPLICATION_2}]}),
    "admin_api.application_template": ("GET", "/api/v1/admin/applications/template?contract=C-A", None),
    "admin_api.application": ("GET", "/api/v1/admin/applications/1", None),
    "admin_api.application_act": ("POST", "/api/v1/admin/applications/1/reject", {"reason": "名簿不一致"}),
    "admin_api.roster_upload": ("POST", "/api/v1/admin/rosters/C-A/handlers",
                                {"name": "r.csv", "content": base64.b64encode(ROSTER).decode()}),
    "admin_api.company_list": ("GET", "/api/v1/admin/companies", None),
    "admin_api.company_set": ("PUT", f"/api/v1/admin/companies/{A}",
                              {"subscription": "complete", "folder": "boei-a2"}),
    "admin_api.contract_terms": ("PUT", "/api/v1/admin/contracts/C-A/terms",
                                 {"concluded_on": "2026-04-01", "eligibility": "clause"}),
}
# The routes only the agency (or the procuring office) may use: its operator gets through.
AGENCY_ROUTES = ("admin_api.create_contract", "admin_api.contract_period", "admin_api.application_act",
                 "admin_api.roster_upload", "admin_api.company_set", "admin_api.contract_terms")
# Account actions beyond the one in CALLS, each on company A's account.
ACTIONS = [("approve", "pending-a"), ("resume", "paused-a"), ("delete", "mover-a"),
           ("unlock", "user-a"), ("reset-password", "user-a"), ("end-sessions", "user-a"),
           ("leave", "user-a"), ("remote", "user-a"), ("window", "user-a"),
           ("reset-factor", "user-a")]
# Service-client actions beyond the one in CALLS, each on a client of company A.
CLIENT_ACTIONS = [("approve", "sync-a"), ("rotate", "job-a"), ("resume", "paused-svc-a"),
                  ("revoke", "job-a")]
EXTRA = {"remote": {"until": "2026-05-31"}, "reset-factor": {"factor": "totp"},
         "window": {"starts_at": "2026-04-01T09:00", "ends_at": "2026-04-01T17:00"}}
# Calls of routes beyond the one in CALLS: an OpenID Connect client made, the clients of a kind.
MORE = [("admin_api.client_create:oidc", "POST", "/api/v1/admin/clients",
         {"client_id": "made-rp-a", "company": A, "oidc": OIDC, "groups": ["設計部"]}),
        ("admin_api.client_list:oidc", "GET", "/api/v1/admin/clients?kind=oidc", None)]
READS = {"admin_api.search", "admin_api.contracts", "admin_api.device_list", "admin_api.group_list",
         "admin_api.alert_inbox", "admin_api.client_list", "admin_api.client_list:oidc",
         "admin_api.directory_runs", "admin_api.application_list", "admin_api.company_list"}


def _calls() -> list[tuple[str, str, str, dict | None]]:
    out = [(name, *call) for name, call in CALLS.items()]
    out += [(f"admin_api.act:{action}", "POST", f"/api/v1/admin/accounts/{uid}/{action}",
             {"reason": "確認済み", **EXTRA.get(action, {})}) for action, uid in ACTIONS]
    out += [(f"admin_api.client_act:{action}", "POST", f"/api/v1/admin/clients/{cid}/{action}",
             {"reason": "確認済み"}) for action, cid in CLIENT_ACTIONS]
    return out + MORE


def _body(body: dict | None) -> dict | None:
    if body and body.get("public_key") == "KEY":
        return {**body, "public_key": _key()}
    return body


def _state(deps: Deps) -> list[str]:
    return [line for line in dump_all(deps).splitlines() if not line.startswith(MAY_CHANGE)]


def test_the_table_names_every_route_of_the_admin_api(rig):
    routes = {rule.endpoint for rule in rig.client.application.url_map.iter_rules()
              if rule.endpoint.startswith("admin_api.")}
    assert routes == set(CALLS), "every admin route needs its scoping case in CALLS"


@pytest.mark.parametrize(("name", "method", "path", "body"), _calls(), ids=[c[0] for c in _calls()])
def test_every_route_refuses_no_token_and_a_user_session(rig, name, method, path, body):
    user = rig.token("user-a", surface="user")  # a user's own session on the user's surface
    before = _state(rig.deps)
    for token in (None, "not-a-token", user):
        resp = rig.call(token, method, path, _body(body))
        assert resp.status_code == 401, (token, resp.get_json())
    assert _state(rig.deps) == before


@pytest.mark.parametrize(("name", "method", "path", "body"), _calls(), ids=[c[0] for c in _calls()])
def test_another_companys_administrator_is_refused_audited_and_changes_nothing(rig, name, method,
                                                                               path, body):
    token = rig.token("adm-b")
    before, seq = _state(rig.deps), len(events(rig.deps))
    resp = rig.call(token, method, path, _body(body))
    if name in READS:  # a search answers with company B's records only
        assert resp.status_code == 200
        text = resp.get_data(as_text=True)
        assert "user-a" not in text and "C-A" not in text and "TERM-A" not in text, text
    else:
        assert resp.status_code in (403, 404), resp.get_json()
        refused = [e for e in events(rig.deps)[seq:] if e.result == "refused"]
        assert len(refused) == 1 and refused[0].actor == "adm-b", refused
        assert refused[0].data["reason"] in ("other_company", "forbidden"), refused[0].data
        [alert] = alerts.inbox(rig.deps, Actor("adm-b", frozenset({Role.SYSTEM_ADMIN}), company=B))
        assert alert["kind"] == "privilege_refused" and alert["detail"]["actor"] == "adm-b"
    assert _state(rig.deps) == before


@pytest.mark.parametrize(("name", "method", "path", "body"), _calls(), ids=[c[0] for c in _calls()])
def test_the_companys_own_administrator_or_the_agency_gets_through(rig, name, method, path, body):
    # contracts are the agency's; everything else is the company's system administrator's
    who = "ops-x" if name in AGENCY_ROUTES else "adm-a"
    if who == "ops-x":
        active_account(rig.deps, AGENCY, Actor("ops2", frozenset({Role.AGENCY_OPERATOR})), who,
                       contract="C-A", role="agency_operator")
        change_password(rig.deps, Actor(who), who, PASSWORD)
        made = totp.begin_enrolment(rig.deps, Actor(who), who)
        totp.confirm_enrolment(rig.deps, Actor(who), who, rig._code(made.secret))
        rig.secrets[who] = made.secret
    resp = rig.call(rig.token(who), method, path, _body(body))
    assert resp.status_code in (200, 201), resp.get_json()
    if name in READS:
        assert "-a" in resp.get_data(as_text=True) or "C-A" in resp.get_data(as_text=True)


def test_a_console_session_used_from_outside_is_refused_on_every_route(rig):
    """R17: administration from outside the internal networks only for users approved in
    advance (network.remote_admin); a session opened inside does not administer from outside."""
    token = rig.token("adm-a")  # from 127.0.0.1: inside
    outside = {"REMOTE_ADDR": "203.0.113.7"}
    before = _state(rig.deps)
    for name, method, path, body in _calls():
        resp = rig.client.open(path, method=method, json=_body(body) if method != "GET" else None,
                               headers=bearer(token), environ_base=outside)
        assert resp.status_code == 401, (name, resp.get_json())
    assert _state(rig.deps) == before


def test_a_company_administrator_cannot_make_contracts_or_agency_operators(rig):
    token = rig.token("adm-a")
    call = CALLS["admin_api.create_contract"]
    assert rig.call(token, *call[:2], call[2]).status_code == 403
    made = rig.call(token, "POST", "/api/v1/admin/accounts",
                    {"user_id": "boss-a", "name": "社 長", "contract": "C-A", "role": "agency_operator"})
    assert made.status_code == 403 and made.get_json()["error"] == "role_not_assignable"
    [refusal] = [e for e in events(rig.deps, "account.create") if e.result == "refused"]
    assert refusal.data["reason"] == "role_not_assignable"


def test_nobody_acts_on_their_own_account_or_approves_their_own_assignment(rig):
    own = rig.call(rig.token("adm-a"), "POST", "/api/v1/admin/accounts/adm-a/reset-password",
                   {"reason": "自分で"})
    assert own.status_code == 403 and own.get_json()["error"] == "own_account"
    # an account administrator who may approve? No: assigning and approving are two people
    acct = rig.token("acct-a")
    made = rig.call(acct, "POST", "/api/v1/admin/accounts",
                    {"user_id": "solo-a", "name": "一 人", "contract": "C-A"})
    assert made.status_code == 201
    assert rig.call(acct, "POST", "/api/v1/admin/accounts/solo-a/approve", {}).status_code == 403
    assert accounts.show(rig.deps, AGENCY, "solo-a").status == "pending"


def test_the_account_page_gives_the_real_reason_of_a_refused_logon(rig):
    for _ in range(2):
        rig.client.post("/api/v1/logon", json={"user_id": "user-a", "password": "Wrong#pass99"})
    page = rig.call(rig.token("adm-a"), "GET", "/api/v1/admin/accounts/user-a").get_json()
    assert page["account"]["failures"] == 2 and page["factors"] == ["totp"]
    assert [h["reason"] for h in page["history"][:2]] == ["wrong_password", "wrong_password"]


def test_search_by_name_and_lock_state(rig):
    token = rig.token("adm-a")
    for _ in range(5):
        rig.client.post("/api/v1/logon", json={"user_id": "mover-a", "password": "Wrong#pass99"})
    locked = rig.call(token, "GET", "/api/v1/admin/accounts?locked=1").get_json()["accounts"]
    assert [a["user_id"] for a in locked] == ["mover-a"]
    everyone = rig.call(token, "GET", "/api/v1/admin/accounts?name=田中").get_json()["accounts"]
    assert everyone and all(a["company"] == A for a in everyone)


# ---- the command line with --as: the same scoping ---------------------------------------------


@pytest.fixture
def cli(rig):
    # The command line runs on the real clock, months after the rig's fixed one: adm-b has
    # just been used there, or --as would rightly refuse an administrator unused for so long.
    sql(rig.deps, "UPDATE accounts SET last_used_at = :now WHERE user_id = 'adm-b'",
        now=datetime.now(UTC))
    url = rig.deps.settings.database_url
    env = {"AUTHSVC__DATABASE__URL": url,
           "AUTHSVC__PATHS__INSTANCE_DIR": str(rig.deps.settings.paths.instance_dir),
           "AUTHSVC_LANG": "en"}

    def run(*args: str) -> Any:
        return CliRunner().invoke(main, ["--as", "adm-b", *args], env=env, catch_exceptions=False)
    return run


@pytest.mark.parametrize("args", [
    ("user", "show", "user-a"), ("user", "suspend", "mover-a"), ("user", "resume", "mover-a"),
    ("user", "delete", "mover-a"), ("user", "unlock", "user-a"), ("user", "reset-password", "user-a"),
    ("user", "update", "mover-a", "--name", "改 名"), ("identifier", "approve", "pending-a"),
    ("user", "create", "made-a", "--name", "新 人", "--contract", "C-A", "--role", "user"),
    ("user", "end-sessions", "user-a"), ("user", "resume", "paused-a"),
    ("device", "suspend", "TERM-A"), ("device", "revoke", "TERM-A"),
    ("audit", "show", "--subject", "user-a"),
    ("client", "approve", "sync-a"), ("client", "rotate", "job-a"), ("client", "suspend", "job-a"),
    ("client", "revoke", "job-a"),
    ("client", "create", "made-svc-a", "--scope", "accounts:read", "--company", A),
    ("client", "create-oidc", "made-rp-a", "--name", "x", "--redirect-uri", RP_CB, "--company", A),
    ("client", "update-oidc", "rp-a", "--name", "x", "--redirect-uri", RP_CB),
    ("client", "rotate", "rp-a"), ("client", "approve", "rp-a"),
])
def test_the_command_line_as_another_companys_administrator_is_refused(rig, cli, args):
    before, seq = _state(rig.deps), len(events(rig.deps))
    result = cli(*args)
    assert result.exit_code == 1, result.output
    # as for an unknown ID (another company's), or the right that is missing
    assert any(w in result.output.lower() for w in ("not found", "not registered", "cannot")), \
        result.output
    refused = [e for e in events(rig.deps)[seq:] if e.result == "refused"]
    assert len(refused) == 1 and refused[0].actor == "adm-b" and refused[0].source.startswith("cli:")
    assert _state(rig.deps) == before


def test_the_command_line_as_a_user_is_refused_before_anything(cli, rig):
    result = CliRunner().invoke(main, ["--as", "user-a", "user", "list"], env={
        "AUTHSVC__DATABASE__URL": rig.deps.settings.database_url,
        "AUTHSVC__PATHS__INSTANCE_DIR": str(rig.deps.settings.paths.instance_dir), "AUTHSVC_LANG": "en"})
    assert result.exit_code == 1 and "not an active administrator" in result.output


# ---- service clients (R6): processes authenticating as themselves ------------------------------


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def as_client(rig: Rig, headers: dict[str, str], method: str, path: str, body: dict | None = None) -> Any:
    return rig.client.open(path, method=method, json=body if method != "GET" else None, headers=headers)


def reader_of_a(rig: Rig, scopes: tuple[str, ...] = ("accounts:read",)) -> dict[str, str]:
    """A client of company A made through the API by its account administrator and approved by
    its system administrator; its Basic credentials."""
    made = rig.call(rig.token("acct-a"), "POST", "/api/v1/admin/clients",
                    {"client_id": "reader-a", "scopes": list(scopes)})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["client"]["status"] == "pending" and body["client"]["company"] == A
    approved = rig.call(rig.token("adm-a"), "POST", "/api/v1/admin/clients/reader-a/approve", {})
    assert approved.status_code == 200 and approved.get_json()["client"]["status"] == "active"
    return basic("reader-a", body["secret"])


def test_a_reading_client_searches_its_companys_accounts_and_nothing_else(rig):
    creds = reader_of_a(rig)
    found = as_client(rig, creds, "GET", "/api/v1/admin/accounts")
    assert found.status_code == 200
    users = {a["user_id"] for a in found.get_json()["accounts"]}
    assert "user-a" in users and not any(u.endswith("-b") for u in users)
    assert as_client(rig, creds, "GET", "/api/v1/admin/accounts?company=" + B).get_json() == {"accounts": []}
    assert as_client(rig, creds, "GET", "/api/v1/admin/accounts/user-b").status_code == 404
    assert as_client(rig, creds, "GET", "/api/v1/admin/accounts/user-a").status_code == 200
    # every write, and every read beyond its scope: refused, audited under the client's own
    # identifier, and nothing changed
    ignore = ("logon_throttle.", "service_clients.last_used_at")
    state = lambda: [x for x in _state(rig.deps) if not x.startswith(ignore)]  # noqa: E731
    before, seq = state(), len(events(rig.deps))
    for name, method, path, body in _calls():
        if method == "GET" and name in ("admin_api.search", "admin_api.account", "admin_api.contracts",
                                        "admin_api.group_list", "admin_api.directory_runs"):
            continue  # what accounts:read (and any administrator's company view) reads
        if name == "admin_api.directory_export":
            continue  # the export needs only READ_ACCOUNTS (services/directory_sync.export)
        resp = as_client(rig, creds, method, path, _body(body))
        assert resp.status_code in (403, 404), (name, resp.status_code, resp.get_json())
    assert state() == before
    refused = [e for e in events(rig.deps)[seq:] if e.result == "refused"]
    assert refused and {e.actor for e in refused} == {"svc:reader-a"}
    created = [e for e in refused if e.action == "account.create"]
    assert [e.data["reason"] for e in created] == ["forbidden"]
    ok = [e for e in events(rig.deps, "client.authenticate") if e.result == "ok"]
    assert ok and {(e.actor, e.subject) for e in ok} == {("svc:reader-a", "reader-a")}


@pytest.mark.parametrize("state", ["pending", "suspended", "revoked", "rotated", "locked"])
def test_a_client_that_may_not_act_is_refused_401(rig, state):
    made = rig.call(rig.token("acct-a"), "POST", "/api/v1/admin/clients",
                    {"client_id": "reader-a", "scopes": ["accounts:read"]}).get_json()
    creds = basic("reader-a", made["secret"])
    admin = rig.token("adm-a")
    if state != "pending":
        assert rig.call(admin, "POST", "/api/v1/admin/clients/reader-a/approve", {}).status_code == 200
        assert as_client(rig, creds, "GET", "/api/v1/admin/accounts").status_code == 200
    if state == "suspended":
        rig.call(admin, "POST", "/api/v1/admin/clients/reader-a/suspend", {"reason": "調査"})
    elif state == "revoked":
        rig.call(admin, "POST", "/api/v1/admin/clients/reader-a/revoke", {"reason": "廃止"})
    elif state == "rotated":
        rotated = rig.call(admin, "POST", "/api/v1/admin/clients/reader-a/rotate", {})
        fresh = rotated.get_json()["secret"]
        assert fresh != made["secret"]
        assert as_client(rig, basic("reader-a", fresh), "GET", "/api/v1/admin/accounts").status_code == 200
    elif state == "locked":
        for n in range(rig.deps.settings.lockout.max_failures):
            wrong = as_client(rig, basic("reader-a", f"wrong-{n}"), "GET", "/api/v1/admin/accounts")
            assert wrong.status_code == 401
        assert [e.subject for e in events(rig.deps, "client.lock")] == ["reader-a"]
    resp = as_client(rig, creds, "GET", "/api/v1/admin/accounts")
    assert resp.status_code == 401 and resp.get_json()["error"] == "unauthorised"
    last = events(rig.deps, "client.authenticate")[-1]
    assert last.result == ("refused" if state == "locked" else "failed")
    # a revoked client's identifier is released: its name is then an unknown one, as a pseudonym
    assert last.subject.startswith("unknown:") if state == "revoked" else last.subject == "reader-a"


def test_other_credentials_on_the_basic_header_are_refused_and_reach_no_console_page(rig):
    creds = reader_of_a(rig)
    seq = len(events(rig.deps))
    for headers in (basic("user-a", PASSWORD),  # an account's password is no client's secret
                    {"Authorization": "Basic !!not-base64!!"},
                    {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
                    {"Authorization": "Basic " + base64.b64encode(b"reader-a:").decode()},
                    {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()}):
        resp = as_client(rig, headers, "GET", "/api/v1/admin/accounts")
        assert resp.status_code == 401, headers
    # only the account's ID was named: one failed attempt, under a pseudonym (no client has it)
    new = events(rig.deps)[seq:]
    assert [(e.action, e.result) for e in new] == [("client.authenticate", "failed")]
    assert new[0].subject.startswith("unknown:") and new[0].data["reason"] == "unknown_client"
    # a client is no console session: the pages send it to the console's logon
    page = rig.client.get("/console/", headers=creds)
    assert page.status_code == 302 and page.headers["Location"].endswith("/console/logon/")


def test_the_creator_of_a_client_cannot_approve_it_through_the_api(rig):
    admin = rig.token("adm-a")
    made = rig.call(admin, "POST", "/api/v1/admin/clients", {"client_id": "solo-a", "scopes": ["audit:read"]})
    assert made.status_code == 201
    refused = rig.call(admin, "POST", "/api/v1/admin/clients/solo-a/approve", {})
    assert refused.status_code == 403 and refused.get_json()["error"] == "four_eyes"
    assert as_client(rig, basic("solo-a", made.get_json()["secret"]), "GET",
                     "/api/v1/admin/audit?subject=user-a").status_code == 401
    # an account administrator may not give what they do not have themselves
    beyond = rig.call(rig.token("acct-a"), "POST", "/api/v1/admin/clients",
                      {"client_id": "audit-a", "scopes": ["audit:read"]})
    assert beyond.status_code == 403 and beyond.get_json()["error"] == "client_scope_not_grantable"
    bad = rig.call(admin, "POST", "/api/v1/admin/clients", {"client_id": "bad-a", "scopes": ["root"]})
    assert (bad.status_code, bad.get_json()["error"]) == (400, "client_scope_unknown")


def test_a_clients_secret_is_never_stored_in_clear(rig):
    made = rig.call(rig.token("acct-a"), "POST", "/api/v1/admin/clients",
                    {"client_id": "reader-a", "scopes": ["accounts:read"]}).get_json()
    admin = rig.token("adm-a")
    rig.call(admin, "POST", "/api/v1/admin/clients/reader-a/approve", {})
    rotated = rig.call(admin, "POST", "/api/v1/admin/clients/reader-a/rotate", {}).get_json()
    for secret in (made["secret"], rotated["secret"]):
        as_client(rig, basic("reader-a", secret), "GET", "/api/v1/admin/accounts")
    database = dump_all(rig.deps)
    assert "reader-a" in database and "$argon2id$" in database
    for secret in (made["secret"], rotated["secret"]):
        assert secret not in database
        assert secret not in rig.call(admin, "GET", "/api/v1/admin/clients").get_data(as_text=True)


def test_input_that_can_never_be_right_is_400_and_a_state_that_refuses_is_409(rig):
    token = rig.token("adm-a")
    for method, path, body, code in (
            ("GET", "/api/v1/admin/accounts/" + "x" * 500, None, "identifier_invalid"),
            ("GET", "/api/v1/admin/accounts?status=bogus", None, "status_unknown"),
            ("POST", "/api/v1/admin/accounts/user-a/window",
             {"reason": "r", "starts_at": "2026-04-02T10:00", "ends_at": "2026-04-01T10:00"},
             "window_invalid"),
            ("POST", "/api/v1/admin/accounts/user-a/remote", {"reason": "r", "until": "1999-01-01"},
             "remote_until_invalid"),
            ("POST", "/api/v1/admin/accounts/user-a/leave", {"reason": "r", "leaves_at": "soon"},
             "datetime_invalid")):
        resp = rig.call(token, method, path, body)
        assert (resp.status_code, resp.get_json()["error"]) == (400, code), path
    resumed = rig.call(token, "POST", "/api/v1/admin/accounts/user-a/resume", {"reason": "r"})
    assert (resumed.status_code, resumed.get_json()["error"]) == (409, "bad_transition")  # active


# ---- OpenID Connect clients ([8 of 12]): service clients of kind "oidc" ------------------------


def test_an_oidc_client_through_the_api_its_secret_never_opens_the_api(rig):
    acct, admin = rig.token("acct-a"), rig.token("adm-a")
    made = rig.call(acct, "POST", "/api/v1/admin/clients",
                    {"client_id": "wiki-a", "oidc": OIDC, "groups": ["設計部"]})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert (body["client"]["kind"], body["client"]["groups"], body["client"]["status"]) == (
        "oidc", ["設計部"], "pending")
    assert body["client"]["oidc"]["redirect_uris"] == OIDC["redirect_uris"] and len(body["secret"]) >= 43
    assert rig.call(admin, "POST", "/api/v1/admin/clients/wiki-a/approve", {}).status_code == 200
    [group] = [v for v in rig.call(admin, "GET", "/api/v1/admin/groups").get_json()["groups"]
               if v["name"] == "設計部"]
    assert "wiki-a" in group["services"] and "rp-a" in group["services"]
    # an active relying party's right secret is no key to the admin API
    assert as_client(rig, basic("wiki-a", body["secret"]), "GET", "/api/v1/admin/accounts").status_code == 401
    last = events(rig.deps, "client.authenticate")[-1]
    assert (last.subject, last.result, last.data["reason"]) == ("wiki-a", "failed", "wrong_kind")
    oidc = rig.call(admin, "GET", "/api/v1/admin/clients?kind=oidc").get_json()["clients"]
    assert [c["client_id"] for c in oidc] == ["rp-a", "wiki-a"]
    assert {c["kind"] for c in rig.call(admin, "GET", "/api/v1/admin/clients?kind=service")
            .get_json()["clients"]} == {"service"}
    assert body["secret"] not in dump_all(rig.deps)
    # to private_key_jwt: no secret to rotate any more
    key = {"kty": "OKP", "crv": "Ed25519", "x": _key()}
    changed = rig.call(admin, "PUT", "/api/v1/admin/clients/wiki-a/oidc",
                       {"oidc": {**OIDC, "auth_method": "private_key_jwt", "jwks": {"keys": [key]}}})
    assert changed.status_code == 200 and changed.get_json()["client"]["oidc"]["jwks"] == {"keys": [key]}
    rotated = rig.call(admin, "POST", "/api/v1/admin/clients/wiki-a/rotate", {})
    assert (rotated.status_code, rotated.get_json()["error"]) == (409, "client_no_secret")


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"client_id": "bad-a", "oidc": {**OIDC, "redirect_uris": ["http://wiki.example.jp/cb"]}}, 400,
     "oidc_redirect_uri_invalid"),
    ({"client_id": "bad-a", "oidc": {**OIDC, "redirect_uris": [RP_CB + "#x"]}}, 400,
     "oidc_redirect_uri_invalid"),
    ({"client_id": "bad-a", "oidc": {**OIDC, "redirect_uris": RP_CB}}, 400, "field_required"),
    ({"client_id": "bad-a", "oidc": {**OIDC, "auth_method": "none"}}, 400, "oidc_auth_method_invalid"),
    ({"client_id": "bad-a", "oidc": {**OIDC, "auth_method": "private_key_jwt", "jwks": {"keys": [
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}]}}}, 400, "oidc_jwks_invalid"),
    ({"client_id": "bad-a", "oidc": {**OIDC, "refresh": "yes"}}, 400, "field_required"),
    ({"client_id": "bad-a", "oidc": "wiki"}, 400, "field_required"),
    ({"client_id": "bad-a", "oidc": OIDC, "scopes": ["accounts:read"]}, 400, "client_scopes_not_for_oidc"),
    ({"client_id": "bad-a", "oidc": OIDC, "groups": ["存在しない"]}, 404, "group_not_found"),
    ({"client_id": "bad-a", "scopes": ["accounts:read"], "groups": ["設計部"]}, 400,
     "client_groups_not_for_service"),
])
def test_a_bad_oidc_client_is_refused_naming_what_is_wrong(rig, body, status, code):
    token = rig.token("adm-a")
    before = _state(rig.deps)
    resp = rig.call(token, "POST", "/api/v1/admin/clients", body)
    assert (resp.status_code, resp.get_json()["error"]) == (status, code)
    assert _state(rig.deps) == before


def test_a_registration_is_only_an_oidc_clients(rig):
    admin = rig.token("adm-a")
    resp = rig.call(admin, "PUT", "/api/v1/admin/clients/job-a/oidc", {"oidc": OIDC})
    assert (resp.status_code, resp.get_json()["error"]) == (409, "client_not_oidc")
    assert rig.call(admin, "GET", "/api/v1/admin/clients?kind=robot").status_code == 400
    assert rig.call(admin, "POST", "/api/v1/admin/clients/rp-a/oidc", {"oidc": OIDC}).status_code == 404


# ---- directory sync ([9 of 12], R20) -----------------------------------------------------------


def test_a_directory_sync_through_the_api_dry_run_first(rig):
    token = rig.token("adm-a")
    path = f"/api/v1/admin/directory/{A}/sync"
    state = lambda: [x for x in _state(rig.deps) if not x.startswith("directory_runs.")]  # noqa: E731
    before = state()
    dry = rig.call(token, "POST", path, {"full": True, "dry_run": True})
    assert dry.status_code == 200, dry.get_json()
    report = dry.get_json()["report"]
    assert (report["company"], report["mode"], report["dry_run"], report["created"]) == (
        A, "full", True, ["dir-a1"])
    assert report["skipped"] == ["uid=../bad,ou=people,dc=example,dc=jp: user_id_invalid"]
    assert state() == before  # a dry run writes nothing but its run
    done = rig.call(token, "POST", path, {})  # incremental: the first one reads everything
    assert done.status_code == 200 and done.get_json()["report"]["created"] == ["dir-a1"]
    assert accounts.show(rig.deps, AGENCY, "dir-a1").status == "pending"  # approved by a person
    runs = rig.call(token, "GET", "/api/v1/admin/directory/runs?company=" + A).get_json()["runs"]
    assert [(r["actor"], r["dry_run"], r["result"]) for r in runs] == [
        ("adm-a", False, "ok"), ("adm-a", True, "ok"), ("acct-a0", True, "ok")]
    assert runs[0]["counts"]["created"] == 1 and runs[0]["counts"]["skipped"] == 1
    exported = rig.call(token, "POST", f"/api/v1/admin/directory/{A}/export", {"dry_run": True})
    assert exported.status_code == 200 and "dir-a1" in exported.get_json()["report"]["added"]
    assert rig.directories[A].exported == {}  # a dry run writes nothing there either


def test_a_company_without_a_directory_and_another_companys_answer_alike(rig):
    """404 `directory_not_configured` for a company without a directory; an administrator of
    another company hears exactly that for company A (its directory is none of theirs), audited
    with the real reason."""
    theirs_token, ours_token = rig.token("adm-b"), rig.token("adm-a")
    unknown = rig.call(theirs_token, "POST", f"/api/v1/admin/directory/{B}/sync", {"dry_run": True})
    assert (unknown.status_code, unknown.get_json()["error"]) == (404, "directory_not_configured")
    assert unknown.get_json()["message"] == f"会社「{B}」のディレクトリ連携は設定されていません。"
    seq = len(events(rig.deps))
    for action in ("sync", "export"):
        theirs = rig.call(theirs_token, "POST", f"/api/v1/admin/directory/{A}/{action}", {"dry_run": True})
        nowhere = rig.call(theirs_token, "POST", f"/api/v1/admin/directory/無い会社/{action}", {})
        assert theirs.status_code == nowhere.status_code == 404, action
        assert theirs.get_json()["error"] == nowhere.get_json()["error"] == "directory_not_configured"
        assert theirs.get_json()["message"] == nowhere.get_json()["message"].replace("無い会社", A)
    refused = [(e.action, e.subject, e.data["reason"]) for e in events(rig.deps)[seq:]
               if e.result == "refused" and e.subject == A]
    assert refused == [("directory.sync", A, "other_company"), ("directory.export", A, "other_company")]
    listed = rig.call(theirs_token, "GET", "/api/v1/admin/directory/runs?company=" + A)
    assert listed.get_json() == {"runs": []}
    assert rig.call(ours_token, "POST", f"/api/v1/admin/directory/{B}/sync", {}).status_code == 404
    english = rig.call(theirs_token, "POST", f"/api/v1/admin/directory/{B}/sync?lang=en", {}).get_json()
    assert english["message"] == f'Directory sync is not configured for the company "{B}".'


def test_a_stopped_sync_answers_409_with_its_reason_and_removes_nothing(rig):
    token = rig.token("adm-a")
    assert rig.call(token, "POST", f"/api/v1/admin/directory/{A}/sync", {}).status_code == 200
    rig.directories[A].down = True
    resp = rig.call(token, "POST", f"/api/v1/admin/directory/{A}/sync", {"full": True})
    body = resp.get_json()
    assert (resp.status_code, body["error"], body["reason"]) == (409, "directory_sync_stopped",
                                                                   "directory_unavailable")
    assert "LDAPSocketOpenError" in body["detail"] and "削除" in body["message"]
    assert accounts.show(rig.deps, AGENCY, "dir-a1").status == "pending"  # nothing suspended
    kinds = [a["kind"] for a in alerts.inbox(rig.deps, Actor("adm-a", frozenset({Role.SYSTEM_ADMIN}),
                                                            company=A))]
    assert "directory_sync_stopped" in kinds
    export = rig.call(token, "POST", f"/api/v1/admin/directory/{A}/export", {})
    assert (export.status_code, export.get_json()["reason"]) == (409, "export_failed")
    bad = rig.call(token, "POST", f"/api/v1/admin/directory/{A}/sync", {"full": "yes"})
    assert (bad.status_code, bad.get_json()["error"]) == (400, "field_required")


def test_a_sync_client_runs_the_sync_as_itself_and_a_reader_may_not(rig):
    made = rig.call(rig.token("acct-a"), "POST", "/api/v1/admin/clients",
                    {"client_id": "dirsync-a", "scopes": ["directory:sync"]})
    assert made.status_code == 201, made.get_json()
    approved = rig.call(rig.token("adm-a"), "POST", "/api/v1/admin/clients/dirsync-a/approve", {})
    assert approved.status_code == 200
    creds = basic("dirsync-a", made.get_json()["secret"])
    resp = as_client(rig, creds, "POST", f"/api/v1/admin/directory/{A}/sync", {"full": True})
    assert resp.status_code == 200 and resp.get_json()["report"]["created"] == ["dir-a1"], resp.get_json()
    [created] = events(rig.deps, "account.create", "dir-a1")
    assert created.actor == "svc:dirsync-a" and created.data["source"] == "directory"
    runs = as_client(rig, creds, "GET", "/api/v1/admin/directory/runs").get_json()["runs"]
    assert runs[0]["actor"] == "svc:dirsync-a"
    # another company's: the answer of one without a directory
    other = as_client(rig, creds, "POST", f"/api/v1/admin/directory/{B}/sync", {})
    assert (other.status_code, other.get_json()["error"]) == (404, "directory_not_configured")
    reader = reader_of_a(rig)  # accounts:read only
    refused = as_client(rig, reader, "POST", f"/api/v1/admin/directory/{A}/sync", {"dry_run": True})
    assert (refused.status_code, refused.get_json()["error"]) == (403, "forbidden")
