"""Directory sync ([9 of 12], R20): a company's users and groups imported from its LDAP
directory (full, or incremental by the directory's change stamps), and its accounts and groups
exported to a directory for downstream DSG services.

Imported accounts follow every rule of this service: they are created pending (their
identifier approved by a system administrator, never by the sync), one per contract, with no
password at all (an administrator issues the initial password here, R2; a directory password is
never read). The sync runs as its own service client; every change is an audit event naming it.

Safety (R20): a sync changes accounts page by page, and never removes anything until it has
seen the whole directory. A listing that fails midway, or that finds far fewer entries than the
last one (`guard_min_ratio`), or that would suspend more than `guard_max_removals` of them,
stops with an alert and removes nothing. Removal is soft: an account whose entry left is
suspended, and deleted only `removal_grace_days` later. A dry run does everything but write."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from adapters.directory import DirectoryError, Entry, LdapDirectory, Source
from adapters.directory.ldap import dn_key, escape, rdn
from authsvc.domain import identifiers, lifecycle
from authsvc.domain.calendar import jst_iso
from authsvc.domain.errors import DomainError, NotFound
from authsvc.domain.lifecycle import Status
from authsvc.domain.roles import Actor, Perm
from authsvc.services import Deps, alerts, backchannel, guard
from authsvc.services.accounts import revoke
from authsvc.store.models import Account, DirectoryEntry, DirectoryRun, Identifier, Person
from authsvc.store.uow import UnitOfWork

BATCH = 500  # entries changed per transaction


@dataclass
class Report:
    company: str
    mode: str
    dry_run: bool
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)      # existing accounts the directory now feeds
    resumed: list[str] = field(default_factory=list)
    suspended: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)      # groups created
    memberships: list[str] = field(default_factory=list)  # "group: user" requested (+) or removed (-)
    skipped: list[str] = field(default_factory=list)     # "dn: reason"
    seen: int = 0
    stopped: str = ""                                    # why it stopped before removals
    error: str = ""
    # a dry run writes no `seen` marks: it remembers the IDs it saw instead
    seen_ids: set[str] = field(default_factory=set, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "seen_ids"}

    @property
    def counts(self) -> dict[str, int]:
        return {k: (len(v) if isinstance(v, list) else v) for k, v in asdict(self).items()
                if k in ("created", "updated", "linked", "resumed", "suspended", "deleted", "groups",
                         "memberships", "skipped", "seen")}


class SyncStopped(DomainError):
    """The sync stopped before removing anything (the report says why)."""


def _source(deps: Deps, company: str) -> LdapDirectory:
    found = deps.directories(company) if deps.directories else None
    if found is None:
        raise NotFound("directory_not_configured", company=company)
    return found


def _digest(*values: object) -> str:
    return hashlib.sha256(json.dumps(values, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class _Contract:
    id: int
    ends_on: date | None


@dataclass(frozen=True)
class _User:
    entry: Entry
    user_id: str
    name: str
    contract: str

    @property
    def digest(self) -> str:
        return _digest(self.entry.dn, self.user_id, self.name, self.contract)


def _user(src: Source, e: Entry) -> _User | str:
    """The account an entry describes, or why it cannot be imported."""
    if not e.entry_id:
        return "no_entry_id"
    if e.invalid:
        return f"invalid_utf8:{','.join(e.invalid)}"
    user_id = e.first(src.user_id_attribute)
    if identifiers.canonical_or_none(user_id) is None:
        return "user_id_invalid"
    name = " ".join((e.first(src.name_attribute) or e.first(src.name_fallback_attribute)).split())
    if not 1 <= len(name) <= 200:
        return "name_invalid"
    contract = e.first(src.contract_attribute) if src.contract_attribute else src.contract
    if not contract or len(contract) > 64:
        return "contract_missing"
    return _User(e, user_id, name, contract)


def _attributes(src: Source) -> list[str]:
    names = [src.user_id_attribute, src.name_attribute, src.name_fallback_attribute, src.changed_attribute,
             src.contract_attribute]
    return [n for n in dict.fromkeys(names) if n]


def _pages(items: Iterator[Entry], size: int) -> Iterator[list[Entry]]:
    page: list[Entry] = []
    for item in items:
        page.append(item)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


@guard.audited("directory.sync", "company")
def sync(deps: Deps, actor: Actor, company: str, full: bool = False, dry_run: bool = False) -> Report:
    """Import `company`'s users and groups from its directory: every entry (`full`), or those
    changed since the last sync plus a listing of the IDs (renames and deletions); `dry_run`
    reports exactly what would change and writes nothing (not even the audit of the changes)."""
    actor.require(Perm.MANAGE_ACCOUNTS)
    guard.check(actor, Perm.MANAGE_ACCOUNTS, company, "directory_not_configured", company=company)
    directory = _source(deps, company)
    src = directory.source
    started = deps.clock.now()
    with deps.uow(read_only=True) as uow:
        last = uow.directory.last_run(company)
        last_mark = last.high_water if last is not None else None
        known_users = uow.directory.present(company, "user")
        # the company's contracts, read once for the whole sync (not once a page)
        contracts = {c.number: _Contract(c.id, c.ends_on) for c in uow.contracts() if c.company == company}
    since = None if full or not last_mark else last_mark
    report = Report(company, "full" if since is None else "incremental", dry_run)
    run_id = _begin(deps, actor, report, started)
    high_water = since or ""
    try:
        with directory:
            flt = src.users_filter if since is None else \
                f"(&{src.users_filter}({src.changed_attribute}>={escape(since)}))"
            for page in _pages(directory.search(src.users_base, flt, _attributes(src)), BATCH):
                high_water = max([high_water, *(e.first(src.changed_attribute) for e in page)])
                _import_users(deps, actor, src, page, contracts, started, report)
            if since is not None:  # the IDs of every entry: what was renamed is changed; what is gone, gone
                for page in _pages(directory.search(src.users_base, src.users_filter, []), BATCH):
                    _mark_seen(deps, company, [e.entry_id for e in page if e.entry_id], started, report)
            if src.groups_base:  # incremental: the groups changed since (a member leaving changes its group)
                groups_filter = src.groups_filter if since is None else \
                    f"(&{src.groups_filter}({src.changed_attribute}>={escape(since)}))"
                _import_groups(deps, actor, src, directory, groups_filter, report)
        _removals(deps, actor, src, known_users, started, report)
    except DirectoryError as exc:
        report.error = str(exc)[:500]
        report.stopped = "directory_unavailable"
    _end(deps, actor, run_id, report, high_water)
    if report.stopped:
        raise SyncStopped("directory_sync_stopped", company=company, reason=report.stopped,
                          detail=report.error or report.stopped)
    return report


def _begin(deps: Deps, actor: Actor, report: Report, now: datetime) -> int:
    with deps.uow() as uow:
        run = DirectoryRun(company=report.company, mode=report.mode, dry_run=report.dry_run, actor=actor.id,
                           started_at=now, result="running", counts="{}")
        uow.directory.add_run(run)
        uow.commit()
        return run.id


def _end(deps: Deps, actor: Actor, run_id: int, report: Report, high_water: str) -> None:
    now = deps.clock.now()
    with deps.uow() as uow:
        run = uow.directory.run(run_id)
        assert run is not None
        run.finished_at, run.counts = now, json.dumps(report.counts)
        run.result = "stopped" if report.stopped else "ok"
        run.error = (report.error or report.stopped or None)
        run.high_water = high_water or None
        uow.audit(now, actor, "directory.sync", report.company, "failed" if report.stopped else "ok",
                  mode=report.mode, dry_run=report.dry_run, **report.counts,
                  **({"stopped": report.stopped, "error": report.error[:300]} if report.stopped else {}))
        if report.stopped and not report.dry_run:
            alerts.note(uow, now, "directory_sync_stopped", report.company, report.company,
                        reason=report.stopped, error=report.error[:300])
        uow.commit()


def _mark_seen(deps: Deps, company: str, ids: list[str], now: datetime, report: Report) -> None:
    report.seen += len(ids)
    if report.dry_run:
        report.seen_ids.update(ids)
        return
    with deps.uow() as uow:
        uow.directory.seen(company, ids, now)
        uow.commit()


def _import_users(deps: Deps, actor: Actor, src: Source, page: list[Entry], contracts: dict[str, _Contract],
                  now: datetime, report: Report) -> None:
    """One page of user entries, in one transaction."""
    if report.mode == "full":
        report.seen += len(page)
        if report.dry_run:
            report.seen_ids.update(e.entry_id for e in page)
    with deps.uow() as uow:
        known = uow.directory.entries(src.company, [e.entry_id for e in page if e.entry_id])
        unchanged = []
        for e in page:
            u = _user(src, e)
            if isinstance(u, str):
                report.skipped.append(f"{e.dn[:200]}: {u}")
                continue
            row = known.get(e.entry_id)
            if row is None:
                _create(deps, uow, actor, src, u, contracts, now, report)
            elif row.digest == u.digest and row.removed_at is None:
                unchanged.append(row.entry_id)  # the common case: one UPDATE for the page
            else:
                _update(deps, uow, actor, src, u, row, now, report)
        if not report.dry_run:
            uow.directory.seen(src.company, unchanged, now)
            uow.commit()


def _create(deps: Deps, uow: UnitOfWork, actor: Actor, src: Source, u: _User, contracts: dict[str, _Contract],
            now: datetime, report: Report) -> None:
    con = contracts.get(u.contract)
    if con is None:
        report.skipped.append(f"{u.entry.dn[:200]}: contract_unknown")
        return
    key = identifiers.canonical(u.user_id)
    ident = uow.identifier(key, lock=True)
    holder = uow.account(key) if ident is not None and ident.holder_id is not None else None
    if holder is not None:  # the account exists (made by hand, or by an earlier source): link it
        if holder.contract.company != src.company or holder.contract.number != u.contract:
            report.skipped.append(f"{u.entry.dn[:200]}: identifier_in_use")
            return
        report.linked.append(holder.user_id)
        if not report.dry_run:
            uow.directory.add(DirectoryEntry(company=src.company, entry_id=u.entry.entry_id, kind="user",
                                             dn=u.entry.dn, dn_key=dn_key(u.entry.dn), subject=holder.user_id,
                                             digest=u.digest, seen_at=now))
            uow.audit(now, actor, "directory.link", holder.user_id, dn=u.entry.dn[:300])
        return
    if ident is not None:
        try:
            identifiers.check_assignable(u.user_id, now, False, ident.released_at,
                                         deps.settings.identifiers.reuse_after_days)
        except DomainError as exc:
            report.skipped.append(f"{u.entry.dn[:200]}: {exc.code}")
            return
    if con.ends_on is not None and now.date() > con.ends_on:
        report.skipped.append(f"{u.entry.dn[:200]}: contract_ended")
        return
    report.created.append(u.user_id)
    if report.dry_run:
        return
    person = Person(name=u.name, created_at=now)
    uow.add(person)
    # no password: the initial one is issued here by an administrator (R2), never copied
    acc = Account(user_id=u.user_id, person_id=person.id, contract_id=con.id, role="user",
                  status=Status.PENDING.value, password_hash=None, must_change_password=True,
                  created_by=actor.id, created_at=now, status_changed_at=now)
    uow.add(acc)
    if ident is None:
        uow.add(Identifier(value=key, kind="account", holder_id=acc.id, assigned_by=actor.id,
                           assigned_at=now))
    else:
        ident.kind, ident.holder_id, ident.assigned_by, ident.assigned_at = "account", acc.id, actor.id, now
        ident.approved_by = ident.approved_at = ident.released_at = None
    uow.directory.add(DirectoryEntry(company=src.company, entry_id=u.entry.entry_id, kind="user",
                                     dn=u.entry.dn, dn_key=dn_key(u.entry.dn), subject=u.user_id,
                                     digest=u.digest, seen_at=now))
    uow.audit(now, actor, "account.create", u.user_id, role="user", contract=u.contract, person_id=person.id,
              source="directory", dn=u.entry.dn[:300])


def _update(deps: Deps, uow: UnitOfWork, actor: Actor, src: Source, u: _User, row: DirectoryEntry,
            now: datetime, report: Report) -> None:
    acc = uow.account(identifiers.canonical(row.subject), lock=True)
    if acc is None:
        report.skipped.append(f"{u.entry.dn[:200]}: account_gone")
        return
    changes: dict[str, Any] = {}
    if u.user_id.lower() != acc.user_id.lower():
        changes["user_id"] = "not_changed"  # an identifier is assigned here, never renamed by a directory
    if u.contract != acc.contract.number:
        changes["contract"] = "not_changed"  # another contract is another account (per-contract accounts)
    if u.name != acc.person.name:
        changes["name"] = u.name
    if u.entry.dn != row.dn:
        changes["dn"] = u.entry.dn[:300]
    # back in the directory: resumed only if the sync suspended it and nobody touched it since
    resumed = (row.removed_at is not None and acc.status == Status.SUSPENDED.value
               and acc.status_changed_at == row.removed_at)
    if resumed:
        report.resumed.append(acc.user_id)
    elif changes:
        report.updated.append(acc.user_id)
    if report.dry_run:
        return
    if "name" in changes:
        acc.person.name = u.name
    if resumed:
        acc.status = lifecycle.transition(Status(acc.status), "resume").value
        acc.status_changed_at = now
        uow.audit(now, actor, "account.resume", acc.user_id, reason="directory_returned")
    row.dn, row.dn_key, row.digest = u.entry.dn, dn_key(u.entry.dn), u.digest
    row.seen_at, row.removed_at = now, None
    if changes:
        uow.audit(now, actor, "account.update", acc.user_id, source="directory", **changes)


def _removals(deps: Deps, actor: Actor, src: Source, known: int, started: datetime, report: Report) -> None:
    """After a complete listing: suspend the accounts whose entries left, unless the listing
    looks wrong (the guard); delete those suspended longer than the grace period."""
    if known and report.seen < known * src.guard_min_ratio:
        report.stopped = "too_few_entries"
        report.error = f"saw {report.seen} of {known} known entries"
        return
    ended = []
    with deps.uow() as uow:
        gone = [e for e in uow.directory.unseen(src.company, "user", started)
                if e.entry_id not in report.seen_ids]
        if known and len(gone) > max(1, known * src.guard_max_removals):
            report.stopped = "too_many_removals"
            report.error = f"{len(gone)} of {known} entries would be suspended"
            return
        for e in gone:
            report.suspended.append(e.subject)
            acc = uow.account(identifiers.canonical(e.subject), lock=True)
            if report.dry_run:
                continue
            e.removed_at = started
            if acc is not None and acc.status in (Status.ACTIVE.value, Status.DISABLED.value):
                acc.status = lifecycle.transition(Status(acc.status), "suspend").value
                acc.status_changed_at = started
                uow.audit(started, actor, "account.suspend", acc.user_id, reason="directory_removed")
                ended.append(identifiers.canonical(acc.user_id))
        cutoff = started - timedelta(days=src.removal_grace_days)
        for e in uow.directory.removed_before(src.company, cutoff):
            acc = uow.account(identifiers.canonical(e.subject), lock=True)
            report.deleted.append(e.subject)
            if report.dry_run:
                continue
            # deleted only as the sync left it (an operator who resumed it meanwhile decided otherwise)
            untouched = acc is not None and (acc.status == Status.PENDING.value or (
                acc.status == Status.SUSPENDED.value and acc.status_changed_at == e.removed_at))
            if acc is not None and untouched:
                acc.status = lifecycle.transition(Status(acc.status), "delete").value
                acc.status_changed_at = started
                returns = revoke(uow, acc, started)
                uow.audit(started, actor, "account.delete", acc.user_id, reason="directory_removed",
                          removed_at=jst_iso(e.removed_at) if e.removed_at else None, returns=returns)
            uow.directory.delete(e)
        if not report.dry_run:
            uow.commit()
    for user in ended:
        backchannel.end_all(deps, user, "account_suspend")


# ---- groups --------------------------------------------------------------------------------


def _import_groups(deps: Deps, actor: Actor, src: Source, directory: LdapDirectory, flt: str,
                   report: Report) -> None:
    """Each group entry: the company's group of that name (created with the deployment's
    factors), and its members' memberships requested (approved by a person, four eyes) or
    removed (a narrowing needs no approval)."""
    from authsvc.services import groups as group_rules

    wanted_attrs = [src.group_name_attribute, src.member_attribute]
    for e in directory.search(src.groups_base, flt, wanted_attrs):
        name = " ".join(e.first(src.group_name_attribute).split())[:100]
        if not name or e.invalid:
            report.skipped.append(f"{e.dn[:200]}: group_invalid")
            continue
        members_dn = list(e.values.get(src.member_attribute.lower(), ()))
        with deps.uow(read_only=True) as uow:
            existing = uow.groups.named(src.company, name)
            by_dn = uow.directory.by_dns(src.company, [dn_key(d) for d in members_dn])
            wanted = {r.subject.lower() for r in by_dn.values() if r.removed_at is None}
            current = {u.lower(): m.approved_at is not None
                       for m, u in (uow.groups.members(existing.id) if existing else [])}
        if existing is None:
            report.groups.append(name)
            if not report.dry_run:
                group_rules.create(deps, actor, name, list(deps.settings.mfa.second_factors), [], src.company)
        joining = sorted(wanted - set(current))
        report.memberships.extend(f"{name}: +{user}" for user in joining)
        if joining and not report.dry_run:
            group_rules.request_members(deps, actor, name, joining, src.company)
        for user in sorted(set(current) - wanted):
            report.memberships.append(f"{name}: -{user}")
            if not report.dry_run:
                group_rules.remove_member(deps, actor, name, user, src.company)


# ---- export --------------------------------------------------------------------------------


@dataclass
class ExportReport:
    company: str
    dry_run: bool
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _exported(acc: Account) -> dict[str, list[str]]:
    """What downstream services may know of an account: never a password or its hash."""
    status = acc.status if acc.status == Status.ACTIVE.value else "disabled"
    name = acc.person.name
    return {"uid": [acc.user_id], "cn": [name], "sn": [name], "displayName": [name],
            "employeeType": [status], "departmentNumber": [acc.contract.number],
            "o": [acc.contract.company]}


@guard.audited("directory.export", "company")
def export(deps: Deps, actor: Actor, company: str, dry_run: bool = False) -> ExportReport:
    """Publish the company's accounts (and their state) and groups under the source's
    `export_base`: created, updated, or marked disabled; idempotent (an unchanged entry is not
    written); never a password hash."""
    actor.require(Perm.MANAGE_ACCOUNTS)  # it writes to the company's directory
    guard.check(actor, Perm.MANAGE_ACCOUNTS, company, "directory_not_configured", company=company)
    directory = _source(deps, company)
    src = directory.source
    if not src.export_base:
        raise DomainError("directory_export_not_configured", company=company)
    report = ExportReport(company, dry_run)
    now = deps.clock.now()
    attrs = ["uid", "cn", "sn", "displayName", "employeeType", "departmentNumber", "o"]
    try:
        with directory:
            listed = directory.search(src.export_base, "(objectClass=inetOrgPerson)", attrs)
            there = {e.first("uid").lower(): e for e in listed}
            with deps.uow(read_only=True) as uow:
                wanted = {a.user_id.lower(): (a.user_id, _exported(a)) for a in uow.accounts()
                          if a.contract.company == company and a.status != Status.DELETED.value}
            for key, (user_id, values) in sorted(wanted.items()):
                dn = f"{rdn('uid', user_id)},{src.export_base}"
                found = there.get(key)
                if found is None:
                    report.added.append(user_id)
                    if not dry_run:
                        directory.add(dn, ["inetOrgPerson"], values)
                elif any(tuple(v) != found.values.get(k.lower(), ()) for k, v in values.items()):
                    report.changed.append(user_id)
                    if not dry_run:
                        directory.replace(found.dn, values)
            for key, e in sorted(there.items()):
                if key not in wanted and e.first("employeeType") != "disabled":
                    report.disabled.append(e.first("uid"))
                    if not dry_run:
                        directory.replace(e.dn, {"employeeType": ["disabled"]})
            if src.export_groups_base:
                _export_groups(deps, directory, src, report)
    except DirectoryError as exc:
        report.error = str(exc)[:500]
    with deps.uow() as uow:
        uow.audit(now, actor, "directory.export", company, "failed" if report.error else "ok",
                  dry_run=dry_run,
                  added=len(report.added), changed=len(report.changed), disabled=len(report.disabled),
                  **({"error": report.error[:300]} if report.error else {}))
        if report.error and not dry_run:
            alerts.note(uow, now, "directory_sync_stopped", company, company, reason="export_failed",
                        error=report.error[:300])
        uow.commit()
    if report.error:
        raise SyncStopped("directory_sync_stopped", company=company, reason="export_failed",
                          detail=report.error)
    return report


def _export_groups(deps: Deps, directory: LdapDirectory, src: Source, report: ExportReport) -> None:
    """Each group of the company as a groupOfNames of its approved members' exported entries
    (the export base itself stands in for a group with none: groupOfNames needs a member)."""
    with deps.uow(read_only=True) as uow:
        wanted = {}
        for g in uow.groups.of_company(src.company):
            members = sorted(f"{rdn('uid', user)},{src.export_base}"
                             for m, user in uow.groups.members(g.id) if m.approved_at is not None)
            wanted[g.name] = members or [src.export_base]
    there = {e.first("cn"): e for e in directory.search(src.export_groups_base, "(objectClass=groupOfNames)",
                                                          ["cn", "member"])}
    for name, members in sorted(wanted.items()):
        found = there.get(name)
        if found is None:
            report.added.append(f"group:{name}")
            if not report.dry_run:
                directory.add(f"{rdn('cn', name)},{src.export_groups_base}", ["groupOfNames"],
                              {"cn": [name], "member": members})
        elif sorted(dn_key(m) for m in found.values.get("member", ())) != sorted(dn_key(m) for m in members):
            report.changed.append(f"group:{name}")
            if not report.dry_run:
                directory.replace(found.dn, {"member": members})
    for name, e in sorted(there.items()):
        if name not in wanted:
            report.disabled.append(f"group:{name}")
            if not report.dry_run:
                directory.delete(e.dn)


@guard.audited("directory.runs", "company")
def runs(deps: Deps, actor: Actor, company: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest syncs and exports of the actor's companies."""
    actor.require(Perm.READ_ACCOUNTS)
    with deps.uow(read_only=True) as uow:
        return [{"id": r.id, "company": r.company, "mode": r.mode, "dry_run": r.dry_run, "actor": r.actor,
                 "started_at": jst_iso(r.started_at), "result": r.result, "counts": json.loads(r.counts),
                 "error": r.error}
                for r in uow.directory.runs(company, limit) if actor.reaches(r.company)]
