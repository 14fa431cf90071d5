"""Reports of the audit log (R22; 004 第9 1(2)): a month of events made through the services
(logons, failures, a lock and its unlock, administrative actions, refused privileges, off-hours
logons, one ID on two terminals at once, an unused account) gives the expected counts and
flags; the CSV parses, the HTML page holds the sections and an embedded chart, the PDF's
Japanese text is real text (pdftotext). Only the company's system administrators and staff
read it (the agency all); a user and another company's administrator are refused and the
refusal audited; every report made is itself audited. Real services on SQLite, the test clock."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from datetime import date, datetime
from html import unescape

import pyotp
import pytest
from click.testing import CliRunner

from authsvc.cli import main
from authsvc.domain import logon_flow as lf
from authsvc.domain.calendar import JST
from authsvc.domain.errors import Forbidden, NotFound, OutOfScope
from authsvc.domain.roles import Actor, Role
from authsvc.services import accounts, audit_report, logon
from authsvc.services.sessions import Client
from tests.conftest import AGENCY, COMPANY
from tests.e2e.test_console_accounts import get, html, post, rig  # noqa: F401  (rig: a fixture)
from tests.e2e.test_web_console import where
from tests.integration.support import CHOSEN, add_contract, confirmed_totp, events, ready, set_time

OTHER = "別会社株式会社"
ADMIN_A = Actor("sato", frozenset({Role.SYSTEM_ADMIN}), terminal="console-a", company=COMPANY)
STAFF_A = Actor("kimura", frozenset({Role.STAFF}), terminal="console-a", company=COMPANY)
ADMIN_B = Actor("suzuki", frozenset({Role.SYSTEM_ADMIN}), terminal="console-b", company=OTHER)
USER_A = Actor("usr1", frozenset({Role.USER}), company=COMPANY)
APRIL = (date(2026, 4, 1), date(2026, 4, 30))
WRONG = "Wrong#pass99"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 4, day, hour, minute, tzinfo=JST)


@pytest.fixture
def month(make_deps, operator, account_admin, clock):
    """April 2026 (Apr 4-5, 11-12 ... weekends; Apr 29 昭和の日) at 防衛産業株式会社, and one
    logon at the other company."""
    deps = make_deps("sqlite", mfa={"second_factors": ["totp"]}, lockout={"max_failures": 5},
                     identifiers={"disable_after_days": 20})
    set_time(clock, at(1, 9))
    add_contract(deps, operator, "C-1", COMPANY)
    add_contract(deps, operator, "C-B", OTHER)
    secrets = {}
    for uid, contract, role in (("usr1", "C-1", "user"), ("usr2", "C-1", "user"), ("idle1", "C-1", "user"),
                                ("sato", "C-1", "system_admin"), ("kimura", "C-1", "staff"),
                                ("suzuki", "C-B", "system_admin"), ("usr9", "C-B", "user")):
        ready(deps, account_admin if contract == "C-1" else operator, operator, uid, contract=contract,
              role=role)
        if uid != "idle1":
            secrets[uid] = confirmed_totp(deps, uid)

    def log_on(uid: str, terminal: str = "T-1", source: str = "10.0.0.1") -> None:
        client = Client(terminal, source)
        state = logon.begin(deps, uid, CHOSEN[0], client)
        clock.advance(seconds=30)
        done = logon.totp_step(deps, state.token, pyotp.TOTP(secrets[uid]).at(clock.now()), client)
        assert done.step is lf.Step.DONE

    set_time(clock, at(1, 10))
    log_on("usr1")                                   # 4/1 Wed 10:00: a logon in hours
    set_time(clock, at(2, 10))
    for _ in range(2):                               # 4/2: two failures from T-9
        assert logon.begin(deps, "usr1", WRONG, Client("T-9", "10.0.0.9")).failed
    set_time(clock, at(6, 23))
    log_on("usr1")                                   # 4/6 Mon 23:00: off hours (night)
    set_time(clock, at(11, 11))
    log_on("usr2")                                   # 4/11 Sat: off hours (weekend)
    set_time(clock, at(14, 10))
    for _ in range(5):                               # 4/14: five failures from T-7: usr2 locks
        assert logon.begin(deps, "usr2", WRONG, Client("T-7", "10.0.0.7")).failed
    assert logon.begin(deps, "usr2", CHOSEN[0], Client("T-7", "10.0.0.7")).failed  # refused: locked
    accounts.unlock(deps, STAFF_A, "usr2", "本人確認済み")  # 4/14: unlocked by the staff
    set_time(clock, at(15, 10))
    log_on("usr1", "T-1")                            # 4/15: T-1, then T-2 a minute later
    set_time(clock, at(15, 10, 1))
    log_on("usr1", "T-2")                            # one ID on two terminals at once
    set_time(clock, at(16, 10))
    accounts.suspend(deps, account_admin, "usr2", "長期出張")  # administrative actions
    accounts.resume(deps, account_admin, "usr2", "帰任")
    with pytest.raises(OutOfScope):                  # another company's administrator: refused
        accounts.suspend(deps, ADMIN_B, "usr1", "試行")
    with pytest.raises(Forbidden):                   # a user: refused
        accounts.suspend(deps, USER_A, "usr2", "試行")
    set_time(clock, at(20, 10))
    log_on("usr9")                                   # the other company's logon
    set_time(clock, at(29, 10))
    log_on("usr1")                                   # 4/29 Wed, 昭和の日: off hours (holiday)
    set_time(clock, at(30, 12))
    return deps


def test_a_month_gives_the_expected_counts_and_flags(month):
    rep = audit_report.report(month, ADMIN_A, *APRIL, lang="ja")
    assert rep.company == COMPANY and rep.counts["logons"] == 6  # usr9's is the other company's
    assert rep.counts["failures"] == 7 and rep.counts["refused"] == 1
    logons = {(r[0], r[1]): r[1:] for r in rep.section("logons").rows}
    assert logons[("2026-04-02", 0)] == [0, 2, 0]
    assert logons[("2026-04-14", 0)] == [0, 5, 1]
    assert logons[("2026-04-15", 2)] == [2, 0, 0]
    assert "2026-04-20" not in {r[0] for r in rep.section("logons").rows}
    assert [(r[1], r[2]) for r in rep.section("locks").rows] == [("account.lock", "usr2"),
                                                                 ("account.unlock", "usr2")]
    admin = [(r[2], r[3]) for r in rep.section("admin").rows]
    assert ("account.suspend", "usr2") in admin and ("account.resume", "usr2") in admin
    assert ("account.create", "usr1") in admin and ("identifier.approve", "usr1") in admin
    assert not [a for a in admin if a[1] in ("usr9", "suzuki")]  # the other company's: not here
    assert sorted((r[1], r[2], r[4]) for r in rep.section("refused").rows) == [
        ("suzuki", "account.suspend", "other_company"), ("usr1", "account.suspend", "forbidden")]
    off = {(r[0][:10], r[1], r[4]) for r in rep.section("off_hours").rows}
    assert off == {("2026-04-06", "usr1", "業務時間外"), ("2026-04-11", "usr2", "週末"),
                   ("2026-04-29", "usr1", "祝日")}
    assert {(r[1], r[2], r[3]) for r in rep.section("repeated").rows} == {
        ("端末", "T-7", 5), ("送信元", "10.0.0.7", 5)}  # T-9's two stay under the threshold
    # never logged on since 4/1 (the administrators act through the tests' actors): 29 days
    assert [(r[0], r[3]) for r in rep.section("inactive").rows] == [("idle1", 29), ("kimura", 29),
                                                                    ("sato", 29)]
    [shared] = rep.section("shared").rows
    assert shared[1] == "usr1" and shared[2] == "T-1, T-2"
    by_rule = {r: sorted(f.subject for f in rep.flags_of(r)) for r in audit_report.RULES}
    assert by_rule == {"off_hours_logon": ["usr1", "usr1", "usr2"],
                       "repeated_failures_terminal": ["T-7"], "repeated_failures_source": ["10.0.0.7"],
                       "shared_id_suspected": ["usr1"], "privilege_refused": ["usr1", "usr2"],
                       "inactive_account": ["idle1", "kimura", "sato"]}
    assert all(f.rule_label and f.rule in audit_report.RULES for f in rep.flags)
    assert rep.counts["rule_off_hours_logon"] == 3
    chart = rep.charts[0]
    assert len(chart.labels) == 30 and chart.labels[0] == "2026-04-01"
    assert sum(chart.series["ログオン"]) == 6 and sum(chart.series["失敗"]) == 7
    # the agency's report: every company, with the company named on each row
    agency = audit_report.report(month, AGENCY, *APRIL, lang="en")
    assert agency.company is None and agency.counts["logons"] == 7
    assert (OTHER, "2026-04-20", 1, 0, 0) in {tuple(r) for r in agency.section("logons").rows}
    assert agency.section("logons").columns[:2] == ["Company", "Day"]
    # the other company's own report holds its logon and its refused attempt, nothing of ours
    theirs = audit_report.report(month, ADMIN_B, *APRIL)
    assert theirs.company == OTHER and theirs.counts["logons"] == 1
    assert [r[1] for r in theirs.section("refused").rows] == ["suzuki"]
    assert not theirs.section("off_hours").rows and not theirs.section("shared").rows
    assert [r[0] for r in theirs.section("inactive").rows] == ["suzuki"]  # usr9 logged on


def test_csv_html_and_pdf_render_the_same_report(month, tmp_path):
    rep = audit_report.report(month, STAFF_A, *APRIL, lang="ja")
    rows = list(csv.reader(io.StringIO(audit_report.csv_bytes(rep).decode("utf-8-sig"))))
    assert rows[0] == ["監査レポート"]
    titles = [r[0] if r else "" for r in rows]
    for s in rep.sections:
        start = titles.index(s.title)
        assert rows[start + 1] == s.columns
        block = rows[start + 2: start + 2 + len(s.rows)]
        assert [[str(v) for v in r] for r in s.rows] == block
        assert rows[start + 2 + len(s.rows)] == []  # a blank line ends the block
    assert "異常の指摘" in titles
    flag_rows = rows[titles.index("異常の指摘") + 2:]
    assert len(flag_rows) == len(rep.flags) and any("(off_hours_logon)" in r[0] for r in flag_rows)

    page = audit_report.to_html(rep)
    assert page.startswith("<!doctype html>") and '<img id="chart-daily"' in page
    assert '<img id="chart-daily" alt="日別のログオンと失敗" src="data:image/png;base64,' in page
    for s in rep.sections:
        assert f'id="sec-{s.key}"' in page and s.title in page
    assert "<script" not in page and "http" not in page  # self-contained, nothing from outside

    pdf = audit_report.to_pdf(rep)
    assert pdf.startswith(b"%PDF")
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    assert shutil.which("pdftotext"), "poppler-utils is needed (scripts/test-backends installs it)"
    found = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True,
                           text=True).stdout
    for title in ("監査レポート", "会社別・日別のログオンと失敗", "ロックとロック解除", "時間外のログオン",
                  "異常の指摘", "権限外の操作", "防衛産業株式会社", "日別のログオンと失敗"):
        assert title in found, title
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, check=True, text=True).stdout
    assert "NotoSansCJK" in fonts and " yes " in fonts  # the Japanese font, embedded


def test_a_user_and_another_companys_administrator_cannot_read_it(month):
    with pytest.raises(Forbidden):
        audit_report.report(month, USER_A, *APRIL)
    with pytest.raises(Forbidden):  # an account administrator does not read the log either
        audit_report.report(month, Actor("kato", frozenset({Role.ACCOUNT_ADMIN}), company=COMPANY),
                            *APRIL)
    with pytest.raises(OutOfScope) as theirs:
        audit_report.report(month, ADMIN_B, *APRIL, company=COMPANY)
    with pytest.raises(NotFound) as unknown:  # the same answer as a company that does not exist
        audit_report.report(month, AGENCY, *APRIL, company="存在しない会社")
    assert theirs.value.code == unknown.value.code == "contract_company_unknown"
    refused = [(e.actor, e.subject, e.data["reason"]) for e in events(month, "audit.report")
               if e.result == "refused"]
    assert refused == [("usr1", "*", "forbidden"), ("kato", "*", "forbidden"),
                       ("suzuki", COMPANY, "other_company")]


def test_every_report_made_is_audited(month):
    audit_report.report(month, ADMIN_A, *APRIL, fmt="pdf", lang="en")
    audit_report.report(month, AGENCY, date(2026, 4, 1), date(2026, 4, 7), company=COMPANY.lower(),
                        fmt="csv")
    made = [(e.actor, e.subject, e.data) for e in events(month, "audit.report") if e.result == "ok"]
    assert [(a, s) for a, s, _ in made] == [("sato", COMPANY), ("agency-check", COMPANY)]
    assert made[0][2]["start"] == "2026-04-01" and made[0][2]["end"] == "2026-04-30"
    assert made[0][2]["company"] == COMPANY and made[0][2]["format"] == "pdf"
    assert made[1][2]["end"] == "2026-04-07" and made[1][2]["format"] == "csv"


def test_a_period_must_be_in_order_and_at_most_a_year(month):
    from authsvc.domain.errors import InvalidInput

    with pytest.raises(InvalidInput):
        audit_report.report(month, ADMIN_A, date(2026, 4, 30), date(2026, 4, 1))
    with pytest.raises(InvalidInput):
        audit_report.report(month, ADMIN_A, date(2025, 1, 1), date(2026, 4, 1))


def test_off_hours_follow_the_business_day_calendar(month):
    holidays = month.holidays.is_holiday
    assert audit_report.off_hours(at(1, 8), holidays) is None
    assert audit_report.off_hours(at(1, 19, 59), holidays) is None
    assert audit_report.off_hours(at(1, 20), holidays) == "night"
    assert audit_report.off_hours(at(1, 7, 59), holidays) == "night"
    assert audit_report.off_hours(at(4, 12), holidays) == "weekend"
    assert audit_report.off_hours(at(29, 12), holidays) == "holiday"


def test_the_command_line_writes_each_format_and_refuses_others(month, tmp_path):
    """`authsvc audit report` on the same database (the system clock: April 2026 is past)."""
    env = {"AUTHSVC__PATHS__INSTANCE_DIR": str(tmp_path / "instance"), "AUTHSVC__DATABASE__URL": "",
           "AUTHSVC_LANG": "ja", "AUTHSVC__IDENTIFIERS__DISABLE_AFTER_DAYS": "3650"}  # `--as`: now
    runner = CliRunner()

    def cli(*args, code=0):
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    period = ("--from", "2026-04-01", "--to", "2026-04-30")
    for fmt in ("html", "csv", "pdf"):
        out = tmp_path / f"r.{fmt}"
        done = json.loads(cli("--as", "sato", "audit", "report", *period, "--format", fmt,
                              "--output", str(out), "--json").stdout)
        assert done["format"] == fmt and out.stat().st_size == done["bytes"] > 0
        assert done["counts"]["logons"] == 6
    assert "<h1>監査レポート</h1>" in (tmp_path / "r.html").read_text(encoding="utf-8")
    english = cli("--as", "sato", "audit", "report", *period, "--format", "csv", "--lang", "en").stdout
    assert "Logons and failures per company and day" in english
    data = json.loads(cli("audit", "report", *period, "--json").stdout)  # the agency: every company
    assert data["company"] is None and data["counts"]["logons"] == 7
    # another company's administrator, and a user (no administrator at all): refused
    theirs = json.loads(cli("--as", "suzuki", "audit", "report", *period, "--company", COMPANY,
                            "--json", code=1).stdout)
    assert theirs["error"] == "contract_company_unknown"
    assert json.loads(cli("--as", "usr1", "audit", "report", *period, "--json", code=1).stdout)[
        "error"] == "cli_as_not_admin"
    assert [e.actor for e in events(month, "audit.report") if e.result == "refused"] == ["suzuki"]


# ---- the console page (Flask's test client on the rig of tests/e2e/test_console_accounts) -----


@pytest.fixture
def console(rig):  # noqa: F811
    """The console's rig (tests/e2e/test_console_accounts.py): sato, kato, kimura, tanaka, yamada
    of 防衛産業株式会社, suzuki and ito of 別会社株式会社, each with a TOTP app."""
    return rig


def test_the_console_page_shows_html_and_downloads_csv_and_pdf(console):
    console.lock("tanaka")  # something to report: five failures and a lock
    client = console.console("sato")
    assert 'id="menu-audit-report"' in html(get(client, "/console/"))
    form = html(get(client, "/console/audit/report"))
    assert 'id="report-form"' in form and 'id="report-company">防衛産業株式会社<' in form
    period = {"from": "2026-03-25", "to": "2026-04-07"}
    page = post(client, "/console/audit/report", {**period, "format": "html"})
    assert page.status_code == 200
    shown = html(page)
    for key in audit_report.SECTIONS:
        assert f'id="sec-{key}"' in shown
    assert "会社別・日別のログオンと失敗" in shown and 'id="sec-flags"' in shown
    assert '<td>account.lock</td><td>tanaka</td>' in shown
    src = re.search(r'<img id="chart-daily" alt="[^"]+" src="([^"]+)"', shown).group(1)
    chart = get(client, unescape(src))
    assert chart.status_code == 200 and chart.mimetype == "image/png"
    assert chart.get_data().startswith(b"\x89PNG")
    spreadsheet = post(client, "/console/audit/report", {**period, "format": "csv"})
    assert spreadsheet.mimetype == "text/csv" and "attachment" in spreadsheet.headers["Content-Disposition"]
    assert spreadsheet.get_data().decode("utf-8-sig").startswith("監査レポート")
    document = post(client, "/console/audit/report", {**period, "format": "pdf"})
    assert document.mimetype == "application/pdf" and document.get_data().startswith(b"%PDF")
    english = html(post(client, "/console/audit/report?lang=en", {**period, "format": "html"}))
    assert "Logons and failures per company and day" in english
    made = [(e.actor, e.data["format"]) for e in events(console.deps, "audit.report") if e.result == "ok"]
    assert made == [("sato", "html"), ("sato", "png"), ("sato", "csv"), ("sato", "pdf"), ("sato", "html")]


def test_the_console_page_refuses_other_roles_companies_and_user_sessions(console):
    period = {"from": "2026-04-01", "to": "2026-04-07", "format": "html"}
    kato = console.console("kato")  # an account administrator: no log
    assert 'id="menu-audit-report"' not in html(get(kato, "/console/"))
    assert get(kato, "/console/audit/report").status_code == 403
    assert post(kato, "/console/audit/report", period).status_code == 403
    suzuki = console.console("suzuki")  # the other company's system administrator
    theirs = post(suzuki, "/console/audit/report", {**period, "company": COMPANY})
    unknown = post(suzuki, "/console/audit/report", {**period, "company": "存在しない会社"})
    assert theirs.status_code == unknown.status_code == 404
    assert get(suzuki, "/console/audit/report/chart.png?from=2026-04-01&to=2026-04-07&company="
               + COMPANY).status_code == 404
    own = html(post(suzuki, "/console/audit/report", period))  # their own company: theirs only
    assert 'data-company="別会社株式会社"' in own and "tanaka" not in own
    user = console.client()  # a user's session is no console session
    console.log_on(user, "tanaka")
    assert where(get(user, "/console/audit/report")) == "/console/logon/"
    refused = [(e.actor, e.subject, e.data["reason"]) for e in events(console.deps, "audit.report")
               if e.result == "refused"]
    assert refused == [("kato", "*", "forbidden"), ("suzuki", COMPANY, "other_company"),
                       ("suzuki", "存在しない会社", "other_company"), ("suzuki", COMPANY, "other_company")]
