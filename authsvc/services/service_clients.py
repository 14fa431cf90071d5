"""Service clients (R6): processes acting for the gateway (the directory sync, a reporting job)
have identifiers of their own and authenticate as themselves. A client is created by an
administrator of its company (its ID claimed in the one namespace of identifiers, kind
"service"), approved by a system administrator of that company or the agency who is not its
creator (four eyes, always), and acts only within its scopes (domain/roles.py:SCOPES; never an
approval: those are for people). Its secret is shown once, at creation and at each rotation;
only its argon2 hash is kept, and a rotation kills the old one at once. Every use is audited;
wrong secrets count toward a lockout exactly as passwords do (settings.lockout).

A relying party of the OpenID provider ([8 of 12], R18) is a client of kind "oidc": the same
row, identifier namespace, four-eyes approval, life cycle, audit events and company scope, with
its registration (domain/relying_party.py) instead of scopes. Who may use it is the groups'
`services` (R8): a group listing its client ID admits the group's approved members. Each kind's
credentials open only its own door (`authenticate(kind=...)`): an OIDC client's secret never
opens the admin API."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from joserfc.jwk import KeySet

from authsvc.domain import identifiers, lockout, network
from authsvc.domain.calendar import jst_iso
from authsvc.domain.errors import DomainError, Forbidden, InvalidInput, NotFound
from authsvc.domain.relying_party import Registration
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
from authsvc.services import groups as group_rules
from authsvc.services.sessions import Client
from authsvc.store.models import Group, Identifier, ServiceClient
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
SERVICE, OIDC = "service", "oidc"  # the kinds: a process on the admin API, a relying party
KINDS = (SERVICE, OIDC)


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
    kind: str = SERVICE
    oidc: dict[str, Any] | None = None  # the registration (no secret in it); None for kind service
    # the groups whose members may use it (oidc: its company's by name; the agency's, of every
    # company as "company/name"); [] for kind service
    groups: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IssuedSecret:
    """A client and its secret: show it once, never store or log it ("" for a client that
    authenticates with `private_key_jwt`: it has none)."""

    client: ClientView
    secret: str


def _iso(moment: datetime | None) -> str | None:
    return jst_iso(moment) if moment else None


def _kind(c: ServiceClient) -> str:
    return c.kind or SERVICE  # a row from before migration 0009 is a service client


def _users(c: ServiceClient, groups: list[Group]) -> list[str]:
    """The groups (of `groups`) whose services name the OIDC client `c`: its company's by name,
    every company's as "company/name" for the agency's client."""
    if _kind(c) != OIDC:
        return []
    return [g.name if c.company else f"{g.company}/{g.name}" for g in groups
            if (c.company is None or g.company == c.company)
            and c.client_id in {identifiers.canonical_or_none(s) for s in json.loads(g.services)}]


def _view(c: ServiceClient, groups: list[Group] | None = None) -> ClientView:
    """The client as an operator sees it; `groups`: the groups to find its users among."""
    oidc = json.loads(Registration.from_json(c.oidc).to_json()) if _kind(c) == OIDC else None
    return ClientView(c.client_id, c.company or "", list(json.loads(c.scopes)), c.status, c.created_by,
                      jst_iso(c.created_at), c.approved_by, _iso(c.approved_at), _iso(c.rotated_at),
                      _iso(c.last_used_at), jst_iso(c.status_changed_at), _kind(c), oidc,
                      _users(c, groups or []))


def _view_in(uow: UnitOfWork, c: ServiceClient) -> ClientView:
    """The client's view with the groups that may use it, read in `uow`."""
    return _view(c, uow.groups.of_company(c.company) if _kind(c) == OIDC else [])


def _has_secret(c: ServiceClient) -> bool:
    """Whether the client authenticates with a secret (a service client, or a relying party
    with client_secret_basic; one with private_key_jwt proves a key instead)."""
    return _kind(c) != OIDC or Registration.from_json(c.oidc).auth_method == "client_secret_basic"


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


def _link(uow: UnitOfWork, now: datetime, actor: Actor, company: str, key: str,
          names: list[str] | tuple[str, ...]) -> list[str]:
    """Add the client ID `key` to the services of each named group of `company` (the group's
    access-right change is audited as `group.policy`, as the group command does); their names."""
    linked: list[str] = []
    for name in dict.fromkeys(names):
        g = uow.groups.named(company, group_rules._name(name), lock=True)
        if g is None:
            raise NotFound("group_not_found", group=" ".join(str(name).split())[:100])
        before = json.loads(g.services)
        if key not in {identifiers.canonical_or_none(s) for s in before}:
            g.services = json.dumps(group_rules._services([*before, key]))
            uow.audit(now, actor, "group.policy", g.name, company=g.company,
                      before={"services": before}, services=json.loads(g.services), client=key)
        linked.append(g.name)
    return linked


def _unlink(uow: UnitOfWork, now: datetime, actor: Actor, c: ServiceClient) -> list[str]:
    """Take a revoked OIDC client's ID out of every group's services (audited as
    `group.policy`), so no later client given the same ID after the tombstone inherits its
    users; the groups, as `_users` names them."""
    removed: list[str] = []
    for found in uow.groups.of_company(c.company):
        if c.client_id not in {identifiers.canonical_or_none(s) for s in json.loads(found.services)}:
            continue
        g = uow.groups.named(found.company, found.name, lock=True) or found
        before = json.loads(g.services)
        g.services = json.dumps([s for s in before if identifiers.canonical_or_none(s) != c.client_id])
        uow.audit(now, actor, "group.policy", g.name, company=g.company, before={"services": before},
                  services=json.loads(g.services), client=c.client_id)
        removed.append(g.name if c.company else f"{g.company}/{g.name}")
    return removed


@guard.audited("client.create", "client_id")
def create(deps: Deps, actor: Actor, client_id: str, scopes: list[str] | tuple[str, ...],
           company: str | None = None, oidc: Registration | None = None,
           groups: list[str] | tuple[str, ...] | None = None) -> IssuedSecret:
    """Assign `client_id` to a new service client of `company` (the actor's own by default;
    none, the agency's, only for the agency), pending approval; its secret is in the answer,
    once. The creator gives only scopes within their own rights.

    With `oidc`, a relying party (kind "oidc"): no scopes; a secret only for
    client_secret_basic (private_key_jwt: "" and no hash); `groups`, of its company, list its
    client ID in their services in the same transaction. The creator needs no right over the
    groups' policy for that: the client is unusable until a system administrator other than the
    creator approves it, and that approval is the second pair of eyes on the groups too. An
    agency client takes no groups here: each company's administrators add it to their own
    groups (`groups.set_policy`)."""
    actor.require(Perm.MANAGE_CLIENTS)
    key = identifiers.canonical(client_id)
    _usable_keys(oidc)
    if oidc is not None and scopes:
        raise InvalidInput("client_scopes_not_for_oidc")
    if oidc is None and groups:
        raise InvalidInput("client_groups_not_for_service")
    wanted = parse_scopes(scopes) if oidc is None else []
    for perm in scope_grants(wanted):
        if not actor.can(perm):
            raise Forbidden("client_scope_not_grantable")
    secret = new_secret() if oidc is None or oidc.auth_method == "client_secret_basic" else ""
    hashed = deps.hasher.hash(secret) if secret else None  # before the transaction: argon2 holds no locks
    now = deps.clock.now()
    with deps.uow() as uow:
        if company is None and not actor.everywhere:
            company = actor.company
        bound = _company(uow, company)
        guard.check(actor, Perm.MANAGE_CLIENTS, bound, "client_company_unknown",
                    company=" ".join((company or "").split())[:200])
        if groups and bound is None:
            raise InvalidInput("oidc_groups_of_company")
        ident = uow.identifier(key, lock=True)
        if ident is not None:
            identifiers.check_assignable(client_id, now, ident.holder_id is not None,
                                         ident.released_at, deps.settings.identifiers.reuse_after_days)
        row = ServiceClient(client_id=key, company=bound, scopes=json.dumps([s.value for s in wanted]),
                            secret_hash=hashed, status=PENDING, created_by=actor.id, created_at=now,
                            status_changed_at=now, kind=SERVICE if oidc is None else OIDC,
                            oidc=None if oidc is None else oidc.to_json())
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
        linked = _link(uow, now, actor, bound, key, groups) if groups and bound else []
        detail = {} if oidc is None else {
            "kind": OIDC, "redirect_uris": list(oidc.redirect_uris), "auth_method": oidc.auth_method,
            "groups": linked}
        uow.audit(now, actor, "client.create", key, scopes=[s.value for s in wanted],
                  **({"company": bound} if bound else {}), **detail)
        result = _view_in(uow, row)
        uow.commit()
    return IssuedSecret(result, secret)


def _usable_keys(oidc: Registration | None) -> None:
    """A private_key_jwt client's keys must import as public signing keys now, not fail at its
    first token request (the domain checks only their shape: it imports no JOSE library)."""
    if oidc is None or not oidc.jwks:
        return
    try:
        keys = KeySet.import_key_set(oidc.jwks).keys
    except Exception:  # joserfc raises several kinds for a key that is not one
        raise DomainError("oidc_jwks_invalid") from None
    if any(k.is_private or k.get("use", "sig") != "sig" for k in keys) or len(json.dumps(oidc.jwks)) > 8192:
        raise DomainError("oidc_jwks_invalid")


@guard.audited("client.update", "client_id")
def update(deps: Deps, actor: Actor, client_id: str, oidc: Registration, reason: str = "") -> ClientView:
    """Replace a relying party's registration (redirect and logout URIs, auth method and keys,
    refresh, subject type) as a whole; effective at its next request. Refused for a service
    client (it has none) and a revoked one. A change to private_key_jwt wipes the secret's hash
    at once; a change from private_key_jwt to client_secret_basic leaves the client with no
    secret: it is refused until `rotate` issues one (the audit event says `needs_rotate`)."""
    actor.require(Perm.MANAGE_CLIENTS)
    _usable_keys(oidc)
    now = deps.clock.now()
    with deps.uow() as uow:
        row = _client(uow, actor, Perm.MANAGE_CLIENTS, client_id)
        if _kind(row) != OIDC:
            raise DomainError("client_not_oidc", client=client_id)
        if row.status == REVOKED:
            raise DomainError("client_bad_transition", status=row.status)
        before = Registration.from_json(row.oidc)
        row.oidc = oidc.to_json()
        if oidc.auth_method != "client_secret_basic":
            row.secret_hash = None  # a key, not a secret, from now on
        changed = [f.name for f in fields(Registration) if getattr(before, f.name) != getattr(oidc, f.name)]
        needs_rotate = oidc.auth_method == "client_secret_basic" and row.secret_hash is None
        uow.audit(now, actor, "client.update", row.client_id, changed=changed,
                  redirect_uris=list(oidc.redirect_uris), auth_method=oidc.auth_method,
                  **({"needs_rotate": True} if needs_rotate else {}), **_reason(reason))
        result = _view_in(uow, row)
        uow.commit()
    return result


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
    nothing before `identifiers.reuse_after_days`); an OIDC client's ID leaves the groups'
    services (a later client of the same ID starts with no users)."""
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
        unlinked: list[str] = []
        if action == "revoke":
            row.secret_hash = None
            ident.holder_id, ident.released_at = None, now
            unlinked = _unlink(uow, now, actor, row) if _kind(row) == OIDC else []
        uow.audit(now, actor, f"client.{action}", row.client_id, status_from=before,
                  **({"created_by": row.created_by} if action == "approve" else {}),
                  **({"groups": unlinked} if unlinked else {}), **_reason(reason))
        result = _view_in(uow, row)
        uow.commit()
    return result


@guard.audited("client.rotate", "client_id")
def rotate(deps: Deps, actor: Actor, client_id: str, reason: str = "") -> IssuedSecret:
    """A new secret, shown once; the old one is refused from this moment. The client's failure
    count and any lock are cleared with it (the secret they were counted against is gone). A
    relying party with private_key_jwt has no secret to rotate (its keys are in its
    registration: `update`)."""
    actor.require(Perm.MANAGE_CLIENTS)
    with deps.uow(read_only=True) as uow:  # refuse before the hash: argon2 work for nobody
        row = _client(uow, actor, Perm.MANAGE_CLIENTS, client_id)
        if row.status == REVOKED:
            raise DomainError("client_bad_transition", status=row.status)
        if not _has_secret(row):
            raise DomainError("client_no_secret", client=client_id)
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
        if not _has_secret(row):  # changed by an `update` meanwhile
            raise DomainError("client_no_secret", client=client_id)
        row.secret_hash, row.rotated_at = hashed, now
        uow.audit(now, actor, "client.rotate", row.client_id, status=row.status,
                  was_locked=was_locked, failures=failures, **_reason(reason))
        result = _view_in(uow, row)
        uow.commit()
    return IssuedSecret(result, secret)


@guard.audited("client.list", None)
def list_clients(deps: Deps, actor: Actor, kind: str | None = None) -> list[ClientView]:
    """The clients of the actor's company (every client for the agency), by client ID; of one
    kind ("service" or "oidc") when `kind` is given."""
    actor.require(Perm.MANAGE_CLIENTS)
    if kind is not None and kind not in KINDS:
        raise InvalidInput("client_kind_unknown", kinds=", ".join(KINDS))
    with deps.uow(read_only=True) as uow:
        every = uow.groups.of_company(None)  # each view keeps its own company's only
        return [_view(c, every) for c in uow.service_clients.all()
                if actor.reaches(c.company) and kind in (None, _kind(c))]


# ---- authentication ----------------------------------------------------------------------


def actor_of(row: ServiceClient, client: Client) -> Actor:
    """How an authenticated client acts: as svc:<client_id>, for its company (the agency's:
    every company), with its roles' ceiling (a company's system administrator, or the agency
    operator) bounded by its scopes."""
    scopes = tuple(Scope(s) for s in json.loads(row.scopes))
    ceiling = Role.SYSTEM_ADMIN if row.company else Role.AGENCY_OPERATOR
    return Actor((PREFIX + row.client_id)[:100], frozenset({ceiling}), terminal=client.terminal[:100],
                 source=client.source[:100], company=row.company or "", grants=scope_grants(scopes))


def authenticate(deps: Deps, client_id: str, secret: str, client: Client,
                 kind: str = SERVICE) -> Actor | None:
    """The actor of an active client of `kind` presenting its current secret, or None (the right
    secret of the other kind: `wrong_kind`, no guess to count). Counted toward
    the lockout before the secret is checked (R4), under svc:<client_id> (an unknown ID under a
    keyed pseudonym, never as typed, and it locks just the same); an unknown client costs the
    same hash (R5). Every attempt is audited (`client.authenticate`, its subject the client ID
    or that pseudonym) with its real reason."""
    if kind not in KINDS:
        raise ValueError(f"unknown client kind {kind!r}")
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
        reason = _refusal(deps, row, matched, client, kind)
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


def _refusal(deps: Deps, row: ServiceClient | None, matched: bool, client: Client,
             kind: str) -> str | None:
    """The operator-only reason a client may not act now as `kind`, or None when it may."""
    if row is None:
        return "unknown_client"
    if not matched:
        return "wrong_secret"
    if _kind(row) != kind:
        return "wrong_kind"  # a relying party's secret opens no admin API, and the reverse
    if row.status != ACTIVE:
        return f"status_{row.status}"
    if kind == SERVICE and not network.may_administer(client.remote, row.client_id,
                                                      deps.settings.network.remote_admin):
        return "remote_not_approved"  # R17, as for the console
    return None
