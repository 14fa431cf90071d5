"""Account administration (R2, R6, R7): contracts, create, approve identifier, update,
suspend, resume, delete, reset password, unlock, and the first administrator. Every read and
write is scoped to the actor's company (R24) and every refusal is audited (services/guard.py);
nobody approves their own request or administers their own account."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from authsvc.domain import identifiers, lifecycle
from authsvc.domain.calendar import JST, access_ends, jst_iso
from authsvc.domain.errors import DomainError, Forbidden, NotFound, OutOfScope
from authsvc.domain.lifecycle import Status
from authsvc.domain.passwords import generate_initial
from authsvc.domain.roles import Actor, Perm, Role, parse_role
from authsvc.services import Deps, backchannel, guard
from authsvc.store.models import Account, Contract, Identifier, PasswordHistory, Person
from authsvc.store.uow import UnitOfWork

_CONTRACT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
BOOTSTRAP = Actor("system:bootstrap", frozenset({Role.AGENCY_OPERATOR}))
OPERATIONS_CONTRACT = "DSG-OPERATIONS"


@dataclass(frozen=True)
class AccountView:
    user_id: str
    name: str
    person_id: int
    contract: str
    company: str
    role: str
    status: str
    must_change_password: bool
    locked: bool
    locked_until: str | None
    failures: int
    created_at: str
    created_by: str
    first_used_at: str | None
    last_used_at: str | None
    access_ends_at: str | None
    revoked_at: str | None
    leaves_at: str | None = None        # R7: a departure recorded
    remote_until: str | None = None     # R17: remote access approved to (a date)
    window_ends_at: str | None = None   # R26: a maintenance account's window closes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Issued:
    """An account and its one-time initial password: show it once, never store or log it."""

    account: AccountView
    initial_password: str


def _iso(moment: datetime | None) -> str | None:
    return jst_iso(moment) if moment else None


def access_end(deps: Deps, contract: Contract) -> datetime | None:
    if contract.ends_on is None:
        return None
    return access_ends(contract.ends_on, deps.settings.accounts.cleanup_business_days,
                       deps.holidays.is_holiday)


def last_use(acc: Account) -> datetime:
    """When the identifier was last used: the last logon, or when it last became active (R6)."""
    return max(filter(None, (acc.last_used_at, acc.status_changed_at)))


def view(deps: Deps, uow: UnitOfWork, acc: Account) -> AccountView:
    now = deps.clock.now()
    failures, locked_until = deps.counters.peek(identifiers.canonical(acc.user_id), now)
    return AccountView(
        user_id=acc.user_id,
        name=acc.person.name,
        person_id=acc.person_id,
        contract=acc.contract.number,
        company=acc.contract.company,
        role=acc.role,
        status=acc.status,
        must_change_password=acc.must_change_password,
        locked=locked_until is not None,
        locked_until=_iso(locked_until),
        failures=failures,
        created_at=jst_iso(acc.created_at),
        created_by=acc.created_by,
        first_used_at=_iso(acc.first_used_at),
        last_used_at=_iso(acc.last_used_at),
        access_ends_at=_iso(access_end(deps, acc.contract)),
        revoked_at=_iso(acc.revoked_at),
        leaves_at=_iso(acc.leaves_at),
        remote_until=acc.remote_until.isoformat() if acc.remote_until else None,
        window_ends_at=_iso(acc.window_ends_at),
    )


def _valid_name(name: str) -> str:
    name = unicodedata.normalize("NFKC", name or "").strip()
    if not 1 <= len(name) <= 200 or any(unicodedata.category(c).startswith("C") for c in name):
        raise DomainError("name_invalid")
    return name


def _reason(reason: str) -> dict[str, str]:
    """The operator's reason for an action, for its audit event (none given: no field)."""
    reason = " ".join((reason or "").split())[:200]
    return {"reason": reason} if reason else {}


def _may_assign(actor: Actor, role: Role) -> None:
    """Only the agency makes agency operators: a company cannot raise anyone above itself. A
    service client (a process, R6) gives no one a role but `user`: rights are for people to give."""
    if role in (Role.AGENCY_OPERATOR, Role.PROCURING_OFFICE) and not actor.everywhere:
        raise Forbidden("role_not_assignable")  # the procuring office is the agency's side (R21)
    if actor.process and role is not Role.USER:
        raise Forbidden("role_not_assignable")


# ---- contracts -----------------------------------------------------------------------------


@guard.audited("contract.create", "number")
def create_contract(
    deps: Deps, actor: Actor, number: str, company: str, starts_on: date, ends_on: date | None
) -> dict[str, Any]:
    actor.require(Perm.MANAGE_CONTRACTS)
    if not isinstance(number, str) or not _CONTRACT.fullmatch(number):
        raise DomainError("contract_invalid")
    company = _valid_name(company)
    if ends_on is not None and ends_on < starts_on:
        raise DomainError("period_invalid")
    now = deps.clock.now()
    with deps.uow() as uow:
        if uow.contract(number):
            raise DomainError("contract_exists", contract=number)
        uow.add(Contract(number=number, company=company, starts_on=starts_on, ends_on=ends_on,
                         created_at=now))
        uow.audit(now, actor, "contract.create", number, company=company,
                  starts_on=starts_on.isoformat(), ends_on=ends_on.isoformat() if ends_on else None)
        uow.commit()
    return contract_dict(number, company, starts_on, ends_on)


@guard.audited("contract.period", "number")
def change_contract_period(deps: Deps, actor: Actor, number: str, starts_on: date,
                           ends_on: date | None, reason: str = "") -> dict[str, Any]:
    """The agency changes a contract's period (an extension, an earlier end); its accounts'
    access follows at their next request (R7)."""
    actor.require(Perm.MANAGE_CONTRACTS)
    if ends_on is not None and ends_on < starts_on:
        raise DomainError("period_invalid")
    now = deps.clock.now()
    with deps.uow() as uow:
        con = uow.contract(number)
        if con is None:
            raise NotFound("contract_not_found", contract=number)
        before = contract_dict(con.number, con.company, con.starts_on, con.ends_on)
        con.starts_on, con.ends_on = starts_on, ends_on
        uow.audit(now, actor, "contract.period", number, starts_from=before["starts_on"],
                  ends_from=before["ends_on"], starts_on=starts_on.isoformat(),
                  ends_on=ends_on.isoformat() if ends_on else None, **_reason(reason))
        uow.commit()
    return contract_dict(number, con.company, starts_on, ends_on)


def contract_dict(number: str, company: str, starts_on: date, ends_on: date | None) -> dict[str, Any]:
    return {"contract": number, "company": company, "starts_on": starts_on.isoformat(),
            "ends_on": ends_on.isoformat() if ends_on else None}


def list_contracts(deps: Deps, actor: Actor) -> list[dict[str, Any]]:
    """The contracts of the actor's company (every contract for the agency)."""
    with deps.uow() as uow:
        return [contract_dict(c.number, c.company, c.starts_on, c.ends_on) for c in uow.contracts()
                if actor.reaches(c.company)]


# ---- accounts ------------------------------------------------------------------------------


@guard.audited("account.create")
def create_account(
    deps: Deps,
    actor: Actor,
    user_id: str,
    name: str,
    contract: str,
    role: str,
    person_id: int | None = None,
) -> Issued:
    """Assign an identifier to a new account (pending approval) and issue its initial password."""
    actor.require(Perm.MANAGE_ACCOUNTS)
    key = identifiers.canonical(user_id)
    name = _valid_name(name)
    role_ = parse_role(role)
    _may_assign(actor, role_)
    now = deps.clock.now()
    initial = generate_initial(deps.rule, user_id, is_breached=deps.blocklist.is_breached)
    hashed = deps.hasher.hash(initial)  # before the transaction: argon2 holds no locks
    with deps.uow() as uow:
        con = uow.contract(contract)
        if con is None:
            raise NotFound("contract_not_found", contract=contract)
        guard.check(actor, Perm.MANAGE_ACCOUNTS, con.company, "contract_not_found", contract=contract)
        if con.ends_on is not None and now.astimezone(JST).date() > con.ends_on:
            raise DomainError("contract_ended", contract=contract)  # cleanup period or later
        ident = uow.identifier(key, lock=True)
        if ident is not None:
            identifiers.check_assignable(
                user_id, now, ident.holder_id is not None, ident.released_at,
                deps.settings.identifiers.reuse_after_days,
            )
        if person_id is None:
            person = Person(name=name, created_at=now)
            uow.add(person)
        else:
            found = uow.person(person_id)
            if found is None:
                raise NotFound("person_not_found", person=person_id)
            if not actor.everywhere and not any(actor.reaches(a.contract.company)
                                                for a in uow.accounts_of_person(person_id)):
                raise OutOfScope("person_not_found", person=person_id)  # no probing of names
            if "".join(found.name.split()) != "".join(name.split()):  # the wrong human?
                raise DomainError("person_name_mismatch", person=person_id)
            person = found
        acc = Account(
            user_id=user_id, person_id=person.id, contract_id=con.id, role=role_.value,
            status=Status.PENDING.value, password_hash=hashed, must_change_password=True,
            created_by=actor.id, created_at=now, status_changed_at=now,
        )
        uow.add(acc)
        uow.add(PasswordHistory(account_id=acc.id, hash=hashed, created_at=now))
        if ident is None:
            ident = Identifier(value=key, kind="account", holder_id=acc.id, assigned_by=actor.id,
                               assigned_at=now)
            if not uow.identifiers.claim(ident):  # a concurrent create took the same new ID first
                raise DomainError("identifier_in_use", user_id=user_id)
        else:
            ident.kind, ident.holder_id = "account", acc.id
            ident.assigned_by, ident.assigned_at = actor.id, now
            ident.approved_by = ident.approved_at = ident.released_at = None
        uow.audit(now, actor, "account.create", user_id, role=role_.value, contract=contract,
                  person_id=person.id, linked_person=person_id is not None)
        result = view(deps, uow, acc)
        uow.commit()
    return Issued(result, initial)


@guard.audited("identifier.approve")
def approve_identifier(deps: Deps, actor: Actor, user_id: str) -> AccountView:
    """A system administrator of the account's company makes an assigned identifier effective
    (004 第6 1(1)ア); never the one who assigned it, never for their own account."""
    actor.require(Perm.APPROVE_IDENTIFIERS)
    now = deps.clock.now()
    with deps.uow() as uow:
        acc = guard.account(uow, actor, Perm.APPROVE_IDENTIFIERS, user_id)
        if acc.status != Status.PENDING:
            raise DomainError("identifier_not_pending", user_id=user_id)
        ident = uow.identifier(identifiers.canonical(user_id), lock=True)
        assert ident is not None
        if deps.settings.identifiers.four_eyes and ident.assigned_by == actor.id:
            raise Forbidden("four_eyes")
        acc.status = lifecycle.transition(Status(acc.status), "approve").value
        acc.status_changed_at = now
        ident.approved_by, ident.approved_at = actor.id, now
        uow.audit(now, actor, "identifier.approve", acc.user_id, assigned_by=ident.assigned_by)
        result = view(deps, uow, acc)
        uow.commit()
    return result


@guard.audited("account.update")
def update_account(
    deps: Deps, actor: Actor, user_id: str, name: str | None = None, role: str | None = None
) -> AccountView:
    actor.require(Perm.MANAGE_ACCOUNTS)
    if role is not None:
        _may_assign(actor, parse_role(role))
    now = deps.clock.now()
    with deps.uow() as uow:
        acc = guard.account(uow, actor, Perm.MANAGE_ACCOUNTS, user_id)
        if acc.status == Status.DELETED:
            raise DomainError("bad_transition", status=acc.status)
        changes: dict[str, Any] = {}
        if name is not None and _valid_name(name) != acc.person.name:
            acc.person.name = changes["name"] = _valid_name(name)
        if role is not None and parse_role(role).value != acc.role:
            changes["role"] = {"from": acc.role, "to": parse_role(role).value}
            acc.role = parse_role(role).value
        if changes:
            uow.audit(now, actor, "account.update", acc.user_id, **changes)
        result = view(deps, uow, acc)
        uow.commit()
    return result


def _change_status(deps: Deps, actor: Actor, user_id: str, action: str, **detail: Any) -> AccountView:
    actor.require(Perm.MANAGE_ACCOUNTS)
    now = deps.clock.now()
    with deps.uow() as uow:
        acc = guard.account(uow, actor, Perm.MANAGE_ACCOUNTS, user_id)
        before = acc.status
        ends = access_end(deps, acc.contract)
        if action == "resume" and ends is not None and now >= ends:
            raise DomainError("bad_transition", status=Status.EXPIRED.value)
        acc.status = lifecycle.transition(Status(acc.status), action).value
        acc.status_changed_at = now
        if action == "delete":
            detail["returns"] = revoke(uow, acc, now)
        uow.audit(now, actor, f"account.{action}", acc.user_id, status_from=before, **detail)
        result = view(deps, uow, acc)
        uow.commit()
    if action in ("suspend", "delete"):
        # R16: its sessions end now
        backchannel.end_all(deps, identifiers.canonical(user_id), f"account_{action}")
    return result


def revoke(uow: UnitOfWork, acc: Account, now: datetime) -> list[str]:
    """R7: the account's identifier and every authenticator invalidated, the revocation time
    recorded; the identifier row stays as a tombstone until the reuse window has passed (R6).
    The palm is the person's: it is disabled only when no other live account of theirs uses
    it. Returns what the holder must give back (their security keys, then the fixed list)."""
    acc.password_hash, acc.revoked_at = None, now
    ident = uow.identifier(identifiers.canonical(acc.user_id), lock=True)
    if ident is not None and ident.holder_id == acc.id:
        ident.holder_id, ident.released_at = None, now
    returns = [f"security_key:{c.name}" for c in uow.credentials.webauthn_of(acc.id, lock=True)]
    for cred in uow.credentials.webauthn_of(acc.id, lock=True):
        uow.credentials.remove_webauthn(cred)
    totp_cred = uow.credentials.totp_of(acc.id)
    if totp_cred is not None:
        uow.credentials.remove_totp(totp_cred)
    uow.credentials.drop_pending_totp(identifiers.canonical(acc.user_id))
    others = [a for a in uow.accounts_of_person(acc.person_id)
              if a.id != acc.id and a.status not in (Status.DELETED, Status.EXPIRED)]
    palm = uow.biometrics.enrolment_of(acc.person_id, lock=True)
    if palm is not None and not others and palm.disabled_at is None:
        palm.disabled_at = now
    return [*returns, "id_card", "operation_manual"]


@guard.audited("account.suspend")
def suspend(deps: Deps, actor: Actor, user_id: str, reason: str = "") -> AccountView:
    return _change_status(deps, actor, user_id, "suspend", **_reason(reason))


@guard.audited("account.resume")
def resume(deps: Deps, actor: Actor, user_id: str, reason: str = "") -> AccountView:
    return _change_status(deps, actor, user_id, "resume", **_reason(reason))


@guard.audited("account.delete")
def delete(deps: Deps, actor: Actor, user_id: str, reason: str = "") -> AccountView:
    return _change_status(deps, actor, user_id, "delete", **_reason(reason))


@guard.audited("password.reset")
def reset_password(deps: Deps, actor: Actor, user_id: str, reason: str = "") -> Issued:
    """A forgotten password: invalidate the current one and issue a new initial one (R2)."""
    actor.require(Perm.MANAGE_ACCOUNTS)
    now = deps.clock.now()
    initial = generate_initial(deps.rule, user_id, is_breached=deps.blocklist.is_breached)
    with deps.uow(read_only=True) as uow:  # refuse before the hash: argon2 work for nobody
        guard.account(uow, actor, Perm.MANAGE_ACCOUNTS, user_id, lock=False)
    hashed = deps.hasher.hash(initial)
    with deps.uow() as uow:
        acc = guard.account(uow, actor, Perm.MANAGE_ACCOUNTS, user_id)
        if acc.status in (Status.DELETED, Status.EXPIRED):
            raise DomainError("bad_transition", status=acc.status)
        acc.password_hash, acc.must_change_password = hashed, True
        acc.password_changed_at = now
        uow.add(PasswordHistory(account_id=acc.id, hash=hashed, created_at=now))
        uow.audit(now, actor, "password.reset", acc.user_id, **_reason(reason))
        result = view(deps, uow, acc)
        uow.commit()
    backchannel.end_all(deps, identifiers.canonical(user_id), "password_reset")
    return Issued(result, initial)


@guard.audited("account.unlock")
def unlock(deps: Deps, actor: Actor, user_id: str, reason: str = "") -> AccountView:
    """Lift a lockout before its period ends (R4); audited with the state that was lifted."""
    actor.require(Perm.UNLOCK)
    now = deps.clock.now()
    with deps.uow(read_only=True) as uow:  # refused or unknown before touching the counters
        guard.account(uow, actor, Perm.UNLOCK, user_id, lock=False)
    # The counters live in their own store (Redis in production): reset them first, then audit
    # in the account's transaction (never hold a database transaction open across the call).
    failures, was_locked = deps.counters.reset(identifiers.canonical(user_id), now)
    with deps.uow() as uow:
        acc = guard.account(uow, actor, Perm.UNLOCK, user_id)
        uow.audit(now, actor, "account.unlock", acc.user_id, was_locked=was_locked, failures=failures,
                  **_reason(reason))
        result = view(deps, uow, acc)
        uow.commit()
    return result


@guard.audited("account.read")
def show(deps: Deps, actor: Actor, user_id: str) -> AccountView:
    """An account of the actor's company, or the actor's own."""
    actor.require(Perm.READ_ACCOUNTS)
    with deps.uow() as uow:
        acc = guard.account(uow, actor, Perm.READ_ACCOUNTS, user_id, own_ok=True, lock=False)
        return view(deps, uow, acc)


@guard.audited("account.search", "company")
def list_accounts(
    deps: Deps, actor: Actor, status: str | None = None, contract: str | None = None,
    role: str | None = None, company: str | None = None, name: str | None = None,
    locked: bool | None = None, limit: int = 1000,
) -> list[AccountView]:
    """Search the accounts of the actor's company (an agency operator: every company, or the
    one named); `name` is part of the person's name, `locked` the lock state now; at most
    `limit` accounts, by user ID."""
    actor.require(Perm.READ_ACCOUNTS)
    if not actor.everywhere:
        if not actor.company or (company and not actor.reaches(company)):
            return []  # another company's accounts (or no company): none for this actor
        company = actor.company
    if status is not None and status not in {s.value for s in Status}:
        raise DomainError("status_unknown", status=status)
    with deps.uow() as uow:
        found = [view(deps, uow, a) for a in uow.accounts(status, contract, role, company,
                                                           (name or "").strip() or None)]
    return [v for v in found if locked is None or v.locked == locked][:max(1, limit)]


def bootstrap_first_admin(deps: Deps, user_id: str = "admin") -> Issued | None:
    """On an empty database: the operations contract and an approved agency operator.
    Returns the one-time initial password, or None when accounts already exist."""
    with deps.uow() as uow:
        if uow.count_accounts():
            return None
    today = deps.clock.now().date()
    if not list_contracts(deps, BOOTSTRAP):
        create_contract(deps, BOOTSTRAP, OPERATIONS_CONTRACT, "DSG運用", today, None)
    issued = create_account(deps, BOOTSTRAP, user_id, "初期管理者", OPERATIONS_CONTRACT,
                            Role.AGENCY_OPERATOR.value)
    approved = approve_identifier(deps, BOOTSTRAP, user_id)
    return Issued(approved, issued.initial_password)


# ---- leavers, remote access, maintenance accounts --------------------------------------------


@guard.audited("account.departure")
def record_departure(deps: Deps, actor: Actor, user_id: str, leaves_at: datetime,
                     reason: str = "") -> AccountView:
    """R7: a leaver or a change of duties. Logon ends at `leaves_at` (now, if earlier); the
    maintenance job revokes the account within `accounts.revocation_hours` after it."""
    actor.require(Perm.MANAGE_ACCOUNTS)
    now = deps.clock.now()
    with deps.uow() as uow:
        acc = guard.account(uow, actor, Perm.MANAGE_ACCOUNTS, user_id)
        if acc.status in (Status.DELETED, Status.EXPIRED):
            raise DomainError("bad_transition", status=acc.status)
        acc.leaves_at = max(leaves_at, now)
        revoke_by = acc.leaves_at + timedelta(hours=deps.settings.accounts.revocation_hours)
        uow.audit(now, actor, "account.departure", acc.user_id, leaves_at=jst_iso(acc.leaves_at),
                  revoke_by=jst_iso(revoke_by), **_reason(reason))
        result = view(deps, uow, acc)
        uow.commit()
    if acc.leaves_at <= now:
        backchannel.end_all(deps, identifiers.canonical(user_id), "departed")  # gone now: sessions end now
    return result


@guard.audited("account.remote")
def approve_remote(deps: Deps, actor: Actor, user_id: str, until: date | None,
                   reason: str = "") -> AccountView:
    """R17: approve remote access in advance, up to and including `until` (None withdraws it:
    remote sessions end at their next request)."""
    actor.require(Perm.APPROVE_REMOTE)
    now = deps.clock.now()
    if until is not None and until < now.astimezone(JST).date():
        raise DomainError("remote_until_invalid")
    with deps.uow() as uow:
        acc = guard.account(uow, actor, Perm.APPROVE_REMOTE, user_id)
        acc.remote_until = until
        uow.audit(now, actor, "account.remote", acc.user_id,
                  until=until.isoformat() if until else None, **_reason(reason))
        result = view(deps, uow, acc)
        uow.commit()
    return result


@guard.audited("account.window")
def set_window(deps: Deps, actor: Actor, user_id: str, starts_at: datetime, ends_at: datetime,
               reason: str = "") -> AccountView:
    """R26: make the account a maintenance account, valid only from `starts_at` until
    `ends_at` (its sessions end the moment the window closes); every action of it is flagged."""
    actor.require(Perm.APPROVE_IDENTIFIERS)
    if ends_at <= starts_at:
        raise DomainError("window_invalid")
    now = deps.clock.now()
    with deps.uow() as uow:
        acc = guard.account(uow, actor, Perm.APPROVE_IDENTIFIERS, user_id)
        acc.window_starts_at, acc.window_ends_at = starts_at, ends_at
        uow.audit(now, actor, "account.window", acc.user_id, starts_at=jst_iso(starts_at),
                  ends_at=jst_iso(ends_at), **_reason(reason))
        result = view(deps, uow, acc)
        uow.commit()
    return result
