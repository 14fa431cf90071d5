"""Usage applications ([11 of 12], R21, R2; 003 §3-§6, 002): the Excel forms DSG users send,
the rosters they are checked against, the approval, and the parameter sheet.

A company's system administrator submits the workbooks of a contract (a prime contractor's
also those of its subcontractors, 003 4①(4)); each is read safely (adapters/workbooks.py),
every row validated (domain/applications.py) against the world: the company subscribed, the
contract concluded and eligible, the user IDs free, every person on both rosters of the
contract. Any error anywhere: nothing is imported, every error reported by file, row and
column. Then: the procuring office (事業元) checks it (the rosters again), the agency approves
it, and issuing creates the accounts (active: the submitter assigned the IDs, the approver
approved them, R6) with their initial passwords, which exist in clear only inside the
encrypted parameter sheet written to the company's folder (and a subcontractor's also, or only,
to the prime's); the sheet's password is returned once, for the agency's operator. Access-right
and removable-media applications are approved by the company's data manager (or system
administrator) and the agency, and applied at approval. Every step is audited, never taken by
the submitter; every read and write is scoped to the actor's company (R24)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from adapters import workbooks
from adapters.workbooks import FileRefused, Limits, SheetAccount
from authsvc.domain import applications as rules
from authsvc.domain import identifiers, lifecycle
from authsvc.domain.applications import ApplicationInvalid, RowError
from authsvc.domain.calendar import JST, jst_iso
from authsvc.domain.errors import DomainError, Forbidden, NotFound, OutOfScope
from authsvc.domain.lifecycle import Status
from authsvc.domain.passwords import generate_initial
from authsvc.domain.roles import Actor, Perm, Role, company_key
from authsvc.services import Deps, backchannel, guard
from authsvc.services.accounts import OPERATIONS_CONTRACT, revoke
from authsvc.store.models import (
    Account,
    Application,
    Company,
    Consent,
    Contract,
    Device,
    GroupMember,
    Identifier,
    PasswordHistory,
    Person,
    RosterEntry,
)
from authsvc.store.uow import UnitOfWork

MAX_FILES = 50  # workbooks in one upload (a prime contractor's own and its subcontractors')


@dataclass(frozen=True)
class Upload:
    """An uploaded file: its name as sent and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class ApplicationView:
    id: int
    kind: str
    contract: str
    company: str
    submitter_company: str
    batch: str
    state: str
    next_step: str | None
    file_name: str
    counts: dict[str, int]
    submitted_by: str
    submitted_at: str
    checked_by: str | None
    checked_at: str | None
    approved_by: str | None
    approved_at: str | None
    issued_by: str | None
    issued_at: str | None
    rejected_by: str | None
    rejected_at: str | None
    reason: str
    sheets: list[dict[str, Any]]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IssuedSheet:
    """A parameter sheet put in its folders, and its password: show it once, never store it."""

    application: int
    company: str
    contract: str
    accounts: list[str]
    files: list[str]
    password: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(moment: datetime | None) -> str | None:
    return jst_iso(moment) if moment else None


def _today(deps: Deps) -> date:
    return deps.clock.now().astimezone(JST).date()


def limits(deps: Deps) -> Limits:
    a = deps.settings.applications
    return Limits(a.max_bytes, a.max_unzipped_bytes, a.max_ratio, a.max_rows, a.max_columns)


def _view(uow: UnitOfWork, app: Application, with_rows: bool = False) -> ApplicationView:
    con = uow.applications.contract_by_id(app.contract_id)
    rows = json.loads(app.rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["action"]] = counts.get(r["action"], 0) + 1
    return ApplicationView(
        app.id, app.kind, con.number if con else "-", app.company, app.submitter_company, app.batch,
        app.state, None if rules.is_final(app.kind, app.state) else rules.next_step(app.kind, app.state),
        app.file_name, counts, app.submitted_by, jst_iso(app.submitted_at), app.checked_by,
        _iso(app.checked_at), app.approved_by, _iso(app.approved_at), app.issued_by, _iso(app.issued_at),
        app.rejected_by, _iso(app.rejected_at), app.reason, json.loads(app.sheets or "[]"),
        rows if with_rows else [])


# ---- who may ---------------------------------------------------------------------------------


def _agency_side(uow: UnitOfWork, actor: Actor) -> bool:
    """An agency operator, or a member of the procuring office: an active account of that role
    on the agency's operations contract (a company cannot make one: its contracts are its own)."""
    if actor.everywhere:
        return True
    if Role.PROCURING_OFFICE not in actor.roles or actor.process:
        return False
    acc = uow.account(identifiers.canonical_or_none(actor.id) or "")
    return (acc is not None and acc.status == Status.ACTIVE.value
            and acc.role == Role.PROCURING_OFFICE.value and acc.contract.number == OPERATIONS_CONTRACT)


def _prime_of(uow: UnitOfWork, con: Contract) -> Contract | None:
    return uow.applications.contract_by_id(con.prime_contract_id) if con.prime_contract_id else None


def _may_submit_for(uow: UnitOfWork, actor: Actor, con: Contract) -> bool:
    """A company's own contract; a subcontract only through its prime contractor (003 4①(4))."""
    prime = _prime_of(uow, con)
    if prime is not None:
        return actor.reaches(prime.company)
    return actor.reaches(con.company)


def _approver_only(actor: Actor) -> bool:
    """A data manager: approves the access-right changes of their company's data (003 §6) and
    reads no other application."""
    return actor.can(Perm.APPROVE_ACCESS) and not actor.can(Perm.READ_APPLICATIONS)


def _sees(uow: UnitOfWork, actor: Actor, app: Application) -> bool:
    if _approver_only(actor):  # another kind, or a subcontractor's: like an unknown one
        return app.kind == "access" and actor.reaches(app.company)
    return (actor.reaches(app.company) or actor.reaches(app.submitter_company)
            or _agency_side(uow, actor))


def _waits_for(actor: Actor, app: Application) -> bool:
    """The application waits for this actor's approval (never one they submitted)."""
    me = identifiers.canonical_or_none(actor.id) or actor.id
    return (rules.next_step(app.kind, app.state) == "approve"
            and me != (identifiers.canonical_or_none(app.submitted_by) or app.submitted_by))


def _application(uow: UnitOfWork, actor: Actor, application_id: int, lock: bool = False) -> Application:
    app = uow.applications.get(int(application_id), lock=lock)
    if app is None:
        raise NotFound("application_not_found", application=application_id)
    if not _sees(uow, actor, app):
        raise OutOfScope("application_not_found", application=application_id)
    return app


# ---- reading the workbooks -------------------------------------------------------------------


@dataclass
class _Parsed:
    upload: Upload
    header: rules.Header | None
    rows: list[tuple[Any, ...]]
    contract: Contract | None = None
    valid: list[dict[str, Any]] = field(default_factory=list)


def _read(deps: Deps, files: list[Upload]) -> tuple[list[_Parsed], list[RowError]]:
    """Each file read safely and its header checked; no database yet."""
    parsed, errors = [], []
    lim = limits(deps)
    for up in files:
        name = os.path.basename(str(up.name or "application.xlsx"))[:200]
        up = Upload(name, up.data)
        try:
            rows = workbooks.read_form(name, up.data, lim, sheet=None)
        except FileRefused as exc:
            errors.append(RowError(0, "", exc.code, exc.params, name))
            continue
        header, header_errors = rules.read_header(rows, name)
        errors += header_errors
        parsed.append(_Parsed(up, header, rows))
    return parsed, errors


def _identity_ok(uow: UnitOfWork, con: Contract, rows: list[dict[str, Any]], form: rules.Form,
                 file: str) -> list[RowError]:
    """Every person registered or changed is on both rosters of the contract (003 4①(3))."""
    errors: list[RowError] = []
    rosters = {kind: [rules.Identity(e.name_key, e.birth_date, e.staff_number)
                      for e in uow.applications.roster(con.id, kind)] for kind in rules.ROSTER_KINDS}
    for kind, entries in rosters.items():
        if not entries and any(r["action"] != "delete" for r in rows):
            errors.append(RowError(rules.CONTRACT_ROW, "B", "app_roster_missing",
                                   {"roster": kind}, file))
    for r in rows:
        if r["action"] == "delete":
            continue
        person = rules.row_identity(r)
        for kind, entries in rosters.items():
            if entries and not rules.on_roster(person, entries):
                errors.append(RowError(r["row"], form.letter("name"), f"app_not_on_{kind}", {}, file))
    return errors


def _users_context(deps: Deps, uow: UnitOfWork, actor: Actor, con: Contract,
                   rows: list[dict[str, Any]], form: rules.Form, file: str) -> list[RowError]:
    errors: list[RowError] = []
    now = deps.clock.now()
    for r in rows:
        n, key = r["row"], identifiers.canonical(r["user_id"])
        if r["action"] == "register":
            ident = uow.identifier(key)
            if ident is not None:
                try:
                    identifiers.check_assignable(r["user_id"], now, ident.holder_id is not None,
                                                 ident.released_at,
                                                 deps.settings.identifiers.reuse_after_days)
                except DomainError as exc:
                    errors.append(RowError(n, form.letter("user_id"), exc.code, exc.params, file))
            if r["linked_user_id"]:
                linked = uow.account(identifiers.canonical(r["linked_user_id"]))
                same = linked is not None and company_key(linked.contract.company) == company_key(con.company)
                if linked is None or not (actor.reaches(linked.contract.company) or same):
                    errors.append(RowError(n, form.letter("linked_user_id"), "app_linked_unknown", {}, file))
                elif rules.name_key(linked.person.name) != r["name_key"]:
                    errors.append(RowError(n, form.letter("linked_user_id"), "app_linked_name", {}, file))
        else:
            acc = uow.account(key)
            if acc is None or acc.contract_id != con.id or acc.status in (Status.DELETED, Status.EXPIRED):
                errors.append(RowError(n, form.letter("user_id"), "app_account_unknown",
                                       {"contract": con.number}, file))
    return errors + _identity_ok(uow, con, rows, form, file)


def _access_context(uow: UnitOfWork, con: Contract, rows: list[dict[str, Any]], form: rules.Form,
                    file: str) -> list[RowError]:
    errors: list[RowError] = []
    for r in rows:
        group = uow.groups.named(con.company, r["group"])
        acc = uow.account(identifiers.canonical(r["user_id"]))
        if group is None:
            errors.append(RowError(r["row"], form.letter("group"), "app_group_unknown", {}, file))
        if acc is None or acc.contract.company != con.company or acc.status == Status.DELETED:
            errors.append(RowError(r["row"], form.letter("user_id"), "app_account_unknown",
                                   {"contract": con.number}, file))
        if group is None or acc is None:
            continue
        member = uow.groups.member(group.id, acc.id)
        if r["action"] == "add" and member is not None:
            errors.append(RowError(r["row"], form.letter("user_id"), "app_member_exists", {}, file))
        if r["action"] == "remove" and member is None:
            errors.append(RowError(r["row"], form.letter("user_id"), "app_member_missing", {}, file))
    return errors


def _live_media(uow: UnitOfWork, serial: str) -> Device | None:
    return next((d for d in uow.applications.media(media_id(serial)) if d.status != "revoked"), None)


def media_id(serial: str) -> str:
    """The device ID a removable medium is registered under (never an identifier of the R6
    namespace: a medium signs nothing and logs nobody on)."""
    return f"media:{serial}"[:64]


def _media_context(uow: UnitOfWork, con: Contract, rows: list[dict[str, Any]], form: rules.Form,
                   file: str) -> list[RowError]:
    errors: list[RowError] = []
    for r in rows:
        live = _live_media(uow, r["serial"])
        if r["action"] == "register" and live is not None:
            errors.append(RowError(r["row"], form.letter("serial"), "app_serial_registered", {}, file))
        if r["action"] == "delete" and (live is None or live.company != con.company):
            errors.append(RowError(r["row"], form.letter("serial"), "app_serial_unknown", {}, file))
    return errors


def _check_contract(uow: UnitOfWork, actor: Actor, con: Contract | None, number: str) -> None:
    """The contract may be applied for by the actor: NotFound for an unknown one, the same
    answer for another company's (audited as such); a subcontractor's own administrator is
    sent to its prime contractor (003 4①(4))."""
    if con is None:
        raise NotFound("contract_not_found", contract=number)
    if not _may_submit_for(uow, actor, con):
        if con.prime_contract_id and actor.reaches(con.company):
            raise Forbidden("application_via_prime", contract=number)
        raise OutOfScope("contract_not_found", contract=number)


def _validate(deps: Deps, uow: UnitOfWork, actor: Actor, parsed: list[_Parsed]) -> list[RowError]:
    """Every workbook's contract, preconditions and rows, against the store."""
    errors: list[RowError] = []
    today = _today(deps)
    seen: dict[str, dict[str, tuple[str, int]]] = {}
    for p in parsed:
        if p.header is None:
            continue
        file = p.upload.name
        con = uow.contract(p.header.contract) if p.header.contract else None
        if p.header.contract:  # another company's contract answers like an unknown one (R24)
            _check_contract(uow, actor, con, p.header.contract[:64])
        if con is not None and p.header.company and company_key(p.header.company) != company_key(con.company):
            errors.append(RowError(rules.COMPANY_ROW, "B", "app_company_mismatch",
                                   {"company": con.company}, file))
        if con is not None:
            company = uow.applications.company(con.company)
            errors += rules.precondition_errors(company.subscription if company else None,
                                                con.concluded_on, con.eligibility, con.exemption_note,
                                                con.ends_on, today, file)
        form = p.header.form
        valid, row_errors = rules.parse_rows(form, p.rows, rules.Context(today, con.ends_on if con else None),
                                             file, seen.setdefault(form.kind, {}))
        errors += row_errors
        p.contract, p.valid = con, valid
        if con is None:
            continue
        if form.kind == "users":
            errors += _users_context(deps, uow, actor, con, valid, form, file)
        elif form.kind == "access":
            errors += _access_context(uow, con, valid, form, file)
        else:
            errors += _media_context(uow, con, valid, form, file)
    return errors


def _refused_import(deps: Deps, actor: Actor, files: list[Upload], errors: list[RowError]) -> None:
    """The refused upload in the audit log: which files, how many errors of which kinds (never
    a cell's content: names and birth dates stay out of the log)."""
    codes: dict[str, int] = {}
    for e in errors:
        codes[e.code] = codes.get(e.code, 0) + 1
    with deps.uow() as uow:
        uow.audit(deps.clock.now(), actor, "application.submit", "-", "refused",
                  files=[os.path.basename(str(f.name))[:100] for f in files],
                  sha256=[hashlib.sha256(f.data).hexdigest() for f in files],
                  errors=len(errors), codes=codes)
        uow.commit()


@guard.audited("application.submit", None)
def submit(deps: Deps, actor: Actor, files: list[Upload]) -> list[ApplicationView]:
    """Import the uploaded application workbooks together: all of them, or nothing (raises
    ApplicationInvalid with every error by file, row and column)."""
    actor.require(Perm.SUBMIT_APPLICATIONS)
    if not files:
        raise DomainError("application_no_file")
    if len(files) > MAX_FILES:
        raise DomainError("application_too_many_files", limit=MAX_FILES)
    parsed, errors = _read(deps, files)
    with deps.uow(read_only=True) as uow:
        errors += _validate(deps, uow, actor, parsed)
    if errors:
        _refused_import(deps, actor, files, errors)
        raise ApplicationInvalid(errors)
    now, batch = deps.clock.now(), secrets.token_hex(8)
    views = []
    with deps.uow() as uow:
        again = _validate(deps, uow, actor, parsed)  # in the writing transaction: nothing raced in
        if again:
            raise ApplicationInvalid(again)
        for p in parsed:
            assert p.header is not None and p.contract is not None
            con = p.contract
            prime = _prime_of(uow, con)
            app = Application(
                kind=p.header.form.kind, contract_id=con.id, company=con.company,
                submitter_company=prime.company if prime is not None else con.company, batch=batch,
                state="submitted", file_name=p.upload.name, sha256=hashlib.sha256(p.upload.data).hexdigest(),
                rows=json.dumps(p.valid, ensure_ascii=False), submitted_by=actor.id, submitted_at=now,
                reason="", sheets="[]")
            uow.applications.add(app)
            counts = {a: sum(1 for r in p.valid if r["action"] == a) for a in {r["action"] for r in p.valid}}
            uow.audit(now, actor, "application.submit", f"application:{app.id}", kind=app.kind,
                      contract=con.number, company=con.company, batch=batch, file=app.file_name,
                      sha256=app.sha256, counts=counts,
                      **({"prime": prime.number} if prime is not None else {}))
            views.append(_view(uow, app))
        uow.commit()
    return views


# ---- reading ---------------------------------------------------------------------------------


@guard.audited("application.read", "application_id")
def get(deps: Deps, actor: Actor, application_id: int) -> ApplicationView:
    """One application with its rows, for whoever may see it."""
    if not (actor.can(Perm.READ_APPLICATIONS) or actor.can(Perm.APPROVE_ACCESS)):
        actor.require(Perm.READ_APPLICATIONS)
    with deps.uow(read_only=True) as uow:
        return _view(uow, _application(uow, actor, application_id), with_rows=True)


def list_applications(deps: Deps, actor: Actor, state: str | None = None,
                      limit: int = 500) -> list[ApplicationView]:
    """The applications of the actor's company (its own and its subcontractors'); the agency's
    side sees every one; a data manager the access-right changes of their company waiting for
    their approval."""
    waiting = _approver_only(actor)
    if not waiting:
        actor.require(Perm.READ_APPLICATIONS)
    with deps.uow(read_only=True) as uow:
        if _agency_side(uow, actor):
            rows = uow.applications.listed(None, state, limit)
        elif not actor.company:
            return []
        else:
            mine = [c.company for c in uow.contracts() if actor.reaches(c.company)]
            rows = uow.applications.listed(sorted(set(mine)) or [actor.company],
                                           state or ("submitted" if waiting else None), limit)
        return [_view(uow, a) for a in rows
                if _sees(uow, actor, a) and (not waiting or _waits_for(actor, a))]


@guard.audited("application.template", "contract")
def template(deps: Deps, actor: Actor, kind: str = "users", contract: str | None = None) -> bytes:
    """The blank form to download (with the contract and its company filled in when given)."""
    if not (actor.can(Perm.SUBMIT_APPLICATIONS) or actor.can(Perm.READ_APPLICATIONS)):
        actor.require(Perm.SUBMIT_APPLICATIONS)
    form = rules.form(kind)
    company = ""
    if contract:
        with deps.uow(read_only=True) as uow:
            con = uow.contract(contract)
            if con is None:
                raise NotFound("contract_not_found", contract=contract)
            if not (_may_submit_for(uow, actor, con) or actor.reaches(con.company)):
                raise OutOfScope("contract_not_found", contract=contract)
            company = con.company
    return workbooks.template(form, contract or "", company)


# ---- the steps -------------------------------------------------------------------------------


def _step_perm(kind: str, step: str | None) -> Perm:
    if step == "check":
        return Perm.CHECK_APPLICATIONS
    if kind == "access":
        return Perm.APPROVE_ACCESS
    return Perm.APPROVE_APPLICATIONS


def _may_take(uow: UnitOfWork, actor: Actor, app: Application, step: str | None) -> None:
    """The role of the step, and where: the procuring office's check and the agency's approval
    from above the companies; an access-right change by the company's data manager."""
    perm = _step_perm(app.kind, step)
    actor.require(perm)
    if perm is Perm.APPROVE_ACCESS:
        if not actor.reaches(app.company):
            raise OutOfScope("application_not_found", application=app.id)
    elif not _agency_side(uow, actor):
        raise OutOfScope("application_not_found", application=app.id)


def _refuse_step(deps: Deps, actor: Actor, app_id: int, action: str, exc: DomainError) -> None:
    count = {"errors": len(exc.errors)} if isinstance(exc, ApplicationInvalid) else {}
    with deps.uow() as uow:
        uow.audit(deps.clock.now(), actor, f"application.{action}", f"application:{app_id}", "refused",
                  reason=exc.code, **count)
        uow.commit()


@guard.audited("application.check", "application_id")
def check(deps: Deps, actor: Actor, application_id: int) -> ApplicationView:
    """The procuring office (事業元) checks the people against the contract's rosters as they
    are now (003 4①(3), 4②)."""
    actor.require(Perm.CHECK_APPLICATIONS)
    now = deps.clock.now()
    with deps.uow() as uow:
        app = _application(uow, actor, application_id, lock=True)
        _may_take(uow, actor, app, "check")
        rules.check_not_involved(actor.id, "check", app.submitted_by, app.checked_by)
        state = rules.step(app.kind, app.state, "check")
        con = uow.applications.contract_by_id(app.contract_id)
        assert con is not None
        errors = _identity_ok(uow, con, json.loads(app.rows), rules.form(app.kind), app.file_name)
        if errors:
            exc = ApplicationInvalid(errors)  # nothing written: the transaction is rolled back
        else:
            app.state, app.checked_by, app.checked_at = state, actor.id, now
            uow.audit(now, actor, "application.check", f"application:{app.id}", contract=con.number,
                      company=app.company)
            result = _view(uow, app)
            uow.commit()
            return result
    _refuse_step(deps, actor, int(application_id), "check", exc)
    raise exc


@guard.audited("application.reject", "application_id")
def reject(deps: Deps, actor: Actor, application_id: int, reason: str) -> ApplicationView:
    """Whoever may take the next step refuses the application instead, with a reason."""
    reason = " ".join((reason or "").split())[:200]
    if not reason:
        raise DomainError("application_reason_required")
    now = deps.clock.now()
    with deps.uow() as uow:
        app = _application(uow, actor, application_id, lock=True)
        _may_take(uow, actor, app, rules.next_step(app.kind, app.state))
        rules.check_not_involved(actor.id, "reject", app.submitted_by, None)
        app.state = rules.step(app.kind, app.state, "reject")
        app.rejected_by, app.rejected_at, app.reason = actor.id, now, reason
        uow.audit(now, actor, "application.reject", f"application:{app.id}", company=app.company,
                  reason=reason)
        result = _view(uow, app)
        uow.commit()
    return result


@guard.audited("application.approve", "application_id")
def approve(deps: Deps, actor: Actor, application_id: int) -> ApplicationView:
    """The agency approves a checked user application (issued next), or a removable-media
    application (applied now); the company's data manager an access-right change (applied now)."""
    now = deps.clock.now()
    ended: list[str] = []
    with deps.uow() as uow:
        app = _application(uow, actor, application_id, lock=True)
        _may_take(uow, actor, app, "approve")
        rules.check_not_involved(actor.id, "approve", app.submitted_by, app.checked_by)
        state = rules.step(app.kind, app.state, "approve")
        con = uow.applications.contract_by_id(app.contract_id)
        assert con is not None
        rows = json.loads(app.rows)
        form = rules.form(app.kind)
        errors = (_access_context(uow, con, rows, form, app.file_name) if app.kind == "access"
                  else _media_context(uow, con, rows, form, app.file_name) if app.kind == "media" else [])
        if errors:
            exc = ApplicationInvalid(errors)
        else:
            app.state, app.approved_by, app.approved_at = state, actor.id, now
            if app.kind == "access":
                ended = _apply_access(uow, actor, app, con, rows, now)
            elif app.kind == "media":
                _apply_media(uow, actor, app, rows, now)
            uow.audit(now, actor, "application.approve", f"application:{app.id}", kind=app.kind,
                      contract=con.number, company=app.company, checked_by=app.checked_by)
            result = _view(uow, app)
            uow.commit()
            for user in ended:  # new rights: log on again
                backchannel.end_all(deps, user, "rights_changed")
            return result
    _refuse_step(deps, actor, int(application_id), "approve", exc)
    raise exc


def _apply_access(uow: UnitOfWork, actor: Actor, app: Application, con: Contract,
                  rows: list[dict[str, Any]], now: datetime) -> list[str]:
    changed = []
    for r in rows:
        group = uow.groups.named(con.company, r["group"], lock=True)
        acc = uow.account(identifiers.canonical(r["user_id"]))
        assert group is not None and acc is not None
        if r["action"] == "add":
            uow.groups.add_member(GroupMember(group_id=group.id, account_id=acc.id,
                                              requested_by=app.submitted_by, requested_at=app.submitted_at,
                                              approved_by=actor.id, approved_at=now))
            uow.audit(now, actor, "group.approve", acc.user_id, group=group.name, company=group.company,
                      requested_by=app.submitted_by, application=app.id)
        else:
            member = uow.groups.member(group.id, acc.id, lock=True)
            assert member is not None
            uow.groups.remove_member(member)
            uow.audit(now, actor, "group.remove", acc.user_id, group=group.name, company=group.company,
                      application=app.id)
        changed.append(identifiers.canonical(acc.user_id))
    return changed


def _apply_media(uow: UnitOfWork, actor: Actor, app: Application, rows: list[dict[str, Any]],
                 now: datetime) -> None:
    for r in rows:
        device_id = media_id(r["serial"])
        if r["action"] == "register":
            label = rules.MEDIA_TYPES.get(r["media_type"] or "other", "")
            uow.applications.add_media(Device(
                device_id=device_id, kind="media", public_key=b"", key_fingerprint=None,
                company=app.company, description=f"{label} {r['description']}".strip()[:200],
                status="active", registered_by=actor.id, registered_at=now, status_changed_at=now,
                reason=f"application:{app.id}"))
            uow.audit(now, actor, "device.register", device_id, kind="media", company=app.company,
                      media_type=r["media_type"], requested_by=app.submitted_by, application=app.id)
        else:
            live = _live_media(uow, r["serial"])
            assert live is not None
            before, live.status, live.status_changed_at = live.status, "revoked", now
            live.reason = f"application:{app.id}"
            uow.audit(now, actor, "device.revoke", device_id, status_from=before, kind="media",
                      requested_by=app.submitted_by, application=app.id)


# ---- issuing: the accounts and the parameter sheets ------------------------------------------


def _folders(deps: Deps, uow: UnitOfWork, con: Contract) -> tuple[list[Path], str | None]:
    """Where the company's parameter sheet goes (003 4②): its own folder, and a subcontractor's
    also (or only, when it has none) its prime contractor's. The prime's name, if any."""
    root = deps.settings.applications_path
    own = uow.applications.company(con.company)
    prime = _prime_of(uow, con)
    folders = [root / own.folder] if own is not None and own.folder else []
    if prime is not None:
        theirs = uow.applications.company(prime.company)
        if theirs is not None and theirs.folder:
            folders.append(root / theirs.folder)
    if not folders:
        raise DomainError("application_no_folder", company=con.company)
    return folders, prime.company if prime is not None else None


def _leaves_at(ends_on: str | None) -> datetime | None:
    """The end of the last day of use (Japan time): logon ends then (R7)."""
    if not ends_on:
        return None
    return datetime.combine(date.fromisoformat(ends_on) + timedelta(days=1), time(0), tzinfo=JST)


def _write_exclusive(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


@guard.audited("application.issue", "application_id")
def issue(deps: Deps, actor: Actor, application_id: int) -> IssuedSheet:
    """Create the approved application's accounts (and delete or change those it names), and
    put the encrypted parameter sheet in the company's folders. Returns the sheet's password,
    shown once to the agency's operator (never stored, never logged)."""
    actor.require(Perm.APPROVE_APPLICATIONS)
    with deps.uow(read_only=True) as uow:  # refuse before any password is made
        app = _application(uow, actor, application_id)
        _may_take(uow, actor, app, "issue")
        rules.check_not_involved(actor.id, "issue", app.submitted_by, None)
        rules.step(app.kind, app.state, "issue")
        con = uow.applications.contract_by_id(app.contract_id)
        assert con is not None
        folders, prime = _folders(deps, uow, con)
        rows = json.loads(app.rows)
    fresh = {r["user_id"]: generate_initial(deps.rule, r["user_id"], is_breached=deps.blocklist.is_breached)
             for r in rows if r["action"] == "register"}
    hashes = {uid: deps.hasher.hash(pw) for uid, pw in fresh.items()}  # outside the transaction
    now = deps.clock.now()
    written: list[Path] = []
    ended: list[str] = []
    try:
        with deps.uow() as uow:
            app = _application(uow, actor, application_id, lock=True)
            app.state = rules.step(app.kind, app.state, "issue")
            con = uow.applications.contract_by_id(app.contract_id)
            assert con is not None
            errors = _users_context(deps, uow, actor, con, rows, rules.USERS, app.file_name)
            if errors:
                raise ApplicationInvalid(errors)
            issued: list[SheetAccount] = []
            for r in rows:
                if r["action"] == "register":
                    acc = _create(uow, actor, app, con, r, hashes[r["user_id"]], now)
                    issued.append(SheetAccount(acc.user_id, r["name"], rules.ROLE_LABELS[r["role"]],
                                               fresh[r["user_id"]]))
                elif r["action"] == "delete":
                    ended.append(_delete(uow, actor, app, r, now))
                else:
                    _change(uow, actor, app, r, now)
            password, files = "", []
            if issued:
                password = workbooks.sheet_password()
                sheet = workbooks.parameter_sheet(app.company, con.number, app.id,
                                                  deps.settings.applications.service_url, issued,
                                                  now.astimezone(JST), password, prime)
                digest = hashlib.sha256(sheet).hexdigest()
                stamp = now.astimezone(JST).strftime("%Y%m%d%H%M%S")
                for folder in folders:
                    path = folder / f"parameter-sheet-{app.id:06d}-{stamp}.xlsx"
                    _write_exclusive(path, sheet)
                    written.append(path)
                    files.append({"folder": folder.name, "file": path.name, "sha256": digest})
                del sheet
            app.sheets = json.dumps(files, ensure_ascii=False)
            app.issued_by, app.issued_at = actor.id, now
            uow.audit(now, actor, "application.issue", f"application:{app.id}", contract=con.number,
                      company=app.company, accounts=[a.user_id for a in issued], sheets=files,
                      approved_by=app.approved_by)
            result = IssuedSheet(app.id, app.company, con.number, [a.user_id for a in issued],
                                 [str(p) for p in written], password)
            uow.commit()
    except BaseException as exc:
        for path in written:  # the accounts were not made: their passwords must not lie about
            with contextlib.suppress(OSError):
                path.unlink()
        if isinstance(exc, ApplicationInvalid):
            _refuse_step(deps, actor, int(application_id), "issue", exc)
        raise
    for user in ended:
        backchannel.end_all(deps, user, "account_delete")
    return result


def _create(uow: UnitOfWork, actor: Actor, app: Application, con: Contract, r: dict[str, Any],
            hashed: str, now: datetime) -> Account:
    """An account of the application: the ID assigned by the submitter, approved by the agency's
    approver (R6), active; its consent to remote registration as the application gave it (R14)."""
    key = identifiers.canonical(r["user_id"])
    if r["linked_user_id"]:
        linked = uow.account(identifiers.canonical(r["linked_user_id"]))
        assert linked is not None
        person = linked.person
    else:
        person = Person(name=r["name"], created_at=now)
        uow.add(person)
    acc = Account(user_id=r["user_id"], person_id=person.id, contract_id=con.id, role=r["role"],
                  status=Status.ACTIVE.value, password_hash=hashed, must_change_password=True,
                  created_by=app.submitted_by, created_at=now, status_changed_at=now,
                  leaves_at=_leaves_at(r["ends_on"]))
    uow.add(acc)
    uow.add(PasswordHistory(account_id=acc.id, hash=hashed, created_at=now))
    approver = app.approved_by or actor.id
    ident = uow.identifier(key, lock=True)
    if ident is None:
        ident = Identifier(value=key, kind="account", holder_id=acc.id, assigned_by=app.submitted_by,
                           assigned_at=app.submitted_at, approved_by=approver, approved_at=now)
        if not uow.identifiers.claim(ident):
            raise DomainError("identifier_in_use", user_id=r["user_id"])
    else:
        ident.kind, ident.holder_id = "account", acc.id
        ident.assigned_by, ident.assigned_at = app.submitted_by, app.submitted_at
        ident.approved_by, ident.approved_at, ident.released_at = approver, now, None
    uow.registrations.save_consent(Consent(account_id=acc.id, given=bool(r["consent"]),
                                           recorded_by=app.submitted_by, recorded_at=now))
    uow.audit(now, actor, "account.create", acc.user_id, role=acc.role, contract=con.number,
              person_id=person.id, linked_person=bool(r["linked_user_id"]), application=app.id,
              assigned_by=app.submitted_by, approved_by=approver, consent=bool(r["consent"]))
    return acc


def _delete(uow: UnitOfWork, actor: Actor, app: Application, r: dict[str, Any], now: datetime) -> str:
    acc = uow.account(identifiers.canonical(r["user_id"]), lock=True)
    assert acc is not None
    before = acc.status
    acc.status = lifecycle.transition(Status(acc.status), "delete").value
    acc.status_changed_at = now
    returns = revoke(uow, acc, now)
    uow.audit(now, actor, "account.delete", acc.user_id, status_from=before, returns=returns,
              application=app.id, requested_by=app.submitted_by)
    return identifiers.canonical(acc.user_id)


def _change(uow: UnitOfWork, actor: Actor, app: Application, r: dict[str, Any], now: datetime) -> None:
    acc = uow.account(identifiers.canonical(r["user_id"]), lock=True)
    assert acc is not None
    changes: dict[str, Any] = {}
    if r["name"] and r["name"] != acc.person.name:
        acc.person.name = changes["name"] = r["name"]
    if r["role"] and r["role"] != acc.role:
        changes["role"] = {"from": acc.role, "to": r["role"]}
        acc.role = r["role"]
    leaves = _leaves_at(r["ends_on"])
    if leaves is not None and leaves != acc.leaves_at:
        acc.leaves_at = leaves
        changes["leaves_at"] = jst_iso(leaves)
    uow.audit(now, actor, "account.update", acc.user_id, application=app.id,
              requested_by=app.submitted_by, **changes)


# ---- rosters ---------------------------------------------------------------------------------


@guard.audited("roster.upload", "contract")
def upload_roster(deps: Deps, actor: Actor, contract: str, kind: str, upload: Upload) -> dict[str, Any]:
    """The agency (or the procuring office) replaces a contract's handler roster or protected-
    system user roster with an uploaded Excel or CSV file; a file with any bad row changes
    nothing. Only what matching needs is kept; the log has the counts and the file's hash."""
    actor.require(Perm.MANAGE_ROSTERS)
    kind = rules.roster_kind(kind)
    name = os.path.basename(str(upload.name or "roster.xlsx"))[:200]
    now = deps.clock.now()
    with deps.uow(read_only=True) as uow:
        con = uow.contract(contract)
        if con is None:
            raise NotFound("contract_not_found", contract=contract)
        if not _agency_side(uow, actor):
            raise OutOfScope("contract_not_found", contract=contract)
    try:
        rows = workbooks.read_table(name, upload.data, limits(deps))
    except FileRefused as exc:
        raise ApplicationInvalid([RowError(0, "", exc.code, exc.params, name)]) from None
    people, errors = rules.parse_roster(rows, _today(deps), name)
    if errors:
        raise ApplicationInvalid(errors)
    with deps.uow() as uow:
        con = uow.contract(contract)
        assert con is not None
        before = uow.applications.replace_roster(con.id, kind, [
            RosterEntry(contract_id=con.id, kind=kind, name_key=p.name_key, birth_date=p.birth_date,
                        staff_number=p.staff_number, uploaded_by=actor.id, uploaded_at=now)
            for p in people])
        uow.audit(now, actor, "roster.upload", con.number, kind=kind, count=len(people), replaced=before,
                  file=name, sha256=hashlib.sha256(upload.data).hexdigest())
        uow.commit()
    return {"contract": contract, "kind": kind, "count": len(people), "replaced": before}


# ---- companies and contract terms (the agency) -----------------------------------------------


def _company_name(uow: UnitOfWork, name: str) -> str:
    """The company as its contracts spell it (one with a contract only)."""
    wanted = company_key(name)
    for c in uow.contracts():
        if company_key(c.company) == wanted:
            return c.company
    raise NotFound("contract_company_unknown", company=" ".join((name or "").split())[:200])


def company_dict(c: Company) -> dict[str, Any]:
    return {"company": c.name, "subscription": c.subscription,
            "subscribed_on": c.subscribed_on.isoformat() if c.subscribed_on else None,
            "folder": c.folder, "updated_by": c.updated_by, "updated_at": jst_iso(c.updated_at)}


@guard.audited("company.set", "name")
def set_company(deps: Deps, actor: Actor, name: str, subscription: str,
                subscribed_on: date | None = None, folder: str | None = None) -> dict[str, Any]:
    """The agency records a company's subscription state (加入完了: "complete") and its folder at
    the application storage site ("" or None: none)."""
    actor.require(Perm.MANAGE_CONTRACTS)
    folder = (folder or "").strip() or None
    rules.check_company(subscription, folder)
    now = deps.clock.now()
    with deps.uow() as uow:
        spelled = _company_name(uow, name)
        row = uow.applications.company(spelled, lock=True)
        before = company_dict(row) if row is not None else None
        if row is None:
            row = Company(name=spelled, subscription=subscription, subscribed_on=subscribed_on,
                          folder=folder, updated_by=actor.id, updated_at=now)
            uow.applications.add_company(row)
        else:
            row.subscription, row.subscribed_on, row.folder = subscription, subscribed_on, folder
            row.updated_by, row.updated_at = actor.id, now
        uow.audit(now, actor, "company.set", spelled[:100], subscription=subscription,
                  subscribed_on=subscribed_on.isoformat() if subscribed_on else None, folder=folder,
                  before={k: before[k] for k in ("subscription", "folder")} if before else None)
        result = company_dict(row)
        uow.commit()
    return result


def list_companies(deps: Deps, actor: Actor) -> list[dict[str, Any]]:
    """The companies' subscription states and folders (a company's administrators: their own)."""
    actor.require(Perm.READ_APPLICATIONS)
    with deps.uow(read_only=True) as uow:
        return [company_dict(c) for c in uow.applications.companies() if actor.reaches(c.name)]


@guard.audited("contract.terms", "number")
def set_terms(deps: Deps, actor: Actor, number: str, concluded_on: date | None,
              eligibility: str | None, exemption_note: str | None = None,
              prime: str | None = None) -> dict[str, Any]:
    """The agency records a contract's conclusion date, its eligibility (the security clause, or
    an exemption with its basis), and, for a subcontract, the prime contractor's contract."""
    actor.require(Perm.MANAGE_CONTRACTS)
    exemption_note = " ".join((exemption_note or "").split())[:200] or None
    rules.check_terms(eligibility, exemption_note)
    now = deps.clock.now()
    with deps.uow() as uow:
        con = uow.contract(number)
        if con is None:
            raise NotFound("contract_not_found", contract=number)
        prime_id = None
        if prime:
            found = uow.contract(prime)
            if found is None:
                raise NotFound("contract_not_found", contract=prime)
            if found.id == con.id or found.prime_contract_id is not None \
                    or company_key(found.company) == company_key(con.company):
                raise DomainError("contract_prime_invalid", contract=prime)
            prime_id = found.id
        con.concluded_on, con.eligibility, con.exemption_note = concluded_on, eligibility, exemption_note
        con.prime_contract_id = prime_id
        uow.audit(now, actor, "contract.terms", con.number,
                  concluded_on=concluded_on.isoformat() if concluded_on else None,
                  eligibility=eligibility, exemption_note=exemption_note, prime=prime or None)
        result = terms_dict(uow, con)
        uow.commit()
    return result


def terms_dict(uow: UnitOfWork, con: Contract) -> dict[str, Any]:
    prime = _prime_of(uow, con)
    return {"contract": con.number, "company": con.company,
            "concluded_on": con.concluded_on.isoformat() if con.concluded_on else None,
            "eligibility": con.eligibility, "exemption_note": con.exemption_note,
            "prime": prime.number if prime is not None else None}
