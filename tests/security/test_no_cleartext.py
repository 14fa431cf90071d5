"""No password in clear text anywhere (R2, R3): not in any column of any table, not in the log
output (at DEBUG, SQL statements and their parameters included), not in the SQLite files. That
holds too for a password typed into the user-ID field by mistake: an unknown identifier is kept
only as a keyed pseudonym (throttle key, audit subject and actor)."""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import pytest

from authsvc.domain import logon_flow as lf
from authsvc.domain.errors import PasswordRejected
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, accounts, logon
from authsvc.services.passwords import change_password, check_candidate
from authsvc.store.models import LogonThrottle
from tests.integration.support import CHOSEN, active_account, add_contract, dump_all, password_step, pseudonym

pytestmark = pytest.mark.backends("sqlite", "postgres")  # the production shape is the point here


def forms(secret: str) -> set[str]:
    nfkc = unicodedata.normalize("NFKC", secret)
    return {secret, secret.lower(), secret.casefold(), nfkc, nfkc.lower(), nfkc.casefold()}


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def leaks(haystack: str, secrets: list[str]) -> list[str]:
    return sorted({f for s in secrets for f in forms(s) if f in haystack})


def log_text(records: list[logging.LogRecord]) -> str:
    return "\n".join(f"{r.getMessage()} {r.args!r}" for r in records)


def sql_free(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    """The log records the application writes itself (not SQLAlchemy's statement log)."""
    return [r for r in records if not r.name.startswith("sqlalchemy")]


def raw_sqlite(deps: Deps) -> bytes:
    """The SQLite files byte for byte: free pages and the write-ahead log included."""
    instance = Path(deps.settings.instance_path)
    return b"".join(p.read_bytes() for p in instance.glob("authsvc.db*"))


def type_passwords_into_the_id_field(deps: Deps, current: str) -> list[str]:
    """Logon attempts with a password in the user-ID field: a mistyped one, the user's correct
    current one (also typed into the password field), full-width, and glued to the user ID."""
    typed = ["Mq3$idFieldPw8", current, fullwidth("Vb5!idWidthQ2"), "alice\t" + "Ry6%glued#Id4"]
    for as_id in typed:
        assert password_step(deps, as_id, current) == logon.FAILED
    return [*typed, "Ry6%glued#Id4"]


def test_no_password_is_stored_or_logged_in_clear(make_deps, backend, caplog, operator,
                                                  account_admin):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # SQL with its parameters
    deps = make_deps(backend)
    secrets: list[str] = []

    add_contract(deps, operator)
    add_contract(deps, operator, "C-2", company="第二 工業")
    alice = active_account(deps, account_admin, operator, "alice").initial_password
    # bob is of the second company: its own account administrator creates him (R24)
    second_admin = Actor("acctadm2", frozenset({Role.ACCOUNT_ADMIN}), terminal="console-3",
                         company="第二 工業")
    bob = active_account(deps, second_admin, operator, "bob", name="山田 一郎",
                         contract="C-2").initial_password
    carol = accounts.create_account(deps, account_admin, "carol", "佐藤 三郎", "C-2026-001",
                                    "user").initial_password  # pending: never used
    secrets += [alice, bob, carol]

    # initial passwords, then forced changes (one typed full-width)
    assert password_step(deps, "alice", alice).step is lf.Step.CHANGE_PASSWORD
    assert password_step(deps, "bob", bob).step is lf.Step.CHANGE_PASSWORD
    change_password(deps, Actor("alice"), "alice", CHOSEN[0])
    change_password(deps, Actor("bob"), "bob", fullwidth(CHOSEN[1]))
    secrets += [CHOSEN[0], CHOSEN[1], fullwidth(CHOSEN[1])]
    assert password_step(deps, "alice", CHOSEN[0]).step is lf.Step.REGISTER
    assert password_step(deps, "bob", CHOSEN[1]).step is lf.Step.REGISTER

    # rejected candidates are not kept either
    for rejected in ("Kq7#alice-x9Z", CHOSEN[0], "short1!A"):
        with pytest.raises(PasswordRejected):
            change_password(deps, Actor("alice"), "alice", rejected)
        secrets.append(rejected)
    assert check_candidate(deps, "Zz8*Pw5!Hq2%", "alice") == []
    secrets.append("Zz8*Pw5!Hq2%")

    # failures: wrong passwords, near misses, unknown users, a pending account
    wrong = ["Wr0ng#Passw0rd", CHOSEN[0] + "x", CHOSEN[0].lower(), "Gh7$unknownPw"]
    secrets += wrong
    for attempt in wrong:
        password_step(deps, "alice", attempt)
    password_step(deps, "no-such-user", wrong[3])
    password_step(deps, "carol", carol)

    # an operator reset: the new initial password, then the change
    accounts.unlock(deps, account_admin, "alice")
    reset = accounts.reset_password(deps, account_admin, "alice").initial_password
    secrets.append(reset)
    assert password_step(deps, "alice", reset).step is lf.Step.CHANGE_PASSWORD
    change_password(deps, Actor("alice"), "alice", CHOSEN[2])
    secrets.append(CHOSEN[2])
    assert password_step(deps, "alice", CHOSEN[2]).step is lf.Step.REGISTER

    # passwords typed into the user-ID field (the current one included); their pseudonyms
    # are all that is kept (the SQL-log side: test_..._not_in_the_sql_log below)
    mark = len(caplog.records)
    typed_as_id = type_passwords_into_the_id_field(deps, CHOSEN[2])

    database = dump_all(deps)
    logs = log_text(caplog.records)
    # the scan itself works: it sees what is meant to be there
    assert "alice" in database and "$argon2id$" in database and "password.reset" in database
    assert "alice" in logs and "INSERT INTO audit_events" in logs, "SQL was not logged"
    assert leaks(database + logs, ["alice", "山田 一郎"])

    assert pseudonym(deps, typed_as_id[0]) in database  # the attempts were recorded

    assert leaks(database, secrets + typed_as_id) == []
    assert leaks(log_text(caplog.records[:mark]), secrets) == []
    assert leaks(log_text(sql_free(caplog.records)), secrets + typed_as_id) == []
    assert leaks(log_text(caplog.records[mark:]), [s for s in secrets if s not in typed_as_id]) == []
    if backend == "sqlite":  # also free pages and the write-ahead log, byte for byte
        raw = raw_sqlite(deps)
        assert b"alice" in raw
        found = [f for s in secrets + typed_as_id for f in forms(s) if f.encode() in raw]
        assert found == []


def test_a_password_typed_into_the_id_field_is_recorded_only_as_a_pseudonym(
    make_deps, backend, operator, account_admin
):
    deps = make_deps(backend, lockout={"max_failures": 2})
    add_contract(deps, operator)
    current = active_account(deps, account_admin, operator, "alice").initial_password
    typed = "Mq3$idFieldPw8"
    for _ in range(3):  # up to the lock: the lock event names the subject too
        assert password_step(deps, typed, current) == logon.FAILED
    assert password_step(deps, current, current) == logon.FAILED
    database = dump_all(deps)
    for secret in (typed, current):
        assert pseudonym(deps, secret) in database
        assert leaks(database, [secret]) == []
    with deps.uow() as uow:
        row = uow.session.get(LogonThrottle, pseudonym(deps, typed))
        assert row is not None and row.locked_until is not None
        subjects = {e.subject for e in uow.audit_events(limit=1000)
                    if e.action in ("logon.password", "account.lock")}
        actors = {e.actor for e in uow.audit_events(limit=1000) if e.action == "logon.password"}
    assert subjects == actors == {pseudonym(deps, typed), pseudonym(deps, current)}
    if backend == "sqlite":
        assert [f for s in (typed, current) for f in forms(s) if f.encode() in raw_sqlite(deps)] == []


def test_a_password_typed_into_the_id_field_is_not_in_the_sql_log(
    sqlite_deps, caplog, operator, account_admin
):

    deps = sqlite_deps
    add_contract(deps, operator)
    current = active_account(deps, account_admin, operator, "alice").initial_password
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # SQL with its parameters
    typed = type_passwords_into_the_id_field(deps, current)
    logs = log_text(caplog.records)
    assert "INSERT INTO audit_events" in logs, "SQL was not logged"
    assert leaks(logs, typed) == []


def test_no_service_client_secret_is_stored_or_logged_in_clear(make_deps, backend, caplog, operator,
                                                               account_admin):
    """R6: a service client's secret, shown once at creation and at each rotation, is kept only
    as its argon2 hash: not in any column, not in the log (SQL and its parameters included),
    not in the SQLite files, whether it is presented right, wrong, or pasted into the ID."""
    import base64

    from authsvc.services import service_clients
    from authsvc.services.sessions import Client
    from authsvc.web import create_app

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    deps = make_deps(backend)
    add_contract(deps, operator)
    admin = Actor("sato", frozenset({Role.SYSTEM_ADMIN}), company=account_admin.company)
    first = service_clients.create(deps, account_admin, "sync-a", ["accounts:read"]).secret
    service_clients.approve(deps, admin, "sync-a")
    here = Client("job", "127.0.0.1", False)
    assert service_clients.authenticate(deps, "sync-a", first, here) is not None
    second = service_clients.rotate(deps, account_admin, "sync-a").secret
    assert service_clients.authenticate(deps, "sync-a", first, here) is None  # the old one
    assert service_clients.authenticate(deps, first, first, here) is None  # pasted into the ID
    client = create_app(deps=deps).test_client()
    basic = base64.b64encode(f"sync-a:{second}".encode()).decode()
    answer = client.get("/api/v1/admin/accounts", headers={"Authorization": f"Basic {basic}"})
    assert answer.status_code == 200
    secrets = [first, second]
    database, logs = dump_all(deps), log_text(caplog.records)
    assert "sync-a" in database and "$argon2id$" in database and "client.rotate" in database
    assert "INSERT INTO audit_events" in logs, "SQL was not logged"
    assert [s for s in secrets if s in database or s in logs] == []
    assert [s for s in secrets if s.encode() in (raw_sqlite(deps) if backend == "sqlite" else b"")] == []
