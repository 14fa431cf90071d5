"""Usage applications ([11 of 12], R21, R2) as a service, over the in-memory fakes: the round
trip from the downloaded template to the encrypted parameter sheet, the preconditions, the
rosters, the approval by other people than the submitter, subcontractors, access-right and
removable-media applications, and every refusal changing nothing. The same on SQLite, with
logons and the web: tests/integration/test_applications.py."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import openpyxl
import pytest

from adapters.clock import FixedClock
from authsvc.domain import identifiers
from authsvc.domain.applications import ApplicationInvalid
from authsvc.domain.errors import DomainError, Forbidden, NotFound
from authsvc.services import Deps, groups
from authsvc.services import applications as apps
from authsvc.store.models import Account, AuditEvent, Device, RosterEntry
from tests.application_support import (
    OTHER,
    OTHER_CONTRACT,
    PEOPLE,
    PRIME,
    PRIME_CONTRACT,
    SUB,
    SUB_CONTRACT,
    SUB_PEOPLE,
    fill,
    read_sheet,
    register_row,
    rezip,
    sheet_accounts,
    users_workbook,
    world,
)
from tests.fakes import fake_deps
from tests.integration.support import events


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return tmp_path / "site"


@pytest.fixture
def deps(clock: FixedClock, site: Path) -> Deps:
    return fake_deps(clock, applications={"folder": str(site)})


@pytest.fixture
def w(deps, operator):
    return world(deps, operator)


def prime_workbook(deps, w, rows=None) -> apps.Upload:
    rows = rows if rows is not None else [register_row("yamada.t", PEOPLE[0]),
                                          register_row("sato.h", PEOPLE[1], role="データ管理責任者"),
                                          register_row("smith.j", ("Smith John", PEOPLE[2][1], None),
                                                       consent="いいえ")]
    return apps.Upload("申請書.xlsx", users_workbook(deps, w.submitter, PRIME_CONTRACT, PRIME, rows))


def submit_one(deps, w, upload=None) -> apps.ApplicationView:
    [view] = apps.submit(deps, w.submitter, [upload or prime_workbook(deps, w)])
    return view


def errors_of(exc: pytest.ExceptionInfo) -> set[tuple[int, str, str]]:
    return {(e.row, e.column, e.code) for e in exc.value.errors}


# ---- the round trip --------------------------------------------------------------------------


def test_template_to_parameter_sheet(deps, w, site):
    view = submit_one(deps, w)
    assert view.state == "submitted" and view.next_step == "check" and view.counts == {"register": 3}
    assert apps.check(deps, w.checker, view.id).state == "checked"
    assert apps.approve(deps, w.approver, view.id).state == "approved"
    issued = apps.issue(deps, w.approver, view.id)
    assert issued.accounts == ["yamada.t", "sato.h", "smith.j"] and len(issued.password) == 20
    [path] = [Path(p) for p in issued.files]
    assert path.parent == site / "boei-sangyo"
    passwords = sheet_accounts(read_sheet(path.read_bytes(), issued.password))
    assert set(passwords) == {"yamada.t", "sato.h", "smith.j"}
    for user_id, initial in passwords.items():
        acc = next(a for a in deps.uow.db.rows(Account) if a.user_id == user_id)
        assert acc.status == "active" and acc.must_change_password
        assert deps.hasher.verify(acc.password_hash, initial)
    assert len(set(passwords.values())) == 3
    # the approver approved the IDs the submitter assigned (R6)
    with deps.uow() as uow:
        ident = uow.identifier("sato.h")
        assert (ident.assigned_by, ident.approved_by) == ("sysadm", "ops1")
        acc = uow.account("sato.h")
        assert acc.role == "data_manager" and acc.contract.number == PRIME_CONTRACT
        assert uow.registrations.consented(acc.id)
        assert not uow.registrations.consented(uow.account("smith.j").id)
    assert apps.get(deps, w.submitter, view.id).state == "issued"
    actions = [e.action for e in events(deps, subject=f"application:{view.id}")]
    assert actions == ["application.submit", "application.check", "application.approve", "application.issue"]


def test_initial_passwords_are_never_stored_or_logged(deps, w, caplog):
    view = submit_one(deps, w)
    apps.check(deps, w.checker, view.id)
    apps.approve(deps, w.approver, view.id)
    issued = apps.issue(deps, w.approver, view.id)
    passwords = sheet_accounts(read_sheet(Path(issued.files[0]).read_bytes(), issued.password))
    dump = deps.uow.db.dump()
    for secret in [*passwords.values(), issued.password]:
        assert secret not in dump and secret not in caplog.text
    assert Path(issued.files[0]).read_bytes().find(next(iter(passwords.values())).encode()) == -1


# ---- refusals change nothing -----------------------------------------------------------------


def refuse(deps, w, upload) -> pytest.ExceptionInfo:
    before = deps.uow.db.counts()
    with pytest.raises(ApplicationInvalid) as err:
        apps.submit(deps, w.submitter, [upload] if isinstance(upload, apps.Upload) else upload)
    after = deps.uow.db.counts()
    assert {k: v for k, v in after.items() if k != "audit_events" and k != "audit_head"} == \
        {k: v for k, v in before.items() if k != "audit_events" and k != "audit_head"}
    assert events(deps, "application.submit")[-1].result == "refused"
    return err


def test_a_roster_mismatch_is_an_error_of_its_row(deps, w):
    rows = [register_row("yamada.t", PEOPLE[0]),
            register_row("nobody.x", ("名簿 外", date(1970, 1, 1), None)),
            register_row("sato.h", ("佐藤 花子", date(1985, 12, 25), "E-1002"))]  # staff ok, birth wrong
    err = refuse(deps, w, prime_workbook(deps, w, rows))
    assert errors_of(err) == {(8, "C", "app_not_on_handlers"), (8, "C", "app_not_on_system_users"),
                              (9, "C", "app_not_on_handlers"), (9, "C", "app_not_on_system_users")}
    assert "8行・C列" in err.value.lines()[0] and "row 8, column C" in err.value.lines("en")[0]


def test_a_person_on_one_roster_only_is_refused(deps, w, operator):
    apps.upload_roster(deps, operator, PRIME_CONTRACT, "system_users",
                       apps.Upload("u.csv", "氏名,生年月日\r\n山田 太郎,1980-04-01\r\n".encode()))
    err = refuse(deps, w, prime_workbook(deps, w, [register_row("yamada.t", PEOPLE[0]),
                                                  register_row("sato.h", PEOPLE[1])]))
    assert errors_of(err) == {(8, "C", "app_not_on_system_users")}


def test_duplicate_ids_within_and_across_workbooks(deps, w):
    rows = [register_row("yamada.t", PEOPLE[0]), register_row("Yamada.T", PEOPLE[1])]
    assert (8, "B", "app_duplicate") in errors_of(refuse(deps, w, prime_workbook(deps, w, rows)))
    sub = apps.Upload("下請.xlsx", users_workbook(deps, w.submitter, SUB_CONTRACT, SUB,
                                                 [register_row("yamada.t", SUB_PEOPLE[0])]))
    err = refuse(deps, w, [prime_workbook(deps, w, rows[:1]), sub])
    assert [(e.file, e.row, e.code) for e in err.value.errors] == [("下請.xlsx", 7, "app_duplicate")]


def test_an_id_in_use_is_refused(deps, w):
    view = submit_one(deps, w, prime_workbook(deps, w, [register_row("yamada.t", PEOPLE[0])]))
    apps.check(deps, w.checker, view.id)
    apps.approve(deps, w.approver, view.id)
    apps.issue(deps, w.approver, view.id)
    err = refuse(deps, w, prime_workbook(deps, w, [register_row("yamada.t", PEOPLE[0])]))
    assert errors_of(err) == {(7, "B", "identifier_in_use")}


def test_a_company_not_subscribed_or_a_contract_not_concluded(clock, site, operator):
    deps = fake_deps(clock, applications={"folder": str(site)})
    w = world(deps, operator, subscribed=False, concluded=date(2026, 5, 1))
    err = refuse(deps, w, prime_workbook(deps, w))
    assert errors_of(err) == {(4, "B", "app_not_subscribed"), (3, "B", "app_contract_not_concluded")}
    apps.set_company(deps, operator, PRIME, "complete", date(2026, 4, 1), "boei-sangyo")
    assert errors_of(refuse(deps, w, prime_workbook(deps, w))) == {(3, "B", "app_contract_not_concluded")}
    clock.advance(days=30)  # the conclusion date: applications from that day
    assert submit_one(deps, w).state == "submitted"


def test_an_ineligible_contract_is_refused(deps, w, operator):
    apps.set_terms(deps, operator, PRIME_CONTRACT, date(2026, 4, 1), None)
    assert errors_of(refuse(deps, w, prime_workbook(deps, w))) == {(3, "B", "app_contract_not_eligible")}
    with pytest.raises(DomainError):
        apps.set_terms(deps, operator, PRIME_CONTRACT, date(2026, 4, 1), "exemption")  # the basis is needed
    apps.set_terms(deps, operator, PRIME_CONTRACT, date(2026, 4, 1), "exemption", "通達第8項第2号")
    assert submit_one(deps, w).state == "submitted"


def test_hostile_workbooks_are_refused_whole(deps, w):
    good = prime_workbook(deps, w)
    formula = fill(users_workbook(deps, w.submitter, PRIME_CONTRACT, PRIME, []), PRIME_CONTRACT, PRIME,
                   [["登録", "a.b", "=HYPERLINK(\"http://x\",\"y\")", date(1980, 1, 1)]])
    err = refuse(deps, w, [good, apps.Upload("数式.xlsx", formula), apps.Upload("m.xlsm", good.data)])
    assert [(e.file, e.row, e.code) for e in err.value.errors] == [("数式.xlsx", 0, "file_formula"),
                                                                   ("m.xlsm", 0, "file_macro")]
    big = apps.Upload("big.xlsx", b"PK\x03\x04" + bytes(50 * 1024 * 1024))
    assert errors_of(refuse(deps, w, big)) == {(0, "", "file_too_large")}
    bomb = rezip(good.data, {"xl/media/zeros.xml": b"<a>" + b"0" * (30 * 1024 * 1024) + b"</a>"})
    assert errors_of(refuse(deps, w, apps.Upload("bomb.xlsx", bomb))) == {(0, "", "file_zip_bomb")}
    book = openpyxl.load_workbook(io.BytesIO(good.data))
    book.worksheets[0]["B6"], book.worksheets[0]["E6"] = "利用者ID", None
    out = io.BytesIO()
    book.save(out)
    assert errors_of(refuse(deps, w, apps.Upload("列.xlsx", out.getvalue()))) == {
        (6, "B", "app_column_wrong"), (6, "E", "app_column_wrong")}


def test_another_companys_contract_answers_like_an_unknown_one(deps, w):
    theirs = apps.Upload("x.xlsx", users_workbook(deps, w.submitter, OTHER_CONTRACT, OTHER,
                                                  [register_row("x.y", PEOPLE[0])]))
    unknown = apps.Upload("y.xlsx", users_workbook(deps, w.submitter, "C-NONE", OTHER,
                                                   [register_row("x.z", PEOPLE[0])]))
    before = deps.uow.db.counts()["applications"]
    answers = []
    for upload in (theirs, unknown):
        with pytest.raises(NotFound) as err:
            apps.submit(deps, w.submitter, [prime_workbook(deps, w), upload])
        answers.append((type(err.value).__mro__[1:], err.value.code))
    assert answers[0][1] == answers[1][1] == "contract_not_found"
    assert deps.uow.db.counts()["applications"] == before
    refused = events(deps, "application.submit")[-1]
    assert refused.result == "refused" and refused.data["reason"] == "other_company"
    # a subcontractor applies through its prime contractor only (003 4①(4))
    own = apps.Upload("s.xlsx", users_workbook(deps, w.sub_admin, SUB_CONTRACT, SUB,
                                               [register_row("suzuki.i", SUB_PEOPLE[0])]))
    with pytest.raises(Forbidden) as err:
        apps.submit(deps, w.sub_admin, [own])
    assert err.value.code == "application_via_prime"


# ---- the steps: roles, and never the submitter ------------------------------------------------


def test_nobody_approves_their_own_application(deps, w, operator):
    [view] = apps.submit(deps, operator, [prime_workbook(deps, w)])  # the agency's operator submits
    with pytest.raises(Forbidden) as err:
        apps.check(deps, operator, view.id)
    assert err.value.code == "application_own"
    apps.check(deps, w.checker, view.id)
    for step in (apps.approve, apps.issue):
        with pytest.raises(Forbidden):
            step(deps, operator, view.id)
    with pytest.raises(Forbidden):
        apps.reject(deps, operator, view.id, "自分で却下")
    refused = [e for e in events(deps) if e.result == "refused" and e.actor == "ops1"]
    assert {e.action for e in refused} >= {"application.check", "application.approve", "application.reject"}
    assert apps.get(deps, operator, view.id).state == "checked"


def test_the_checker_does_not_approve_and_the_steps_keep_their_order(deps, w):
    view = submit_one(deps, w)
    with pytest.raises(DomainError) as err:
        apps.approve(deps, w.approver, view.id)
    assert err.value.code == "application_wrong_step"
    with pytest.raises(Forbidden):
        apps.approve(deps, w.checker, view.id)  # the procuring office has no right to approve
    ops2 = type(w.approver)("ops2", w.approver.roles)
    apps.check(deps, ops2, view.id)
    with pytest.raises(Forbidden) as err:
        apps.approve(deps, ops2, view.id)
    assert err.value.code == "application_same_checker"


def test_a_company_cannot_check_or_approve(deps, w):
    view = submit_one(deps, w)
    with pytest.raises(Forbidden):
        apps.check(deps, w.sub_admin, view.id)  # no company administrator checks
    other_sysadm = type(w.submitter)("sysadm2", w.submitter.roles, company=PRIME)
    with pytest.raises(Forbidden):
        apps.approve(deps, other_sysadm, view.id)


def test_a_procuring_office_role_outside_the_agency_is_not_the_procuring_office(deps, w, operator):
    from authsvc.services import accounts

    accounts.create_account(deps, operator, "fake.jigyo", "偽 事業元", PRIME_CONTRACT, "procuring_office")
    accounts.approve_identifier(deps, type(operator)("ops2", operator.roles), "fake.jigyo")
    view = submit_one(deps, w)
    fake = type(w.checker)("fake.jigyo", w.checker.roles)
    with pytest.raises(NotFound):
        apps.check(deps, fake, view.id)


def test_a_rejection_needs_a_reason_and_ends_the_application(deps, w):
    view = submit_one(deps, w)
    with pytest.raises(DomainError):
        apps.reject(deps, w.checker, view.id, " ")
    done = apps.reject(deps, w.checker, view.id, "名簿と一致しない方がいます")
    assert done.state == "rejected" and done.reason == "名簿と一致しない方がいます" and done.next_step is None
    with pytest.raises(DomainError):
        apps.check(deps, w.checker, view.id)


def test_another_companys_administrator_sees_nothing(deps, w):
    view = submit_one(deps, w)
    with pytest.raises(NotFound):
        apps.get(deps, w.other_admin, view.id)
    assert apps.list_applications(deps, w.other_admin) == []
    assert [a.id for a in apps.list_applications(deps, w.submitter)] == [view.id]
    with pytest.raises(NotFound):
        apps.template(deps, w.other_admin, "users", PRIME_CONTRACT)
    assert events(deps, "application.read")[-1].result == "refused"


def test_the_check_reads_the_rosters_again(deps, w, operator):
    view = submit_one(deps, w)
    apps.upload_roster(deps, operator, PRIME_CONTRACT, "handlers",
                       apps.Upload("h.csv", "氏名,社員番号\r\n山田 太郎,E-1001\r\n".encode()))
    with pytest.raises(ApplicationInvalid) as err:
        apps.check(deps, w.checker, view.id)
    assert {(e.row, e.code) for e in err.value.errors} == {(8, "app_not_on_handlers"),
                                                           (9, "app_not_on_handlers")}
    assert apps.get(deps, w.checker, view.id).state == "submitted"


# ---- subcontractors --------------------------------------------------------------------------


def run(deps, w, upload_list):
    views = apps.submit(deps, w.submitter, upload_list)
    issued = []
    for v in views:
        apps.check(deps, w.checker, v.id)
        apps.approve(deps, w.approver, v.id)
        issued.append(apps.issue(deps, w.approver, v.id))
    return views, issued


def sub_upload(deps, w):
    return apps.Upload("下請.xlsx", users_workbook(deps, w.submitter, SUB_CONTRACT, SUB,
                                                   [register_row("suzuki.i", SUB_PEOPLE[0])]))


def test_a_subcontractors_sheet_lands_in_both_folders(deps, w, site):
    views, issued = run(deps, w, [prime_workbook(deps, w), sub_upload(deps, w)])
    assert views[0].batch == views[1].batch
    assert (views[1].company, views[1].submitter_company) == (SUB, PRIME)
    sub = issued[1]
    assert sorted(Path(p).parent.name for p in sub.files) == ["boei-sangyo", "sub-seiki"]
    for path in sub.files:
        assert set(sheet_accounts(read_sheet(Path(path).read_bytes(), sub.password))) == {"suzuki.i"}
    with deps.uow() as uow:
        assert uow.account("suzuki.i").contract.company == SUB  # the subcontractor's account
    assert [Path(p).parent.name for p in issued[0].files] == ["boei-sangyo"]
    # the subcontractor's administrator sees its application; the prime's sees both
    assert [a.id for a in apps.list_applications(deps, w.sub_admin)] == [views[1].id]
    assert {a.id for a in apps.list_applications(deps, w.submitter)} == {v.id for v in views}


def test_a_subcontractor_without_a_folder_gets_its_sheet_through_the_prime(clock, site, operator):
    deps = fake_deps(clock, applications={"folder": str(site)})
    w = world(deps, operator, sub_folder=None)
    _, issued = run(deps, w, [sub_upload(deps, w)])
    assert [Path(p).parent.name for p in issued[0].files] == ["boei-sangyo"]
    assert not (site / "sub-seiki").exists()


# ---- changes and deletions -------------------------------------------------------------------


def test_change_and_delete_applications(deps, w):
    run(deps, w, [prime_workbook(deps, w)])
    rows = [["変更", "sato.h", "佐藤 花子", date(1985, 12, 24), None, "利用者", "2027-03-31", None, None,
             None],
            ["削除", "smith.j", None, None, None, None, None, None, None, None]]
    _, issued = run(deps, w, [prime_workbook(deps, w, rows)])
    assert issued[0].files == [] and issued[0].password == ""  # no new account: no sheet
    with deps.uow() as uow:
        sato = uow.account("sato.h")
        assert sato.role == "user" and sato.leaves_at is not None
        assert uow.account("smith.j") is None  # deleted: the identifier is released
        assert uow.identifier("smith.j").released_at is not None
    bad = [["削除", "nobody.z", None, None, None, None, None, None, None, None]]
    assert errors_of(refuse(deps, w, prime_workbook(deps, w, bad))) == {(7, "B", "app_account_unknown")}


def test_a_linked_person_gets_a_second_account(deps, w):
    run(deps, w, [prime_workbook(deps, w, [register_row("yamada.t", PEOPLE[0])])])
    row = register_row("yamada.sub", ("山田 太郎", PEOPLE[0][1], None))
    row[8] = "yamada.t"
    apps.upload_roster(deps, w.approver, SUB_CONTRACT, "handlers",
                       apps.Upload("h.csv", "氏名,生年月日\r\n山田太郎,1980-04-01\r\n".encode()))
    apps.upload_roster(deps, w.approver, SUB_CONTRACT, "system_users",
                       apps.Upload("u.csv", "氏名,生年月日\r\n山田太郎,1980-04-01\r\n".encode()))
    sub = apps.Upload("s.xlsx", users_workbook(deps, w.submitter, SUB_CONTRACT, SUB, [row]))
    run(deps, w, [sub])
    with deps.uow() as uow:
        assert uow.account("yamada.sub").person_id == uow.account("yamada.t").person_id


# ---- access rights and removable media (003 §6) ----------------------------------------------


def access_upload(deps, w, rows):
    data = fill(apps.template(deps, w.submitter, "access"), PRIME_CONTRACT, PRIME, rows)
    return apps.Upload("access.xlsx", data)


def test_access_rights_are_approved_by_the_data_manager(deps, w):
    run(deps, w, [prime_workbook(deps, w)])
    groups.create(deps, w.submitter, "設計部", ["vein"])
    [view] = apps.submit(deps, w.submitter, [access_upload(deps, w, [["追加", "設計部", "yamada.t"]])])
    with pytest.raises(Forbidden):
        apps.approve(deps, w.submitter, view.id)  # the submitter (a system administrator) may not
    with pytest.raises(NotFound):
        apps.approve(deps, type(w.data_manager)("dm2", w.data_manager.roles, company=OTHER), view.id)
    assert apps.approve(deps, w.data_manager, view.id).state == "approved"
    [grp] = groups.list_groups(deps, w.submitter)
    assert grp.members[0]["user_id"] == "yamada.t" and grp.members[0]["approved_by"] == "datamgr"
    err = refuse(deps, w, access_upload(deps, w, [["追加", "設計部", "yamada.t"],
                                                  ["追加", "無い部", "sato.h"]]))
    assert errors_of(err) == {(7, "C", "app_member_exists"), (8, "B", "app_group_unknown")}


def media_upload(deps, w, rows):
    data = fill(apps.template(deps, w.submitter, "media"), PRIME_CONTRACT, PRIME, rows)
    return apps.Upload("media.xlsx", data)


def test_removable_media_by_serial_number(deps, w):
    [view] = apps.submit(deps, w.submitter, [media_upload(deps, w, [["登録", "AA12-3456-XYZ", "USBメモリ",
                                                                       "社給USB 32GB"]])])
    apps.approve(deps, w.approver, view.id)
    [medium] = [d for d in deps.uow.db.rows(Device) if d.kind == "media"]
    assert (medium.device_id, medium.status, medium.company) == ("media:AA12-3456-XYZ", "active", PRIME)
    with deps.uow() as uow:
        assert uow.devices.by_identifier(identifiers.canonical("media-aa12")) is None  # never a logon device
    err = refuse(deps, w, media_upload(deps, w, [["登録", "なし", "USBメモリ"],
                                                 ["登録", "AA12-3456-XYZ", "USBメモリ"],
                                                 ["登録", "CD1234", "CD-R"]]))
    assert errors_of(err) == {(7, "B", "app_serial_unidentifiable"), (8, "B", "app_serial_registered"),
                              (9, "C", "app_media_type_invalid")}
    [gone] = apps.submit(deps, w.submitter, [media_upload(deps, w, [["削除", "aa12-3456-xyz"]])])
    apps.approve(deps, w.approver, gone.id)
    assert [d.status for d in deps.uow.db.rows(Device) if d.kind == "media"] == ["revoked"]


# ---- rosters and companies -------------------------------------------------------------------


def test_rosters_are_the_agencys_and_a_bad_roster_changes_nothing(deps, w, operator):
    before = [r.name_key for r in deps.uow.db.rows(RosterEntry)]
    with pytest.raises(ApplicationInvalid) as err:
        apps.upload_roster(deps, operator, PRIME_CONTRACT, "handlers",
                           apps.Upload("h.csv", "氏名,生年月日\r\n山田,1980-02-30\r\n".encode()))
    assert errors_of(err) == {(2, "B", "app_date_invalid")}
    assert [r.name_key for r in deps.uow.db.rows(RosterEntry)] == before
    with pytest.raises(Forbidden):
        apps.upload_roster(deps, w.submitter, PRIME_CONTRACT, "handlers", apps.Upload("h.csv", b""))
    assert apps.upload_roster(deps, w.checker, PRIME_CONTRACT, "handlers",
                              apps.Upload("h.csv", "氏名,社員番号\r\n山田 太郎,E-1001\r\n".encode()),
                              )["count"] == 1
    audit = events(deps, "roster.upload")[-1]
    assert "山田" not in audit.detail and audit.data["count"] == 1


def test_issuing_without_a_folder_is_refused_before_anything(clock, site, operator):
    deps = fake_deps(clock, applications={"folder": str(site)})
    w = world(deps, operator)
    apps.set_company(deps, operator, PRIME, "complete", date(2026, 4, 1), None)
    view = submit_one(deps, w)
    apps.check(deps, w.checker, view.id)
    apps.approve(deps, w.approver, view.id)
    with pytest.raises(DomainError) as err:
        apps.issue(deps, w.approver, view.id)
    assert err.value.code == "application_no_folder"
    assert apps.get(deps, w.approver, view.id).state == "approved"
    assert not [a for a in deps.uow.db.rows(Account) if a.user_id == "yamada.t"]


def test_company_and_terms_are_the_agencys(deps, w):
    with pytest.raises(Forbidden):
        apps.set_company(deps, w.submitter, PRIME, "complete", None, "x")
    with pytest.raises(Forbidden):
        apps.set_terms(deps, w.submitter, PRIME_CONTRACT, date(2026, 4, 1), "clause")
    with pytest.raises(DomainError):
        apps.set_company(deps, w.approver, PRIME, "complete", None, "../etc")
    assert [c["company"] for c in apps.list_companies(deps, w.submitter)] == [PRIME]
    sets = [e.result for e in deps.uow.db.rows(AuditEvent) if e.action == "company.set"]
    assert sorted(sets) == ["ok", "ok", "ok", "refused"]


def test_a_company_cannot_make_a_procuring_office_account(deps, w, account_admin):
    from authsvc.services import accounts

    for role in ("procuring_office", "agency_operator"):
        with pytest.raises(Forbidden) as err:
            accounts.create_account(deps, account_admin, "jigyo.x", "偽 事業元", PRIME_CONTRACT, role)
        assert err.value.code == "role_not_assignable"
