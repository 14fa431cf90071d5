"""Retention without a break in the chain (R22, [10 of 12]): old events move to a signed archive
file and out of the database; `audit verify` still proves continuity across the pruned
boundary, and each archive verifies on its own. Every attack on either side of the boundary is
found: an archive record dropped, edited or invented, rows deleted and called archived, the
first row after the boundary replaced, an archive file edited, truncated, reordered or swapped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from authsvc.domain.roles import Actor, Role
from authsvc.services import audit
from tests.integration.support import audit_count, sql
from tests.security.test_audit_tamper import busy_day

pytestmark = pytest.mark.backends("sqlite", "postgres")
AGENCY_OPS = Actor("ops-arch", frozenset({Role.AGENCY_OPERATOR}), terminal="console", source="127.0.0.1")


@pytest.fixture
def archived(deps, operator, account_admin):
    """A busy day, archived up to the day after (all but the newest event), then a few more."""
    busy_day(deps, operator, account_admin)
    before = audit_count(deps)
    audit.checkpoint(deps, AGENCY_OPS, adopt=True)
    deps.clock.advance(days=2)
    done = audit.archive(deps, AGENCY_OPS, deps.clock.now())
    assert done["archived"] >= before - 1
    busy_day_after(deps, account_admin)
    assert audit.verify(deps).ok
    return deps, done


def busy_day_after(deps, account_admin):
    from authsvc.services import accounts

    accounts.update_account(deps, account_admin, "bob", name="山田 三郎")
    accounts.suspend(deps, account_admin, "alice", reason="再調査")


def archive_file(deps, done) -> Path:
    return deps.settings.audit_archive_path / done["file"]


def test_verification_carries_on_across_the_archive_and_the_file_verifies_alone(archived):
    deps, done = archived
    result = audit.verify(deps)
    assert result.ok and result.checked == result.head_seq  # the archived rows are counted as held
    with deps.uow(read_only=True) as uow:
        first = next(uow.audit_rows())
    assert first["seq"] == done["last"] + 1  # they are gone from the database
    assert audit.verify_archive(deps, archive_file(deps, done)) is None
    lines = archive_file(deps, done).read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["seq"] for x in lines] == list(range(done["first"], done["last"] + 1))
    assert all("+09:00" in json.loads(x)["ts"] for x in lines)


def test_a_second_archive_continues_the_first(archived):
    deps, done = archived
    deps.clock.advance(days=1)
    second = audit.archive(deps, AGENCY_OPS, deps.clock.now())
    assert second["first"] == done["last"] + 1
    assert audit.verify(deps).ok
    assert audit.verify_archive(deps, archive_file(deps, second)) is None


@pytest.mark.parametrize("attack", [
    "DELETE FROM audit_archives",                                        # a record dropped
    "UPDATE audit_archives SET last_seq = last_seq - 1",                # a record edited
    "UPDATE audit_archives SET last_hash = '" + "0" * 64 + "'",         # its hash replaced
    "UPDATE audit_archives SET first_seq = 2, first_prev_hash = '" + "1" * 64 + "'",
])
def test_the_archive_records_cannot_be_changed(archived, attack):
    deps, _ = archived
    sql(deps, attack)
    assert not audit.verify(deps).ok


def test_rows_deleted_after_the_boundary_are_found(archived):
    deps, done = archived
    sql(deps, "DELETE FROM audit_events WHERE seq = :s", s=done["last"] + 1)
    result = audit.verify(deps)
    assert not result.ok and result.problem.seq == done["last"] + 1


def test_rows_deleted_and_called_archived_need_the_key(archived):
    deps, done = archived
    sql(deps, "DELETE FROM audit_events WHERE seq <= :s", s=done["last"] + 2)
    sql(deps, "INSERT INTO audit_archives (first_seq, last_seq, first_prev_hash, last_hash, sha256, "
              "file_name, created_at, mac) SELECT :f, :l, last_hash, last_hash, sha256, file_name, "
              "created_at, mac FROM audit_archives WHERE first_seq = 1",
        f=done["last"] + 1, l=done["last"] + 2)
    result = audit.verify(deps)
    assert not result.ok and result.problem.reason == "forged"


@pytest.mark.parametrize("damage", ["edit", "drop_line", "swap_lines", "truncate", "other_file"])
def test_an_archive_file_verifies_on_its_own(archived, damage):
    deps, done = archived
    path = archive_file(deps, done)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if damage == "edit":
        row = json.loads(lines[2])
        row["subject"] = "someone-else"
        lines[2] = json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"
    elif damage == "drop_line":
        del lines[3]
    elif damage == "swap_lines":
        lines[1], lines[2] = lines[2], lines[1]
    elif damage == "truncate":
        lines = lines[:-1]
    path.write_text("".join(lines), encoding="utf-8")
    if damage == "other_file":  # a whole other archive, re-hashed and re-signed without the key
        sig = json.loads(Path(f"{path}.sig").read_text())
        sig["sha256"] = __import__("hashlib").sha256(path.read_bytes()).hexdigest()
        sig["last_seq"] -= 1
        Path(f"{path}.sig").write_text(json.dumps(sig))
    assert audit.verify_archive(deps, path) is not None
    assert audit.verify(deps).ok  # the database side is untouched: its record still holds


def test_from_the_command_line(make_deps, tmp_path):
    from authsvc.cli import main

    env = {"AUTHSVC__PATHS__INSTANCE_DIR": str(tmp_path / "instance"), "AUTHSVC__DATABASE__URL": "",
           "AUTHSVC__ARGON2__TIME_COST": "1", "AUTHSVC__ARGON2__MEMORY_COST_KIB": "1024",
           "AUTHSVC__ARGON2__PARALLELISM": "1", "AUTHSVC_LANG": "en"}
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    run("contract", "create", "C-1", "--company", "株式会社テスト", "--start", "2026-01-01")
    run("audit", "checkpoint", "--adopt")
    run("contract", "create", "C-2", "--company", "株式会社テスト", "--start", "2026-01-01")
    done = json.loads(run("audit", "archive", "--before", "2999-01-01", "--json"))
    assert done["archived"] >= 1
    folder = tmp_path / "instance-audit-archive"
    assert "ok" in run("audit", "verify-archive", str(folder / done["file"]))
    assert json.loads(run("audit", "verify", "--json"))["ok"] is True
    (folder / done["file"]).write_text("{}\n")
    assert "FAILED" in run("audit", "verify-archive", str(folder / done["file"]), code=1)


def test_the_scheduled_maintenance_verifies_and_alerts(deps, operator, account_admin):
    from authsvc.services import maintenance

    busy_day(deps, operator, account_admin)
    audit.checkpoint(deps, AGENCY_OPS, adopt=True)
    assert maintenance.run(deps, AGENCY_OPS).audit_verified == "ok"
    sql(deps, "UPDATE audit_events SET subject = 'someone-else' WHERE seq = 3")
    report = maintenance.run(deps, AGENCY_OPS)
    assert report.audit_verified == "first bad row: seq 3 (modified)"
    with deps.uow(read_only=True) as uow:
        assert "audit_verification_failed" in [a.kind for a in uow.alerts.inbox(None, True, True, 20)]
