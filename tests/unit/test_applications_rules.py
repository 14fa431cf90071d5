"""Usage applications ([11 of 12], R21): the pure rules (domain/applications.py) and the safe
reading of uploaded files (adapters/workbooks.py), each hostile file refused before anything
is imported."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime

import openpyxl
import pytest

from adapters import workbooks
from adapters.workbooks import FileRefused, Limits
from authsvc.domain import applications as rules
from authsvc.domain.applications import Identity, matches, name_key, serial_of
from authsvc.domain.errors import DomainError, Forbidden
from authsvc.domain.messages import MESSAGES
from tests.application_support import fill, part, rezip

LIMITS = Limits()
TODAY = date(2026, 4, 1)


def template() -> bytes:
    return workbooks.template(rules.USERS)


def rows_of(data: bytes) -> list[tuple]:
    return workbooks.read_form("a.xlsx", data, LIMITS)


# ---- names and the matching rule -------------------------------------------------------------


@pytest.mark.parametrize("written", ["山田 太郎", "山田　太郎", "山田太郎", " 山田  太郎 ", "山田・太郎"])
def test_names_compare_without_spaces_or_dots(written):
    assert name_key(written) == name_key("山田太郎")


def test_full_and_half_width_are_one_name():
    assert name_key("ＳＭＩＴＨ　Ｊｏｈｎ") == name_key("smith john") == "smithjohn"
    assert name_key("ﾔﾏﾀﾞ ﾀﾛｳ") == name_key("ヤマダ タロウ")  # half-width kana
    assert name_key("山田太郎") != name_key("山田次郎")


def test_the_matching_rule():
    born = date(1980, 4, 1)
    entry = Identity(name_key("山田 太郎"), born, "E-1001")
    assert matches(Identity(name_key("山田太郎"), born, None), entry)            # name + birth date
    assert matches(Identity(name_key("山田太郎"), None, "e-1001"), entry)        # name + staff number
    assert matches(Identity(name_key("山田太郎"), born, "E-1001"), entry)
    assert not matches(Identity(name_key("山田太郎"), date(1980, 4, 2), None), entry)   # wrong date
    assert not matches(Identity(name_key("山田太郎"), born, "E-9999"), entry)     # one disagrees
    assert not matches(Identity(name_key("山田花子"), born, "E-1001"), entry)     # another name
    # nothing shared to compare: not a match
    assert not matches(Identity(name_key("山田太郎"), born, None), Identity(entry.name_key, None, "E-1001"))


# ---- removable media ------------------------------------------------------------------------


@pytest.mark.parametrize("serial", ["なし", "不明", "N/A", "-", "0000", "XXXX-XXXX", "ab", "", None, "抜け"])
def test_media_without_an_identifiable_serial_are_refused(serial):
    with pytest.raises(DomainError) as err:
        serial_of(serial)
    assert err.value.code in ("app_serial_unidentifiable", "app_serial_required", "app_text_invalid")


def test_a_serial_is_normalised():
    assert serial_of(" ａｂｃ１２３４５ ") == "ABC12345"
    assert serial_of(4711081500) == "4711081500"


# ---- the state machine ------------------------------------------------------------------------


def test_the_steps_of_a_user_application():
    state = "submitted"
    for action, wanted in (("check", "checked"), ("approve", "approved"), ("issue", "issued")):
        state = rules.step("users", state, action)
        assert state == wanted
    assert rules.is_final("users", state)
    with pytest.raises(DomainError):
        rules.step("users", "submitted", "approve")  # not before the procuring office's check
    with pytest.raises(DomainError):
        rules.step("users", "issued", "reject")
    assert rules.step("users", "checked", "reject") == "rejected"
    assert rules.step("media", "submitted", "approve") == "approved"
    assert rules.is_final("media", "approved") and not rules.is_final("users", "approved")


def test_nobody_takes_a_step_on_their_own_application():
    with pytest.raises(Forbidden) as err:
        rules.check_not_involved("SysAdm", "check", "sysadm", None)
    assert err.value.code == "application_own"
    with pytest.raises(Forbidden) as err:
        rules.check_not_involved("jigyo1", "approve", "sysadm", "jigyo1")
    assert err.value.code == "application_same_checker"
    rules.check_not_involved("ops1", "approve", "sysadm", "jigyo1")


# ---- the workbook's rows ----------------------------------------------------------------------


def test_the_template_reads_back_with_its_layout():
    rows = rows_of(template())
    header, errors = rules.read_header(rows)
    assert errors == [] or {e.code for e in errors} == {"app_contract_required", "app_company_required"}
    assert header is not None and header.form is rules.USERS
    width = len(rules.USERS.columns)
    assert list(rows[rules.HEADER_ROW - 1][:width]) == [c.heading for c in rules.USERS.columns]
    assert not any(rows[rules.HEADER_ROW - 1][width:])


def test_every_bad_cell_is_an_error_of_its_row_and_column():
    data = fill(template(), "C-1", "会社", [
        ["登録", "ok.user", "山田 太郎", date(1980, 4, 1), None, None, None, "はい", None, None],
        ["とうろく", "x", "", "1980-13-01", None, "社長", "2020-01-01", "たぶん", None, None],
        ["削除", "ok.user", None, None, None, None, None, None, None, None],
        ["登録", "nobody.id", "鈴木 一郎", None, None, None, None, None, None, None],
    ])
    header, errors = rules.read_header(rows_of(data))
    assert errors == []
    valid, errors = rules.parse_rows(header.form, rows_of(data), rules.Context(TODAY, date(2027, 3, 31)))
    where = {(e.row, e.column, e.code) for e in errors}
    assert {(8, "A", "app_action_invalid"), (8, "B", "app_user_id_invalid"),
            (8, "D", "app_date_invalid"), (8, "F", "app_role_invalid"), (8, "G", "app_ends_on_past"),
            (8, "H", "app_consent_invalid"), (9, "B", "app_duplicate"),
            (10, "D", "app_identity_required")} <= where
    assert [r["row"] for r in valid] == [7, 9]  # well-formed rows (9 repeats 7: an error all the same)
    assert all(e.code in MESSAGES for e in errors)
    line = rules.describe(next(e for e in errors if e.code == "app_role_invalid"), "en")
    assert line.startswith("row 8, column F: ") and line.isascii()
    assert rules.describe(next(e for e in errors if e.code == "app_role_invalid")).startswith("8行・F列：")


def test_wrong_columns_are_reported_by_column():
    book = openpyxl.load_workbook(io.BytesIO(template()))
    ws = book.worksheets[0]
    ws["C6"], ws["L6"] = "名前", "余計な列"
    out = io.BytesIO()
    book.save(out)
    _, errors = rules.read_header(rows_of(out.getvalue()))
    assert {(e.row, e.column, e.code) for e in errors} >= {(6, "C", "app_column_wrong"),
                                                           (6, "L", "app_column_extra")}


def test_a_roster_needs_a_name_and_a_birth_date_or_staff_number():
    people, errors = rules.parse_roster([("氏名", "生年月日"), ("山田 太郎", "1980/4/1"),
                                         ("佐藤 花子", datetime(1985, 12, 24)), (None, None)], TODAY)
    assert errors == [] and [p.birth_date for p in people] == [date(1980, 4, 1), date(1985, 12, 24)]
    _, errors = rules.parse_roster([("名前", "年齢"), ("山田", 40)], TODAY)
    assert [e.code for e in errors] == ["roster_headings"]
    _, errors = rules.parse_roster([("氏名", "社員番号"), ("山田", None), ("", "E-1")], TODAY)
    assert {(e.row, e.code) for e in errors} == {(2, "app_identity_required"), (3, "app_name_required")}


def test_preconditions_name_their_cells():
    errors = rules.precondition_errors("applying", date(2026, 5, 1), None, None, None, TODAY)
    assert {(e.row, e.column, e.code) for e in errors} == {
        (4, "B", "app_not_subscribed"), (3, "B", "app_contract_not_concluded"),
        (3, "B", "app_contract_not_eligible")}
    assert rules.precondition_errors("complete", TODAY, "exemption", "通達第8項第1号", None, TODAY) == []
    assert rules.precondition_errors("complete", TODAY, "exemption", "", None, TODAY) != []


# ---- hostile files ----------------------------------------------------------------------------


def refused(name: str, data: bytes) -> str:
    with pytest.raises(FileRefused) as err:
        workbooks.read_form(name, data, LIMITS)
    return err.value.code


def test_a_formula_is_refused_and_never_evaluated():
    data = fill(template(), "C-1", "会社", [["登録", "a.user", "=1+1", None, None, None, None, None, None,
                                             None]])
    assert refused("a.xlsx", data) == "file_formula"


def test_a_macro_workbook_is_refused_by_name_and_by_content():
    data = template()
    assert refused("申請書.xlsm", data) == "file_macro"
    with_vba = rezip(data, {"xl/vbaProject.bin": b"\x00" * 64})
    assert refused("申請書.xlsx", with_vba) == "file_macro"
    types = part(data, "[Content_Types].xml").replace(
        b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        b"application/vnd.ms-excel.sheet.macroEnabled.main+xml")
    assert refused("申請書.xlsx", rezip(data, {"[Content_Types].xml": types})) == "file_macro"


def test_a_large_file_is_refused_before_it_is_opened():
    big = b"PK\x03\x04" + b"\x00" * (50 * 1024 * 1024)
    assert refused("big.xlsx", big) == "file_too_large"


def test_a_zip_bomb_is_refused_from_its_directory():
    bomb = rezip(template(), {"xl/media/zeros.xml": b"<a>" + b"0" * (30 * 1024 * 1024) + b"</a>"})
    assert len(bomb) < LIMITS.max_bytes
    assert refused("bomb.xlsx", bomb) == "file_zip_bomb"
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(LIMITS.max_parts + 1):
            z.writestr(f"p{i}.xml", b"<a/>")
    assert refused("many.xlsx", many.getvalue()) == "file_zip_bomb"


def test_hidden_sheets_external_links_and_entities_are_refused():
    data = template()
    book = part(data, "xl/workbook.xml")
    notes = '<sheet name="記入要領"'.encode()
    hidden = book.replace(notes, notes.replace(b"<sheet ", b'<sheet state="hidden" '))
    assert hidden != book
    assert refused("a.xlsx", rezip(data, {"xl/workbook.xml": hidden})) == "file_hidden_sheet"
    assert refused("a.xlsx", rezip(data, {"xl/externalLinks/externalLink1.xml": b"<externalLink/>"})) \
        == "file_external_link"
    rels = part(data, "xl/_rels/workbook.xml.rels").replace(
        b"</Relationships>", b'<Relationship Id="rX" Type="http://schemas.openxmlformats.org/officeDocument/'
        b'2006/relationships/attachedTemplate" Target="file:///evil.xltm" TargetMode="External"/>'
        b"</Relationships>")
    assert refused("a.xlsx", rezip(data, {"xl/_rels/workbook.xml.rels": rels})) == "file_external_link"
    dtd = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]>' + part(data, "xl/workbook.xml")[38:]
    assert refused("a.xlsx", rezip(data, {"xl/workbook.xml": dtd})) == "file_xml_entities"


def test_other_files_are_refused():
    assert refused("a.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100) == "file_type"
    assert refused("a.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100) == "file_type"  # encrypted
    assert refused("a.xlsx", b"not a zip") == "file_type"
    assert refused("a.exe", template()) == "file_type"
    assert refused("a.xlsx", b"PK\x03\x04garbage") == "file_unreadable"


def test_too_many_rows_or_columns_are_refused():
    small = Limits(max_rows=20, max_columns=12)
    rows = [["登録", f"user{i:03d}", "山田", date(1980, 1, 1)] for i in range(30)]
    data = fill(template(), "C-1", "会社", rows)
    with pytest.raises(FileRefused) as err:
        workbooks.read_form("a.xlsx", data, small)
    assert err.value.code == "file_too_many_rows"
    wide = fill(template(), "C-1", "会社", [["登録"] + [None] * 14 + ["x"]])
    with pytest.raises(FileRefused) as err:
        workbooks.read_form("a.xlsx", wide, small)
    assert err.value.code == "file_too_many_columns"


def test_csv_rosters_are_read_and_formulas_refused():
    assert workbooks.read_table("r.csv", "氏名,生年月日\r\n山田,1980-04-01\r\n".encode("cp932"), LIMITS) == [
        ("氏名", "生年月日"), ("山田", "1980-04-01")]
    with pytest.raises(FileRefused) as err:
        workbooks.read_table("r.csv", b"name,birth\r\n=HYPERLINK(\"http://x\"),1\r\n", LIMITS)
    assert err.value.code == "file_formula"


def test_the_parameter_sheet_is_encrypted_and_keeps_passwords_as_text():
    accounts = [workbooks.SheetAccount("yamada", "山田 太郎", "利用者", "=Ab3$cd+EF9!gh12")]
    data = workbooks.parameter_sheet("会社", "C-1", 1, "https://dsg.example/", accounts,
                                     datetime(2026, 4, 1, 9, 0), "Sheet-Pass-1")
    assert data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # an encrypted Office file
    assert b"yamada" not in data and b"=Ab3$cd+EF9!gh12" not in data
    with pytest.raises(Exception):  # noqa: B017 (msoffcrypto's own error for a wrong password)
        workbooks.decrypt(data, "wrong")
    clear = workbooks.decrypt(data, "Sheet-Pass-1")
    ws = openpyxl.load_workbook(io.BytesIO(clear)).worksheets[0]
    values = [c.value for row in ws.iter_rows() for c in row]
    assert "=Ab3$cd+EF9!gh12" in values and "https://dsg.example/" in values
    assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)


def test_a_claimed_size_is_not_believed_and_hidden_rows_are_refused():
    import re
    import time

    data = template()
    sheet = part(data, "xl/worksheets/sheet1.xml")
    huge = re.sub(rb'<dimension ref="[^"]*"\s*/>', b'<dimension ref="A1:XFD1048576"/>', sheet)
    assert huge != sheet
    started = time.monotonic()
    rows = workbooks.read_form("a.xlsx", rezip(data, {"xl/worksheets/sheet1.xml": huge}), LIMITS)
    assert time.monotonic() - started < 2 and max(len(r) for r in rows) <= LIMITS.max_columns
    hidden = sheet.replace(b'<row r="7"', b'<row hidden="1" r="7"', 1)
    assert hidden != sheet
    assert refused("a.xlsx", rezip(data, {"xl/worksheets/sheet1.xml": hidden})) == "file_hidden_rows"
