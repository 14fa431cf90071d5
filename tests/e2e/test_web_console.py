"""The administrators' console over HTTP (Flask's test client against the real app and SQLite):
its own logon and its own kind of session, which a user session cannot stand in for (R8, R17);
who may do what in it; attending a remote palm registration (R14); the registration station;
the agency's evidence (R22). The helpers here are shared with test_web_register."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from adapters.vein import open_reader
from authsvc.domain.messages import text
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, accounts, devices, registration, sessions, vein
from authsvc.services.accounts import OPERATIONS_CONTRACT
from authsvc.store.models import Evidence, RegistrationSession
from authsvc.web import create_app
from tests.integration.support import (
    CHOSEN,
    add_contract,
    confirmed_totp,
    events,
    next_totp,
    ready,
    row_counts,
)

BASE = "https://localhost"
PASSWORD = CHOSEN[0]
COMPANY = "防衛産業株式会社"
OPERATOR = Actor("ops1", frozenset({Role.AGENCY_OPERATOR}), terminal="console-1")  # the agency
ACCOUNT_ADMIN = Actor("acct1", frozenset({Role.ACCOUNT_ADMIN}), company=COMPANY)
# the contracts of the rig, and the company of each (its accounts are managed by that company)
CONTRACTS = {"C-1": COMPANY, "C-9": "別会社株式会社", OPERATIONS_CONTRACT: "DSG運用"}
TERMINAL = "TERMINAL-1"
PALM = 42
QUALITY = 90  # a good reading every time: enough samples for a template on the first try
REMOTE = "203.0.113.7"  # outside network.internal
JPEG = b"\xff\xd8\xff\xe0" + b"PASSPORT-PHOTO-7731" * 200 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + b"RESIDENCE-CARD-5512" * 200
GENERIC = text("logon_failed", "ja")


# ---- the rig shared by the console and registration tests -----------------------------------


@dataclass
class Web:
    """The real app over Flask's test client, its services, a registered terminal with an
    emulated palm-vein reader, and the TOTP secrets of the accounts that have one."""

    deps: Deps
    app: Any
    reader: Any
    secrets: dict[str, str] = field(default_factory=dict)

    def client(self, remote_addr: str | None = None) -> Any:
        client = self.app.test_client()
        if remote_addr:
            client.environ_base["REMOTE_ADDR"] = remote_addr
        return client

    def person(self, user_id: str, *, role: str = "user", contract: str = "C-1", name: str = "山田 花子",
               consent: bool = False, otp: bool = False) -> str:
        """An approved account with its initial password changed to PASSWORD; optionally with
        consent to remote registration and a confirmed TOTP authenticator."""
        ready(self.deps, account_admin_of(contract), OPERATOR, user_id, PASSWORD, name=name,
              contract=contract, role=role)
        if consent:
            registration.record_consent(self.deps, account_admin_of(contract), user_id, True)
        if otp:
            self.secrets[user_id] = confirmed_totp(self.deps, user_id)
        return user_id

    def code(self, user_id: str) -> str:
        """A fresh one-time code: the clock moves on one time step first (each code counts once)."""
        return next_totp(self.deps, self.secrets[user_id])


def account_admin_of(contract: str) -> Actor:
    """The account administrator of the company that holds `contract` (R24: a company's
    administrator manages only that company's accounts)."""
    company = CONTRACTS[contract]
    return ACCOUNT_ADMIN if company == COMPANY else Actor(f"acct-{contract.lower()}",
                                                          frozenset({Role.ACCOUNT_ADMIN}),
                                                          company=company)


def make_web(make_deps: Any, backend: str = "sqlite", **sections: dict[str, Any]) -> Web:
    deps = make_deps(backend, **sections)
    app = create_app(deps=deps)
    app.config["TESTING"] = True
    reader = open_reader("emulated", seed=0, key=Ed25519PrivateKey.generate(), reader_id=TERMINAL,
                         clock=deps.clock)
    devices.register(deps, OPERATOR, TERMINAL,
                     base64.urlsafe_b64encode(reader.public_key_bytes()).decode().rstrip("="))
    for number, company in CONTRACTS.items():
        add_contract(deps, OPERATOR, number, company)
    return Web(deps, app, reader)


@pytest.fixture
def web(make_deps):
    made = make_web(make_deps)
    yield made
    made.reader.close()


def csrf(client: Any) -> str:
    """The CSRF token of this browser's Flask session, from the meta tag every page carries
    (taken from a not-found page: it neither redirects nor touches any session)."""
    page = client.get("/csrf-probe", base_url=BASE).get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


def post(client: Any, path: str, data: dict[str, Any] | None = None, *, json: Any = None,
         body: bytes | None = None, content_type: str = "image/jpeg") -> Any:
    """A POST as the pages send it: a form with its CSRF field, or JSON / raw bytes with the
    X-CSRFToken header the page script adds."""
    token = csrf(client)
    headers = {"Referer": BASE + "/", "X-CSRFToken": token}
    if json is not None:
        return client.post(path, base_url=BASE, json=json, headers=headers)
    if body is not None:
        return client.post(path, base_url=BASE, data=body, headers=headers, content_type=content_type)
    return client.post(path, base_url=BASE, data={**(data or {}), "csrf_token": token}, headers=headers)


def get(client: Any, path: str) -> Any:
    return client.get(path, base_url=BASE)


def where(resp: Any) -> str:
    """The path (and query) a redirect sends the browser to."""
    assert resp.status_code in (302, 303), (resp.status_code, resp.get_data(as_text=True)[:300])
    parts = urlsplit(resp.headers["Location"])
    return parts.path + (f"?{parts.query}" if parts.query else "")


def cookie(client: Any, name: str = "authsvc_session", path: str = "/") -> str | None:
    found = client.get_cookie(name, domain="localhost", path=path)
    return found.value if found is not None else None


def console_token(client: Any) -> str | None:
    return cookie(client, "authsvc_console", "/console")


def log_on(web: Web, client: Any, user_id: str, prefix: str = "") -> Any:
    """Password, then a one-time code, at the user's logon ("") or the console's
    ("/console/logon"); returns the answer to the code."""
    resp = post(client, f"{prefix}/login", {"user_id": user_id, "password": PASSWORD})
    assert where(resp) == f"{prefix}/factor"
    return post(client, f"{prefix}/factor/totp", {"code": web.code(user_id)})


def console(web: Web, user_id: str, remote_addr: str | None = None) -> Any:
    """A browser logged on to the console as `user_id`."""
    client = web.client(remote_addr)
    assert where(log_on(web, client, user_id, "/console/logon")) == "/console/"
    assert console_token(client)
    return client


def without_tokens(resp: Any) -> str:
    return re.sub(r'(value|content)="[^"]+"', "", resp.get_data(as_text=True))


def history(deps: Deps, user_id: str) -> list[tuple[str, str, str]]:
    return [(r["step"], r["result"], r["reason"]) for r in sessions.history(deps, user_id, with_reason=True)]


def b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def captures(reader: Any, challenges: list[dict[str, str]], palm: int = PALM,
             purpose: str = "enrol") -> list[dict[str, Any]]:
    """What the terminal agent returns for each challenge: a capture signed by its reader."""
    out = []
    for c in challenges:
        reader.control.present(palm, quality=QUALITY)
        cap = reader.capture(purpose, b64decode(c["challenge"]))
        out.append({"challenge_id": c["id"], "capture": cap.to_dict()})
    return out


def evidence_rows(deps: Deps) -> int:
    with deps.uow() as uow:
        return len(list(uow.session.scalars(select(Evidence.id))))


def state_of(deps: Deps, sid: str) -> str:
    with deps.uow() as uow:
        return uow.session.get(RegistrationSession, sid).state


# ---- R8: a session of one surface is no use on the other -------------------------------------


@pytest.fixture
def people(web):
    web.person("sato", role="system_admin", name="佐藤 一郎", otp=True)
    web.person("tanaka", name="田中 太郎", otp=True)
    web.person("mori", role="data_manager", name="森 七郎", otp=True)
    return web


def test_a_user_session_gets_nothing_from_the_console(people):
    web = people
    client = web.client()
    assert where(log_on(web, client, "sato")) == "/home"  # a system administrator, on the user pages
    user_token = cookie(client)
    assert user_token and get(client, "/home").status_code == 200
    assert where(get(client, "/console/")) == "/console/logon/"  # its cookie is not the console's
    # the user session's token presented as the console's cookie is still no console session
    client.set_cookie("authsvc_console", user_token, domain="localhost", path="/console")
    for page in ("/console/", "/console/registrations", "/console/enrol", "/console/records",
                 "/console/consent"):
        assert where(get(client, page)) == "/console/logon/", page
    state = get(client, "/console/registrations/any-session/state.json")
    assert state.status_code == 401 and state.json["error"] == "unauthorised"
    form = {"user_id": "tanaka", "id_document": "passport", "id_checked": "yes"}
    for path in ("/console/enrol/challenges", "/console/enrol/vein"):
        resp = post(client, path, json=form)
        assert resp.status_code == 401 and resp.json["error"] == "unauthorised", path
    refused = post(client, "/console/consent", {"user_id": "tanaka", "given": "yes"})
    assert refused.status_code == 401 and not registration.has_consent(web.deps, "tanaka")
    assert post(client, "/console/registrations/any-session/join").status_code == 401
    assert get(client, "/home").status_code == 200  # and the user session is untouched


def test_a_console_session_gets_nothing_from_the_user_pages(people):
    web = people
    client = console(web, "sato")
    token = console_token(client)
    assert get(client, "/console/").status_code == 200
    assert cookie(client) is None  # the console's cookie is sent only under /console
    client.set_cookie("authsvc_session", token, domain="localhost", path="/")
    assert where(get(client, "/home")) == "/"
    assert "id=\"user_id\"" in get(client, "/").get_data(as_text=True)  # the user logon page
    api = client.get("/api/v1/session", base_url=BASE, headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401
    assert post(client, "/lock").status_code == 302 and get(client, "/console/").status_code == 200


def test_the_console_logon_keeps_the_users_own_session(people):
    web = people
    client = web.client()
    assert where(log_on(web, client, "sato")) == "/home"
    user_token = cookie(client)
    assert where(get(client, "/console/")) == "/console/logon/"
    logon_page = get(client, "/console/logon/")
    assert logon_page.status_code == 200 and 'id="surface"' in logon_page.get_data(as_text=True)
    assert where(log_on(web, client, "sato", "/console/logon")) == "/console/"
    page = get(client, "/console/")
    assert page.status_code == 200 and "sato" in page.get_data(as_text=True)
    # the user session is still there, under the same token (not replaced by the console's)
    assert cookie(client) == user_token and get(client, "/home").status_code == 200
    home = get(client, "/home").get_data(as_text=True)
    listed = home[home.index('<table id="sessions">'):].split("</table>")[0]
    assert listed.count("<tr>") == 3 and listed.count('class="surface"') == 1  # both; the console's marked
    surfaces = sorted(d["surface"] for d in web.deps.sessions.of_user("sato").values())
    assert surfaces == ["console", "user"]
    assert ("console", "ok", "") in history(web.deps, "sato")
    # a second console logon replaces the first console session, still not the user's
    first = console_token(client)
    other = console(web, "sato")
    assert get(client, "/console/").status_code == 302 and get(other, "/console/").status_code == 200
    assert web.deps.sessions.get(first) is None and get(client, "/home").status_code == 200


@pytest.mark.parametrize("who", ["tanaka"])  # a user (a data manager may approve access-right
# applications in the console: tests/integration/test_applications_web.py)
def test_a_non_administrator_is_refused_the_console_generically(people, who):
    web = people
    client = web.client()
    resp = post(client, "/console/logon/login", {"user_id": who, "password": PASSWORD})
    assert where(resp) == "/console/logon/factor"  # the same steps as anyone's
    refused = post(client, "/console/logon/factor/totp", {"code": web.code(who)})
    wrong = post(web.client(), "/console/logon/login", {"user_id": who, "password": "Wrong#Pass9x"})
    assert refused.status_code == wrong.status_code == 401
    assert GENERIC in refused.get_data(as_text=True)
    assert without_tokens(refused) == without_tokens(wrong)  # nothing tells the two apart
    assert console_token(client) is None
    assert where(get(client, "/console/")) == "/console/logon/"
    assert not [d for d in web.deps.sessions.of_user(who).values() if d.get("kind") == "session"]
    assert ("console", "refused", "not_administrator") in history(web.deps, who)
    [audited] = events(web.deps, "logon.console", who)
    assert audited.result == "refused" and audited.data["reason"] == "not_administrator"
    # the same person logs on to the user pages as always
    assert where(log_on(web, web.client(), who)) == "/home"


def test_a_console_logon_never_leads_to_palm_registration(people):
    """The REGISTER step belongs to the user's pages: at the console, no factor is no logon."""
    web = people
    web.person("nakamura", role="system_admin", name="中村 八郎")  # no second factor yet
    client = web.client()
    resp = post(client, "/console/logon/login", {"user_id": "nakamura", "password": PASSWORD})
    assert resp.status_code == 403
    assert text("second_factor_unavailable", "ja") in resp.get_data(as_text=True)
    assert console_token(client) is None and where(get(client, "/register/")) == "/"
    assert ("second_factor", "refused", "no_factor_enrolled") in history(web.deps, "nakamura")
    # on the user pages the same account is sent to register its palm
    assert where(post(client, "/login", {"user_id": "nakamura", "password": PASSWORD})) == "/register/"


def test_a_role_taken_away_ends_the_console_at_the_next_request(people):
    web = people
    client = console(web, "sato")
    assert get(client, "/console/").status_code == 200
    accounts.update_account(web.deps, ACCOUNT_ADMIN, "sato", role="user")
    assert where(get(client, "/console/")) == "/console/logon/"
    assert post(client, "/console/consent", {"user_id": "tanaka", "given": "yes"}).status_code == 401
    assert not registration.has_consent(web.deps, "tanaka")


def test_refusing_concurrent_sessions_counts_each_surface_apart(make_deps):
    web = make_web(make_deps, sessions={"concurrent": "refuse"})
    try:
        web.person("sato", role="system_admin", name="佐藤 一郎", otp=True)
        user = web.client()
        assert where(log_on(web, user, "sato")) == "/home"
        admin = console(web, "sato")  # the user session is not a console session: allowed
        second = web.client()
        refused = log_on(web, second, "sato", "/console/logon")
        assert refused.status_code == 401 and console_token(second) is None
        assert ("session", "refused", "concurrent_session") in history(web.deps, "sato")
        assert get(admin, "/console/").status_code == 200 and get(user, "/home").status_code == 200
    finally:
        web.reader.close()


def test_an_idle_console_session_ends_instead_of_locking(people):
    web = people
    client = console(web, "sato")
    token = console_token(client)
    idle = web.deps.settings.sessions.idle_minutes
    web.deps.clock.advance(minutes=idle - 1)
    assert get(client, "/console/").status_code == 200  # activity moves the idle clock
    web.deps.clock.advance(minutes=idle, seconds=1)
    assert where(get(client, "/console/")) == "/console/logon/"
    assert web.deps.sessions.get(token) is None  # gone, not locked
    assert sessions.current(web.deps, token, sessions.CONSOLE) is None
    page = get(client, "/console/logon/")
    assert page.status_code == 200 and 'id="password"' in page.get_data(as_text=True)
    assert "unlock" not in page.get_data(as_text=True)
    # a user session idle as long only locks (the contrast the console is built on)
    user = web.client()
    assert where(log_on(web, user, "sato")) == "/home"
    web.deps.clock.advance(minutes=idle, seconds=1)
    assert where(get(user, "/home")) == "/lock"


def test_remote_console_only_for_users_approved_in_advance(make_deps):
    web = make_web(make_deps, network={"remote_admin": ["unyo"]})
    try:
        web.person("sato", role="system_admin", name="佐藤 一郎", otp=True)
        web.person("unyo", role="system_admin", name="運用 四郎", contract=OPERATIONS_CONTRACT, otp=True)
        for who in ("sato", "unyo"):  # R17: both may connect from outside (approved in advance) ...
            accounts.approve_remote(web.deps, OPERATOR, who, web.deps.clock.now().date())
        # ... but only unyo may administer from there (network.remote_admin)
        outside = web.client(REMOTE)
        refused = log_on(web, outside, "sato", "/console/logon")
        assert refused.status_code == 401 and GENERIC in refused.get_data(as_text=True)
        assert console_token(outside) is None
        assert where(get(outside, "/console/")) == "/console/logon/"
        [audited] = events(web.deps, "logon.console", "sato")
        assert audited.data == {"reason": "not_administrator", "remote": True}
        # from outside, sato still uses the user pages; from inside, the console too
        assert where(log_on(web, web.client(REMOTE), "sato")) == "/home"
        assert get(console(web, "sato"), "/console/").status_code == 200
        # approved in advance: a console session, marked remote
        approved = console(web, "unyo", REMOTE)
        assert get(approved, "/console/").status_code == 200
        view = sessions.current(web.deps, console_token(approved), sessions.CONSOLE)
        assert view is not None and view.remote and view.source == REMOTE
    finally:
        web.reader.close()


# R17 holds on every console request, not only at its logon: a session opened inside does not
# administer from outside the internal networks.


def test_a_console_session_opened_inside_does_not_administer_from_outside(people):
    web = people
    client = console(web, "sato")
    client.environ_base["REMOTE_ADDR"] = REMOTE  # the same cookie, now from outside
    refused = post(client, "/console/consent", {"user_id": "tanaka", "given": "yes"})
    assert refused.status_code == 401 and not registration.has_consent(web.deps, "tanaka")
    assert where(get(client, "/console/")) == "/console/logon/"


# ---- privilege inside the console ---------------------------------------------------------


@pytest.fixture
def staffed(web):
    web.person("yamada", consent=True)
    web.person("sato", role="system_admin", name="佐藤 一郎", otp=True)
    web.person("kato", role="account_admin", name="加藤 六郎", otp=True)
    web.person("suzuki", role="system_admin", name="鈴木 次郎", contract="C-9", otp=True)
    web.person("kanri", role="staff", name="管理 三郎", contract=OPERATIONS_CONTRACT, otp=True)
    web.person("unyo", role="system_admin", name="運用 四郎", contract=OPERATIONS_CONTRACT, otp=True)
    return web


STATION = {"user_id": "yamada", "id_document": "passport", "id_checked": "yes"}


def test_an_account_administrator_has_no_station_and_no_records(staffed):
    web = staffed
    client = console(web, "kato")
    menu = get(client, "/console/").get_data(as_text=True)
    assert 'id="menu-consent"' in menu and 'id="menu-enrol"' not in menu and 'id="menu-records"' not in menu
    assert get(client, "/console/enrol").status_code == 403
    before = row_counts(web.deps)["challenges"]
    for path in ("/console/enrol/challenges", "/console/enrol/vein"):
        resp = post(client, path, json={**STATION, "captures": []})
        assert resp.status_code == 403 and resp.json["error"] == "forbidden", path
    assert row_counts(web.deps)["challenges"] == before  # no challenge issued
    assert get(client, "/console/records").status_code == 403
    assert get(client, "/console/registrations").status_code == 403  # attending is for system admins
    # what the role may do: record consent
    assert where(post(client, "/console/consent", {"user_id": "sato", "given": "yes"})) == \
        "/console/consent?done=sato&given=yes"
    assert registration.has_consent(web.deps, "sato")
    [consent] = events(web.deps, "registration.consent", "sato")
    assert consent.actor == "kato"


def test_consent_needs_an_account_manager(staffed):
    web = staffed
    client = console(web, "kanri")  # staff: enrols palms, does not manage accounts
    resp = post(client, "/console/consent", {"user_id": "sato", "given": "yes"})
    assert resp.status_code == 403 and not registration.has_consent(web.deps, "sato")


def _registered_with_evidence(web: Web) -> str:
    """yamada's remote session, with the ID image captured and confirmed by sato."""
    sid = registration.open_session(web.deps, Actor("yamada"), "yamada").id
    admin = Actor("sato", frozenset({Role.SYSTEM_ADMIN}), company=COMPANY)
    registration.join(web.deps, admin, sid)
    registration.capture_id(web.deps, Actor("yamada"), sid, JPEG)
    registration.confirm(web.deps, admin, sid)
    return sid


def test_evidence_only_for_the_agency(staffed):
    web = staffed
    sid = _registered_with_evidence(web)
    company_admin = console(web, "sato")  # a system administrator, but of a company
    assert get(company_admin, "/console/records").status_code == 403
    assert get(company_admin, f"/console/records/{sid}/evidence").status_code == 403
    refused = [e for e in events(web.deps, "registration.evidence_read") if e.result == "refused"]
    assert [e.actor for e in refused] == ["sato"]
    for agency in ("kanri", "unyo"):
        client = console(web, agency)
        records = get(client, "/console/records")
        assert records.status_code == 200
        assert f"/console/records/{sid}/evidence" in records.get_data(as_text=True)
        image = get(client, f"/console/records/{sid}/evidence")
        assert image.status_code == 200 and image.data == JPEG and image.mimetype == "image/jpeg"
    reads = [(e.actor, e.result) for e in events(web.deps, "registration.evidence_read")]
    assert reads == [("sato", "refused"), ("kanri", "ok"), ("unyo", "ok")]
    assert get(console(web, "kato"), f"/console/records/{sid}/evidence").status_code == 403


def _station(web: Web, client: Any, user_id: str) -> Any:
    form = {**STATION, "user_id": user_id}
    made = post(client, "/console/enrol/challenges", json=form)
    assert made.status_code == 200, made.json
    assert len(made.json["challenges"]) == registration.ENROL_SAMPLES
    return post(client, "/console/enrol/vein",
                json={**form, "captures": captures(web.reader, made.json["challenges"])})


def test_the_station_enrols_a_palm_but_nobody_witnesses_their_own(staffed):
    web = staffed
    client = console(web, "kanri")
    assert get(client, "/console/enrol").status_code == 200
    own = _station(web, client, "kanri")
    assert own.status_code == 403 and own.json["error"] == "registration_self_attend"
    assert not vein.is_enrolled(web.deps, "kanri")
    [refused] = events(web.deps, "registration.in_person", "kanri")
    assert refused.result == "refused" and refused.data["reason"] == "registration_self_attend"
    done = _station(web, client, "yamada")
    assert done.status_code == 200 and done.json["next"] == "/console/enrol?done=yamada"
    assert vein.is_enrolled(web.deps, "yamada")
    [witnessed] = events(web.deps, "registration.in_person", "yamada")
    assert witnessed.actor == "kanri" and witnessed.data["id_document"] == "passport"
    [enrolled] = events(web.deps, "vein.enrol", "yamada")
    assert enrolled.actor == "kanri" and enrolled.data["reader"] == TERMINAL


@pytest.mark.parametrize("form", [
    {"id_document": "passport"},                                      # ID not ticked as checked
    {"id_document": "passport", "id_checked": "no"},
    {"id_checked": "yes"},                                            # no document named
    {"id_document": "library_card", "id_checked": "yes"},             # not a photo ID we know
    {"id_document": "passport", "id_checked": "yes", "user_id": ""},  # nobody named
])
def test_the_station_needs_the_id_check(staffed, form):
    web = staffed
    client = console(web, "kanri")
    before = row_counts(web.deps)["challenges"]
    sent = {"user_id": "yamada", **form}
    for path in ("/console/enrol/challenges", "/console/enrol/vein"):
        resp = post(client, path, json={**sent, "captures": []})
        assert resp.status_code == 400 and resp.json["error"] == "station_id_check_required", path
        assert resp.json["message"] == text("station_id_check_required", "ja")
    assert row_counts(web.deps)["challenges"] == before  # no challenge issued
    assert not vein.is_enrolled(web.deps, "yamada")


# ---- attending a remote registration ------------------------------------------------------


def _opened(web: Web) -> tuple[Any, str]:
    """yamada logs on, is sent to registration and opens a remote session."""
    client = web.client()
    resp = post(client, "/login", {"user_id": "yamada", "password": PASSWORD})
    assert where(resp) == "/register/"
    opened = where(post(client, "/register/open"))
    sid = opened.removeprefix("/register/")
    assert opened.startswith("/register/") and sid
    return client, sid


def test_only_the_companys_system_administrator_joins(staffed):
    web = staffed
    _, sid = _opened(web)
    other = console(web, "suzuki")
    assert 'data-registrant="yamada"' not in get(other, "/console/registrations").get_data(as_text=True)
    refused = post(other, f"/console/registrations/{sid}/join")
    assert refused.status_code == 403
    assert text("registration_other_company", "ja") in refused.get_data(as_text=True)
    [audited] = events(web.deps, "registration.join", "yamada")
    assert audited.result == "refused" and audited.data["reason"] == "registration_other_company"
    assert audited.data["attempted_by"] == "suzuki" and audited.actor == "suzuki"
    assert state_of(web.deps, sid) == "waiting"
    admin = console(web, "sato")
    listing = get(admin, "/console/registrations").get_data(as_text=True)
    assert 'data-registrant="yamada"' in listing
    assert where(post(admin, f"/console/registrations/{sid}/join")) == f"/console/registrations/{sid}"
    assert state_of(web.deps, sid) == "joined"
    page = get(admin, f"/console/registrations/{sid}").get_data(as_text=True)
    assert 'id="close-registration"' in page  # the attending administrator's controls
    assert get(other, f"/console/registrations/{sid}").status_code == 403


def test_the_attending_administrator_sees_the_id_until_deciding(staffed):
    web = staffed
    user, sid = _opened(web)
    admin = console(web, "sato")
    post(admin, f"/console/registrations/{sid}/join")
    before = get(admin, f"/console/registrations/{sid}/id")  # nothing captured yet
    assert before.status_code == 409 and before.json["error"] == "registration_wrong_step"
    assert post(user, f"/register/{sid}/id", body=JPEG).json == {"state": "id_captured"}
    page = get(admin, f"/console/registrations/{sid}").get_data(as_text=True)
    assert f'src="/console/registrations/{sid}/id"' in page and 'id="confirm-identity"' in page
    image = get(admin, f"/console/registrations/{sid}/id")
    assert image.status_code == 200 and image.data == JPEG and image.mimetype == "image/jpeg"
    assert image.headers["Cache-Control"] == "no-store"
    [viewed] = events(web.deps, "registration.id_viewed", "yamada")
    assert viewed.actor == "sato" and viewed.data["admin"] == "sato"
    # not for anyone else: another company's admin, the agency's (may read the records, not attend)
    for who in ("suzuki", "unyo"):
        resp = get(console(web, who), f"/console/registrations/{sid}/id")
        assert resp.status_code == 403 and resp.json["error"] == "registration_not_attendant"
        assert resp.data != JPEG
    agency = console(web, "unyo")
    assert post(agency, f"/console/registrations/{sid}/confirm").status_code == 403
    assert state_of(web.deps, sid) == "id_captured"
    assert where(post(admin, f"/console/registrations/{sid}/confirm")) == f"/console/registrations/{sid}"
    assert state_of(web.deps, sid) == "confirmed"
    after = get(admin, f"/console/registrations/{sid}/id")
    assert after.status_code == 409 and after.data != JPEG  # decided: no more viewing
    assert len(events(web.deps, "registration.id_viewed", "yamada")) == 1
    assert where(post(admin, f"/console/registrations/{sid}/close")) == "/console/registrations"
    assert state_of(web.deps, sid) == "closed"
    ended = post(admin, f"/console/registrations/{sid}/close")
    assert ended.status_code == 409


def test_rejection_and_unknown_actions(staffed):
    web = staffed
    user, sid = _opened(web)
    admin = console(web, "sato")
    post(admin, f"/console/registrations/{sid}/join")
    assert post(user, f"/register/{sid}/id", body=PNG, content_type="image/png").status_code == 200
    image = get(admin, f"/console/registrations/{sid}/id")
    assert image.status_code == 200 and image.mimetype == "image/png" and image.data == PNG
    assert post(admin, f"/console/registrations/{sid}/destroy").status_code == 409
    assert state_of(web.deps, sid) == "id_captured"
    rejected = post(admin, f"/console/registrations/{sid}/reject", {"reason": "写真と本人が一致しない"})
    assert where(rejected) == f"/console/registrations/{sid}"
    assert state_of(web.deps, sid) == "rejected"
    [audited] = events(web.deps, "registration.rejected", "yamada")
    assert audited.data["reason"] == "写真と本人が一致しない"
    made = post(user, f"/register/{sid}/vein/challenges", json={})
    assert made.status_code == 409 and made.json["error"] == "registration_wrong_step"
    assert where(post(admin, f"/console/registrations/{sid}/close")) == "/console/registrations"
    assert not vein.is_enrolled(web.deps, "yamada")
