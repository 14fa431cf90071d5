"""Usage applications ([11 of 12], R21; 003 §3-§6, 002): the rules, as plain Python.

- The forms: the column layout of each application workbook (users: the per-contract
  registration/deletion application 「利用者登録・削除申請書」, also used for changes; access:
  「アクセス権限設定申請書」; media: 「可搬記憶媒体登録・削除申請書」), the same for the template
  and the importer (docs/decisions/0015-usage-applications.md).
- Row validation: every cell of every row checked, every failure a `RowError` (row, column,
  code); a workbook with any error imports nothing.
- Rosters: names normalised (NFKC, no spaces, case folded) and the matching rule: a person is
  on a roster when the normalised names are equal and the birth date or the staff number
  agrees, and nothing that both sides give disagrees.
- Preconditions: the company's subscription complete (加入完了), the contract concluded (no
  application before its conclusion date) and eligible (the security clause or an exemption).
- The state machine: submitted → checked (procuring office) → approved (agency) → issued, or
  rejected; access and media applications: submitted → approved (applied), or rejected.
  Nobody takes a step on their own application, nor approves what they checked.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from authsvc.domain import identifiers
from authsvc.domain.errors import DomainError, Forbidden

FORMAT_ROW = 2     # B2: the form's code
CONTRACT_ROW = 3   # B3: the contract number
COMPANY_ROW = 4    # B4: the company's name (as the contract spells it)
HEADER_ROW = 6     # the column headings
FIRST_ROW = 7      # the first person (or group member, or medium)
MAX_TEXT = 200


# ---- errors -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """One failure: the sheet row (1-based, as Excel shows it; 0 for the file itself), the
    column letter ("" for the whole row), a message code and its parameters."""

    row: int
    column: str
    code: str
    params: dict[str, Any] = field(default_factory=dict)
    file: str = ""

    def to_dict(self, lang: str = "ja") -> dict[str, Any]:
        return {"file": self.file, "row": self.row, "column": self.column, "code": self.code,
                "message": describe(self, lang)}


def describe(err: RowError, lang: str = "ja") -> str:
    """The error as one line: where, then what (Japanese by default, or English)."""
    from authsvc.domain.messages import text

    where = []
    if err.row:
        where.append(f"{err.row}行" if lang != "en" else f"row {err.row}")
    if err.column:
        where.append(f"{err.column}列" if lang != "en" else f"column {err.column}")
    if not where:
        return text(err.code, lang, **err.params)
    prefix = "・".join(where) + "：" if lang != "en" else ", ".join(where) + ": "
    return prefix + text(err.code, lang, **err.params)


class ApplicationInvalid(DomainError):
    """A workbook (or roster) with errors: nothing of it was imported. `errors` lists every
    failure found, by file, row and column."""

    code = "application_invalid"

    def __init__(self, errors: list[RowError], **params: Any) -> None:
        super().__init__(self.code, count=len(errors), **params)
        self.errors = errors

    def lines(self, lang: str = "ja") -> list[str]:
        return [(f"{e.file}: " if e.file else "") + describe(e, lang) for e in self.errors]


# ---- the forms --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    ja: str
    en: str
    hint_ja: str = ""
    hint_en: str = ""

    @property
    def heading(self) -> str:
        return f"{self.ja} / {self.en}"


@dataclass(frozen=True)
class Form:
    code: str  # in B2 of every workbook of this form
    kind: str  # users | access | media
    sheet: str
    title_ja: str
    title_en: str
    columns: tuple[Column, ...]

    def letter(self, name: str) -> str:
        return column_letter([c.name for c in self.columns].index(name) + 1)


ACTIONS = {"register": ("登録", "register"), "delete": ("削除", "delete"), "change": ("変更", "change"),
           "add": ("追加", "add"), "remove": ("削除", "remove")}
ROLE_LABELS = {"user": "利用者", "data_manager": "データ管理責任者", "staff": "保護システム担当者",
               "account_admin": "アカウント管理者", "system_admin": "保護システム管理者"}
MEDIA_TYPES = {"usb": "USBメモリ", "optical_drive": "光学ドライブ", "external_disk": "外付けディスク",
               "sd_card": "SDカード", "other": "その他"}

USERS = Form("DSG-USERS-1", "users", "利用者登録・削除申請書",
             "防衛セキュリティゲートウェイサービス利用者登録・削除申請書",
             "DSG service user registration / deletion application", (
                 Column("action", "区分", "Action", "登録・削除・変更", "register, delete or change"),
                 Column("user_id", "ユーザID", "User ID", "英数字と . _ - で3～64文字",
                        "3-64 letters, digits, . _ -"),
                 Column("name", "氏名", "Name", "取扱者名簿のとおり", "as on the handler roster"),
                 Column("birth_date", "生年月日", "Date of birth", "例 1980-04-01", "e.g. 1980-04-01"),
                 Column("staff_number", "社員番号", "Staff number", "生年月日か社員番号のどちらかは必須",
                        "date of birth or staff number required"),
                 Column("role", "役割", "Role", "利用者・データ管理責任者 など（空欄は利用者）",
                        "user, data_manager ... (blank: user)"),
                 Column("ends_on", "利用終了日", "Last day of use", "空欄は契約期間のとおり",
                        "blank: the contract's period"),
                 Column("consent", "遠隔登録への同意", "Consent to remote registration", "はい・いいえ",
                        "yes or no"),
                 Column("linked_user_id", "同一人物の既存ユーザID", "Existing user ID of the same person",
                        "他の契約でアカウントを持つ方", "if the person has an account on another contract"),
                 Column("note", "備考", "Note"),
             ))
ACCESS = Form("DSG-ACCESS-1", "access", "アクセス権限設定申請書",
              "アクセス権限設定申請書", "Access right application", (
                  Column("action", "区分", "Action", "追加・削除", "add or remove"),
                  Column("group", "グループ", "Group"),
                  Column("user_id", "ユーザID", "User ID"),
                  Column("note", "備考", "Note"),
              ))
MEDIA = Form("DSG-MEDIA-1", "media", "可搬記憶媒体登録・削除申請書",
             "可搬記憶媒体登録・削除申請書", "Removable media registration / deletion application", (
                 Column("action", "区分", "Action", "登録・削除", "register or delete"),
                 Column("serial", "シリアル番号", "Serial number", "媒体を特定できる番号",
                        "the number that identifies the medium"),
                 Column("media_type", "媒体の種類", "Kind of medium",
                        "USBメモリ・光学ドライブ・外付けディスク・SDカード・その他",
                        "usb, optical_drive, external_disk, sd_card, other"),
                 Column("description", "名称・型番", "Make and model"),
                 Column("note", "備考", "Note"),
             ))
FORMS = {f.kind: f for f in (USERS, ACCESS, MEDIA)}
FORM_CODES = {f.code: f for f in FORMS.values()}
ROW_ACTIONS = {"users": ("register", "delete", "change"), "access": ("add", "remove"),
               "media": ("register", "delete")}


def column_letter(index: int) -> str:
    """1 → A, 27 → AA."""
    out = ""
    while index:
        index, rest = divmod(index - 1, 26)
        out = chr(65 + rest) + out
    return out


def form(kind: str) -> Form:
    if kind not in FORMS:
        raise DomainError("application_form_unknown", form=str(kind)[:32])
    return FORMS[kind]


# ---- cell values ------------------------------------------------------------------------------


def _fold(value: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", value).split()).casefold()


def is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _bad_char(value: str) -> bool:
    return any(unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp")
               for c in value)


def text_of(value: object, limit: int = MAX_TEXT) -> str:
    """A cell as text: NFKC, outer spaces dropped; numbers without a trailing .0. Raises
    DomainError for what is not plain text (control characters, a formula-like value)."""
    if isinstance(value, bool):
        raise DomainError("app_text_invalid")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise DomainError("app_text_invalid")
    value = " ".join(unicodedata.normalize("NFKC", value).split(" ")).strip()
    if len(value) > limit or _bad_char(value) or value[:1] in ("=", "+", "@"):
        raise DomainError("app_text_invalid")
    return value


def date_of(value: object) -> date:
    """A date cell, or text as 2026-04-01, 2026/4/1 or 2026年4月1日."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?",
                         unicodedata.normalize("NFKC", value).strip())
        if m:
            try:
                return date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                pass
    raise DomainError("app_date_invalid")


def name_key(name: str) -> str:
    """A person's name as rosters are matched: NFKC (full-width letters and digits become
    half-width, half-width kana full-width), every space (the ideographic one too) and middle
    dot dropped, case folded. 「山田　太郎」, 「山田 太郎」 and 「山田太郎」 are one name."""
    folded = unicodedata.normalize("NFKC", name or "")
    return "".join(c for c in folded if not c.isspace() and c not in "・·").casefold()


def staff_key(value: str | None) -> str | None:
    """A staff number compared: NFKC, no spaces, upper case (None when blank)."""
    if value is None:
        return None
    key = "".join(unicodedata.normalize("NFKC", value).split()).upper()
    return key or None


@dataclass(frozen=True)
class Identity:
    """What a roster knows of a person, and what an application row says."""

    name_key: str
    birth_date: date | None
    staff_number: str | None


def matches(person: Identity, entry: Identity) -> bool:
    """The matching rule (docs/decisions/0015): the normalised names are equal; at least one of
    the birth date and the staff number is given on both sides and equal; and neither, where
    both sides give it, differs."""
    if not person.name_key or person.name_key != entry.name_key:
        return False
    shared = False
    for mine, theirs in ((person.birth_date, entry.birth_date),
                         (staff_key(person.staff_number), staff_key(entry.staff_number))):
        if mine is not None and theirs is not None:
            if mine != theirs:
                return False
            shared = True
    return shared


def on_roster(person: Identity, roster: list[Identity]) -> bool:
    return any(matches(person, entry) for entry in roster)


# ---- the workbook's header --------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    form: Form
    contract: str
    company: str


def _cell(rows: list[tuple[Any, ...]], row: int, col: int) -> Any:
    if len(rows) < row or len(rows[row - 1]) < col:
        return None
    return rows[row - 1][col - 1]


def read_header(rows: list[tuple[Any, ...]], file: str = "") -> tuple[Header | None, list[RowError]]:
    """The form, contract and company of a sheet's header block, and the column headings
    checked against the form's layout."""
    errors: list[RowError] = []
    code = _cell(rows, FORMAT_ROW, 2)
    found = FORM_CODES.get(code.strip()) if isinstance(code, str) else None
    if found is None:
        return None, [RowError(FORMAT_ROW, "B", "app_form_unknown", {"forms": ", ".join(FORM_CODES)}, file)]
    values: dict[str, str] = {}
    for row, name in ((CONTRACT_ROW, "contract"), (COMPANY_ROW, "company")):
        raw = _cell(rows, row, 2)
        try:
            values[name] = text_of(raw) if not is_blank(raw) else ""
        except DomainError:
            values[name] = ""
        if not values[name]:
            errors.append(RowError(row, "B", f"app_{name}_required", {}, file))
    for i, col in enumerate(found.columns, start=1):
        heading = _cell(rows, HEADER_ROW, i)
        wanted = {_fold(col.heading), _fold(col.ja), _fold(col.en), _fold(col.name)}
        if not isinstance(heading, str) or _fold(heading) not in wanted:
            errors.append(RowError(HEADER_ROW, column_letter(i), "app_column_wrong",
                                   {"expected": col.heading}, file))
    extra = [i for i, v in enumerate(rows[HEADER_ROW - 1] if len(rows) >= HEADER_ROW else (), start=1)
             if i > len(found.columns) and not is_blank(v)]
    errors += [RowError(HEADER_ROW, column_letter(i), "app_column_extra", {}, file) for i in extra]
    return Header(found, values["contract"], values["company"]), errors


# ---- rows -------------------------------------------------------------------------------------


def _action(value: object, kind: str) -> str:
    key = _fold(text_of(value))
    for action in ROW_ACTIONS[kind]:
        if key in {_fold(a) for a in (action, *ACTIONS[action])}:
            return action
    raise DomainError("app_action_invalid", actions="、".join(ACTIONS[a][0] for a in ROW_ACTIONS[kind]))


def _role(value: object) -> str:
    if is_blank(value):
        return "user"
    key = _fold(text_of(value))
    for role, label in ROLE_LABELS.items():
        if key in (_fold(role), _fold(label)):
            return role
    raise DomainError("app_role_invalid")


def _yes(value: object) -> bool:
    if is_blank(value):
        return False
    key = _fold(text_of(value))
    if key in ("はい", "yes", "y", "true", "1", "○", "〇", "同意する", "同意"):
        return True
    if key in ("いいえ", "no", "n", "false", "0", "×", "同意しない"):
        return False
    raise DomainError("app_consent_invalid")


_SERIAL = re.compile(r"[A-Z0-9][A-Z0-9._:/-]{3,63}")
_NO_SERIAL = {"なし", "無し", "不明", "N/A", "NA", "NONE", "UNKNOWN", "NULL", "-", "NOSERIAL"}


def serial_of(value: object) -> str:
    """A removable medium's serial number, or DomainError when it does not identify one
    (003 6②: media without an identifiable serial are refused)."""
    if is_blank(value):
        raise DomainError("app_serial_required")
    serial = "".join(text_of(value, 64).split()).upper()
    if (serial in _NO_SERIAL or not _SERIAL.fullmatch(serial)
            or len(set(serial.replace("-", ""))) < 2):  # 0000, XXXX-XXXX: no serial at all
        raise DomainError("app_serial_unidentifiable")
    return serial


def _media_type(value: object) -> str:
    key = _fold(text_of(value))
    for kind, label in MEDIA_TYPES.items():
        if key in (_fold(kind), _fold(label)):
            return kind
    raise DomainError("app_media_type_invalid", kinds="、".join(MEDIA_TYPES.values()))


@dataclass(frozen=True)
class Context:
    """What row validation needs to know of the world: today (JST) and the contract's period."""

    today: date
    contract_ends: date | None = None


def parse_rows(form_: Form, rows: list[tuple[Any, ...]], ctx: Context, file: str = "",
               seen: dict[str, tuple[str, int]] | None = None,
               ) -> tuple[list[dict[str, Any]], list[RowError]]:
    """Every data row (from FIRST_ROW; blank rows skipped) validated cell by cell. Returns the
    normalised rows (each with its sheet row number) and every error; `seen`: the keys of the
    workbooks uploaded with this one (duplicates across them are errors too)."""
    out: list[dict[str, Any]] = []
    errors: list[RowError] = []
    width = len(form_.columns)
    for number, raw in enumerate(rows[FIRST_ROW - 1:], start=FIRST_ROW):
        cells = list(raw[:width]) + [None] * max(0, width - len(raw))
        if all(is_blank(v) for v in raw):
            continue
        extra = [i for i, v in enumerate(raw, start=1) if i > width and not is_blank(v)]
        errors += [RowError(number, column_letter(i), "app_column_extra", {}, file) for i in extra]
        values = dict(zip((c.name for c in form_.columns), cells, strict=True))
        parsed, row_errors = _PARSERS[form_.kind](values, ctx, form_, number, file)
        errors += row_errors
        if not row_errors:
            out.append({"row": number, **parsed})
    if not out and not errors:
        errors.append(RowError(FIRST_ROW, "", "app_no_rows", {}, file))
    errors += duplicates(form_, out, file, seen)
    return out, errors


def duplicates(form_: Form, rows: list[dict[str, Any]], file: str = "",
               seen: dict[str, tuple[str, int]] | None = None) -> list[RowError]:
    """The same user ID (or serial, or user in a group) twice: every repeat is an error naming
    the first. `seen` carries the keys of the other workbooks uploaded with this one."""
    seen = {} if seen is None else seen
    errors = []
    key_name = {"users": "user_id", "access": "user_id", "media": "serial"}[form_.kind]
    for r in rows:
        key = r[key_name].lower() if form_.kind != "access" else f"{r['group']}\n{r['user_id']}".lower()
        if key in seen:
            first_file, first_row = seen[key]
            errors.append(RowError(r["row"], form_.letter(key_name), "app_duplicate",
                                   {"value": r[key_name], "first": first_row,
                                    "first_file": first_file or "-"}, file))
        else:
            seen[key] = (file, r["row"])
    return errors


def _field(errors: list[RowError], form_: Form, number: int, file: str, name: str,
           fn: Any, value: Any) -> Any:
    try:
        return fn(value)
    except DomainError as exc:
        errors.append(RowError(number, form_.letter(name), exc.code, exc.params, file))
        return None


def _user_id(value: object) -> str:
    text = text_of(value, 64) if not is_blank(value) else ""
    if identifiers.canonical_or_none(text) is None:
        raise DomainError("app_user_id_invalid")
    return text


def _name(value: object) -> str:
    if is_blank(value):
        raise DomainError("app_name_required")
    name = text_of(value)
    if not name_key(name):
        raise DomainError("app_name_required")
    return name


def _users_row(v: dict[str, Any], ctx: Context, f: Form, n: int,
               file: str) -> tuple[dict[str, Any], list[RowError]]:
    errors: list[RowError] = []
    action = _field(errors, f, n, file, "action", lambda x: _action(x, "users"), v["action"])
    user_id = _field(errors, f, n, file, "user_id", _user_id, v["user_id"])
    named = action in ("register", "change") or not is_blank(v["name"])
    name = _field(errors, f, n, file, "name", _name, v["name"]) if named else None
    birth = None
    if not is_blank(v["birth_date"]):
        birth = _field(errors, f, n, file, "birth_date", date_of, v["birth_date"])
        if birth is not None and not date(1900, 1, 1) <= birth < ctx.today:
            errors.append(RowError(n, f.letter("birth_date"), "app_birth_date_invalid", {}, file))
    staff = None
    if not is_blank(v["staff_number"]):
        staff = _field(errors, f, n, file, "staff_number", lambda x: staff_key(text_of(x, 64)),
                       v["staff_number"])
    if action in ("register", "change") and is_blank(v["birth_date"]) and is_blank(v["staff_number"]):
        errors.append(RowError(n, f.letter("birth_date"), "app_identity_required", {}, file))
    role = _field(errors, f, n, file, "role", _role, v["role"])
    ends = None
    if not is_blank(v["ends_on"]):
        ends = _field(errors, f, n, file, "ends_on", date_of, v["ends_on"])
        if ends is not None and ends < ctx.today:
            errors.append(RowError(n, f.letter("ends_on"), "app_ends_on_past", {}, file))
        elif ends is not None and ctx.contract_ends is not None and ends > ctx.contract_ends:
            errors.append(RowError(n, f.letter("ends_on"), "app_ends_on_after_contract",
                                   {"ends_on": ctx.contract_ends.isoformat()}, file))
    consent = _field(errors, f, n, file, "consent", _yes, v["consent"])
    linked = None
    if not is_blank(v["linked_user_id"]):
        linked = _field(errors, f, n, file, "linked_user_id", _user_id, v["linked_user_id"])
    if not is_blank(v["note"]):
        _field(errors, f, n, file, "note", text_of, v["note"])
    return {"action": action, "user_id": user_id, "name": name,
            "name_key": name_key(name) if name else None,
            "birth_date": birth.isoformat() if birth else None, "staff_number": staff,
            "role": role, "ends_on": ends.isoformat() if ends else None, "consent": bool(consent),
            "linked_user_id": linked}, errors


def _access_row(v: dict[str, Any], ctx: Context, f: Form, n: int,
                file: str) -> tuple[dict[str, Any], list[RowError]]:
    errors: list[RowError] = []
    action = _field(errors, f, n, file, "action", lambda x: _action(x, "access"), v["action"])
    group = _field(errors, f, n, file, "group", _group_name, v["group"])
    user_id = _field(errors, f, n, file, "user_id", _user_id, v["user_id"])
    if not is_blank(v["note"]):
        _field(errors, f, n, file, "note", text_of, v["note"])
    return {"action": action, "group": group, "user_id": user_id}, errors


def _group_name(value: object) -> str:
    if is_blank(value):
        raise DomainError("app_group_required")
    return text_of(value, 100)


def _media_row(v: dict[str, Any], ctx: Context, f: Form, n: int,
               file: str) -> tuple[dict[str, Any], list[RowError]]:
    errors: list[RowError] = []
    action = _field(errors, f, n, file, "action", lambda x: _action(x, "media"), v["action"])
    serial = _field(errors, f, n, file, "serial", serial_of, v["serial"])
    kind = _field(errors, f, n, file, "media_type", _media_type, v["media_type"]) \
        if action == "register" or not is_blank(v["media_type"]) else None
    description = ""
    if not is_blank(v["description"]):
        description = _field(errors, f, n, file, "description", text_of, v["description"]) or ""
    if not is_blank(v["note"]):
        _field(errors, f, n, file, "note", text_of, v["note"])
    return {"action": action, "serial": serial, "media_type": kind, "description": description}, errors


_PARSERS = {"users": _users_row, "access": _access_row, "media": _media_row}


# ---- rosters ----------------------------------------------------------------------------------

ROSTER_KINDS = ("handlers", "system_users")  # 取扱者名簿, 保護システム利用者名簿
_ROSTER_HEADINGS = {"name": ("氏名", "name"), "birth_date": ("生年月日", "date of birth", "birth_date"),
                    "staff_number": ("社員番号", "staff number", "staff_number")}


def roster_kind(value: str) -> str:
    if value not in ROSTER_KINDS:
        raise DomainError("roster_kind_unknown", kinds=", ".join(ROSTER_KINDS))
    return value


def parse_roster(rows: list[tuple[Any, ...]], today: date,
                 file: str = "") -> tuple[list[Identity], list[RowError]]:
    """A roster: a heading row naming 氏名 (name) and 生年月日 (date of birth) and/or 社員番号
    (staff number), in any order, then one person a row."""
    if not rows:
        return [], [RowError(1, "", "roster_empty", {}, file)]
    where: dict[str, int] = {}
    for i, heading in enumerate(rows[0]):
        if isinstance(heading, str):
            for name, labels in _ROSTER_HEADINGS.items():
                if _fold(heading) in {_fold(x) for x in labels} and name not in where:
                    where[name] = i
    if "name" not in where or not ({"birth_date", "staff_number"} & set(where)):
        return [], [RowError(1, "", "roster_headings", {}, file)]
    people: list[Identity] = []
    errors: list[RowError] = []
    for number, raw in enumerate(rows[1:], start=2):
        if all(is_blank(v) for v in raw):
            continue

        def cell(name: str, raw: tuple[Any, ...] = raw) -> Any:
            i = where.get(name)
            return raw[i] if i is not None and i < len(raw) else None

        row_errors: list[RowError] = []

        def at(name: str) -> str:
            return column_letter(where[name] + 1)

        name = birth = staff = None
        try:
            name = _name(cell("name"))
        except DomainError as exc:
            row_errors.append(RowError(number, at("name"), exc.code, exc.params, file))
        if not is_blank(cell("birth_date")):
            try:
                birth = date_of(cell("birth_date"))
                if not date(1900, 1, 1) <= birth < today:
                    raise DomainError("app_birth_date_invalid")
            except DomainError as exc:
                row_errors.append(RowError(number, at("birth_date"), exc.code, exc.params, file))
        if not is_blank(cell("staff_number")):
            try:
                staff = staff_key(text_of(cell("staff_number"), 64))
            except DomainError as exc:
                row_errors.append(RowError(number, at("staff_number"), exc.code, exc.params, file))
        if birth is None and staff is None and not row_errors:
            row_errors.append(RowError(number, "", "app_identity_required", {}, file))
        errors += row_errors
        if not row_errors and name is not None:
            people.append(Identity(name_key(name), birth, staff))
    if not people and not errors:
        errors.append(RowError(2, "", "roster_empty", {}, file))
    return people, errors


def row_identity(row: dict[str, Any]) -> Identity:
    birth = date.fromisoformat(row["birth_date"]) if row.get("birth_date") else None
    return Identity(row.get("name_key") or "", birth, row.get("staff_number"))


# ---- preconditions ----------------------------------------------------------------------------

SUBSCRIPTIONS = ("applying", "complete", "withdrawn")
ELIGIBILITY = ("clause", "exemption")


def precondition_errors(subscription: str | None, concluded_on: date | None, eligibility: str | None,
                        exemption_note: str | None, contract_ends: date | None, today: date,
                        file: str = "") -> list[RowError]:
    """003 3 and 4①(2): why the contract's company may not apply yet (the header's cells)."""
    errors = []
    if subscription != "complete":
        errors.append(RowError(COMPANY_ROW, "B", "app_not_subscribed", {}, file))
    if concluded_on is None or today < concluded_on:
        errors.append(RowError(CONTRACT_ROW, "B", "app_contract_not_concluded",
                               {"date": concluded_on.isoformat() if concluded_on else "-"}, file))
    if eligibility not in ELIGIBILITY or (eligibility == "exemption" and not (exemption_note or "").strip()):
        errors.append(RowError(CONTRACT_ROW, "B", "app_contract_not_eligible", {}, file))
    if contract_ends is not None and today > contract_ends:
        errors.append(RowError(CONTRACT_ROW, "B", "app_contract_ended", {}, file))
    return errors


def check_terms(eligibility: str | None, exemption_note: str | None) -> None:
    if eligibility is not None and eligibility not in ELIGIBILITY:
        raise DomainError("contract_eligibility_invalid", choices=", ".join(ELIGIBILITY))
    if eligibility == "exemption" and not (exemption_note or "").strip():
        raise DomainError("contract_exemption_note_required")


_FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_company(subscription: str, folder: str | None) -> None:
    if subscription not in SUBSCRIPTIONS:
        raise DomainError("company_subscription_invalid", choices=", ".join(SUBSCRIPTIONS))
    if folder is not None and (not _FOLDER.fullmatch(folder) or ".." in folder):
        raise DomainError("company_folder_invalid")


# ---- the state machine ------------------------------------------------------------------------

STEPS: dict[str, dict[str, tuple[str, str]]] = {
    "users": {"check": ("submitted", "checked"), "approve": ("checked", "approved"),
              "issue": ("approved", "issued")},
    "access": {"approve": ("submitted", "approved")},
    "media": {"approve": ("submitted", "approved")},
}
FINAL = {"issued", "rejected"}


def is_final(kind: str, state: str) -> bool:
    return state in FINAL or (state == "approved" and "issue" not in STEPS[kind])


def next_step(kind: str, state: str) -> str | None:
    """The step an application in `state` waits for (None: it is over)."""
    return next((name for name, (src, _) in STEPS[kind].items() if src == state), None)


def step(kind: str, state: str, action: str) -> str:
    """The state after `action` (check, approve, issue, reject), or DomainError."""
    if action == "reject":
        if is_final(kind, state):
            raise DomainError("application_wrong_step", state=state, action=action)
        return "rejected"
    src, dst = STEPS[kind].get(action, ("", ""))
    if state != src:
        raise DomainError("application_wrong_step", state=state, action=action)
    return dst


def check_not_involved(actor_id: str, action: str, submitted_by: str, checked_by: str | None) -> None:
    """Nobody takes a step on an application they submitted, and the agency's approval is
    another person's than the procuring office's check (R24)."""
    me = identifiers.canonical_or_none(actor_id) or actor_id
    if me == (identifiers.canonical_or_none(submitted_by) or submitted_by):
        raise Forbidden("application_own")
    if action == "approve" and checked_by and me == (identifiers.canonical_or_none(checked_by) or checked_by):
        raise Forbidden("application_same_checker")
