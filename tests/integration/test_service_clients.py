"""Service clients (R6): processes with identifiers of their own, created by one administrator
and approved by another, authenticating as themselves with a secret kept only as its hash,
acting within their scopes for their company, every use audited and wrong secrets locked out
like passwords."""

from __future__ import annotations

import pytest

from authsvc.domain.errors import DomainError, Forbidden, NotFound
from authsvc.domain.roles import Actor, Perm, Role
from authsvc.services import accounts, alerts, audit
from authsvc.services import service_clients as svc
from authsvc.services.sessions import Client
from tests.conftest import AGENCY, COMPANY
from tests.integration.support import active_account, add_contract, dump_all, events

OTHER = "別会社株式会社"
ACCT = Actor("acctadm", frozenset({Role.ACCOUNT_ADMIN}), terminal="console-2", company=COMPANY)
ADMIN = Actor("sato", frozenset({Role.SYSTEM_ADMIN}), terminal="console-3", company=COMPANY)
OTHER_ADMIN = Actor("adm-x", frozenset({Role.SYSTEM_ADMIN}), company=OTHER)
HERE = Client("sync-job/1.0", "10.0.0.5", False)


@pytest.fixture
def companies(deps, operator, account_admin):
    add_contract(deps, operator)
    add_contract(deps, operator, "C-2026-900", OTHER)
    active_account(deps, account_admin, operator, "yamada")
    return deps


def made(deps, client_id="sync-a", scopes=("accounts:read",), creator=ACCT, approver=ADMIN,
         company=None) -> str:
    """An approved client; its secret."""
    secret = svc.create(deps, creator, client_id, list(scopes), company).secret
    svc.approve(deps, approver, client_id)
    return secret


def test_a_client_is_created_pending_and_its_secret_shown_once(companies):
    deps = companies
    issued = svc.create(deps, ACCT, "Sync-A", ["accounts:read", "accounts:read"])
    assert len(issued.secret) >= 43 and ":" not in issued.secret
    v = issued.client
    assert (v.client_id, v.company, v.scopes, v.status, v.created_by, v.approved_by) == (
        "sync-a", COMPANY, ["accounts:read"], "pending", "acctadm", None)
    assert svc.authenticate(deps, "sync-a", issued.secret, HERE) is None  # pending: not yet
    [created] = events(deps, "client.create")
    assert (created.actor, created.subject, created.data) == (
        "acctadm", "sync-a", {"scopes": ["accounts:read"], "company": COMPANY})
    approved = svc.approve(deps, ADMIN, "sync-a")
    assert (approved.status, approved.approved_by) == ("active", "sato")
    actor = svc.authenticate(deps, "SYNC-A", issued.secret, HERE)
    assert actor == Actor("svc:sync-a", frozenset({Role.SYSTEM_ADMIN}), "sync-job/1.0", "10.0.0.5",
                          COMPANY, frozenset({Perm.READ_ACCOUNTS}))
    assert [v.last_used_at for v in svc.list_clients(deps, ACCT)] == [approved.approved_at]
    assert issued.secret not in dump_all(deps)
    ok = events(deps, "client.authenticate")[-1]
    assert (ok.actor, ok.subject, ok.result, ok.terminal, ok.source) == (
        "svc:sync-a", "sync-a", "ok", "sync-job/1.0", "10.0.0.5")


def test_the_creator_never_approves_and_only_system_administrators_do(companies, operator):
    deps = companies
    svc.create(deps, ADMIN, "sync-a", ["accounts:read"])
    with pytest.raises(Forbidden) as exc:
        svc.approve(deps, ADMIN, "sync-a")  # four eyes, whatever identifiers.four_eyes says
    assert exc.value.code == "four_eyes"
    with pytest.raises(Forbidden):
        svc.approve(deps, ACCT, "sync-a")  # an account administrator approves nothing
    refused = [e for e in events(deps, "client.approve") if e.result == "refused"]
    assert [(e.actor, e.data["reason"]) for e in refused] == [("sato", "four_eyes"),
                                                              ("acctadm", "forbidden")]
    assert svc.approve(deps, operator, "sync-a").status == "active"  # the agency may
    with pytest.raises(DomainError) as exc:
        svc.approve(deps, operator, "sync-a")
    assert exc.value.code == "client_bad_transition"


def test_another_companys_client_answers_like_an_unknown_one(companies):
    deps = companies
    secret = made(deps)
    before = dump_all(deps)
    for call in (lambda: svc.approve(deps, OTHER_ADMIN, "sync-a"),
                 lambda: svc.rotate(deps, OTHER_ADMIN, "sync-a"),
                 lambda: svc.suspend(deps, OTHER_ADMIN, "sync-a", "x"),
                 lambda: svc.revoke(deps, OTHER_ADMIN, "sync-a", "x")):
        with pytest.raises(NotFound) as exc:
            call()
        assert exc.value.code == "client_not_found"
    with pytest.raises(NotFound) as unknown:
        svc.suspend(deps, OTHER_ADMIN, "nobody-x", "x")
    assert unknown.value.message("en") == exc.value.message("en").replace("sync-a", "nobody-x")
    assert [(e.action, e.data["reason"]) for e in events(deps) if e.result == "refused"] == [
        ("client.approve", "other_company"), ("client.rotate", "other_company"),
        ("client.suspend", "other_company"), ("client.revoke", "other_company")]
    assert svc.list_clients(deps, OTHER_ADMIN) == []
    with pytest.raises(NotFound):  # nor make one for another company
        svc.create(deps, OTHER_ADMIN, "sync-x", ["accounts:read"], company=COMPANY)
    assert [line for line in dump_all(deps).splitlines() if line.startswith("service_clients.")] == [
        line for line in before.splitlines() if line.startswith("service_clients.")]
    assert svc.authenticate(deps, "sync-a", secret, HERE) is not None


def test_the_agency_makes_agency_wide_clients_and_a_company_only_its_own(companies, operator):
    deps = companies
    assert svc.create(deps, ADMIN, "sync-a", ["accounts:read"]).client.company == COMPANY
    assert svc.create(deps, operator, "agency-1", ["accounts:read"]).client.company == ""
    assert svc.create(deps, operator, "other-1", ["accounts:read"], OTHER).client.company == OTHER
    with pytest.raises(NotFound) as exc:
        svc.create(deps, operator, "nowhere-1", ["accounts:read"], "存在しない会社")
    assert exc.value.code == "client_company_unknown"
    assert [v.client_id for v in svc.list_clients(deps, ADMIN)] == ["sync-a"]
    assert [v.client_id for v in svc.list_clients(deps, operator)] == ["agency-1", "other-1", "sync-a"]
    svc.approve(deps, AGENCY, "agency-1")
    actor = svc.authenticate(deps, "agency-1", svc.rotate(deps, operator, "agency-1").secret, HERE)
    assert actor.everywhere and actor.company == "" and actor.can(Perm.READ_ACCOUNTS)
    assert {a.company for a in accounts.list_accounts(deps, actor)} == {COMPANY}
    assert not actor.can(Perm.MANAGE_ACCOUNTS) and not actor.can(Perm.RUN_MAINTENANCE)


def test_a_creator_gives_only_scopes_within_their_own_rights(companies):
    deps = companies
    for scopes in (["audit:read"], ["devices:write"], ["accounts:read", "audit:read"]):
        with pytest.raises(Forbidden) as exc:
            svc.create(deps, ACCT, "sync-a", scopes)  # an account administrator reads no log
        assert exc.value.code == "client_scope_not_grantable"
    for scopes, code in (([], "client_scopes_required"), (["root"], "client_scope_unknown")):
        with pytest.raises(DomainError) as exc:
            svc.create(deps, ADMIN, "sync-a", scopes)
        assert exc.value.code == code
    assert svc.create(deps, ADMIN, "sync-a", ["audit:read", "devices:write"]).client.scopes == [
        "audit:read", "devices:write"]


def test_a_client_acts_within_its_scopes_only(companies):
    deps = companies
    reader = svc.authenticate(deps, "sync-a", made(deps), HERE)
    assert [v.user_id for v in accounts.list_accounts(deps, reader)] == ["yamada"]
    assert accounts.show(deps, reader, "yamada").status == "active"
    for write in (lambda: accounts.suspend(deps, reader, "yamada", "x"),
                  lambda: accounts.create_account(deps, reader, "new-1", "新 人", "C-2026-001", "user"),
                  lambda: audit.events(deps, reader, "yamada"),
                  lambda: svc.create(deps, reader, "sync-z", ["accounts:read"]),
                  lambda: svc.list_clients(deps, reader)):
        with pytest.raises(Forbidden):
            write()
    refused = [e for e in events(deps) if e.result == "refused"]
    assert {e.actor for e in refused} == {"svc:sync-a"} and len(refused) == 5
    assert {a["kind"] for a in alerts.inbox(deps, ADMIN)} == {"privilege_refused"}
    # accounts:write manages accounts, but gives no one a role above `user`, and approves nothing
    writer = svc.authenticate(deps, "sync-w", made(deps, "sync-w", ["accounts:write"]), HERE)
    assert accounts.create_account(deps, writer, "new-1", "新 人", "C-2026-001", "user").account.status \
        == "pending"
    for role in ("staff", "system_admin", "account_admin", "data_manager", "agency_operator"):
        with pytest.raises(Forbidden) as exc:
            accounts.update_account(deps, writer, "yamada", role=role)
        assert exc.value.code == "role_not_assignable"
    with pytest.raises(Forbidden):
        accounts.approve_identifier(deps, writer, "new-1")
    assert accounts.suspend(deps, writer, "yamada", "同期").status == "suspended"


def test_suspended_revoked_and_rotated_secrets_are_refused(companies):
    deps = companies
    secret = made(deps)
    svc.suspend(deps, ACCT, "sync-a", "調査")
    assert svc.authenticate(deps, "sync-a", secret, HERE) is None
    svc.resume(deps, ACCT, "sync-a", "調査済み")
    assert svc.authenticate(deps, "sync-a", secret, HERE) is not None
    rotated = svc.rotate(deps, ACCT, "sync-a", "定期")
    assert rotated.secret != secret and rotated.client.rotated_at is not None
    assert svc.authenticate(deps, "sync-a", secret, HERE) is None  # the old one: dead at once
    assert svc.authenticate(deps, "sync-a", rotated.secret, HERE) is not None
    svc.revoke(deps, ACCT, "sync-a", "廃止")
    assert svc.authenticate(deps, "sync-a", rotated.secret, HERE) is None
    with pytest.raises(NotFound):  # revoked: the identifier is released, the client gone
        svc.rotate(deps, ACCT, "sync-a")
    reasons = [e.data.get("reason") for e in events(deps, "client.authenticate") if e.result != "ok"]
    assert reasons == ["status_suspended", "wrong_secret", "unknown_client"]
    with pytest.raises(DomainError) as exc:  # the tombstone: not reused within the window
        svc.create(deps, ADMIN, "sync-a", ["accounts:read"])
    assert exc.value.code == "identifier_reserved"


def test_one_namespace_of_identifiers(companies):
    deps = companies
    with pytest.raises(DomainError) as exc:
        svc.create(deps, ADMIN, "yamada", ["accounts:read"])  # an account's ID
    assert exc.value.code == "identifier_in_use"
    svc.create(deps, ADMIN, "sync-a", ["accounts:read"])
    with pytest.raises(DomainError) as exc:
        accounts.create_account(deps, ACCT, "sync-a", "同期 太郎", "C-2026-001", "user")
    assert exc.value.code == "identifier_in_use"
    with pytest.raises(DomainError) as exc:
        svc.create(deps, ADMIN, "x", ["accounts:read"])
    assert exc.value.code == "identifier_invalid"


@pytest.mark.parametrize("counters", ["sql", "redis"])
def test_wrong_secrets_lock_the_client_like_passwords(make_deps, operator, account_admin, counters):
    deps = make_deps("sqlite", counters={"backend": counters}, lockout={"max_failures": 3})
    add_contract(deps, operator)
    secret = made(deps)
    for n in range(3):
        assert svc.authenticate(deps, "sync-a", f"wrong-{n}", HERE) is None
    assert svc.authenticate(deps, "sync-a", secret, HERE) is None  # locked: the right one too
    failed = [(e.result, e.data.get("reason")) for e in events(deps, "client.authenticate")]
    assert failed == [("failed", "wrong_secret")] * 3 + [("refused", "locked")]
    [lock] = events(deps, "client.lock")
    assert (lock.actor, lock.subject, lock.data["failures"]) == ("svc:sync-a", "sync-a", 3)
    [alert] = alerts.inbox(deps, ADMIN)
    assert (alert["kind"], alert["subject"], alert["company"]) == ("client_locked", "sync-a", COMPANY)
    deps.clock.advance(minutes=deps.settings.lockout.lock_minutes)
    assert svc.authenticate(deps, "sync-a", secret, HERE) is not None  # the lock lapsed
    assert [e.action for e in events(deps)][-2:] == ["client.auto_unlock", "client.authenticate"]
    # a rotation clears the count and the lock with the secret they were counted against
    for n in range(3):
        svc.authenticate(deps, "sync-a", f"wrong-{n}", HERE)
    fresh = svc.rotate(deps, ACCT, "sync-a", "ロック後")
    assert events(deps, "client.rotate")[-1].data["was_locked"] is True
    assert svc.authenticate(deps, "sync-a", fresh.secret, HERE) is not None
    # the accounts' counters are apart: an account of the same name is not touched
    assert deps.counters.peek("sync-a", deps.clock.now()) == (0, None)


def test_an_unknown_client_costs_the_same_and_is_never_written_down_as_typed(companies, monkeypatch):
    deps = companies
    made(deps)
    checked: list[str | None] = []
    real = deps.hasher.verify
    monkeypatch.setattr(deps.hasher, "verify", lambda stored, pw: checked.append(stored) or real(stored, pw))
    typed = "Mq3$pasted-secret8"  # a secret pasted into the ID
    assert svc.authenticate(deps, typed, "x", HERE) is None
    assert svc.authenticate(deps, "no-such-client", "x", HERE) is None
    assert checked == [None, None]  # the dummy hash: the same work as for a real client
    database = dump_all(deps)
    assert typed not in database and "no-such-client" not in database
    subjects = [e.subject for e in events(deps, "client.authenticate")]
    assert all(s.startswith("unknown:") for s in subjects) and len(set(subjects)) == 2


def test_remote_clients_need_approval_in_advance(make_deps, operator, account_admin):
    deps = make_deps("sqlite", network={"remote_admin": ["sync-b"]})
    add_contract(deps, operator)
    outside = Client("job", "203.0.113.7", True)
    assert svc.authenticate(deps, "sync-a", made(deps), outside) is None
    assert events(deps, "client.authenticate")[-1].data == {"reason": "remote_not_approved",
                                                            "remote": True}
    assert svc.authenticate(deps, "sync-b", made(deps, "sync-b"), outside) is not None


def test_an_auditing_client_reads_the_log_but_acknowledges_no_alert(companies):
    deps = companies
    auditor = svc.authenticate(deps, "audit-a", made(deps, "audit-a", ["audit:read"], creator=ADMIN,
                                                    approver=AGENCY), HERE)
    alerts.raise_alert(deps, "shared_id_suspected", "yamada", COMPANY)
    assert [a["kind"] for a in alerts.inbox(deps, auditor)] == ["shared_id_suspected"]
    assert audit.events(deps, auditor, "yamada")
    with pytest.raises(Forbidden):
        alerts.acknowledge(deps, auditor, alerts.inbox(deps, auditor)[0]["id"])
    assert alerts.inbox(deps, ADMIN)[-1]["acknowledged_by"] is None


def test_a_companys_administrators_read_their_clients_audit_events(companies):
    deps = companies
    svc.authenticate(deps, "sync-a", made(deps), HERE)
    staff = Actor("staff1", frozenset({Role.STAFF}), company=COMPANY)
    assert {e["action"] for e in audit.events(deps, staff, "sync-a")} == {
        "client.create", "client.approve", "client.authenticate"}
    with pytest.raises(NotFound):
        audit.events(deps, Actor("staff2", frozenset({Role.STAFF}), company=OTHER), "sync-a")


# ---- OpenID Connect clients ([8 of 12]): service clients of kind "oidc" ------------------------


def oidc_registration(method: str = "client_secret_basic"):
    from joserfc.jwk import ECKey

    from authsvc.domain import relying_party

    keys = {"keys": [ECKey.generate_key("P-256").as_dict(private=False)]} if method != "client_secret_basic" \
        else None
    return relying_party.parse("社内Wiki", ["https://wiki.example.jp/cb"], method, jwks=keys)


@pytest.mark.backends("sqlite", "postgres")  # migration 0009's columns on both
def test_an_oidc_client_is_stored_with_its_kind_registration_and_groups(companies):
    from authsvc.services import groups

    deps = companies
    groups.create(deps, ACCT, "設計部", ["totp"], ["wiki"])
    made = svc.create(deps, ACCT, "wiki-rp", [], oidc=oidc_registration(), groups=["設計部"])
    svc.approve(deps, ADMIN, "wiki-rp")
    [stored] = svc.list_clients(deps, ADMIN, kind="oidc")
    assert (stored.kind, stored.oidc["redirect_uris"], stored.groups) == (
        "oidc", ["https://wiki.example.jp/cb"], ["設計部"])
    assert [v.client_id for v in svc.list_clients(deps, ADMIN, kind="service")] == []
    assert groups.list_groups(deps, AGENCY, COMPANY)[0].services == ["wiki", "wiki-rp"]
    assert svc.authenticate(deps, "wiki-rp", made.secret, HERE) is None  # never the admin API
    assert events(deps, "client.authenticate")[-1].data == {"reason": "wrong_kind"}
    assert svc.authenticate(deps, "wiki-rp", made.secret, HERE, kind="oidc") is not None
    svc.update(deps, ACCT, "wiki-rp", oidc_registration("private_key_jwt"), "鍵に移行")
    assert svc.authenticate(deps, "wiki-rp", made.secret, HERE, kind="oidc") is None
    assert "wiki-rp" in dump_all(deps) and made.secret not in dump_all(deps)
    with pytest.raises(DomainError) as exc:
        svc.rotate(deps, ACCT, "wiki-rp")
    assert exc.value.code == "client_no_secret"
    with pytest.raises(NotFound):
        svc.update(deps, OTHER_ADMIN, "wiki-rp", oidc_registration())
    assert [e.data["reason"] for e in events(deps, "client.update") if e.result == "refused"] == [
        "other_company"]
