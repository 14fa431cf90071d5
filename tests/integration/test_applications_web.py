"""Usage applications ([11 of 12]) on the console and the administrators' API, Flask's test
client against the real app on SQLite (the rig of tests/e2e/test_console_accounts.py): the
template downloaded, filled in, uploaded with its per-row errors shown, checked by the
procuring office, approved and issued by the agency with the sheet's password shown once;
the company's data manager approving an access-right application and reaching nothing else;
and on every route another company's administrator gets the answer of an unknown record,
audited, and changes nothing."""

from __future__ import annotations

import base64
import io
import re
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from authsvc.domain.messages import text
from authsvc.services import applications as apps
from authsvc.services import groups
from authsvc.services.accounts import OPERATIONS_CONTRACT
from tests.application_support import fill, read_sheet, register_row, roster_bytes, sheet_accounts
from tests.e2e.test_console_accounts import (  # noqa: F401  (rig: the fixture)
    BASE,
    COMPANY,
    OPERATOR,
    OTHER,
    csrf,
    html,
    rig,
)
from tests.integration.support import dump_all, events

PEOPLE = [("田中 太郎", date(1980, 4, 1), "E-1"), ("山田 花子", date(1990, 2, 3), None)]
MAY_CHANGE = ("audit_events.", "audit_head.", "sessions.", "alerts.")


@pytest.fixture
def made(rig):  # noqa: F811
    """The rig's companies subscribed, their contracts (C-1, C-9) concluded with their rosters,
    and a procuring-office account (the storage site: the instance's applications folder)."""
    deps = rig.deps
    today = deps.clock.now().date()
    for number, company, folder in (("C-1", COMPANY, "boei"), ("C-9", OTHER, "other")):
        apps.set_terms(deps, OPERATOR, number, today, "clause")
        apps.set_company(deps, OPERATOR, company, "complete", today, folder)
        for kind in ("handlers", "system_users"):
            apps.upload_roster(deps, OPERATOR, number, kind, apps.Upload("r.xlsx", roster_bytes(PEOPLE)))
    rig.person("jigyo", "事業元 一郎", role="procuring_office", contract=OPERATIONS_CONTRACT)
    return rig


def upload(client: Any, path: str, files: list[tuple[str, bytes]], **fields: str) -> Any:
    data: dict[str, Any] = {"csrf_token": csrf(client), **fields}
    key = "files" if path == "/console/applications" else "file"
    data[key] = [(io.BytesIO(content), name) for name, content in files]
    return client.post(path, base_url=BASE, data=data, content_type="multipart/form-data",
                       headers={"Referer": BASE + "/"})


def act(client: Any, path: str, **fields: str) -> Any:
    return client.post(path, base_url=BASE, data={"csrf_token": csrf(client), **fields},
                       headers={"Referer": BASE + "/"})


def state(deps) -> list[str]:
    return [line for line in dump_all(deps).splitlines() if not line.startswith(MAY_CHANGE)]


def workbook(client: Any, rows: list[list[Any]], contract: str = "C-1", company: str = COMPANY) -> bytes:
    got = client.get("/console/applications/template/users", base_url=BASE)
    assert got.status_code == 200 and got.headers["Content-Disposition"].startswith("attachment")
    assert openpyxl.load_workbook(io.BytesIO(got.data)).worksheets[0]["B2"].value == "DSG-USERS-1"
    return fill(got.data, contract, company, rows)


def test_the_console_from_template_to_parameter_sheet(made, tmp_path):
    sato = made.console("sato")  # the company's system administrator
    page = html(sato.get("/console/", base_url=BASE))
    assert 'id="menu-applications"' in page
    bad = workbook(sato, [register_row("tanaka.t", PEOPLE[0]), ["登録", "x", "誰", "1980-02-31"]])
    before = state(made.deps)
    refused = upload(sato, "/console/applications", [("申請書.xlsx", bad)])
    assert refused.status_code == 422
    shown = set(re.findall(r'data-row="(\d+)" data-column="(\w*)" data-code="(\w+)"', html(refused)))
    assert {("8", "B", "app_user_id_invalid"), ("8", "D", "app_date_invalid")} <= shown
    assert "8行・B列" in html(refused) and state(made.deps) == before
    good = workbook(sato, [register_row("tanaka.t", PEOPLE[0]), register_row("yamada.h", PEOPLE[1])])
    done = upload(sato, "/console/applications", [("申請書.xlsx", good)])
    assert done.status_code == 302, html(done)[:500]
    [view] = apps.list_applications(made.deps, OPERATOR)
    assert f'data-application="{view.id}" data-state="submitted"' in html(sato.get("/console/applications",
                                                                                    base_url=BASE))
    # the submitter's own check is refused; the procuring office checks; the agency approves
    assert act(sato, f"/console/applications/{view.id}/check").status_code == 403
    jigyo = made.console("jigyo")
    assert act(jigyo, f"/console/applications/{view.id}/check").status_code == 302
    unyo = made.console("unyo")
    assert act(unyo, f"/console/applications/{view.id}/approve").status_code == 302
    issued = act(unyo, f"/console/applications/{view.id}/issue")
    assert issued.status_code == 200
    password = re.search(r'<code id="sheet-password">([^<]+)</code>', html(issued)).group(1)
    [path] = re.findall(r"<li>([^<]+\.xlsx)</li>", html(issued))
    initial = sheet_accounts(read_sheet(Path(path).read_bytes(), password))
    assert set(initial) == {"tanaka.t", "yamada.h"}
    assert password not in html(unyo.get(f"/console/applications/{view.id}", base_url=BASE))
    assert all(p not in dump_all(made.deps) for p in [password, *initial.values()])


def test_the_console_refuses_another_companys_administrator(made):
    sato = made.console("sato")
    done = upload(sato, "/console/applications",
                  [("a.xlsx", workbook(sato, [register_row("tanaka.t", PEOPLE[0])]))])
    assert done.status_code == 302
    [view] = apps.list_applications(made.deps, OPERATOR)
    suzuki = made.console("suzuki")  # the other company's system administrator
    before, seq = state(made.deps), len(events(made.deps))
    answers = {
        "page": suzuki.get(f"/console/applications/{view.id}", base_url=BASE),
        "check": act(suzuki, f"/console/applications/{view.id}/check"),
        "reject": act(suzuki, f"/console/applications/{view.id}/reject", reason="他社"),
        "issue": act(suzuki, f"/console/applications/{view.id}/issue"),
        "template": suzuki.get("/console/applications/template/users?contract=C-1", base_url=BASE),
        "upload": upload(suzuki, "/console/applications",
                         [("a.xlsx", workbook(suzuki, [register_row("x.y", PEOPLE[0])]))]),
        "roster": upload(suzuki, "/console/rosters", [("r.csv", roster_bytes(PEOPLE, csv=True))],
                         contract="C-1", kind="handlers"),
    }
    for name, resp in answers.items():
        assert resp.status_code in (403, 404), (name, resp.status_code)
    listed = html(suzuki.get("/console/applications", base_url=BASE))
    assert 'id="no-applications"' in listed and "C-1" not in listed.split('id="application-templates"')[0]
    refused = [e for e in events(made.deps)[seq:] if e.result == "refused"]
    assert len(refused) == len(answers) and {e.actor for e in refused} == {"suzuki"}
    assert state(made.deps) == before


# ---- the data manager: access-right applications (003 §6) ----------------------------------


def test_the_data_manager_approves_their_companys_access_rights_and_nothing_else(made):
    deps = made.deps
    made.person("kobayashi", "小林 七郎", role="data_manager")  # the company's data manager
    for name, company in (("設計部", COMPANY), ("営業部", OTHER)):
        groups.create(deps, OPERATOR, name, ["totp"], company=company)
    sato, suzuki = made.console("sato"), made.console("suzuki")
    for client, contract, company, rows in ((sato, "C-1", COMPANY, [["追加", "設計部", "tanaka"]]),
                                            (suzuki, "C-9", OTHER, [["追加", "営業部", "ito"]])):
        got = client.get("/console/applications/template/access", base_url=BASE)
        filled = fill(got.data, contract, company, rows)
        assert upload(client, "/console/applications", [("access.xlsx", filled)]).status_code == 302
    users = upload(sato, "/console/applications",
                   [("users.xlsx", workbook(sato, [register_row("tanaka.t", PEOPLE[0])]))])
    assert users.status_code == 302
    ids = {(a.kind, a.company): a.id for a in apps.list_applications(deps, OPERATOR)}
    mine, theirs, user_app = ids["access", COMPANY], ids["access", OTHER], ids["users", COMPANY]

    dm = made.console("kobayashi")  # the console's own logon: password and a one-time code
    menu = html(dm.get("/console/", base_url=BASE))
    assert re.findall(r'id="menu-([\w-]+)"', menu) == ["applications"]
    listed = html(dm.get("/console/applications", base_url=BASE))
    assert re.findall(r'data-application="(\d+)" data-state="(\w+)"', listed) == [(str(mine), "submitted")]
    assert 'id="application-templates"' not in listed and 'id="roster-upload"' not in listed
    page = html(dm.get(f"/console/applications/{mine}", base_url=BASE))
    assert 'id="application-approve"' in page and 'id="application-reject"' in page

    # every other console page refuses them (the usual page, audited); another company's
    # application and a user application answer like unknown ones; nothing changes
    before, seq = state(deps), len(events(deps))
    for path in ("/console/accounts", "/console/groups", "/console/devices", "/console/alerts",
                 "/console/consent", "/console/applications/template/access"):
        resp = dm.get(path, base_url=BASE)
        assert resp.status_code == 403 and text("forbidden", "ja") in html(resp), path
    assert act(dm, "/console/groups/request", group="設計部", user_id="yamada").status_code == 403
    for app_id in (theirs, user_app):
        assert dm.get(f"/console/applications/{app_id}", base_url=BASE).status_code == 404
        for action, fields in (("approve", {}), ("reject", {"reason": "対象外"})):
            assert act(dm, f"/console/applications/{app_id}/{action}", **fields).status_code in (403, 404)
    assert act(dm, f"/console/applications/{user_app}/check").status_code == 403
    refused = [e for e in events(deps)[seq:] if e.result == "refused"]
    assert len(refused) == 14 and {e.actor for e in refused} == {"kobayashi"}
    assert state(deps) == before

    done = act(dm, f"/console/applications/{mine}/approve")
    assert done.status_code == 302
    assert done.headers["Location"].endswith(f"/console/applications/{mine}?done=1")
    [grp] = [x for x in groups.list_groups(deps, OPERATOR, COMPANY) if x.name == "設計部"]
    assert [(m["user_id"], m["requested_by"], m["approved_by"]) for m in grp.members] == [
        ("tanaka", "sato", "kobayashi")]
    [approval] = events(deps, "application.approve", f"application:{mine}")
    assert (approval.actor, approval.result, approval.data["kind"]) == ("kobayashi", "ok", "access")
    assert [e.actor for e in events(deps, "group.approve", "tanaka")] == ["kobayashi"]
    assert 'id="no-applications"' in html(dm.get("/console/applications", base_url=BASE))
    assert {a.id: a.state for a in apps.list_applications(deps, OPERATOR)} == {
        mine: "approved", theirs: "submitted", user_app: "submitted"}


# ---- the administrators' API -----------------------------------------------------------------


def token(rig: Any, user_id: str) -> str:  # noqa: F811
    from tests.e2e.test_console_accounts import PASSWORD

    first = rig.client().post("/api/v1/logon", json={"user_id": user_id, "password": PASSWORD,
                                                      "surface": "console"})
    assert first.status_code == 200, first.get_json()
    done = rig.client().post("/api/v1/logon/totp", json={"code": rig.code(user_id)},
                             headers={"Authorization": f"Bearer {first.get_json()['token']}"})
    assert done.get_json()["state"] == "done", done.get_json()
    return done.get_json()["token"]


def api(rig: Any, tok: str, method: str, path: str, body: Any = None) -> Any:  # noqa: F811
    return rig.client().open(path, method=method, json=body, headers={"Authorization": f"Bearer {tok}"})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_the_api_round_trip_and_another_companys_administrator(made):
    sato, suzuki = token(made, "sato"), token(made, "suzuki")
    got = api(made, sato, "GET", "/api/v1/admin/applications/template?form=users&contract=C-1")
    assert got.status_code == 200
    data = fill(got.data, "C-1", COMPANY, [register_row("tanaka.t", PEOPLE[0])])
    files = {"files": [{"name": "申請書.xlsx", "content": b64(data)}]}
    bad = fill(got.data, "C-1", COMPANY, [register_row("tanaka.t", ("別人", date(1999, 1, 1), None))])
    refused = api(made, sato, "POST", "/api/v1/admin/applications",
                  {"files": [{"name": "b.xlsx", "content": b64(bad)}]})
    assert refused.status_code == 422
    assert {(e["row"], e["column"], e["code"]) for e in refused.get_json()["errors"]} == {
        (7, "C", "app_not_on_handlers"), (7, "C", "app_not_on_system_users")}
    made_ = api(made, sato, "POST", "/api/v1/admin/applications", files)
    assert made_.status_code == 201, made_.get_json()
    app_id = made_.get_json()["applications"][0]["id"]
    other_calls = [
        ("GET", f"/api/v1/admin/applications/{app_id}", None),
        ("POST", f"/api/v1/admin/applications/{app_id}/check", {}),
        ("POST", f"/api/v1/admin/applications/{app_id}/approve", {}),
        ("POST", f"/api/v1/admin/applications/{app_id}/issue", {}),
        ("POST", f"/api/v1/admin/applications/{app_id}/reject", {"reason": "他社"}),
        ("GET", "/api/v1/admin/applications/template?contract=C-1", None),
        ("POST", "/api/v1/admin/applications", files),
        ("POST", "/api/v1/admin/rosters/C-1/handlers", {"name": "r.csv",
                                                        "content": b64(roster_bytes(PEOPLE, csv=True))}),
        ("PUT", f"/api/v1/admin/companies/{COMPANY}", {"subscription": "withdrawn"}),
        ("PUT", "/api/v1/admin/contracts/C-1/terms", {"eligibility": "clause"}),
    ]
    before = state(made.deps)
    for method, path, body in other_calls:
        seq = len(events(made.deps))
        resp = api(made, suzuki, method, path, body)
        assert resp.status_code in (403, 404), (path, resp.status_code, resp.get_json())
        refused = [e for e in events(made.deps)[seq:] if e.result == "refused"]
        assert len(refused) == 1 and refused[0].actor == "suzuki", (path, refused)
    for path in ("/api/v1/admin/applications", "/api/v1/admin/companies"):
        resp = api(made, suzuki, "GET", path)
        assert resp.status_code == 200 and "C-1" not in resp.get_data(as_text=True)
        assert COMPANY not in resp.get_data(as_text=True)
    assert state(made.deps) == before
    jigyo, unyo = token(made, "jigyo"), token(made, "unyo")
    assert api(made, sato, "POST", f"/api/v1/admin/applications/{app_id}/check", {}).status_code == 403
    assert api(made, jigyo, "POST", f"/api/v1/admin/applications/{app_id}/check", {}).status_code == 200
    assert api(made, unyo, "POST", f"/api/v1/admin/applications/{app_id}/approve", {}).status_code == 200
    issued = api(made, unyo, "POST", f"/api/v1/admin/applications/{app_id}/issue", {})
    assert issued.status_code == 200, issued.get_json()
    sheet = issued.get_json()["sheet"]
    rows = read_sheet(Path(sheet["files"][0]).read_bytes(), sheet["password"])
    assert set(sheet_accounts(rows)) == {"tanaka.t"}
    assert api(made, sato, "GET", f"/api/v1/admin/applications/{app_id}").get_json()["application"]["state"] \
        == "issued"
