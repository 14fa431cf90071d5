"""OpenID Connect clients ([8 of 12], R6, R8, R18) as service clients of kind "oidc", over the
in-memory fakes (tests/fakes.py): created by one administrator and approved by another, scoped
to their company, the groups whose members may use them, a registration that changes, a secret
only for client_secret_basic, and each kind's credentials opening only its own door. What needs
the real databases: tests/integration/test_service_clients.py."""

from __future__ import annotations

import json

import pytest
from joserfc.jwk import ECKey

from adapters.clock import FixedClock
from authsvc.domain import relying_party as rp
from authsvc.domain.errors import DomainError, Forbidden, NotFound
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, groups
from authsvc.services import service_clients as svc
from authsvc.services.sessions import Client
from tests.conftest import COMPANY
from tests.fakes import fake_deps
from tests.integration.support import add_contract, events

OTHER = "別会社株式会社"
ADMIN = Actor("sato", frozenset({Role.SYSTEM_ADMIN}), terminal="console-3", company=COMPANY)
OTHER_ADMIN = Actor("adm-x", frozenset({Role.SYSTEM_ADMIN}), company=OTHER)
HERE = Client("rp-server/1.0", "10.0.0.9", False)
CB = "https://wiki.example.jp/oidc/callback"


def registration(method: str = "client_secret_basic", **kwargs) -> rp.Registration:
    public = ECKey.generate_key("P-256").as_dict(private=False)
    keys = {"keys": [public]} if method == "private_key_jwt" else None
    return rp.parse(kwargs.pop("name", "社内Wiki"), kwargs.pop("redirect_uris", [CB]), method,
                    jwks=keys, **kwargs)


@pytest.fixture
def deps(clock: FixedClock, operator, account_admin) -> Deps:
    deps = fake_deps(clock)
    add_contract(deps, operator)
    add_contract(deps, operator, "C-2026-900", OTHER)
    groups.create(deps, account_admin, "設計部", ["totp"], ["wiki"])
    groups.create(deps, account_admin, "製造部", ["vein"], [])
    groups.create(deps, operator, "設計部", ["totp"], [], OTHER)  # the same name, another company
    return deps


def services_of(deps: Deps, name: str, company: str = COMPANY) -> list[str]:
    [found] = [g for g in groups.list_groups(deps, Actor("chk", frozenset({Role.AGENCY_OPERATOR})), company)
               if g.name == name]
    return found.services


def test_an_oidc_client_is_created_pending_with_a_secret_shown_once(deps, account_admin):
    made = svc.create(deps, account_admin, "Wiki-RP", [], oidc=registration(refresh=True),
                      groups=["設計部"])
    v = made.client
    assert (v.client_id, v.kind, v.company, v.scopes, v.status, v.created_by) == (
        "wiki-rp", "oidc", COMPANY, [], "pending", "acctadm")
    assert v.oidc == {"name": "社内Wiki", "redirect_uris": [CB], "auth_method": "client_secret_basic",
                      "post_logout_redirect_uris": [], "backchannel_logout_uri": "", "jwks": {},
                      "refresh": True, "subject_type": "public"}
    assert v.groups == ["設計部"] and v.to_dict()["groups"] == ["設計部"]
    assert len(made.secret) >= 43 and made.secret not in deps.uow.db.dump()
    assert "$argon2id$" in deps.uow.db.dump()
    # the group's services name the client, in the same transaction
    assert services_of(deps, "設計部") == ["wiki", "wiki-rp"] and services_of(deps, "製造部") == []
    assert services_of(deps, "設計部", OTHER) == []
    [created] = events(deps, "client.create")
    assert (created.actor, created.subject, created.data) == ("acctadm", "wiki-rp", {
        "scopes": [], "company": COMPANY, "kind": "oidc", "redirect_uris": [CB],
        "auth_method": "client_secret_basic", "groups": ["設計部"]})
    assert made.secret not in json.dumps([e.data for e in events(deps)])
    [policy] = events(deps, "group.policy")
    assert (policy.subject, policy.data["services"], policy.data["client"]) == ("設計部", ["wiki", "wiki-rp"],
                                                                               "wiki-rp")
    # a service client's view is as it was, with kind "service" and no registration
    plain = svc.create(deps, account_admin, "sync-a", ["accounts:read"]).client
    assert (plain.kind, plain.oidc, plain.groups) == ("service", None, [])


def test_private_key_jwt_has_no_secret_and_nothing_to_rotate(deps, account_admin):
    made = svc.create(deps, account_admin, "cad-rp", [], oidc=registration("private_key_jwt"))
    assert made.secret == "" and made.client.oidc["auth_method"] == "private_key_jwt"
    assert made.client.oidc["jwks"]["keys"][0]["kty"] == "EC"
    [row] = [c for c in deps.uow.db.rows(svc.ServiceClient) if c.client_id == "cad-rp"]
    assert row.secret_hash is None and row.kind == "oidc"
    svc.approve(deps, ADMIN, "cad-rp")
    with pytest.raises(DomainError) as exc:
        svc.rotate(deps, ADMIN, "cad-rp", "定期")
    assert exc.value.code == "client_no_secret"
    assert svc.authenticate(deps, "cad-rp", "", HERE, kind="oidc") is None  # no secret opens it
    assert events(deps, "client.authenticate")[-1].data["reason"] == "wrong_secret"


def test_oidc_input_that_can_never_be_right(deps, account_admin, operator):
    for kwargs, code in (
            ({"scopes": ["accounts:read"], "oidc": registration()}, "client_scopes_not_for_oidc"),
            ({"scopes": ["accounts:read"], "groups": ["設計部"]}, "client_groups_not_for_service"),
            ({"scopes": [], "oidc": registration(), "groups": ["設計部"], "company": None},
             "oidc_groups_of_company")):
        who = operator if code == "oidc_groups_of_company" else account_admin
        with pytest.raises(DomainError) as exc:
            svc.create(deps, who, "bad-rp", **kwargs)
        assert exc.value.code == code
    with pytest.raises(NotFound) as missing:
        svc.create(deps, account_admin, "bad-rp", [], oidc=registration(), groups=["設計部", "存在しない"])
    assert missing.value.code == "group_not_found"
    assert services_of(deps, "設計部") == ["wiki"]  # all or nothing: the first group is untouched
    assert not [c for c in deps.uow.db.rows(svc.ServiceClient)] and not events(deps, "client.create")


def test_four_eyes_approve_an_oidc_client(deps, account_admin, operator):
    svc.create(deps, ADMIN, "wiki-rp", [], oidc=registration())
    with pytest.raises(Forbidden) as exc:
        svc.approve(deps, ADMIN, "wiki-rp")
    assert exc.value.code == "four_eyes"
    with pytest.raises(Forbidden):
        svc.approve(deps, account_admin, "wiki-rp")  # an account administrator approves nothing
    assert [e.data["reason"] for e in events(deps, "client.approve") if e.result == "refused"] == [
        "four_eyes", "forbidden"]
    approved = svc.approve(deps, operator, "wiki-rp")
    assert (approved.status, approved.approved_by, approved.kind) == ("active", "ops1", "oidc")


def test_another_companys_administrator_finds_no_such_client_and_is_audited(deps, account_admin):
    svc.create(deps, account_admin, "wiki-rp", [], oidc=registration(), groups=["設計部"])
    before = deps.uow.db.dump()
    for call in (lambda: svc.approve(deps, OTHER_ADMIN, "wiki-rp"),
                 lambda: svc.update(deps, OTHER_ADMIN, "wiki-rp", registration(name="乗っ取り")),
                 lambda: svc.rotate(deps, OTHER_ADMIN, "wiki-rp"),
                 lambda: svc.suspend(deps, OTHER_ADMIN, "wiki-rp", "x"),
                 lambda: svc.revoke(deps, OTHER_ADMIN, "wiki-rp", "x"),
                 lambda: svc.create(deps, OTHER_ADMIN, "evil-rp", [], COMPANY, oidc=registration(),
                                    groups=["設計部"])):
        with pytest.raises(NotFound):
            call()
    refused = [(e.action, e.actor, e.data["reason"]) for e in events(deps) if e.result == "refused"]
    assert refused == [(f"client.{a}", "adm-x", "other_company")
                       for a in ("approve", "update", "rotate", "suspend", "revoke", "create")]
    assert svc.list_clients(deps, OTHER_ADMIN) == []
    kept = ("audit_", "alerts.")  # what a refusal writes
    assert [line for line in deps.uow.db.dump().splitlines() if not line.startswith(kept)] == [
        line for line in before.splitlines() if not line.startswith(kept)]
    # its own groups cannot take another company's client either: they are its company's only
    with pytest.raises(NotFound):
        svc.create(deps, OTHER_ADMIN, "their-rp", [], oidc=registration(), groups=["製造部"])


def test_an_agency_client_lists_the_groups_of_every_company(deps, operator, account_admin):
    made = svc.create(deps, operator, "mail-rp", [], oidc=registration())
    assert (made.client.company, made.client.groups) == ("", [])
    groups.set_policy(deps, ADMIN, "設計部", services=["wiki", "MAIL-RP"])  # any spelling of the ID
    groups.set_policy(deps, operator, "設計部", services=["mail-rp"], company=OTHER)
    [listed] = svc.list_clients(deps, operator, kind="oidc")
    assert listed.groups == sorted([f"{COMPANY}/設計部", f"{OTHER}/設計部"])  # by company, then name
    mine = svc.create(deps, account_admin, "wiki-rp", [], oidc=registration(), groups=["製造部"]).client
    assert mine.groups == ["製造部"]
    assert [v.groups for v in svc.list_clients(deps, ADMIN)] == [["製造部"]]  # its company's clients only


def test_list_by_kind(deps, account_admin, operator):
    svc.create(deps, account_admin, "sync-a", ["accounts:read"])
    svc.create(deps, account_admin, "wiki-rp", [], oidc=registration())
    assert [v.client_id for v in svc.list_clients(deps, account_admin)] == ["sync-a", "wiki-rp"]
    assert [v.client_id for v in svc.list_clients(deps, account_admin, "service")] == ["sync-a"]
    assert [v.client_id for v in svc.list_clients(deps, account_admin, kind="oidc")] == ["wiki-rp"]
    with pytest.raises(DomainError) as exc:
        svc.list_clients(deps, account_admin, kind="robot")
    assert exc.value.code == "client_kind_unknown"


def test_a_registration_is_changed_and_audited(deps, account_admin, operator):
    made = svc.create(deps, account_admin, "wiki-rp", [], oidc=registration())
    svc.approve(deps, ADMIN, "wiki-rp")
    changed = svc.update(deps, account_admin, "wiki-rp",
                         registration(redirect_uris=[CB, "https://wiki.example.jp/cb2"],
                                      post_logout_redirect_uris=["https://wiki.example.jp/bye"],
                                      subject_type="pairwise"), "URI追加")
    assert changed.oidc["redirect_uris"] == [CB, "https://wiki.example.jp/cb2"]
    assert (changed.oidc["subject_type"], changed.status) == ("pairwise", "active")
    [update] = events(deps, "client.update")
    assert (update.actor, update.subject, update.data) == ("acctadm", "wiki-rp", {
        "changed": ["redirect_uris", "post_logout_redirect_uris", "subject_type"],
        "redirect_uris": [CB, "https://wiki.example.jp/cb2"], "auth_method": "client_secret_basic",
        "reason": "URI追加"})
    assert svc.authenticate(deps, "wiki-rp", made.secret, HERE, kind="oidc") is not None  # same secret
    # to private_key_jwt: the secret is dead at once
    svc.update(deps, account_admin, "wiki-rp", registration("private_key_jwt"))
    assert svc.authenticate(deps, "wiki-rp", made.secret, HERE, kind="oidc") is None
    # back to client_secret_basic: no secret until a rotation
    svc.update(deps, account_admin, "wiki-rp", registration())
    assert events(deps, "client.update")[-1].data["needs_rotate"] is True
    assert svc.authenticate(deps, "wiki-rp", made.secret, HERE, kind="oidc") is None
    fresh = svc.rotate(deps, account_admin, "wiki-rp", "方式変更")
    assert svc.authenticate(deps, "wiki-rp", fresh.secret, HERE, kind="oidc") is not None


def test_a_service_client_and_a_revoked_client_have_no_registration_to_change(deps, account_admin):
    svc.create(deps, account_admin, "sync-a", ["accounts:read"])
    with pytest.raises(DomainError) as exc:
        svc.update(deps, account_admin, "sync-a", registration())
    assert exc.value.code == "client_not_oidc"
    svc.create(deps, account_admin, "wiki-rp", [], oidc=registration())
    svc.revoke(deps, account_admin, "wiki-rp", "廃止")
    with pytest.raises(NotFound):  # revoked: its identifier released, the client gone
        svc.update(deps, account_admin, "wiki-rp", registration())
    with pytest.raises(Forbidden):
        svc.update(deps, Actor("staff1", frozenset({Role.STAFF}), company=COMPANY), "sync-a", registration())
    assert not [e for e in events(deps, "client.update") if e.result == "ok"]


def test_each_kinds_secret_opens_only_its_own_door(deps, account_admin):
    rp_secret = svc.create(deps, account_admin, "wiki-rp", [], oidc=registration()).secret
    svc_secret = svc.create(deps, account_admin, "sync-a", ["accounts:read"]).secret
    for client_id in ("wiki-rp", "sync-a"):
        svc.approve(deps, ADMIN, client_id)
    # the right secret of an OIDC client on the admin API's door (the default kind)
    assert svc.authenticate(deps, "wiki-rp", rp_secret, HERE) is None
    last = events(deps, "client.authenticate")[-1]
    assert (last.subject, last.result, last.data) == ("wiki-rp", "failed", {"reason": "wrong_kind"})
    # and a service client's at the OpenID provider's
    assert svc.authenticate(deps, "sync-a", svc_secret, HERE, kind="oidc") is None
    last = events(deps, "client.authenticate")[-1]
    assert (last.subject, last.result, last.data) == ("sync-a", "failed", {"reason": "wrong_kind"})
    # the right secret is no guess: nothing counted toward a lockout
    for _ in range(deps.settings.lockout.max_failures + 1):
        svc.authenticate(deps, "wiki-rp", rp_secret, HERE)
    assert deps.counters.peek(svc.PREFIX + "wiki-rp", deps.clock.now()) == (0, None)
    assert not events(deps, "client.lock")
    ok = svc.authenticate(deps, "wiki-rp", rp_secret, HERE, kind="oidc")
    assert ok is not None and ok.id == "svc:wiki-rp" and ok.grants == frozenset()
    assert svc.authenticate(deps, "sync-a", svc_secret, HERE) is not None
    # a wrong secret still counts, whatever the kind asked for
    assert svc.authenticate(deps, "wiki-rp", "wrong", HERE, kind="oidc") is None
    assert events(deps, "client.authenticate")[-1].data == {"reason": "wrong_secret", "failures": 1}


def test_the_remote_rule_is_the_admin_apis_only(clock, operator, account_admin):
    deps = fake_deps(clock)
    add_contract(deps, operator)
    outside = Client("rp", "203.0.113.7", True)
    rp_secret = svc.create(deps, account_admin, "wiki-rp", [], oidc=registration()).secret
    svc_secret = svc.create(deps, account_admin, "sync-a", ["accounts:read"]).secret
    for client_id in ("wiki-rp", "sync-a"):
        svc.approve(deps, ADMIN, client_id)
    assert svc.authenticate(deps, "wiki-rp", rp_secret, outside, kind="oidc") is not None
    assert svc.authenticate(deps, "sync-a", svc_secret, outside) is None
    assert events(deps, "client.authenticate")[-1].data == {"reason": "remote_not_approved", "remote": True}


def test_a_revoked_oidc_client_leaves_its_groups(deps, account_admin, operator):
    svc.create(deps, account_admin, "wiki-rp", [], oidc=registration(), groups=["設計部", "製造部"])
    svc.create(deps, account_admin, "sync-a", ["accounts:read"])
    revoked = svc.revoke(deps, account_admin, "wiki-rp", "廃止")
    assert revoked.groups == []
    assert services_of(deps, "設計部") == ["wiki"] and services_of(deps, "製造部") == []
    assert events(deps, "client.revoke")[-1].data["groups"] == ["製造部", "設計部"]
    assert [e.data["client"] for e in events(deps, "group.policy")][-2:] == ["wiki-rp", "wiki-rp"]
    svc.revoke(deps, account_admin, "sync-a", "廃止")  # a service client has no groups to leave
    assert "groups" not in events(deps, "client.revoke")[-1].data
    # after the tombstone, a new client of the same ID starts with no users
    deps.clock.advance(days=deps.settings.identifiers.reuse_after_days)
    assert svc.create(deps, account_admin, "wiki-rp", [], oidc=registration()).client.groups == []


@pytest.mark.parametrize("key", [
    {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "BBBB"},  # the shape of a key, not a point
    {**ECKey.generate_key("P-256").as_dict(private=False), "use": "enc"},  # not for signatures
    {**ECKey.generate_key("P-256").as_dict(private=False), "pad": "x" * 9000},  # oversize
])
def test_keys_that_cannot_verify_an_assertion_are_refused_at_registration(deps, account_admin, key):
    reg = rp.Registration("社内Wiki", (CB,), "private_key_jwt", jwks={"keys": [key]})
    with pytest.raises(DomainError) as exc:
        svc.create(deps, account_admin, "cad-rp", [], oidc=reg)
    assert exc.value.code == "oidc_jwks_invalid"
    assert not events(deps, "client.create")
