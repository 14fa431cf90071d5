"""The `authsvc` command line, end to end through click on real databases."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from authsvc.cli import main


@pytest.fixture
def cli(tmp_path, backend, make_deps):
    url = ""
    if backend == "postgres":
        url = make_deps("postgres").settings.database_url  # fresh, truncated database
    env = {
        "AUTHSVC__PATHS__INSTANCE_DIR": str(tmp_path / "instance"),
        "AUTHSVC__DATABASE__URL": url,
        "AUTHSVC__ARGON2__TIME_COST": "1",
        "AUTHSVC__ARGON2__MEMORY_COST_KIB": "1024",
        "AUTHSVC__ARGON2__PARALLELISM": "1",
        "AUTHSVC_LANG": "en",
    }
    runner = CliRunner()

    def run(*args, input=None, code=0):
        result = runner.invoke(main, list(args), env=env, input=input, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    run.env = env
    return run


def as_json(result):
    return json.loads(result.stdout)


def test_account_lifecycle_from_the_command_line(cli):
    cli("contract", "create", "C-9", "--company", "株式会社テスト", "--start", "2026-04-01",
        "--end", "2027-03-31")
    created = as_json(cli("user", "create", "Yamada", "--name", "山田 一郎", "--contract", "C-9",
                          "--role", "user", "--json"))
    assert created["status"] == "pending" and len(created["initial_password"]) >= 16
    human = cli("user", "create", "suzuki", "--name", "鈴木 次郎", "--contract", "C-9",
                "--role", "account_admin").output
    assert "shown once" in human
    assert [u["user_id"] for u in as_json(cli("user", "list", "--json"))] == ["suzuki", "Yamada"]
    assert as_json(cli("identifier", "approve", "yamada", "--json"))["status"] == "active"
    assert as_json(cli("user", "suspend", "yamada", "--reason", "leave", "--json"))["status"] \
        == "suspended"
    assert as_json(cli("user", "resume", "yamada", "--json"))["status"] == "active"
    assert as_json(cli("user", "update", "yamada", "--role", "staff", "--json"))["role"] == "staff"
    assert as_json(cli("user", "unlock", "yamada", "--json"))["locked"] is False
    reset = as_json(cli("user", "reset-password", "yamada", "--json"))
    assert reset["initial_password"] != created["initial_password"]
    assert as_json(cli("user", "show", "yamada", "--json"))["access_ends_at"].startswith(
        "2027-04-")
    assert as_json(cli("user", "delete", "yamada", "--json"))["status"] == "deleted"
    refused = cli("user", "create", "yamada", "--name", "別人", "--contract", "C-9",
                  "--role", "user", "--json", code=1)
    assert as_json(refused)["error"] == "identifier_reserved"
    assert as_json(cli("maintenance", "run", "--json")) == {
        "expired": [], "disabled": [], "revoked": [], "registrations_expired": [],
        "evidence_purged": 0, "oidc_logouts_owed": 0, "oidc_codes_forgotten": 0, "audit_archived": 0,
        "audit_verified": "ok"}
    verified = as_json(cli("audit", "verify", "--json"))
    assert verified["ok"] and verified["checked"] >= 10
    # (finding these by `--subject Yamada` is test_audit_show_finds_an_account_in_any_letter_case)
    events = as_json(cli("audit", "show", "--limit", "100", "--json"))
    assert {e["action"] for e in events if e["subject"] == "Yamada"} \
        >= {"account.create", "account.delete", "password.reset"}
    assert as_json(cli("contract", "list", "--json"))[0]["contract"] == "C-9"


def test_audit_verify_fails_naming_the_row(cli, make_deps):
    cli("contract", "create", "C-1", "--company", "X", "--start", "2026-04-01")
    cli("user", "create", "abc", "--name", "A", "--contract", "C-1", "--role", "user")
    cli("identifier", "approve", "abc")
    from authsvc.settings import load_settings
    from authsvc.store.db import make_engine

    engine = make_engine(load_settings(environ=cli.env).database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET result = 'denied' WHERE seq = 2"))
    engine.dispose()
    out = cli("audit", "verify", code=1).output
    assert "seq 2" in out and "modified" in out


def test_password_check_reads_stdin_and_records_nothing(cli):
    cli("contract", "create", "C-1", "--company", "X", "--start", "2026-04-01")
    cli("user", "create", "kimura", "--name", "Kimura Ken", "--contract", "C-1", "--role", "user")
    before = as_json(cli("audit", "verify", "--json"))["checked"]
    bad = as_json(cli("password", "check", "--user-id", "kimura", "--json",
                      input="Kimura#2024xyz\n", code=1))
    assert "pw_contains_user_id" in bad["reasons"] and bad["messages"]
    ok = as_json(cli("password", "check", "--user-id", "kimura", "--json",
                     input="Vt8$wQ3#nRz7\n"))
    assert ok == {"accepted": True, "reasons": [], "messages": []}
    assert cli("password", "check", input="short\n", code=1).output.strip()
    assert as_json(cli("audit", "verify", "--json"))["checked"] == before


def test_clear_errors_for_bad_input_config_and_dead_database(cli):
    out = cli("user", "show", "nobody", code=1).output
    assert "nobody was not found" in out
    assert "user ID has 3 to 64" in cli("user", "create", "../etc", "--name", "x", "--contract", "C",
                            "--role", "user", code=1).output
    env = dict(cli.env)
    runner = CliRunner()
    bad = runner.invoke(main, ["user", "list"], env={**env, "AUTHSVC__LOCKOUT__MAX_FAILURES": "0"})
    assert bad.exit_code == 78 and "lockout.max_failures" in bad.output  # EX_CONFIG
    typo = runner.invoke(main, ["user", "list"], env={**env, "AUTHSVC__LOCKOUT__MAX_FAILUER": "3"})
    assert typo.exit_code == 78 and "lockout.max_failuer" in typo.output
    dead = runner.invoke(main, ["user", "list", "--json"],
                         env={**env, "AUTHSVC__DATABASE__URL":
                              "postgresql://postgres@127.0.0.1:1/none"})
    assert dead.exit_code == 69 and json.loads(dead.stdout)["error"] == "database_unavailable"
    # Redis counters that do not answer: the documented 69 as well (it was 1, with a traceback)
    cli("contract", "create", "C-R", "--company", "X", "--start", "2026-04-01")
    cli("user", "create", "redisdown", "--name", "A", "--contract", "C-R", "--role", "user")
    down = runner.invoke(main, ["user", "unlock", "redisdown", "--json"],
                         env={**env, "AUTHSVC__COUNTERS__BACKEND": "redis",
                              "AUTHSVC__REDIS__URL": "redis://127.0.0.1:1/15"})
    assert down.exit_code == 69 and json.loads(down.stdout)["error"] == "database_unavailable"


HOSTILE = "\x1b]0;owned\x07evil\x9b31m\u202eboom"  # OSC title, BEL, 8-bit CSI, bidi override


def test_hostile_strings_cannot_drive_the_operators_terminal(cli):
    cli("contract", "create", "C-1", "--company", "X", "--start", "2026-04-01")
    cli("user", "create", "abc", "--name", "A", "--contract", "C-1", "--role", "user")
    cli("identifier", "approve", "abc")
    cli("user", "suspend", "abc", "--reason", HOSTILE)
    out = cli("audit", "show", "--limit", "5").output
    for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert raw not in out
    # shown escaped: C1 controls and format characters survive JSON encoding of the detail,
    # so it is the terminal-safe printing that must escape them
    assert "\\x9b31m\\u202eboom" in out
    assert "owned" in out and "evil" in out
    raw_json = cli("audit", "show", "--limit", "5", "--json").output
    for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert raw not in raw_json  # json.dumps alone leaves C1 controls and overrides raw
    shown = json.loads(raw_json)
    [suspend] = [e for e in shown if e["action"] == "account.suspend"]
    assert suspend["subject"] == "abc"
    assert json.loads(suspend["detail"])["reason"] == HOSTILE  # data kept intact


def test_a_hostile_user_agent_is_kept_exactly_and_shown_escaped(cli):
    """[5 of 12] item 7: the terminal (User-Agent) column of a logon attempt, with control
    characters and a right-to-left override, is stored as sent (the chain verifies it) and
    `audit show` prints it escaped, in its own column."""
    from authsvc.bootstrap import build
    from authsvc.services import audit, logon
    from authsvc.settings import load_settings
    from tests.integration.support import password_step

    agent = "Mozilla\x1b[2J\u202etxt.exe\x7f\u2028next"
    deps = build(load_settings(environ=cli.env))
    assert password_step(deps, "nobody-1", "x", terminal=agent, source="10.0.0.9") == logon.FAILED
    assert audit.verify(deps).problem is None or audit.verify(deps).problem.reason != "modified"
    deps.engine.dispose()
    out = cli("audit", "show", "--limit", "1").output
    assert "Mozilla\\x1b[2J\\u202etxt.exe\\x7f\\u2028next" in out
    assert out.count("\n") == 1  # one event, one line: a stored line separator forges none
    [event] = as_json(cli("audit", "show", "--limit", "1", "--json"))
    assert event["terminal"] == agent and event["source"] == "10.0.0.9"


def test_a_hostile_unknown_identifier_is_never_stored(cli):
    from authsvc.bootstrap import build
    from authsvc.services import logon
    from authsvc.settings import load_settings
    from tests.integration.support import password_step

    deps = build(load_settings(environ=cli.env))
    assert password_step(deps, HOSTILE, "x") == logon.FAILED
    deps.engine.dispose()
    out = cli("audit", "show", "--limit", "5").output
    assert "owned" not in out and "\x1b" not in out
    [attempt] = as_json(cli("audit", "show", "--limit", "5", "--json"))
    assert attempt["action"] == "logon.password" and attempt["result"] == "failed"
    assert attempt["subject"].startswith("unknown:") and attempt["actor"] == attempt["subject"]
    assert "owned" not in json.dumps(attempt)
    # the operator can still ask whether that string was tried
    [found] = as_json(cli("audit", "show", "--subject", HOSTILE, "--json"))
    assert found["seq"] == attempt["seq"]


def test_operator_asks_whether_an_unknown_id_was_tried(cli):
    from authsvc.bootstrap import build
    from authsvc.services import logon
    from authsvc.settings import load_settings
    from tests.integration.support import password_step

    cli("contract", "create", "C-1", "--company", "X", "--start", "2026-04-01")
    deps = build(load_settings(environ=cli.env))
    for uid in ("NoSuchUser", "nosuchuser", "other-ghost"):
        assert password_step(deps, uid, "Kx7#vQm2pLz9", terminal="T-3") == logon.FAILED
    deps.engine.dispose()
    found = as_json(cli("audit", "show", "--subject", "NoSuchUser", "--json"))
    assert [(e["action"], e["result"], e["terminal"]) for e in found] \
        == [("logon.password", "failed", "T-3")] * 2
    assert all(e["subject"].startswith("unknown:") for e in found)
    human = cli("audit", "show", "--subject", "nosuchuser").output
    assert human.count("logon.password") == 2 and "nosuchuser" not in human.casefold()
    assert as_json(cli("audit", "show", "--subject", "never-tried", "--json")) == []


def test_audit_show_finds_an_account_in_any_letter_case(cli):
    cli("contract", "create", "C-9", "--company", "X", "--start", "2026-04-01")
    cli("user", "create", "Yamada", "--name", "山田 一郎", "--contract", "C-9", "--role", "user")
    cli("identifier", "approve", "yamada")
    cli("user", "reset-password", "yamada")
    for asked in ("Yamada", "yamada", "YAMADA"):
        events = as_json(cli("audit", "show", "--subject", asked, "--json"))
        assert {e["action"] for e in events} >= {"account.create", "identifier.approve",
                                                 "password.reset"}, asked


def test_vein_enrolment_from_the_command_line(cli):
    cli("contract", "create", "C-1", "--company", "X", "--start", "2026-04-01")
    cli("user", "create", "kato", "--name", "加藤 一", "--contract", "C-1", "--role", "user")
    cli("identifier", "approve", "kato")
    done = as_json(cli("vein", "enroll", "kato", "--palm", "42", "--json"))
    assert done["user_id"] == "kato" and done["replaced"] is False
    again = as_json(cli("vein", "enroll", "kato", "--palm", "42", "--json", code=1))
    assert again["error"] == "vein_already_enrolled"
    assert as_json(cli("vein", "enroll", "kato", "--palm", "42", "--replace", "--json"))["replaced"]
    cli("user", "create", "kato2", "--name", "別人", "--contract", "C-1", "--role", "user")
    dup = as_json(cli("vein", "enroll", "kato2", "--palm", "42", "--json", code=1))
    assert dup["error"] == "vein_duplicate_person"


def test_registration_consent_from_the_command_line(cli):
    cli("contract", "create", "C-1", "--company", "X", "--start", "2026-04-01")
    cli("user", "create", "ito", "--name", "伊藤 一", "--contract", "C-1", "--role", "user")
    assert as_json(cli("registration", "consent", "ito", "--json")) == {"user_id": "ito", "consent": True}
    assert as_json(cli("registration", "consent", "ito", "--withdraw", "--json"))["consent"] is False
    actions = [e["action"] for e in as_json(cli("audit", "show", "--subject", "ito", "--json"))]
    assert actions.count("registration.consent") == 2


# ---- who the command line acts as (R24) ---------------------------------------------------------


def _os_user() -> str:
    import getpass

    return getpass.getuser()


def test_at_the_server_the_command_line_acts_for_the_agency(cli):
    """Without --as the CLI is the break-glass path at the server: an agency operator under an
    identifier of its own (`cli:<os user>`), the host as the terminal; it reaches every
    company and the agency-only functions."""
    import socket

    cli("contract", "create", "C-1", "--company", "防衛産業株式会社", "--start", "2026-04-01")
    cli("contract", "create", "C-2", "--company", "別会社", "--start", "2026-04-01")
    cli("user", "create", "tanaka", "--name", "田中 太郎", "--contract", "C-1", "--role", "user")
    cli("user", "create", "kimura", "--name", "木村 一", "--contract", "C-2", "--role", "user")
    assert [u["user_id"] for u in as_json(cli("user", "list", "--json"))] == ["kimura", "tanaka"]
    assert as_json(cli("identifier", "approve", "kimura", "--json"))["status"] == "active"
    cli("maintenance", "run", "--json")
    [created] = [e for e in as_json(cli("audit", "show", "--subject", "tanaka", "--json"))
                 if e["action"] == "account.create"]
    assert created["actor"] == f"cli:{_os_user()}"
    assert created["terminal"] == socket.gethostname()[:100] and created["source"] == "local"


@pytest.fixture
def two_companies(cli):
    """Two companies' accounts, and each company's administrators (active, made by the agency)."""
    cli("contract", "create", "C-1", "--company", "防衛産業株式会社", "--start", "2026-04-01")
    cli("contract", "create", "C-2", "--company", "別会社", "--start", "2026-04-01")
    for uid, name, contract, role in (
            ("sato", "佐藤 一郎", "C-1", "system_admin"), ("kato", "加藤 六郎", "C-1", "account_admin"),
            ("tanaka", "田中 太郎", "C-1", "user"), ("suzuki", "鈴木 次郎", "C-2", "system_admin"),
            ("kimura", "木村 一", "C-2", "user")):
        cli("user", "create", uid, "--name", name, "--contract", contract, "--role", role)
        cli("identifier", "approve", uid)
    return cli


def test_as_an_administrator_the_command_line_has_their_rights_and_company_only(two_companies):
    cli = two_companies
    sato = ("--as", "sato")
    assert [u["user_id"] for u in as_json(cli(*sato, "user", "list", "--json"))] == [
        "kato", "sato", "tanaka"]
    assert as_json(cli(*sato, "user", "suspend", "tanaka", "--reason", "leave", "--json"))[
        "status"] == "suspended"
    # another company's account answers as an unknown one, is audited, and changes nothing
    theirs = as_json(cli(*sato, "user", "suspend", "kimura", "--json", code=1))
    unknown = as_json(cli(*sato, "user", "suspend", "nobody-x", "--json", code=1))
    assert theirs["error"] == unknown["error"] == "account_not_found"
    assert theirs["message"] == unknown["message"].replace("nobody-x", "kimura")
    assert as_json(cli("user", "show", "kimura", "--json"))["status"] == "active"
    # never on their own account; the agency's functions are not theirs
    assert as_json(cli(*sato, "user", "suspend", "sato", "--json", code=1))["error"] == "own_account"
    assert as_json(cli(*sato, "contract", "create", "C-3", "--company", "新会社", "--start",
                       "2026-04-01", "--json", code=1))["error"] == "forbidden"
    assert as_json(cli(*sato, "maintenance", "run", "--json", code=1))["error"] == "forbidden"
    assert sorted(c["contract"] for c in as_json(cli("contract", "list", "--json"))) == [
        "C-1", "C-2"]  # the agency sees every contract, the company its own
    assert [c["contract"] for c in as_json(cli(*sato, "contract", "list", "--json"))] == ["C-1"]
    # the account administrator assigns IDs on their company's contracts, and does not approve
    kato = ("--as", "kato")
    assert as_json(cli(*kato, "user", "create", "yoshida", "--name", "吉田 一", "--contract", "C-1",
                       "--role", "user", "--json"))["created_by"] == "kato"
    assert as_json(cli(*kato, "user", "create", "yoshida2", "--name", "吉田 二", "--contract",
                       "C-2", "--role", "user", "--json", code=1))["error"] == "contract_not_found"
    assert as_json(cli(*kato, "identifier", "approve", "yoshida", "--json", code=1))[
        "error"] == "forbidden"
    assert as_json(cli(*sato, "identifier", "approve", "yoshida", "--json"))["status"] == "active"
    events = as_json(cli("audit", "show", "--limit", "100", "--json"))
    refused = [(e["actor"], e["action"], e["subject"], json.loads(e["detail"])["reason"])
               for e in events if e["result"] == "refused"
               and not e["action"].startswith("maintenance")]  # (that: the next test)
    assert sorted(refused) == sorted([  # each refusal with its real reason (newest first above)
        ("sato", "account.suspend", "kimura", "other_company"),
        ("sato", "account.suspend", "sato", "own_account"),
        ("sato", "contract.create", "C-3", "forbidden"),
        ("kato", "account.create", "yoshida2", "other_company"),
        ("kato", "identifier.approve", "yoshida", "forbidden")])
    [by_sato] = [e for e in events if e["action"] == "account.suspend" and e["result"] == "ok"]
    assert by_sato["actor"] == "sato" and by_sato["source"] == f"cli:{_os_user()}"


def test_as_needs_an_active_administrator(two_companies):
    cli = two_companies
    for who in ("tanaka", "nobody-x"):  # a user; no such account
        out = as_json(cli("--as", who, "user", "list", "--json", code=1))
        assert out["error"] == "cli_as_not_admin"
    cli("user", "suspend", "suzuki", "--reason", "leave")  # the agency suspends an administrator
    out = as_json(cli("--as", "suzuki", "user", "list", "--json", code=1))
    assert out["error"] == "cli_as_not_admin"
    # an administrator of their company reads the log of their company's accounts only
    assert as_json(cli("--as", "sato", "audit", "show", "--subject", "tanaka", "--json"))
    assert as_json(cli("--as", "sato", "audit", "show", "--subject", "kimura", "--json",
                       code=1))["error"] == "account_not_found"
    assert as_json(cli("--as", "sato", "audit", "show", "--json", code=1))["error"] == \
        "audit_subject_required"


def test_a_refused_agency_function_is_audited_too(two_companies):
    """004 第8 1(2): a company's system administrator refused the agency's maintenance
    functions (run, accept-rollback) leaves a refusal in the log, like every other refused
    administrative function, and nothing else."""
    cli = two_companies
    before = as_json(cli("audit", "verify", "--json"))["checked"]
    assert as_json(cli("--as", "sato", "maintenance", "run", "--json", code=1))["error"] == "forbidden"
    assert as_json(cli("--as", "sato", "audit", "accept-rollback", "--reason", "test", "--json",
                       code=1))["error"] == "forbidden"
    events = as_json(cli("audit", "show", "--limit", "2", "--json"))
    assert as_json(cli("audit", "verify", "--json"))["checked"] == before + 2
    assert [(e["actor"], e["result"], json.loads(e["detail"]).get("reason")) for e in events] == [
        ("sato", "refused", "forbidden")] * 2


def test_service_clients_from_the_command_line(cli):
    cli("contract", "create", "C-9", "--company", "株式会社テスト", "--start", "2026-04-01")
    cli("user", "create", "sato", "--name", "佐藤 一郎", "--contract", "C-9", "--role", "system_admin")
    cli("identifier", "approve", "sato")
    made = as_json(cli("client", "create", "Sync-1", "--company", "株式会社テスト", "--scope",
                       "accounts:read", "--scope", "audit:read", "--json"))
    assert (made["client_id"], made["status"], made["scopes"], made["company"]) == (
        "sync-1", "pending", ["accounts:read", "audit:read"], "株式会社テスト")
    assert len(made["secret"]) >= 43
    # the operator at the shell created it: another person approves it (four eyes, always)
    assert as_json(cli("client", "approve", "sync-1", "--json", code=1))["error"] == "four_eyes"
    approved = as_json(cli("--as", "sato", "client", "approve", "sync-1", "--json"))
    assert (approved["status"], approved["approved_by"]) == ("active", "sato")
    rotated = cli("client", "rotate", "sync-1", "--reason", "定期").output
    assert "shown once" in rotated and made["secret"] not in rotated
    assert [(c["client_id"], c["status"]) for c in as_json(cli("client", "list", "--json"))] == [
        ("sync-1", "active")]
    assert as_json(cli("client", "suspend", "sync-1", "--reason", "調査", "--json"))["status"] == "suspended"
    assert as_json(cli("client", "resume", "sync-1", "--json"))["status"] == "active"
    assert as_json(cli("client", "revoke", "sync-1", "--reason", "廃止", "--json"))["status"] == "revoked"
    assert as_json(cli("client", "create", "bad-1", "--scope", "accounts:read", "--company", "無い会社",
                       "--json", code=1))["error"] == "client_company_unknown"
    assert cli("client", "create", "bad-2", "--scope", "root", code=64).exit_code == 64  # EX_USAGE
    listed = cli("client", "list").output
    assert "sync-1\trevoked\t株式会社テスト\taccounts:read,audit:read" in listed


def test_oidc_clients_from_the_command_line(two_companies, make_deps, tmp_path):
    from joserfc.jwk import ECKey

    from authsvc.domain.roles import Actor, Role
    from authsvc.services import groups

    cli = two_companies
    groups.create(make_deps("sqlite"), Actor("ops", frozenset({Role.AGENCY_OPERATOR})), "設計部",
                  ["totp"], ["wiki"], "防衛産業株式会社")  # the same database the command line uses
    registration = ("--name", "社内Wiki", "--redirect-uri", "https://wiki.example.jp/cb",
                    "--redirect-uri", "http://127.0.0.1:8000/cb")
    made = as_json(cli("--as", "kato", "client", "create-oidc", "Wiki-RP", *registration,
                       "--post-logout-uri", "https://wiki.example.jp/bye", "--refresh",
                       "--group", "設計部", "--json"))
    assert (made["client_id"], made["kind"], made["status"], made["company"], made["groups"]) == (
        "wiki-rp", "oidc", "pending", "防衛産業株式会社", ["設計部"])
    assert made["oidc"]["redirect_uris"] == ["https://wiki.example.jp/cb", "http://127.0.0.1:8000/cb"]
    assert made["oidc"]["refresh"] is True and made["scopes"] == [] and len(made["secret"]) >= 43
    human = cli("--as", "kato", "client", "create-oidc", "cad-rp", *registration).output
    assert "shown once" in human and "oidc.redirect_uris: https://wiki.example.jp/cb" in human
    assert as_json(cli("--as", "sato", "client", "approve", "wiki-rp", "--json"))["status"] == "active"
    # a registration replaced: to private_key_jwt with its public keys from a file
    keys = tmp_path / "wiki.jwks"
    keys.write_text(json.dumps({"keys": [ECKey.generate_key("P-256").as_dict(private=False)]}))
    updated = as_json(cli("--as", "kato", "client", "update-oidc", "wiki-rp", *registration,
                          "--auth-method", "private_key_jwt", "--jwks", str(keys), "--pairwise",
                          "--reason", "鍵に移行", "--json"))
    assert (updated["oidc"]["auth_method"], updated["oidc"]["subject_type"], updated["status"]) == (
        "private_key_jwt", "pairwise", "active")
    assert as_json(cli("client", "rotate", "wiki-rp", "--json", code=1))["error"] == "client_no_secret"
    keyed = cli("client", "create-oidc", "keyed-rp", *registration, "--company", "別会社",
                "--auth-method", "private_key_jwt", "--jwks", str(keys)).output
    assert "shown once" not in keyed and "oidc.jwks: 1" in keyed  # no secret to show
    cli("client", "create", "sync-1", "--company", "防衛産業株式会社", "--scope", "accounts:read")
    assert [c["client_id"] for c in as_json(cli("client", "list", "--kind", "oidc", "--json"))] == [
        "cad-rp", "keyed-rp", "wiki-rp"]
    assert [c["client_id"] for c in as_json(cli("client", "list", "--kind", "service", "--json"))] == [
        "sync-1"]
    listed = cli("--as", "sato", "client", "list").output.splitlines()
    assert [line.split("\t")[0] + ":" + line.split("\t")[-1] for line in listed] == [
        "cad-rp:oidc", "sync-1:service", "wiki-rp:oidc"]  # its company's only, with the kind
    # another company's administrator: the answer of an unknown client
    theirs = cli("--as", "suzuki", "client", "update-oidc", "wiki-rp", *registration, "--json", code=1)
    assert as_json(theirs)["error"] == "client_not_found"
    assert [c["client_id"] for c in as_json(cli("--as", "suzuki", "client", "list", "--kind", "oidc",
                                                "--json"))] == ["keyed-rp"]  # its company's only


@pytest.mark.parametrize("args", [
    ("--redirect-uri", "http://wiki.example.jp/cb"),            # http off the loopback
    ("--redirect-uri", "https://wiki.example.jp/cb#top"),       # a fragment
    ("--redirect-uri", "https://wiki.example.jp/cb", "--post-logout-uri", "https://u@x.example/"),
    ("--redirect-uri", "https://wiki.example.jp/cb", "--backchannel-uri", "javascript:x"),
])
def test_a_bad_registration_is_one_line_with_no_traceback(cli, args):
    cli("contract", "create", "C-1", "--company", "防衛産業株式会社", "--start", "2026-04-01")
    result = cli("client", "create-oidc", "bad-rp", "--name", "x", *args, "--company", "防衛産業株式会社",
                 code=1)
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output and "https" in result.stderr and "URI" in result.stderr
    coded = as_json(cli("client", "create-oidc", "bad-rp", "--name", "x", *args, "--json", code=1))
    assert coded["error"].startswith("oidc_") and coded["error"].endswith("_invalid")
    assert as_json(cli("client", "list", "--json")) == []
    missing = cli("client", "create-oidc", "bad-rp", "--name", "x", "--redirect-uri",
                  "https://wiki.example.jp/cb", "--auth-method", "private_key_jwt", "--jwks",
                  "/nonexistent/keys.json", code=64)
    assert "--jwks" in missing.output and "Traceback" not in missing.output


# ---- directory sync ([9 of 12]) and running as a service client (R6) ----------------------------


def test_a_company_without_a_directory_is_one_line_and_exit_1(cli):
    """No directory.sources_file here: every company answers `directory_not_configured`, on
    one line, with the exit code of every refusal (1), and no traceback."""
    cli("contract", "create", "C-1", "--company", "防衛産業株式会社", "--start", "2026-04-01")
    for args in (("sync", "防衛産業株式会社", "--full", "--dry-run"), ("export", "防衛産業株式会社")):
        result = cli("directory", *args, code=1)
        assert result.stdout == "" and "Traceback" not in result.output
        assert result.stderr.strip() == \
            'Directory sync is not configured for the company "防衛産業株式会社".'
        assert as_json(cli("directory", *args, "--json", code=1))["error"] == "directory_not_configured"
    assert as_json(cli("directory", "runs", "--json")) == []
    assert cli("directory", "runs").output.strip() == "-"
    assert "--dry-run" in cli("directory", "sync", "--help").output


def test_as_client_is_refused_on_one_line_without_the_right_secret(cli):
    cli("contract", "create", "C-9", "--company", "株式会社テスト", "--start", "2026-04-01")
    cli("user", "create", "sato", "--name", "佐藤 一郎", "--contract", "C-9", "--role", "system_admin")
    cli("identifier", "approve", "sato")
    made = as_json(cli("client", "create", "dirsync", "--company", "株式会社テスト", "--scope",
                       "directory:sync", "--json"))
    cli("--as", "sato", "client", "approve", "dirsync")
    runner = CliRunner()

    def as_client(secret: str | None, *args: str) -> Any:
        env = {**cli.env, "AUTHSVC_CLIENT_SECRET": secret}
        return runner.invoke(main, ["--as-client", "dirsync", *args], env=env)

    for secret, message in (
            ("wrong-" + made["secret"], "Could not authenticate as the service client dirsync."),
            (None, "Please put the secret of the service client dirsync in the environment variable "
                   "AUTHSVC_CLIENT_SECRET.")):
        refused = as_client(secret, "directory", "runs")
        assert refused.exit_code == 1 and refused.stdout == "", refused.output
        assert refused.stderr.strip() == message and "Traceback" not in refused.output
    coded = as_client("wrong", "directory", "runs", "--json")
    assert coded.exit_code == 1 and json.loads(coded.stdout)["error"] == "cli_client_refused"
    # the right secret: the client itself, within its scope and company
    assert json.loads(as_client(made["secret"], "directory", "runs", "--json").stdout) == []
    other = as_client(made["secret"], "directory", "sync", "別会社", "--json")
    assert other.exit_code == 1 and json.loads(other.stdout)["error"] == "directory_not_configured"
    attempts = [(e["actor"], e["result"], json.loads(e["detail"]).get("reason"))
                for e in as_json(cli("audit", "show", "--limit", "200", "--json"))
                if e["action"] == "client.authenticate"]
    assert ("svc:dirsync", "failed", "wrong_secret") in attempts and ("svc:dirsync", "ok", None) in attempts
    both = runner.invoke(main, ["--as", "sato", "--as-client", "dirsync", "directory", "runs"], env=cli.env)
    assert both.exit_code == 64 and "exclude each other" in both.output
    assert "AUTHSVC_CLIENT_SECRET" in runner.invoke(main, ["--help"]).output


def test_a_scheduled_sync_as_its_own_client_dry_run_then_stopped(cli, monkeypatch):
    """A scheduler's sync as the service client: a dry run prints exactly what would change; a
    directory that fails prints one line with the reason and exits 1, removing nothing."""
    from tests.e2e.test_admin_api import FakeDirectory, directory_person, directory_source

    company = "株式会社テスト"
    fake = FakeDirectory(directory_source(company, "C-9"), [
        directory_person("yamada", "山田 太郎", 1), directory_person("x\x1b]0;evil\x07", "悪意 一郎", 2)])
    monkeypatch.setattr("authsvc.bootstrap.directories", lambda settings: {company: fake}.get)
    cli("contract", "create", "C-9", "--company", company, "--start", "2026-04-01")
    cli("user", "create", "sato", "--name", "佐藤 一郎", "--contract", "C-9", "--role", "system_admin")
    cli("identifier", "approve", "sato")
    made = as_json(cli("client", "create", "dirsync", "--company", company, "--scope", "directory:sync",
                       "--json"))
    cli("--as", "sato", "client", "approve", "dirsync")
    env = {**cli.env, "AUTHSVC_CLIENT_SECRET": made["secret"]}

    def scheduled(*args: str) -> Any:
        return CliRunner().invoke(main, ["--as-client", "dirsync", "directory", *args], env=env)

    dry = scheduled("sync", company, "--full", "--dry-run")
    assert dry.exit_code == 0, dry.output
    lines = dry.stdout.splitlines()
    assert lines[0] == f"{company}: full sync (dry run: nothing was written)"
    assert "created:" in lines and "  yamada" in lines and "updated: -" in lines
    assert "  uid=x\\x1b]0;evil\\x07,ou=people,dc=example,dc=jp: user_id_invalid" in lines  # escaped
    assert "\x1b" not in dry.stdout
    assert [u["user_id"] for u in as_json(cli("user", "list", "--json"))] == ["sato"]  # nothing written
    report = json.loads(scheduled("sync", company, "--json").stdout)
    assert (report["mode"], report["dry_run"], report["created"]) == ("full", False, ["yamada"])
    [created] = [e for e in as_json(cli("audit", "show", "--subject", "yamada", "--json"))
                 if e["action"] == "account.create"]
    assert created["actor"] == "svc:dirsync"  # the sync's own identifier, in every event
    fake.down = True
    stopped = scheduled("sync", company, "--full")
    assert stopped.exit_code == 1 and stopped.stdout == "" and "Traceback" not in stopped.output
    [line] = stopped.stderr.strip().splitlines()
    assert "directory_unavailable" in line and "LDAPSocketOpenError" in line
    assert "no account was removed" in line
    assert as_json(cli("user", "show", "yamada", "--json"))["status"] == "pending"
    runs = as_json(cli("directory", "runs", "--company", company, "--json"))
    assert [(r["result"], r["dry_run"], r["actor"]) for r in runs] == [
        ("stopped", False, "svc:dirsync"), ("ok", False, "svc:dirsync"), ("ok", True, "svc:dirsync")]
    listed = cli("directory", "runs", "--limit", "1").output
    assert "\tstopped\tsvc:dirsync\t" in listed and "LDAPSocketOpenError" in listed
    assert [a["kind"] for a in as_json(cli("alert", "list", "--json"))] == ["directory_sync_stopped"]
