"""Directory sync ([9 of 12], R20) against a real OpenLDAP slapd (tests/ldap_support.py; no ldap3
mock): full import, incremental sync after adds, modifies, renames and deletes, the guard that
stops a suspicious sync, the server stopped mid-sync, TLS with a wrong certificate, hostile
values, and the export round trip checked with ldapsearch. The sync runs as its own service
client (R6) and every change it makes is audited under its name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.directory import Entry, LdapDirectory, load_sources
from authsvc.domain.roles import Actor, Role
from authsvc.services import accounts, directory_sync, groups, service_clients
from authsvc.services.directory_sync import SyncStopped
from authsvc.services.sessions import Client
from authsvc.store.models import Account, DirectoryEntry
from tests.conftest import COMPANY
from tests.integration.support import add_contract, events
from tests.ldap_support import ESCAPED_UID, HOSTILE_CN, LEGACY_UID, SEED_UIDS, parse_ldif, user_dn

SYSADMIN = Actor("sysadm", frozenset({Role.SYSTEM_ADMIN}), company=COMPANY)
VALID = [u for u in SEED_UIDS if u != ESCAPED_UID]  # a uid with "," "+" "=" is no identifier here


def write_sources(path, server, **over) -> str:
    values = {"company": COMPANY, "urls": [server.url], "bind_dn": server.bind_dn,
              "bind_password_env": "AUTHSVC_TEST_LDAP_PASSWORD", "users_base": server.people,
              "groups_base": server.groups, "contract_attribute": "departmentNumber",
              "page_size": 7, "timeout_seconds": 3, **over}
    lines = ["[[source]]"]
    for k, v in values.items():
        if isinstance(v, list):
            lines.append(f"{k} = [{', '.join(repr(x).replace(chr(39), chr(34)) for x in v)}]")
        elif isinstance(v, bool):
            lines.append(f"{k} = {'true' if v else 'false'}")
        elif isinstance(v, int | float):
            lines.append(f"{k} = {v}")
        else:
            lines.append(f'{k} = "{v}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture
def setup(make_deps, slapd, tmp_path, monkeypatch, operator):
    """Deps whose directory source is the seeded slapd, the company's contracts, and the sync's
    own service client (approved, scope directory:sync) as the actor."""
    monkeypatch.setenv("AUTHSVC_TEST_LDAP_PASSWORD", slapd.password)
    sources = write_sources(tmp_path / "directory.toml", slapd)
    deps = make_deps("sqlite", directory={"sources_file": sources})
    for number in ("C-2026-001", "C-2026-002", "C-2026-003"):
        add_contract(deps, operator, number)
    made = service_clients.create(deps, operator, "dir-sync", ["directory:sync"], COMPANY)
    service_clients.approve(deps, SYSADMIN, "dir-sync")
    actor = service_clients.authenticate(deps, "dir-sync", made.secret, Client("cron", "127.0.0.1"))
    assert actor is not None
    return deps, actor, slapd


def reconfigure(deps, tmp_path, server, **over) -> None:
    """Point the company's source at other settings (a filter, a CA, a URL)."""
    config = load_sources(write_sources(tmp_path / "directory2.toml", server, **over))
    object.__setattr__(deps, "directories", lambda company: (
        LdapDirectory(config.of(company)) if config.of(company) else None))


def statuses(deps) -> dict[str, str]:
    with deps.uow(read_only=True) as uow:
        return {a.user_id: a.status for a in uow.accounts()}


def test_full_import_creates_pending_accounts_without_passwords(setup):
    deps, actor, _ = setup
    report = directory_sync.sync(deps, actor, COMPANY, full=True)
    assert sorted(report.created) == sorted(VALID)
    assert [s.split(": ")[-1] for s in report.skipped] == ["user_id_invalid"]
    found = statuses(deps)
    assert sorted(found) == sorted(VALID) and set(found.values()) == {"pending"}
    with deps.uow(read_only=True) as uow:
        assert all(a.password_hash is None for a in uow.accounts())  # never a directory password
        hostile = uow.account("hostile")
        assert hostile.person.name == "悪意\u202eのある\u200d利用者e\u0301"  # kept as given, trimmed
        assert hostile.contract.number == "C-2026-001"
    created = events(deps, "account.create")
    assert {e.actor for e in created} == {"svc:dir-sync"} and len(created) == len(VALID)
    assert all(e.data["source"] == "directory" for e in created)
    # the groups, and their members' memberships requested (a person approves them)
    names = {g.name: g for g in groups.list_groups(deps, SYSADMIN, COMPANY)}
    assert set(names) == {"engineering", "sales", "all-staff"}
    assert {m["user_id"] for m in names["engineering"].members} >= {"yamada.taro", "hostile"}
    assert all(m["approved_by"] is None for g in names.values() for m in g.members)
    # a second full sync changes nothing
    again = directory_sync.sync(deps, actor, COMPANY, full=True)
    assert (again.created, again.updated, again.suspended, again.memberships) == ([], [], [], [])
    assert again.seen == len(SEED_UIDS)


def test_a_dry_run_reports_exactly_and_writes_nothing(setup):
    deps, actor, _ = setup
    report = directory_sync.sync(deps, actor, COMPANY, full=True, dry_run=True)
    assert sorted(report.created) == sorted(VALID)
    assert set(report.groups) == {"engineering", "sales", "all-staff"}
    assert statuses(deps) == {}
    with deps.uow(read_only=True) as uow:
        assert uow.directory.present(COMPANY, "user") == 0


def test_incremental_sync_after_adds_modifies_renames_and_deletes(setup, operator):
    deps, actor, server = setup
    directory_sync.sync(deps, actor, COMPANY, full=True)
    accounts.approve_identifier(deps, operator, "mori.tetsuya")  # active: a removal suspends it
    server.add_ldif(f"dn: {user_dn('new.comer')}\nobjectClass: inetOrgPerson\nuid: new.comer\n"
                    f"cn: New Comer\nsn: Comer\ndisplayName: 新人 太郎\ndepartmentNumber: C-2026-002\n")
    server.modify(f"dn: {user_dn('sato.hanako')}\nchangetype: modify\nreplace: displayName\n"
                  f"displayName: 佐藤 花子（旧姓 田村）\n")
    server.modify(f"dn: {user_dn('ito.hiroshi')}\nchangetype: modrdn\nnewrdn: uid=ito.hiroshi2\n"
                  f"deleteoldrdn: 0\n")
    server.modify(f"dn: {user_dn('mori.tetsuya')}\nchangetype: delete\n")
    deps.clock.advance(minutes=10)  # the next scheduled run
    report = directory_sync.sync(deps, actor, COMPANY)
    assert report.mode == "incremental"
    assert report.created == ["new.comer"]
    assert sorted(report.updated) == ["ito.hiroshi", "sato.hanako"]  # the rename: the same account
    assert report.suspended == ["mori.tetsuya"]
    found = statuses(deps)
    assert found["mori.tetsuya"] == "suspended" and found["new.comer"] == "pending"
    with deps.uow(read_only=True) as uow:
        assert uow.account("sato.hanako").person.name == "佐藤 花子（旧姓 田村）"
        rows = {r.subject: r for r in uow.session.query(DirectoryEntry)}
        assert rows["ito.hiroshi"].dn.startswith("uid=ito.hiroshi2,")
    [suspended] = [e for e in events(deps, "account.suspend")]
    assert suspended.actor == "svc:dir-sync" and suspended.data["reason"] == "directory_removed"
    # soft removal: deleted only after the grace period
    deps.clock.advance(days=15)
    later = directory_sync.sync(deps, actor, COMPANY)
    assert later.deleted == ["mori.tetsuya"] and statuses(deps)["mori.tetsuya"] == "deleted"


def test_a_filter_that_returns_almost_nothing_is_stopped_by_the_guard(setup, tmp_path, operator):
    deps, actor, server = setup
    directory_sync.sync(deps, actor, COMPANY, full=True)
    for uid in VALID:
        accounts.approve_identifier(deps, operator, uid)
    reconfigure(deps, tmp_path, server, users_filter="(uid=yamada.taro)")
    with pytest.raises(SyncStopped) as exc:
        directory_sync.sync(deps, actor, COMPANY, full=True)
    assert exc.value.params["reason"] == "too_few_entries"
    assert set(statuses(deps).values()) == {"active"}  # nothing suspended
    with deps.uow(read_only=True) as uow:
        kinds = [a.kind for a in uow.alerts.inbox(COMPANY, False, True, 10)]
    assert "directory_sync_stopped" in kinds
    [stopped] = [e for e in events(deps, "directory.sync") if e.result == "failed"]
    assert stopped.data["stopped"] == "too_few_entries"


class _StopsMidway(LdapDirectory):
    """The real adapter; the test stops the real server once some entries have been read."""

    server = None  # stopped once, by the first search that reads 10 entries

    def search(self, base: str, flt: str, attributes: list[str]) -> Iterator[Entry]:
        for n, entry in enumerate(super().search(base, flt, attributes)):
            if n == 9 and _StopsMidway.server is not None:
                _StopsMidway.server.stop()
                _StopsMidway.server = None
            yield entry


def test_the_server_stopped_mid_sync_disables_nothing(setup, operator):
    deps, actor, server = setup
    directory_sync.sync(deps, actor, COMPANY, full=True)
    for uid in VALID:
        accounts.approve_identifier(deps, operator, uid)
    source = deps.directories(COMPANY).source
    _StopsMidway.server = server
    object.__setattr__(deps, "directories", lambda company: _StopsMidway(source))
    with pytest.raises(SyncStopped) as exc:
        directory_sync.sync(deps, actor, COMPANY, full=True)
    assert exc.value.params["reason"] == "directory_unavailable"
    assert "127.0.0.1" in exc.value.params["detail"]  # the operator is told which server
    assert set(statuses(deps).values()) == {"active"}
    server.start()
    assert directory_sync.sync(deps, actor, COMPANY, full=True).suspended == []


def test_tls_with_the_wrong_certificate_is_refused(make_deps, slapd_tls, tmp_path, monkeypatch, operator):
    monkeypatch.setenv("AUTHSVC_TEST_LDAP_PASSWORD", slapd_tls.password)
    wrong = write_sources(tmp_path / "wrong.toml", slapd_tls, urls=[slapd_tls.ldaps_url],
                          ca_file=str(slapd_tls.wrong_ca_file()))
    deps = make_deps("sqlite", directory={"sources_file": wrong})
    for number in ("C-2026-001", "C-2026-002", "C-2026-003"):
        add_contract(deps, operator, number)
    with pytest.raises(SyncStopped) as exc:
        directory_sync.sync(deps, operator, COMPANY, full=True)
    assert "certificate" in exc.value.params["detail"].lower() or "ssl" in exc.value.params["detail"].lower()
    assert statuses(deps) == {}
    for urls, tls in (([slapd_tls.ldaps_url], False), ([slapd_tls.url], True)):  # LDAPS, StartTLS
        reconfigure(deps, tmp_path, slapd_tls, urls=urls, start_tls=tls, ca_file=str(slapd_tls.ca_file))
        assert directory_sync.sync(deps, operator, COMPANY, full=True, dry_run=True).created


def test_invalid_utf8_and_hostile_values_are_reported_not_guessed(setup, tmp_path):
    deps, actor, server = setup
    reconfigure(deps, tmp_path, server, name_attribute="dsgLegacyName", name_fallback_attribute="cn")
    report = directory_sync.sync(deps, actor, COMPANY, full=True)
    assert [s for s in report.skipped if s.endswith("invalid_utf8:dsglegacyname")] == [
        f"{user_dn(LEGACY_UID)}: invalid_utf8:dsglegacyname"]
    with deps.uow(read_only=True) as uow:
        assert uow.account("hostile").person.name == " ".join(HOSTILE_CN.split())  # metacharacters as data
        assert uow.account(LEGACY_UID) is None


def test_a_failover_pool_uses_the_next_server(setup, tmp_path):
    deps, actor, server = setup
    reconfigure(deps, tmp_path, server, urls=["ldap://127.0.0.1:1", server.url])
    assert len(directory_sync.sync(deps, actor, COMPANY, full=True).created) == len(VALID)


def test_export_round_trip_is_idempotent_and_never_a_password(setup, tmp_path, operator):
    deps, actor, server = setup
    for ou in ("dsg-export", "dsg-groups"):
        server.add_ldif(f"dn: ou={ou},{server.base}\nobjectClass: organizationalUnit\nou: {ou}\n")
    reconfigure(deps, tmp_path, server, export_base=f"ou=dsg-export,{server.base}",
                export_groups_base=f"ou=dsg-groups,{server.base}")
    directory_sync.sync(deps, actor, COMPANY, full=True)
    accounts.approve_identifier(deps, operator, "yamada.taro")
    groups.approve_member(deps, SYSADMIN, "engineering", "yamada.taro", COMPANY)
    dry = directory_sync.export(deps, actor, COMPANY, dry_run=True)
    assert len(dry.added) == len(VALID) + 3 and not parse_ldif(server.search(f"ou=dsg-export,{server.base}",
                                                                              "(uid=*)"))
    first = directory_sync.export(deps, actor, COMPANY)
    assert sorted(first.added) == sorted([*VALID, "group:all-staff", "group:engineering", "group:sales"])
    [engineering] = parse_ldif(server.search(f"ou=dsg-groups,{server.base}", "(cn=engineering)")).values()
    assert engineering["member"] == [f"uid=yamada.taro,ou=dsg-export,{server.base}".encode()]
    exported = parse_ldif(server.search(f"ou=dsg-export,{server.base}", "(uid=*)"))
    assert len(exported) == len(VALID)
    by_uid = {v["uid"][0].decode(): v for v in exported.values()}
    assert by_uid["yamada.taro"]["employeeType"] == [b"active"]
    assert by_uid["sato.hanako"]["employeeType"] == [b"disabled"]  # pending: not usable downstream
    assert not any("userPassword" in v for v in exported.values())
    assert directory_sync.export(deps, actor, COMPANY).to_dict() == {
        "company": COMPANY, "dry_run": False, "added": [], "changed": [], "disabled": [], "error": ""}
    accounts.suspend(deps, operator, "yamada.taro", "休職")
    assert directory_sync.export(deps, actor, COMPANY).changed == ["yamada.taro"]
    again = parse_ldif(server.search(f"ou=dsg-export,{server.base}", "(uid=yamada.taro)"))
    assert [v["employeeType"] for v in again.values()] == [[b"disabled"]]
    with deps.uow(read_only=True) as uow:
        assert all(isinstance(a, Account) for a in uow.accounts())


def test_a_very_long_value_is_refused_for_that_entry_only(setup, tmp_path):
    deps, actor, server = setup
    reconfigure(deps, tmp_path, server, name_attribute="description")  # 20,000 characters for one
    report = directory_sync.sync(deps, actor, COMPANY, full=True)
    too_long = [s for s in report.skipped if s.endswith("name_invalid")]
    assert too_long == [f"{user_dn('hostile')}: name_invalid"]
    assert len(report.created) == len(VALID) - 1  # the others fall back to their cn
