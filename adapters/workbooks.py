"""Workbooks and CSV files from outside, read safely; templates and parameter sheets written
([11 of 12], R21). Everything a user uploads is hostile until shown otherwise:

- its size is checked first (`Limits.max_bytes`); only a real .xlsx (a zip package) or .csv is
  read: .xlsm, .xls, encrypted or other files are refused by name and by content;
- before openpyxl sees the package, the zip's directory is read: too many parts, a part that
  unpacks to more than `max_ratio` times its size or all parts to more than
  `max_unzipped_bytes` (a zip bomb), a macro project (vbaProject.bin, macro-enabled content
  types), external links or external relationships, embedded objects or ActiveX, a DOCTYPE
  (entity expansion), hidden sheets, hidden rows or columns and any formula are refused;
- then openpyxl opens it read-only, without evaluating anything (`data_only=False`: a formula
  would be text, and is refused above), and at most `max_rows` × `max_columns` cells are read.

The parameter sheet is written with openpyxl and encrypted with msoffcrypto-tool (ECMA-376
agile encryption, AES-256), so Excel opens it with the password."""

from __future__ import annotations

import csv
import io
import re
import secrets
import string
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from authsvc.domain.applications import (
    COMPANY_ROW,
    CONTRACT_ROW,
    FIRST_ROW,
    FORMAT_ROW,
    HEADER_ROW,
    Form,
    column_letter,
)
from authsvc.domain.errors import DomainError

Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 2 * 1024 * 1024
    max_unzipped_bytes: int = 20 * 1024 * 1024
    max_ratio: int = 100
    max_rows: int = 2000
    max_columns: int = 40
    max_parts: int = 200


class FileRefused(DomainError):
    """The file itself is refused (not one of its rows): `code` says why."""

    code = "file_unreadable"


@dataclass(frozen=True)
class Sheet:
    title: str
    rows: Rows


_MACRO_TYPES = (b"macroEnabled", b"vbaProject", b"ms-office.vbaProject", b"ms-excel.sheet.binary")
_XML_LIMIT = 8 * 1024 * 1024  # one XML part read for the checks below


def _refuse(code: str, **params: Any) -> FileRefused:
    return FileRefused(code, **params)


def kind_of(name: str, data: bytes) -> str:
    """"xlsx" or "csv" by the file's name and content; anything else is refused."""
    lower = (name or "").lower().strip()
    if lower.endswith((".xlsm", ".xltm", ".xlam", ".xlsb")):
        raise _refuse("file_macro")
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":  # OLE: .xls, or an encrypted workbook
        raise _refuse("file_type")
    if lower.endswith(".xlsx"):
        if data[:4] != b"PK\x03\x04":
            raise _refuse("file_type")
        return "xlsx"
    if lower.endswith(".csv"):
        if data[:4] == b"PK\x03\x04":
            raise _refuse("file_type")
        return "csv"
    raise _refuse("file_type")


def check_package(data: bytes, limits: Limits) -> None:
    """The zip package's directory and XML parts checked before openpyxl opens it."""
    if len(data) > limits.max_bytes:
        raise _refuse("file_too_large", limit=limits.max_bytes // 1024)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise _refuse("file_unreadable") from None
    if len(infos) > limits.max_parts:
        raise _refuse("file_zip_bomb")
    total = 0
    for info in infos:
        name = info.filename
        if name.startswith("/") or ".." in name.split("/") or "\\" in name:
            raise _refuse("file_unreadable")
        if info.flag_bits & 0x1:
            raise _refuse("file_type")  # an encrypted zip part
        total += info.file_size
        if total > limits.max_unzipped_bytes:
            raise _refuse("file_zip_bomb")
        if info.file_size > max(info.compress_size, 1) * limits.max_ratio and info.file_size > 64 * 1024:
            raise _refuse("file_zip_bomb")
        lower = name.lower()
        if lower.endswith("vbaproject.bin") or (lower.endswith(".bin") and "vba" in lower):
            raise _refuse("file_macro")
        if lower.startswith("xl/externallinks/"):
            raise _refuse("file_external_link")
        if lower.startswith(("xl/embeddings/", "xl/activex/")) or "/activex" in lower:
            raise _refuse("file_embedded")
    parts = {i.filename: i for i in infos}
    if "[Content_Types].xml" not in parts or "xl/workbook.xml" not in parts:
        raise _refuse("file_unreadable")
    for info in infos:
        lower = info.filename.lower()
        if not (lower.endswith(".xml") or lower.endswith(".rels")):
            continue
        xml = _read_part(archive, info, limits)
        if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
            raise _refuse("file_xml_entities")
        if lower == "[content_types].xml" and any(t in xml for t in _MACRO_TYPES):
            raise _refuse("file_macro")
        if lower.endswith(".rels"):
            for rel in re.findall(rb"<Relationship\b[^>]*>", xml):
                if re.search(rb'TargetMode\s*=\s*"External"', rel) and b"/hyperlink" not in rel:
                    raise _refuse("file_external_link")
                if b"vbaProject" in rel or b"/externalLink" in rel:
                    raise _refuse("file_macro" if b"vba" in rel else "file_external_link")
        if lower == "xl/workbook.xml":
            for sheet in re.findall(rb"<(?:\w+:)?sheet\b[^>]*>", xml):
                if re.search(rb'state\s*=\s*"(hidden|veryHidden)"', sheet):
                    raise _refuse("file_hidden_sheet")
            if re.search(rb"<(?:\w+:)?definedName\b[^>]*>[^<]*\[\d+\]", xml):
                raise _refuse("file_external_link")
        if lower.startswith("xl/worksheets/") and lower.endswith(".xml"):
            if re.search(rb"<(?:\w+:)?f[\s>/]", xml):
                raise _refuse("file_formula")
            if re.search(rb'<(?:\w+:)?(?:row|col)\b[^>]*\bhidden\s*=\s*"(1|true)"', xml):
                raise _refuse("file_hidden_rows")


def _read_part(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits) -> bytes:
    """A part's bytes, never more than its declared size (nor the XML limit)."""
    cap = min(info.file_size, _XML_LIMIT, limits.max_unzipped_bytes)
    with archive.open(info) as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise _refuse("file_zip_bomb")
    return data


def read_xlsx(data: bytes, limits: Limits) -> list[Sheet]:
    """Every sheet of a checked workbook: its rows of plain values (str, int, float, bool,
    datetime, None), at most `max_rows` × `max_columns`."""
    check_package(data, limits)
    import openpyxl  # here: only a checked package reaches it

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False,
                                      keep_vba=False, keep_links=False)
    except Exception:
        raise _refuse("file_unreadable") from None
    try:
        sheets = []
        for ws in book.worksheets:
            if getattr(ws, "sheet_state", "visible") != "visible":
                raise _refuse("file_hidden_sheet")
            rows: Rows = []
            ws.reset_dimensions()  # never trust the file's claimed size: rows come as stored
            for row in ws.iter_rows():  # every stored cell: the unpacked size bounds the work
                if len(rows) >= limits.max_rows:
                    if any(getattr(c, "value", None) not in (None, "") for c in row):
                        raise _refuse("file_too_many_rows", limit=limits.max_rows)
                    continue
                values = []
                for c in row:
                    if getattr(c, "data_type", None) == "f":
                        raise _refuse("file_formula")
                    values.append(getattr(c, "value", None))
                if any(v not in (None, "") for v in values[limits.max_columns:]):
                    raise _refuse("file_too_many_columns", limit=limits.max_columns)
                rows.append(tuple(values[:limits.max_columns]))
            while rows and all(v in (None, "") for v in rows[-1]):
                rows.pop()
            sheets.append(Sheet(ws.title, rows))
        return sheets
    except FileRefused:
        raise
    except Exception:
        raise _refuse("file_unreadable") from None
    finally:
        book.close()


def read_csv(data: bytes, limits: Limits) -> Rows:
    """A CSV file (UTF-8 with or without a BOM, else Shift_JIS/cp932 as Excel writes it)."""
    if len(data) > limits.max_bytes:
        raise _refuse("file_too_large", limit=limits.max_bytes // 1024)
    for encoding in ("utf-8-sig", "cp932"):
        try:
            content = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise _refuse("file_unreadable")
    if "\x00" in content:
        raise _refuse("file_unreadable")
    rows: Rows = []
    try:
        for row in csv.reader(io.StringIO(content, newline="")):
            if len(rows) >= limits.max_rows:
                if any(v.strip() for v in row):
                    raise _refuse("file_too_many_rows", limit=limits.max_rows)
                continue
            if len(row) > limits.max_columns and any(v.strip() for v in row[limits.max_columns:]):
                raise _refuse("file_too_many_columns", limit=limits.max_columns)
            if any(v[:1] in ("=", "+", "@", "\t", "\r") for v in row):
                raise _refuse("file_formula")
            rows.append(tuple(v if v.strip() else None for v in row[:limits.max_columns]))
    except csv.Error:
        raise _refuse("file_unreadable") from None
    return rows


def read_table(name: str, data: bytes, limits: Limits) -> Rows:
    """The first sheet of a workbook, or a CSV file (a roster)."""
    if len(data) > limits.max_bytes:
        raise _refuse("file_too_large", limit=limits.max_bytes // 1024)
    if kind_of(name, data) == "csv":
        return read_csv(data, limits)
    sheets = read_xlsx(data, limits)
    return sheets[0].rows if sheets else []


def read_form(name: str, data: bytes, limits: Limits, sheet: str | None = None) -> Rows:
    """The rows of an application workbook's form sheet (the sheet named `sheet`, else the
    first)."""
    if len(data) > limits.max_bytes:
        raise _refuse("file_too_large", limit=limits.max_bytes // 1024)
    if kind_of(name, data) != "xlsx":
        raise _refuse("file_type")
    sheets = read_xlsx(data, limits)
    if not sheets:
        raise _refuse("file_unreadable")
    for s in sheets:
        if sheet is not None and s.title == sheet:
            return s.rows
    return sheets[0].rows


# ---- writing ----------------------------------------------------------------------------------


def template(form: Form, contract: str = "", company: str = "") -> bytes:
    """The form to fill in: the header block, the column headings, a hint row of comments and
    room for the rows; and a sheet of instructions (记入要领). No example row: whatever is
    written below the headings is imported."""
    import openpyxl
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.worksheet.datavalidation import DataValidation

    book = openpyxl.Workbook()
    ws = book.active
    ws.title = form.sheet
    ws["A1"] = f"{form.title_ja} / {form.title_en}"
    ws["A1"].font = Font(bold=True, size=14)
    for row, label, value in ((FORMAT_ROW, "様式 / Form", form.code),
                              (CONTRACT_ROW, "契約番号 / Contract number", contract),
                              (COMPANY_ROW, "会社名 / Company", company)):
        ws.cell(row=row, column=1, value=label).font = Font(bold=True)
        ws.cell(row=row, column=2, value=value or None)
    fill = PatternFill("solid", fgColor="DDEBF7")
    for i, col in enumerate(form.columns, start=1):
        cell = ws.cell(row=HEADER_ROW, column=i, value=col.heading)
        cell.font, cell.fill = Font(bold=True), fill
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        if col.hint_ja:
            cell.comment = Comment(f"{col.hint_ja}\n{col.hint_en}", "DSG")
        ws.column_dimensions[column_letter(i)].width = max(14, len(col.heading) + 4)
        if col.name in ("birth_date", "ends_on"):
            for r in range(FIRST_ROW, FIRST_ROW + 500):
                ws.cell(row=r, column=i).number_format = "yyyy-mm-dd"
        if col.name in ("user_id", "staff_number", "serial"):
            for r in range(FIRST_ROW, FIRST_ROW + 500):
                ws.cell(row=r, column=i).number_format = "@"
    actions = {"users": "登録,削除,変更", "access": "追加,削除", "media": "登録,削除"}[form.kind]
    check = DataValidation(type="list", formula1=f'"{actions}"', allow_blank=True)
    ws.add_data_validation(check)
    check.add(f"A{FIRST_ROW}:A{FIRST_ROW + 499}")
    ws.freeze_panes = ws.cell(row=FIRST_ROW, column=1)
    notes = book.create_sheet("記入要領")
    lines = [f"{form.title_ja}（{form.code}）の記入要領 / How to fill in {form.code}",
             "1行目から6行目は変更しないでください。 / Do not change rows 1 to 6.",
             f"{FIRST_ROW}行目から1行に1件を記入してください。 / One entry a row from row {FIRST_ROW}.",
             "数式・マクロ・外部リンク・非表示のシートや行は使用できません。 / "
             "Formulas, macros, external links and hidden sheets or rows are refused.",
             "1件でも誤りがあると申請全体を受け付けません（行・列ごとにお知らせします）。 / "
             "One error refuses the whole application (each is reported by row and column)."]
    lines += [f"{c.heading}: {c.hint_ja} / {c.hint_en}" for c in form.columns if c.hint_ja]
    for r, line in enumerate(lines, start=1):
        notes.cell(row=r, column=1, value=line)
    notes.column_dimensions["A"].width = 120
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def workbook(rows: Iterable[Iterable[Any]], title: str = "Sheet1") -> bytes:
    """A plain workbook of the given rows (rosters and tests)."""
    import openpyxl

    book = openpyxl.Workbook()
    ws = book.active
    ws.title = title
    for row in rows:
        ws.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


_SHEET_ALPHABET = string.ascii_letters + string.digits


def sheet_password(length: int = 20) -> str:
    """The parameter sheet's password: random letters and digits (about 119 bits), easy to
    type from what the operator is shown once."""
    return "".join(secrets.choice(_SHEET_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class SheetAccount:
    user_id: str
    name: str
    role: str
    initial_password: str


def parameter_sheet(company: str, contract: str, application: int, service_url: str,
                    accounts: list[SheetAccount], issued: datetime, password: str,
                    prime: str | None = None) -> bytes:
    """The parameter sheet (パラメータシート, 003 4②): the accounts with their initial passwords
    and the service's URL, encrypted with `password` (Excel asks for it). The clear workbook
    exists only in memory here."""
    import msoffcrypto.format.ooxml
    import openpyxl
    from openpyxl.styles import Font

    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "パラメータシート"
    ws["A1"] = "防衛セキュリティゲートウェイサービス パラメータシート / DSG parameter sheet"
    ws["A1"].font = Font(bold=True, size=14)
    header = [("会社名 / Company", company), ("契約番号 / Contract", contract),
              ("申請番号 / Application", application), ("URL", service_url),
              ("発行日時 / Issued", issued.isoformat())]
    if prime:
        header.append(("元請負企業 / Prime contractor", prime))
    for r, (label, value) in enumerate(header, start=2):
        ws.cell(row=r, column=1, value=label).font = Font(bold=True)
        ws.cell(row=r, column=2, value=value)
    top = len(header) + 3
    headings = ["ユーザID / User ID", "氏名 / Name", "役割 / Role", "初期パスワード / Initial password",
                "URL"]
    for i, heading in enumerate(headings, start=1):
        ws.cell(row=top, column=i, value=heading).font = Font(bold=True)
    for r, acc in enumerate(accounts, start=top + 1):
        for i, value in enumerate((acc.user_id, acc.name, acc.role, acc.initial_password, service_url),
                                  start=1):
            cell = ws.cell(row=r, column=i, value=value)
            cell.data_type = "s"  # text, never a formula, whatever the password starts with
            cell.number_format = "@"
    ws.cell(row=top + len(accounts) + 2, column=1,
            value="初回ログオン時にパスワードの変更が必要です。 / "
                  "The password must be changed at the first logon.")
    for letter, width in zip("ABCDE", (20, 24, 20, 28, 40), strict=True):
        ws.column_dimensions[letter].width = width
    clear = io.BytesIO()
    book.save(clear)
    clear.seek(0)
    encrypted = io.BytesIO()
    msoffcrypto.format.ooxml.OOXMLFile(clear).encrypt(password, encrypted)
    clear.seek(0)
    clear.truncate()
    return encrypted.getvalue()


def decrypt(data: bytes, password: str) -> bytes:
    """An encrypted workbook opened with its password (tests, and the operator's checks)."""
    import msoffcrypto

    office = msoffcrypto.OfficeFile(io.BytesIO(data))
    office.load_key(password=password)
    out = io.BytesIO()
    office.decrypt(out)
    return out.getvalue()


def cell_text(value: Any) -> Any:
    """Dates as ISO text for JSON; everything else as it is."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
