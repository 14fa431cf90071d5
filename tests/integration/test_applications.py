"""Usage applications ([11 of 12], R21, R2) on SQLite: the realistic round trip (template
downloaded, filled in with openpyxl, uploaded, roster-checked, approved, parameter sheet
produced, decrypted with the delivered password, and its accounts logging on with their
initial passwords), a refused workbook changing nothing, initial passwords nowhere in the
database or the logs, and the command line."""

from __future__ import annotations

import io
import json
import logging
from datetime import date
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from authsvc.cli import main
from authsvc.domain.applications import ApplicationInvalid
from authsvc.services import applications as apps
from authsvc.services import logon
from tests.application_support import (
    PEOPLE,
    PRIME,
    PRIME_CONTRACT,
    SUB,
    SUB_CONTRACT,
    SUB_PEOPLE,
    fill,
    read_sheet,
    register_row,
    roster_bytes,
    sheet_accounts,
    users_workbook,
    world,
)
from tests.integration.support import dump_all, events, password_step, row_counts


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return tmp_path / "storage-site"


@pytest.fixture
def sdeps(make_deps, site, backend):
    return make_deps(backend, applications={"folder": str(site)})


@pytest.mark.backends("sqlite", "postgres")
def test_an_application_from_template_to_first_logon(sdeps, operator, site, caplog):
    caplog.set_level(logging.DEBUG)
    w = world(sdeps, operator)
    template = apps.template(sdeps, w.submitter, "users", PRIME_CONTRACT)
    assert openpyxl.load_workbook(io.BytesIO(template)).worksheets[0]["B3"].value == PRIME_CONTRACT
    own = fill(template, PRIME_CONTRACT, PRIME, [register_row("yamada.t", PEOPLE[0]),
                                                register_row("sato.h", PEOPLE[1], role="データ管理責任者")])
    sub = users_workbook(sdeps, w.submitter, SUB_CONTRACT, SUB, [register_row("suzuki.i", SUB_PEOPLE[0])])
    views = apps.submit(sdeps, w.submitter, [apps.Upload("自社.xlsx", own), apps.Upload("下請.xlsx", sub)])
    sheets = []
    for v in views:
        apps.check(sdeps, w.checker, v.id)
        apps.approve(sdeps, w.approver, v.id)
        sheets.append(apps.issue(sdeps, w.approver, v.id))
    # the prime's sheet in its folder; the subcontractor's in its own and in the prime's
    assert [Path(p).parent.name for p in sheets[0].files] == ["boei-sangyo"]
    assert sorted(Path(p).parent.name for p in sheets[1].files) == ["boei-sangyo", "sub-seiki"]
    initial = {}
    for sheet in sheets:
        for path in sheet.files:
            rows = read_sheet(Path(path).read_bytes(), sheet.password)
            assert any(sdeps.settings.applications.service_url in r for r in rows)
            initial.update(sheet_accounts(rows))
    assert set(initial) == {"yamada.t", "sato.h", "suzuki.i"}
    for user_id, password in initial.items():
        state = password_step(sdeps, user_id, password)
        assert state is not logon.FAILED and state.step.value == "change_password", (user_id, state)
    # the initial passwords and the sheets' passwords: only inside the encrypted files
    dump = dump_all(sdeps)
    for secret in [*initial.values(), *(s.password for s in sheets)]:
        assert secret not in dump and secret not in caplog.text
    assert [e.action for e in events(sdeps, subject=f"application:{views[1].id}")] == [
        "application.submit", "application.check", "application.approve", "application.issue"]
    created = events(sdeps, "account.create")
    assert {e.subject for e in created} >= set(initial) and all(e.actor == "ops1" for e in created[-3:])


def test_a_refused_workbook_changes_nothing(sdeps, operator):
    w = world(sdeps, operator)
    before = {k: v for k, v in row_counts(sdeps).items() if not k.startswith("audit")}
    rows = [register_row("yamada.t", PEOPLE[0]), register_row("yamada.t", PEOPLE[1]),
            register_row("x.y", ("名簿 外", date(1970, 1, 1), "Z-1"))]
    with pytest.raises(ApplicationInvalid) as err:
        apps.submit(sdeps, w.submitter, [apps.Upload("a.xlsx", users_workbook(sdeps, w.submitter,
                                                                              PRIME_CONTRACT, PRIME, rows))])
    assert {(e.row, e.code) for e in err.value.errors} == {
        (8, "app_duplicate"), (9, "app_not_on_handlers"), (9, "app_not_on_system_users")}
    assert {k: v for k, v in row_counts(sdeps).items() if not k.startswith("audit")} == before
    assert events(sdeps, "application.submit")[-1].result == "refused"


# ---- the command line ------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path, site):
    env = {"AUTHSVC__PATHS__INSTANCE_DIR": str(tmp_path / "instance"), "AUTHSVC__DATABASE__URL": "",
           "AUTHSVC__ARGON2__TIME_COST": "1", "AUTHSVC__ARGON2__MEMORY_COST_KIB": "1024",
           "AUTHSVC__ARGON2__PARALLELISM": "1", "AUTHSVC_LANG": "en",
           "AUTHSVC__APPLICATIONS__FOLDER": str(site)}
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return run


def test_the_command_line_imports_checks_approves_and_issues(cli, tmp_path, site):
    today = date.today().isoformat()
    cli("contract", "create", "DSG-OPERATIONS", "--company", "DSG運用", "--start", today)
    cli("contract", "create", "C-7", "--company", PRIME, "--start", today, "--end", "2099-03-31")
    cli("application", "terms", "C-7", "--concluded", today, "--eligibility", "clause")
    cli("application", "company", PRIME, "--subscription", "complete", "--folder", "boei")
    for user_id, role, contract in (("sysadm", "system_admin", "C-7"),
                                    ("jigyo", "procuring_office", "DSG-OPERATIONS")):
        cli("user", "create", user_id, "--name", "管理 者", "--contract", contract, "--role", role)
        cli("identifier", "approve", user_id)
    people = tmp_path / "roster.csv"
    people.write_bytes(roster_bytes(PEOPLE, csv=True))
    for kind in ("handlers", "system_users"):
        assert "\t2\t" not in cli("application", "roster", "C-7", kind, str(people)).output
    form = tmp_path / "form.xlsx"
    cli("--as", "sysadm", "application", "template", "--contract", "C-7", "-o", str(form))
    filled = tmp_path / "filled.xlsx"
    filled.write_bytes(fill(form.read_bytes(), "C-7", PRIME, [register_row("yamada.t", PEOPLE[0])]))
    bad = tmp_path / "bad.xlsx"
    stranger = ("誰 か", date(1970, 1, 1), "Q-1")
    bad.write_bytes(fill(form.read_bytes(), "C-7", PRIME, [register_row("nobody.x", stranger)]))
    refused = cli("--as", "sysadm", "application", "import", str(bad), code=1)
    assert "row 7, column C" in refused.output and "handler roster" in refused.output
    [made] = json.loads(cli("--as", "sysadm", "application", "import", str(filled), "--json").stdout)
    app_id = str(made["id"])
    assert "submitted" in cli("application", "status").output
    cli("--as", "sysadm", "application", "check", app_id, code=1)  # never the submitter (nor its role)
    checked = json.loads(cli("--as", "jigyo", "application", "check", app_id, "--json").stdout)
    assert checked["state"] == "checked"
    cli("application", "approve", app_id)
    issued = json.loads(cli("application", "issue", app_id, "--json").stdout)
    assert issued["accounts"] == ["yamada.t"] and Path(issued["files"][0]).parent == site / "boei"
    rows = read_sheet(Path(issued["files"][0]).read_bytes(), issued["password"])
    assert set(sheet_accounts(rows)) == {"yamada.t"}
    detail = json.loads(cli("application", "status", app_id, "--json").stdout)
    assert detail["state"] == "issued" and detail["rows"][0]["user_id"] == "yamada.t"
    assert issued["password"] not in json.dumps(detail)
