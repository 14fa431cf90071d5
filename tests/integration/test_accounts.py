"""Account administration on the real backends (R2, R6, R7, R9, R22)."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta

import pytest

from authsvc.domain import logon_flow as lf
from authsvc.domain.calendar import JST
from authsvc.domain.errors import DomainError, Forbidden, NotFound
from authsvc.domain.passwords import violations
from authsvc.domain.roles import Actor, Role
from authsvc.services import accounts, logon
from authsvc.services.passwords import change_password
from authsvc.store.models import Account, Identifier
from tests.conftest import AGENCY
from tests.integration.support import (
    CHOSEN,
    active_account,
    add_contract,
    audit_count,
    events,
    password_step,
    row_counts,
    set_time,
)

# The account administrator of the company of contract "C-B" ("別会社") in the tests below: a
# company's accounts are created by that company's administrators (R24).
OTHER_ADMIN = Actor("acctadm-b", frozenset({Role.ACCOUNT_ADMIN}), terminal="console-b",
                    company="別会社")


def only_a_refusal(before: dict[str, int], after: dict[str, int]) -> None:
    """Between two row_counts: the refusal's audit event and the operators' alert of it (R25)
    added, nothing else changed."""
    assert after == {**before, "audit_events": before["audit_events"] + 1,
                     "alerts": before["alerts"] + 1}


@pytest.fixture
def contract(deps, operator) -> str:
    add_contract(deps, operator)
    return "C-2026-001"


def test_create_account_is_pending_with_a_fresh_initial_password(deps, account_admin, contract):
    first = accounts.create_account(deps, account_admin, "tanaka", "田中 太郎", contract, "user")
    second = accounts.create_account(deps, account_admin, "suzuki", "鈴木 花子", contract, "user")

    assert first.account.status == "pending"
    assert first.account.must_change_password is True
    assert first.account.created_by == account_admin.id
    # generated, unguessable by the rule, and different for every account
    assert violations(first.initial_password, deps.rule, "tanaka",
                      is_breached=deps.blocklist.is_breached) == []
    assert len(first.initial_password) >= deps.settings.password.min_length
    assert first.initial_password != second.initial_password
    assert accounts.show(deps, AGENCY, "tanaka").status == "pending"
    created = events(deps, "account.create", "tanaka")
    assert len(created) == 1 and created[0].actor == account_admin.id
    # pending: the identifier is not yet effective, even with the right password
    assert password_step(deps, "tanaka", first.initial_password) == logon.FAILED


def test_system_admin_approves(deps, operator, account_admin, contract):
    issued = accounts.create_account(deps, account_admin, "tanaka", "田中 太郎", contract, "user")
    approved = accounts.approve_identifier(deps, operator, "tanaka")
    assert approved.status == "active"
    assert accounts.show(deps, AGENCY, "tanaka").status == "active"
    [ev] = events(deps, "identifier.approve", "tanaka")
    assert ev.actor == operator.id
    assert json.loads(ev.detail)["assigned_by"] == account_admin.id
    assert password_step(deps, "tanaka", issued.initial_password).step is lf.Step.CHANGE_PASSWORD
    with pytest.raises(DomainError) as err:  # approving twice is refused
        accounts.approve_identifier(deps, operator, "tanaka")
    assert err.value.code == "identifier_not_pending"


def test_account_admin_cannot_approve(deps, account_admin, contract):
    accounts.create_account(deps, account_admin, "tanaka", "田中 太郎", contract, "user")
    before = row_counts(deps)
    with pytest.raises(Forbidden) as err:
        accounts.approve_identifier(deps, account_admin, "tanaka")
    assert err.value.code == "forbidden"
    assert accounts.show(deps, AGENCY, "tanaka").status == "pending"
    # the refused use of a privilege is itself recorded (004 第8 1(2)); nothing else changed
    only_a_refusal(before, row_counts(deps))
    [refused] = events(deps, "identifier.approve", "tanaka")
    assert (refused.actor, refused.result, refused.data) == (
        account_admin.id, "refused", {"reason": "forbidden"})


def test_plain_user_cannot_create_accounts(deps, contract):
    user = Actor("someone", frozenset({Role.USER}))
    before = row_counts(deps)
    with pytest.raises(Forbidden):
        accounts.create_account(deps, user, "tanaka", "田中 太郎", contract, "user")
    only_a_refusal(before, row_counts(deps))  # the refusal is recorded; no account, no ID
    [refused] = events(deps, "account.create", "tanaka")
    assert (refused.actor, refused.result, refused.data) == ("someone", "refused", {"reason": "forbidden"})


def test_four_eyes_refuses_approval_by_the_assigner(make_deps, backend, operator):
    deps = make_deps(backend, identifiers={"four_eyes": True})
    add_contract(deps, operator)
    accounts.create_account(deps, operator, "tanaka", "田中 太郎", "C-2026-001", "user")
    before = audit_count(deps)
    with pytest.raises(Forbidden) as err:  # a refused use of a privilege (403), audited
        accounts.approve_identifier(deps, operator, "tanaka")
    assert err.value.code == "four_eyes"
    assert accounts.show(deps, AGENCY, "tanaka").status == "pending"
    assert audit_count(deps) == before + 1
    [refused] = events(deps, "identifier.approve", "tanaka")
    assert (refused.actor, refused.result, refused.data) == (operator.id, "refused", {"reason": "four_eyes"})
    second = Actor("ops2", frozenset({Role.AGENCY_OPERATOR}))  # another agency operator
    assert accounts.approve_identifier(deps, second, "tanaka").status == "active"


def test_without_four_eyes_the_assigner_may_approve(deps, operator, contract):
    accounts.create_account(deps, operator, "tanaka", "田中 太郎", contract, "user")
    assert accounts.approve_identifier(deps, operator, "tanaka").status == "active"


@pytest.mark.parametrize("again", ["tanaka", "Tanaka", "TANAKA"])
def test_duplicate_identifier_refused_case_insensitively(deps, account_admin, contract, again):
    accounts.create_account(deps, account_admin, "tanaka", "田中 太郎", contract, "user")
    before = row_counts(deps)
    with pytest.raises(DomainError) as err:
        accounts.create_account(deps, account_admin, again, "別の 人", contract, "user")
    assert err.value.code == "identifier_in_use"
    assert row_counts(deps) == before
    assert accounts.show(deps, AGENCY, "TaNaKa").name == "田中 太郎"


def test_deleted_identifier_is_tombstoned_for_the_reuse_window(
    deps, clock, operator, account_admin, contract
):
    issued = active_account(deps, account_admin, operator, "tanaka")
    deleted_at = clock.now()
    gone = accounts.delete(deps, account_admin, "tanaka", reason="left the company")
    assert gone.status == "deleted"
    assert gone.revoked_at is not None
    [ev] = events(deps, "account.delete", "tanaka")
    # R7: what the holder must give back is listed (no security key registered: the fixed list)
    assert json.loads(ev.detail) == {"status_from": "active", "reason": "left the company",
                                     "returns": ["id_card", "operation_manual"]}
    # the authenticator is invalidated with the account
    assert password_step(deps, "tanaka", issued.initial_password) == logon.FAILED
    with pytest.raises(NotFound):
        accounts.show(deps, AGENCY, "tanaka")

    window = timedelta(days=deps.settings.identifiers.reuse_after_days)
    for moment in (deleted_at + timedelta(days=1), deleted_at + window - timedelta(seconds=1)):
        set_time(clock, moment)
        for candidate in ("tanaka", "Tanaka"):
            before = row_counts(deps)
            with pytest.raises(DomainError) as err:
                accounts.create_account(deps, account_admin, candidate, "新 人", contract, "user")
            assert err.value.code == "identifier_reserved"
            assert row_counts(deps) == before

    set_time(clock, deleted_at + window)
    again = accounts.create_account(deps, account_admin, "Tanaka", "新 人", contract, "user")
    assert again.account.status == "pending"
    assert again.account.person_id != issued.account.person_id
    assert accounts.show(deps, AGENCY, "tanaka").name == "新 人"
    with deps.uow() as uow:
        ident = uow.session.get(Identifier, "tanaka")
        assert ident is not None and ident.released_at is None
        assert ident.holder_id is not None and ident.approved_at is None


def test_one_person_on_two_contracts_has_two_linked_accounts(deps, operator, account_admin):
    add_contract(deps, operator, "C-A")
    add_contract(deps, operator, "C-B", company="別会社")
    first = active_account(deps, account_admin, operator, "tanaka-a", contract="C-A")
    with pytest.raises(NotFound) as err:  # R24: another company's person is no person to 別会社
        accounts.create_account(deps, OTHER_ADMIN, "tanaka-b", "田中 太郎", "C-B", "user",
                                person_id=first.account.person_id)
    assert err.value.code == "person_not_found"
    # the agency links the one person across companies
    second = accounts.create_account(deps, operator, "tanaka-b", "田中 太郎", "C-B", "user",
                                     person_id=first.account.person_id)
    assert second.account.person_id == first.account.person_id
    assert second.account.contract == "C-B"
    with deps.uow() as uow:
        linked = uow.accounts_of_person(first.account.person_id)
        assert sorted(a.user_id for a in linked) == ["tanaka-a", "tanaka-b"]
    [ev] = [e for e in events(deps, "account.create", "tanaka-b") if e.result == "ok"]
    assert json.loads(ev.detail)["linked_person"] is True
    # without person_id a new person is created
    third = accounts.create_account(deps, OTHER_ADMIN, "tanaka-c", "田中 太郎", "C-B", "user")
    assert third.account.person_id != first.account.person_id


def test_unknown_person_refused_and_nothing_written(deps, account_admin, contract):
    before = row_counts(deps)
    with pytest.raises(NotFound) as err:
        accounts.create_account(deps, account_admin, "tanaka", "田中 太郎", contract, "user",
                                person_id=999_999)
    assert err.value.code == "person_not_found"
    assert row_counts(deps) == before


def test_create_account_on_an_ended_contract_is_refused_and_writes_nothing(
    deps, clock, operator, account_admin
):
    add_contract(deps, operator, "C-OLD", starts_on=date(2025, 1, 6), ends_on=date(2026, 1, 30))
    before = row_counts(deps)
    with pytest.raises(DomainError) as err:
        accounts.create_account(deps, account_admin, "late", "遅刻 太郎", "C-OLD", "user")
    assert err.value.code == "contract_ended"
    assert err.value.message("en") == "Contract C-OLD has ended."
    assert row_counts(deps) == before
    with pytest.raises(NotFound):
        accounts.show(deps, AGENCY, "late")


def test_create_account_is_allowed_until_the_contract_ends(
    deps, clock, operator, account_admin
):
    # ends Friday 2026-04-24; with 14 business days of data cleanup access ends 2026-05-21 JST,
    # but no new account is opened once the contract itself is over (the cleanup period is
    # for the existing users to tidy their data)
    add_contract(deps, operator, "C-GW", starts_on=date(2026, 4, 1), ends_on=date(2026, 4, 24))
    last_day_ends = datetime.combine(date(2026, 4, 25), time(0), JST)
    set_time(clock, last_day_ends - timedelta(microseconds=1))
    made = accounts.create_account(deps, account_admin, "cleanup", "後片付 花子", "C-GW", "user")
    end = datetime.combine(date(2026, 5, 21), time(0), JST)
    assert datetime.fromisoformat(made.account.access_ends_at) == end
    set_time(clock, last_day_ends)
    before = row_counts(deps)
    with pytest.raises(DomainError) as err:
        accounts.create_account(deps, account_admin, "toolate", "遅刻 次郎", "C-GW", "user")
    assert err.value.code == "contract_ended"
    assert row_counts(deps) == before


def test_linking_a_person_under_another_name_is_refused_and_writes_nothing(
    deps, operator, account_admin
):
    add_contract(deps, operator, "C-A")
    add_contract(deps, operator, "C-B", company="別会社")
    first = active_account(deps, account_admin, operator, "tanaka-a", contract="C-A")
    person = first.account.person_id
    before = row_counts(deps)
    for other in ("山田 一郎", "田中 次郎", "田中太"):
        with pytest.raises(DomainError) as err:
            accounts.create_account(deps, operator, "tanaka-b", other, "C-B", "user",
                                    person_id=person)
        assert err.value.code == "person_name_mismatch"
        assert err.value.message("en") == f"The name does not match person record {person}."
    assert row_counts(deps) == before
    with pytest.raises(NotFound):
        accounts.show(deps, AGENCY, "tanaka-b")
    # the same name in another spelling is that person: ideographic space, or no space
    linked = accounts.create_account(deps, operator, "tanaka-b", "田中\u3000太郎", "C-B",
                                     "user", person_id=person)
    again = accounts.create_account(deps, OTHER_ADMIN, "tanaka-c", "田中太郎", "C-B",
                                    "user", person_id=person)
    assert again.account.person_id == person
    assert linked.account.person_id == person and linked.account.name == "田中 太郎"


def test_update_without_a_change_writes_no_audit_event(deps, operator, account_admin, contract):
    active_account(deps, account_admin, operator, "tanaka")
    before = row_counts(deps)
    for kwargs in ({}, {"name": "田中 太郎"}, {"role": "user"},
                   {"name": "田中\u3000太郎", "role": "user"}):  # NFKC-equal: the same name
        same = accounts.update_account(deps, account_admin, "Tanaka", **kwargs)
        assert (same.name, same.role) == ("田中 太郎", "user"), kwargs
    assert row_counts(deps) == before
    assert events(deps, "account.update") == []
    # a real change is still audited, with only what changed
    accounts.update_account(deps, account_admin, "tanaka", name="田中 太郎", role="staff")
    [ev] = events(deps, "account.update", "tanaka")
    assert json.loads(ev.detail) == {"role": {"from": "user", "to": "staff"}}


def test_update_name_and_role_is_audited(deps, operator, account_admin, contract):
    active_account(deps, account_admin, operator, "tanaka")
    updated = accounts.update_account(deps, account_admin, "tanaka", name="田中 次郎",
                                      role="account_admin")
    assert updated.name == "田中 次郎" and updated.role == "account_admin"
    assert accounts.show(deps, AGENCY, "tanaka").role == "account_admin"
    [ev] = events(deps, "account.update", "tanaka")
    assert ev.actor == account_admin.id
    assert json.loads(ev.detail) == {"name": "田中 次郎",
                                     "role": {"from": "user", "to": "account_admin"}}


def test_suspend_and_resume(deps, operator, account_admin, contract):
    issued = active_account(deps, account_admin, operator, "tanaka")
    assert accounts.suspend(deps, account_admin, "tanaka", reason="on leave").status == "suspended"
    assert password_step(deps, "tanaka", issued.initial_password) == logon.FAILED
    assert accounts.resume(deps, account_admin, "tanaka").status == "active"
    assert password_step(deps, "tanaka", issued.initial_password).step is lf.Step.CHANGE_PASSWORD
    [sus] = events(deps, "account.suspend", "tanaka")
    [res] = events(deps, "account.resume", "tanaka")
    assert json.loads(sus.detail) == {"status_from": "active", "reason": "on leave"}
    assert json.loads(res.detail) == {"status_from": "suspended"}
    with pytest.raises(DomainError) as err:  # resuming an active account is not a transition
        accounts.resume(deps, account_admin, "tanaka")
    assert err.value.code == "bad_transition"


def test_resume_of_a_deleted_account_refused(deps, operator, account_admin, contract):
    active_account(deps, account_admin, operator, "tanaka")
    accounts.delete(deps, account_admin, "tanaka")
    before = row_counts(deps)
    for action in (accounts.resume, accounts.suspend, accounts.reset_password,
                   accounts.delete, accounts.unlock):
        with pytest.raises(DomainError):
            action(deps, account_admin, "tanaka")
    assert row_counts(deps) == before
    with deps.uow() as uow:
        [acc] = uow.session.query(Account).filter_by(user_id="tanaka").all()
        assert acc.status == "deleted" and acc.password_hash is None


def test_reset_password_issues_a_new_initial_password(deps, operator, account_admin, contract):
    issued = active_account(deps, account_admin, operator, "tanaka")
    assert password_step(deps, "tanaka", issued.initial_password).step is lf.Step.CHANGE_PASSWORD
    user = Actor("tanaka")
    change_password(deps, user, "tanaka", CHOSEN[0])
    assert password_step(deps, "tanaka", CHOSEN[0]).step is lf.Step.REGISTER

    reset = accounts.reset_password(deps, account_admin, "tanaka")
    assert reset.initial_password not in (issued.initial_password, CHOSEN[0])
    assert violations(reset.initial_password, deps.rule, "tanaka",
                      is_breached=deps.blocklist.is_breached) == []
    assert reset.account.must_change_password is True
    assert password_step(deps, "tanaka", CHOSEN[0]) == logon.FAILED
    assert password_step(deps, "tanaka", issued.initial_password) == logon.FAILED
    state = password_step(deps, "tanaka", reset.initial_password)
    assert (state.step, state.user_id) == (lf.Step.CHANGE_PASSWORD, "tanaka") and state.token
    [ev] = events(deps, "password.reset", "tanaka")
    assert ev.actor == account_admin.id


HOSTILE = [
    # (user_id, name, role, expected code)
    ("../x", "田中 太郎", "user", "identifier_invalid"),
    ("..", "田中 太郎", "user", "identifier_invalid"),
    ("a/b/c", "田中 太郎", "user", "identifier_invalid"),
    ("tanaka\x00", "田中 太郎", "user", "identifier_invalid"),
    ("tanaka\n", "田中 太郎", "user", "identifier_invalid"),
    ("tanaka' OR '1'='1", "田中 太郎", "user", "identifier_invalid"),
    ("ｔａｎａｋａ", "田中 太郎", "user", "identifier_invalid"),  # full-width
    ("x" * 65, "田中 太郎", "user", "identifier_invalid"),
    ("ab", "田中 太郎", "user", "identifier_invalid"),
    ("", "田中 太郎", "user", "identifier_invalid"),
    (None, "田中 太郎", "user", "identifier_invalid"),
    (12345, "田中 太郎", "user", "identifier_invalid"),
    ("tanaka", "田中\x07太郎", "user", "name_invalid"),
    ("tanaka", "田中\n太郎", "user", "name_invalid"),
    ("tanaka", "\u202etanaka", "user", "name_invalid"),  # bidi override (format character)
    ("tanaka", "x" * 10_240, "user", "name_invalid"),
    ("tanaka", "   ", "user", "name_invalid"),
    ("tanaka", "田中 太郎", "root", "role_unknown"),
    ("tanaka", "田中 太郎", "SYSTEM_ADMIN", "role_unknown"),
    ("tanaka", "田中 太郎", "", "role_unknown"),
]


@pytest.mark.parametrize(("user_id", "name", "role", "code"), HOSTILE)
def test_hostile_input_is_refused_and_writes_nothing(
    deps, account_admin, contract, user_id, name, role, code
):
    before = row_counts(deps)
    with pytest.raises(DomainError) as err:
        accounts.create_account(deps, account_admin, user_id, name, contract, role)
    assert err.value.code == code
    assert err.value.message("en")  # a clear message exists for the code
    assert row_counts(deps) == before


def test_hostile_update_and_contract_input_refused(deps, operator, account_admin, contract):
    active_account(deps, account_admin, operator, "tanaka")
    before = row_counts(deps)
    cases = [
        (lambda: accounts.update_account(deps, account_admin, "tanaka", role="root"),
         "role_unknown"),
        (lambda: accounts.update_account(deps, account_admin, "tanaka", name="a\x1bb"),
         "name_invalid"),
        (lambda: accounts.update_account(deps, account_admin, "tanaka", name="x" * 10_240),
         "name_invalid"),
        (lambda: accounts.update_account(deps, account_admin, "../tanaka", name="x"),
         "identifier_invalid"),
        (lambda: accounts.create_contract(deps, operator, "../etc", "会社", contract_start(deps),
                                          None), "contract_invalid"),
        (lambda: accounts.create_contract(deps, operator, "C-2", "会\x00社", contract_start(deps),
                                          None), "name_invalid"),
        (lambda: accounts.create_contract(deps, operator, "C-3", "会社", contract_start(deps),
                                          contract_start(deps) - timedelta(days=1)),
         "period_invalid"),
        (lambda: accounts.create_account(deps, account_admin, "sato", "佐藤", "NO-SUCH", "user"),
         "contract_not_found"),
    ]
    for call, code in cases:
        with pytest.raises(DomainError) as err:
            call()
        assert err.value.code == code
    assert row_counts(deps) == before
    assert accounts.show(deps, AGENCY, "tanaka").role == "user"
    assert accounts.show(deps, AGENCY, "tanaka").name == "田中 太郎"


def contract_start(deps):
    return deps.clock.now().date()


def test_a_companys_administrator_acts_only_on_their_company_and_never_on_themselves(
    deps, operator, account_admin
):
    """R24: another company's contract or account answers exactly like an unknown one, is
    refused with its real reason in the audit log, and changes nothing; nobody administers
    their own account; only the agency makes agency operators."""
    add_contract(deps, operator, "C-A")
    add_contract(deps, operator, "C-B", company="別会社")
    active_account(deps, OTHER_ADMIN, operator, "kimura", contract="C-B")
    before = row_counts(deps)
    with pytest.raises(NotFound) as theirs:
        accounts.create_account(deps, account_admin, "tanaka", "田中 太郎", "C-B", "user")
    with pytest.raises(NotFound) as unknown:
        accounts.create_account(deps, account_admin, "tanaka", "田中 太郎", "C-NONE", "user")
    assert theirs.value.code == unknown.value.code == "contract_not_found"
    only_a_refusal(before, row_counts(deps))
    [refused] = events(deps, "account.create", "tanaka")
    assert (refused.actor, refused.result, refused.data) == (
        account_admin.id, "refused", {"reason": "other_company"})

    before = row_counts(deps)
    with pytest.raises(NotFound) as theirs:
        accounts.suspend(deps, account_admin, "kimura", reason="test")
    with pytest.raises(NotFound) as unknown:
        accounts.suspend(deps, account_admin, "nobody-here", reason="test")
    assert (theirs.value.code, theirs.value.message("en")) == (
        unknown.value.code, unknown.value.message("en").replace("nobody-here", "kimura"))
    assert accounts.show(deps, AGENCY, "kimura").status == "active"
    only_a_refusal(before, row_counts(deps))
    [refused] = events(deps, "account.suspend", "kimura")
    assert (refused.result, refused.data) == ("refused", {"reason": "other_company"})
    assert [v.user_id for v in accounts.list_accounts(deps, account_admin)] == []
    assert [v.user_id for v in accounts.list_accounts(deps, OTHER_ADMIN)] == ["kimura"]

    own_admin = Actor("kimura", frozenset({Role.ACCOUNT_ADMIN}), company="別会社")
    with pytest.raises(Forbidden) as own:
        accounts.suspend(deps, own_admin, "kimura")
    assert own.value.code == "own_account"
    assert accounts.show(deps, AGENCY, "kimura").status == "active"
    assert events(deps, "account.suspend", "kimura")[-1].data == {"reason": "own_account"}

    with pytest.raises(Forbidden) as raised:
        accounts.create_account(deps, OTHER_ADMIN, "boss", "上司 一郎", "C-B", "agency_operator")
    assert raised.value.code == "role_not_assignable"
    with pytest.raises(NotFound):
        accounts.show(deps, AGENCY, "boss")
    assert accounts.create_account(deps, operator, "boss", "上司 一郎", "C-B",
                                   "agency_operator").account.role == "agency_operator"
