"""Service clients (R6): processes acting for the gateway (the directory sync, a reporting job)
have identifiers of their own and authenticate as themselves. A client is created by an
administrator of its company (its ID claimed in the one namespace of identifiers, kind
"service"), approved by a system administrator of that company or the agency who is not its
creator (four eyes, always), and acts only within its scopes (domain/roles.py:SCOPES; never an
approval: those are for people). Its secret is shown once, at creation and at each rotation;
only its argon2 hash is kept, and a rotation kills the old one at once. Every use is audited;
wrong secrets count toward a lockout exactly as passwords do (settings.lockout)."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from authsvc.domain import identifiers, lockout, network
from authsvc.domain.calendar import jst_iso
from authsvc.domain.errors import DomainError, Forbidden, NotFound
from authsvc.domain.roles import (
    Actor,
    Perm,
    Role,
    Scope,
    company_key,
    parse_scopes,
    scope_grants,
)
from authsvc.services import Deps, alerts, guard
from authsvc.services.sessions import Client
from authsvc.store.models import Identifier, ServiceClient
from authsvc.store.uow import UnitOfWork

PREFIX = "svc:"  # a client acts, and is audited, as svc:<client_id>
PENDING, ACTIVE, SUSPENDED, REVOKED = "pending", "active", "suspended", "revoked"
# action -> (the states it applies to, the state it leaves, the right it needs)
TRANSITIONS = {
    "approve": ({PENDING}, ACTIVE, Perm.APPROVE_IDENTIFIERS),
    "suspend": ({ACTIVE}, SUSPENDED, Perm.MANAGE_CLIENTS),
    "resume": ({SUSPENDED}, ACTIVE, Perm.MANAGE_CLIENTS),
    "revoke": ({PENDING, ACTIVE, SUSPENDED}, REVOKED, Perm.MANAGE_CLIENTS),
}
ACTIONS = ("approve", "rotate", "suspend", "resume", "revoke")


@dataclass(frozen=True)
class ClientView:
    client_id: str
    company: str  # "" for the agency's (every company)
    scopes: list[str]
    status: str
    created_by: str
    created_at: str
    approved_by: str | None
    approved_at: str | None
    rotated_at: str | None
    last_used_at: str | None
    status_changed_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IssuedSecret:
    """A client and its secret: show it once, never store or log it."""

    client: ClientView
    secret: str


def _iso(moment: datetime | None) -> str | None:
    return jst_iso(moment) if moment else None


def _view(c: ServiceClient) -> ClientView:
    return ClientView(c.client_id, c.company or "", list(json.loads(c.scopes)), c.status, c.created_by,
                      jst_iso(c.created_at), c.approved_by, _iso(c.approved_at), _iso(c.rotated_at),
                      _iso(c.last_used_at), jst_iso(c.status_changed_at))


def new_secret() -> str:
    """256 random bits, URL-safe (no ':', so `client_id:secret` splits at the first colon)."""
    return secrets.token_urlsafe(32)


def _reason(reason: str) -> dict[str, str]:
    reason = " ".join((reason or "").split())[:200]
    return {"reason": reason} if reason else {}


def _client(uow: UnitOfWork, actor: Actor, perm: Perm, client_id: str) -> ServiceClient:
    """The client `actor` may `perm`: of their company (another company's answers like an
    unknown ID)."""
    found = uow.service_clients.by_identifier(identifiers.canonical(client_id), lock=True)
    if found is None:
        raise NotFound("client_not_found", client=client_id)
    guard.check(actor, perm, found.company, "client_not_found", client=client_id)
    return found


def _company(uow: UnitOfWork, company: str | None) -> str | None:
    """The company as its contracts spell it; None for the agency's."""
    if company is None or not company.strip():
        return None
    wanted = company_key(company)
    for con in uow.contracts():
        if company_key(con.company) == wanted:
            return con.company
    raise NotFound("client_company_unknown", company=" ".join(company.split())[:200])


# ---- administration ----------------------------------------------------------------------


@guard.audited("client.create", "client_id")
def create(deps: Deps, actor: Actor, client_id: str, scopes: list[str] | tuple[str, ...],
           company: str | None = None) -> IssuedSecret:
    """Assign `client_id` to a new service client of `company` (the actor's own by default;
    none, the agency's, only for the agency), pending approval; its secret is in the answer,
    once. The creator gives only scopes within their own rights."""
    actor.require(Perm.MANAGE_CLIENTS)
    key = identifiers.canonical(client_id)
    wanted = parse_scopes(scopes)
    for perm in scope_grants(wanted):
        if not actor.can(perm):
            raise Forbidden("client_scope_not_grantable")
    secret = new_secret()
    hashed = deps.hasher.hash(secret)  # before the transaction: argon2 holds no locks
    now = deps.clock.now()
    with deps.uow() as uow:
        if company is None and not actor.everywhere:
            company = actor.company
        bound = _company(uow, company)
        guard.check(actor, Perm.MANAGE_CLIENTS, bound, "client_company_unknown",
                    company=" ".join((company or "").split())[:200])
        ident = uow.identifier(key, lock=True)
        if ident is not None:
            identifiers.check_assignable(client_id, now, ident.holder_id is not None,
                                         ident.released_at, deps.settings.identifiers.reuse_after_days)
        row = ServiceClient(client_id=key, company=bound, scopes=json.dumps([s.value for s in wanted]),
                            secret_hash=hashed, status=PENDING, created_by=actor.id, created_at=now,
                            status_changed_at=now)
        uow.service_clients.add(row)
        if ident is None:
            ident = Identifier(value=key, kind="service", holder_id=row.id, assigned_by=actor.id,
                               assigned_at=now)
            if not uow.identifiers.claim(ident):  # a concurrent create took the same new ID first
                raise DomainError("identifier_in_use", user_id=client_id)
        else:
            ident.kind, ident.holder_id = "service", row.id
            ident.assigned_by, ident.assigned_at = actor.id, now
            ident.approved_by = ident.approved_at = ident.released_at = None
        uow.audit(now, actor, "client.create", key, scopes=[s.value for s in wanted],
                  **({"company": bound} if bound else {}))
        result = _view(row)
        uow.commit()
    return IssuedSecret(result, secret)


@guard.audited("client.approve", "client_id")
def approve(deps: Deps, actor: Actor, client_id: str) -> ClientView:
    """A system administrator of the client's company, or the agency, makes it effective;
    never the one who created it (four eyes, whatever `identifiers.four_eyes` says)."""
    return _change(deps, actor, client_id, "approve")


@guard.audited("client.suspend", "client_id")
def suspend(deps: Deps, actor: Actor, client_id: str, reason: str = "") -> ClientView:
    """Refused from its next request until resumed."""
    return _change(deps, actor, client_id, "suspend", reason)


@guard.audited("client.resume", "client_id")
def resume(deps: Deps, actor: Actor, client_id: str, reason: str = "") -> ClientView:
    return _change(deps, actor, client_id, "resume", reason)


@guard.audited("client.revoke", "client_id")
def revoke(deps: Deps, actor: Actor, client_id: str, reason: str = "") -> ClientView:
    """Final: the secret's hash is wiped and the identifier kept as a tombstone (reused by
    nothing before `identifiers.reuse_after_days`)."""
    return _change(deps, actor, client_id, "revoke", reason)


def _change(deps: Deps, actor: Actor, client_id: str, action: str, reason: str = "") -> ClientView:
    allowed, target, perm = TRANSITIONS[action]
    actor.require(perm)
    now = deps.clock.now()
    with deps.uow() as uow:
        row = _client(uow, actor, perm, client_id)
        if row.status not in allowed:
            raise DomainError("client_bad_transition", status=row.status)
        if action == "approve" and row.created_by == actor.id:
            raise Forbidden("four_eyes")
        before, row.status, row.status_changed_at = row.status, target, now
        ident = uow.identifier(row.client_id, lock=True)
        assert ident is not None
        if action == "approve":
            row.approved_by, row.approved_at = actor.id, now
            ident.approved_by, ident.approved_at = actor.id, now
        if action == "revoke":
            row.secret_hash = None
            ident.holder_id, ident.released_at = None, now
        uow.audit(now, actor, f"client.{action}", row.client_id, status_from=before,
                  **({"created_by": row.created_by} if action == "approve" else {}), **_reason(reason))
        result = _view(row)
        uow.commit()
    return result


@guard.audited("client.rotate", "client_id")
def rotate(deps: Deps, actor: Actor, client_id: str, reason: str = "") -> IssuedSecret:
    """A new secret, shown once; the old one is refused from this moment. The client's failure
    count and any lock are cleared with it (the secret they were counted against is gone)."""
    actor.require(Perm.MANAGE_CLIENTS)
    with deps.uow(read_only=True) as uow:  # refuse before the hash: argon2 work for nobody
        row = _client(uow, actor, Perm.MANAGE_CLIENTS, client_id)
        if row.status == REVOKED:
            raise DomainError("client_bad_transition", status=row.status)
    secret = new_secret()
    hashed = deps.hasher.hash(secret)
    now = deps.clock.now()
    # the counters live in their own store (Redis in production): reset them first, then audit
    # in the client's transaction (never hold a database transaction open across the call)
    failures, was_locked = deps.counters.reset(PREFIX + identifiers.canonical(client_id), now)
    with deps.uow() as uow:
        row = _client(uow, actor, Perm.MANAGE_CLIENTS, client_id)
        if row.status == REVOKED:
            raise DomainError("client_bad_transition", status=row.status)
        row.secret_hash, row.rotated_at = hashed, now
        uow.audit(now, actor, "client.rotate", row.client_id, status=row.status,
                  was_locked=was_locked, failures=failures, **_reason(reason))
        result = _view(row)
        uow.commit()
    return IssuedSecret(result, secret)


@guard.audited("client.list", None)
def list_clients(deps: Deps, actor: Actor) -> list[ClientView]:
    """The clients of the actor's company (every client for the agency), by client ID."""
    actor.require(Perm.MANAGE_CLIENTS)
    with deps.uow(read_only=True) as uow:
        return [_view(c) for c in uow.service_clients.all() if actor.reaches(c.company)]


# ---- authentication ----------------------------------------------------------------------


def actor_of(row: ServiceClient, client: Client) -> Actor:
    """How an authenticated client acts: as svc:<client_id>, for its company (the agency's:
    every company), with its roles' ceiling (a company's system administrator, or the agency
    operator) bounded by its scopes."""
    scopes = tuple(Scope(s) for s in json.loads(row.scopes))
    ceiling = Role.SYSTEM_ADMIN if row.company else Role.AGENCY_OPERATOR
    return Actor((PREFIX + row.client_id)[:100], frozenset({ceiling}), terminal=client.terminal[:100],
                 source=client.source[:100], company=row.company or "", grants=scope_grants(scopes))


def authenticate(deps: Deps, client_id: str, secret: str, client: Client) -> Actor | None:
    """The actor of an active client presenting its current secret, or None. Counted toward
    the lockout before the secret is checked (R4), under svc:<client_id> (an unknown ID under a
    keyed pseudonym, never as typed, and it locks just the same); an unknown client costs the
    same hash (R5). Every attempt is audited (`client.authenticate`, its subject the client ID
    or that pseudonym) with its real reason."""
    pol = deps.settings.lockout
    now = deps.clock.now()
    with deps.uow(read_only=True) as uow:
        found: dict[str, ServiceClient | None] = {}

        def known(k: str) -> bool:
            found["row"] = uow.service_clients.by_identifier(k)
            return found["row"] is not None

        subject = lockout.throttle_key(client_id, deps.audit_key, known)
        row = None if subject.startswith(lockout.UNKNOWN_PREFIX) else found.get("row")
        stored, row_id = (row.secret_hash, row.id) if row is not None else (None, None)
    key = PREFIX + subject  # the counters' key: a client's own, apart from any account's
    who = client.actor(key)
    decision = deps.counters.consume(key, now, pol.max_failures, pol.lock_minutes)
    if decision.auto_unlocked or not decision.allowed:
        with deps.uow() as uow:
            if decision.auto_unlocked:
                uow.audit(now, who, "client.auto_unlock", subject)
            if not decision.allowed:
                uow.audit(now, who, "client.authenticate", subject, "refused",
                          reason="busy" if decision.busy else "locked")
            uow.commit()
        if not decision.allowed:
            return None
    matched = deps.hasher.verify(stored, secret)  # a dummy hash for an unknown client
    with deps.uow() as uow:
        row = uow.service_clients.get(row_id, lock=True) if row_id is not None else None
        reason = _refusal(deps, row, matched, client)
        if reason is None:
            assert row is not None
            row.last_used_at = now
            actor = actor_of(row, client)
            uow.audit(now, actor, "client.authenticate", subject)
            uow.commit()
            deps.counters.release(key, decision.attempt)
            deps.counters.succeed(key)
            return actor
        company = row.company if row is not None else None
        counted = reason in ("unknown_client", "wrong_secret")
        uow.audit(now, who, "client.authenticate", subject, "failed", reason=reason,
                  **({"failures": decision.failures + 1} if counted else {}),
                  **({"remote": True} if client.remote else {}))
        uow.commit()
    if not counted:  # the right secret of a client that may not act now: no guess to count
        deps.counters.release(key, decision.attempt)
        return None
    # audited first, counted second: every counted failure, and so every lock, is explained
    failure = deps.counters.fail(key, decision.attempt, now, pol.max_failures, pol.lock_minutes)
    if failure.locks_now:
        with deps.uow() as uow:
            uow.audit(now, who, "client.lock", subject, failures=failure.failures,
                      locked_until=failure.locked_until.isoformat() if failure.locked_until else None)
            alerts.note(uow, now, "client_locked", subject, company, failures=failure.failures)
            uow.commit()
    return None


def _refusal(deps: Deps, row: ServiceClient | None, matched: bool, client: Client) -> str | None:
    """The operator-only reason a client may not act now, or None when it may."""
    if row is None:
        return "unknown_client"
    if not matched:
        return "wrong_secret"
    if row.status != ACTIVE:
        return f"status_{row.status}"
    if not network.may_administer(client.remote, row.client_id, deps.settings.network.remote_admin):
        return "remote_not_approved"  # R17, as for the console
    return None
