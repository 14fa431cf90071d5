"""Helpers of the usage-application tests ([11 of 12]): a world with subscribed companies,
concluded contracts and their rosters, and application workbooks filled in as a company's
administrator would fill the downloaded template (openpyxl, in memory: no binary fixtures)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import openpyxl

from adapters import workbooks
from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, accounts
from authsvc.services import applications as apps
from authsvc.services.accounts import OPERATIONS_CONTRACT

PRIME = "防衛産業株式会社"
SUB = "下請精機株式会社"
OTHER = "他社重工株式会社"
PRIME_CONTRACT = "C-2026-001"
SUB_CONTRACT = "C-2026-001-S1"
OTHER_CONTRACT = "C-2026-900"

# (name as written, date of birth, staff number): on both rosters of the prime contract
PEOPLE = [("山田 太郎", date(1980, 4, 1), "E-1001"), ("佐藤　花子", date(1985, 12, 24), "E-1002"),
          ("ＳＭＩＴＨ Ｊｏｈｎ", date(1979, 7, 7), None)]
SUB_PEOPLE = [("鈴木 一郎", date(1990, 1, 15), "S-77")]


@dataclass(frozen=True)
class World:
    submitter: Actor      # the prime's system administrator (保護システム管理者)
    sub_admin: Actor      # the subcontractor's system administrator
    other_admin: Actor    # another company's system administrator
    checker: Actor        # the procuring office (事業元), on the operations contract
    approver: Actor       # the agency's operator
    data_manager: Actor   # the prime's data manager


def actor(user_id: str, role: Role, company: str = "") -> Actor:
    return Actor(user_id, frozenset({role}), terminal="console-9", source="10.0.0.9", company=company)


def world(deps: Deps, operator: Actor, *, sub_folder: str | None = "sub-seiki",
          subscribed: bool = True, concluded: date | None = None) -> World:
    """Three companies with contracts (the subcontractor's under the prime's), subscribed and
    concluded, each with a folder at the storage site (the subcontractor's as given), the
    prime contract's rosters holding PEOPLE, the subcontract's SUB_PEOPLE; a procuring-office
    account on the operations contract."""
    today = deps.clock.now().date()
    accounts.create_contract(deps, operator, OPERATIONS_CONTRACT, "DSG運用", today, None)
    for number, company in ((PRIME_CONTRACT, PRIME), (SUB_CONTRACT, SUB), (OTHER_CONTRACT, OTHER)):
        accounts.create_contract(deps, operator, number, company, today, date(today.year + 2, 3, 31))
        apps.set_terms(deps, operator, number, concluded or today, "clause",
                       prime=PRIME_CONTRACT if number == SUB_CONTRACT else None)
    for company, folder in ((PRIME, "boei-sangyo"), (SUB, sub_folder), (OTHER, "tasha")):
        apps.set_company(deps, operator, company, "complete" if subscribed else "applying", today, folder)
    second = Actor("ops2", frozenset({Role.AGENCY_OPERATOR}))
    accounts.create_account(deps, operator, "jigyo1", "事業元 担当", OPERATIONS_CONTRACT, "procuring_office")
    accounts.approve_identifier(deps, second, "jigyo1")
    upload_rosters(deps, operator, PRIME_CONTRACT, PEOPLE)
    upload_rosters(deps, operator, SUB_CONTRACT, SUB_PEOPLE)
    return World(actor("sysadm", Role.SYSTEM_ADMIN, PRIME), actor("subadm", Role.SYSTEM_ADMIN, SUB),
                 actor("otheradm", Role.SYSTEM_ADMIN, OTHER), actor("jigyo1", Role.PROCURING_OFFICE),
                 operator, actor("datamgr", Role.DATA_MANAGER, PRIME))


def roster_bytes(people: Iterable[tuple[str, date | None, str | None]], csv: bool = False) -> bytes:
    rows = [("氏名", "生年月日", "社員番号"), *people]
    if csv:
        lines = [",".join("" if v is None else (v.isoformat() if isinstance(v, date) else v) for v in r)
                 for r in rows]
        return ("\r\n".join(lines) + "\r\n").encode("utf-8-sig")
    return workbooks.workbook(rows)


def upload_rosters(deps: Deps, operator: Actor, contract: str,
                   people: Iterable[tuple[str, date | None, str | None]]) -> None:
    people = list(people)
    apps.upload_roster(deps, operator, contract, "handlers",
                       apps.Upload("handlers.xlsx", roster_bytes(people)))
    apps.upload_roster(deps, operator, contract, "system_users",
                       apps.Upload("users.csv", roster_bytes(people, csv=True)))


def fill(template: bytes, contract: str, company: str, rows: Iterable[Iterable[Any]]) -> bytes:
    """The downloaded template, filled in: the contract and company in the header, one row a
    person from row 7."""
    book = openpyxl.load_workbook(io.BytesIO(template))
    ws = book.worksheets[0]
    ws["B3"], ws["B4"] = contract, company
    for r, row in enumerate(rows, start=7):
        for c, value in enumerate(row, start=1):
            ws.cell(row=r, column=c, value=value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def register_row(user_id: str, person: tuple[str, date | None, str | None], role: str = "利用者",
                 consent: str = "はい") -> list[Any]:
    name, born, staff = person
    return ["登録", user_id, name, born, staff, role, None, consent, None, None]


def users_workbook(deps: Deps, admin: Actor, contract: str, company: str,
                   rows: Iterable[Iterable[Any]]) -> bytes:
    return fill(apps.template(deps, admin, "users"), contract, company, rows)


def rezip(data: bytes, change: dict[str, bytes | None]) -> bytes:
    """The package with parts replaced, added (bytes) or removed (None)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename in change:
                continue
            dst.writestr(info.filename, src.read(info.filename))
        for name, value in change.items():
            if value is not None:
                dst.writestr(name, value)
    return out.getvalue()


def part(data: bytes, name: str) -> bytes:
    return zipfile.ZipFile(io.BytesIO(data)).read(name)


def read_sheet(data: bytes, password: str) -> list[tuple[Any, ...]]:
    """The parameter sheet's rows, decrypted with its password (msoffcrypto-tool)."""
    clear = workbooks.decrypt(data, password)
    ws = openpyxl.load_workbook(io.BytesIO(clear), read_only=True).worksheets[0]
    return [tuple(r) for r in ws.iter_rows(values_only=True)]


def sheet_accounts(rows: list[tuple[Any, ...]]) -> dict[str, str]:
    """user ID → initial password, from a decrypted parameter sheet."""
    start = next(i for i, r in enumerate(rows) if r and r[0] == "ユーザID / User ID")
    return {r[0]: r[3] for r in rows[start + 1:] if r and r[0] and r[3]}
