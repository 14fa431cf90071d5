"""The gate of the administrators' console (R8, R17), applied on every console request: a
console session, unlocked, of an account whose role may administer as it is now, and from
outside the internal networks only for users approved in advance — both where the session
was opened and where this request comes from (a session opened inside does not administer
from outside)."""

from __future__ import annotations

from authsvc.domain import identifiers, network
from authsvc.domain.lifecycle import Status
from authsvc.domain.roles import Actor, Perm, Role
from authsvc.services import Deps, sessions
from authsvc.services.sessions import CONSOLE, Client, SessionView


def may_use_console(deps: Deps, view: SessionView | None, client: Client) -> Actor | None:
    """Who acts in this console request, or None when the gate refuses it."""
    if view is None or view.surface != CONSOLE:
        return None
    approved = deps.settings.network.remote_admin
    if not view.may_administer(approved) or not network.may_administer(client.remote, view.user_id,
                                                                       approved):
        return None
    return console_actor(deps, view)


def admit(deps: Deps, view: SessionView | None, token: str, client: Client) -> Actor | None:
    """`may_use_console`, and an admitted request is activity: the session's idle clock moves."""
    actor = may_use_console(deps, view, client)
    if actor is not None:
        sessions.touch(deps, token)
    return actor


# Every role but the user's: a data manager too, for the approvals of access-right changes to
# their company's data (003 §6) and nothing else (`approver_only`: web/console.py shows them
# those pages and refuses every other; the services decide what they may take).
ADMIN_ROLES = frozenset(Role) - {Role.USER}


def approver_only(actor: Actor) -> bool:
    """An actor whose only right is to approve access-right changes (a data manager)."""
    return actor.can(Perm.APPROVE_ACCESS) and not any(
        actor.can(p) for p in Perm if p is not Perm.APPROVE_ACCESS)


def _role(deps: Deps, user_id: str) -> Role | None:
    with deps.uow(read_only=True) as uow:
        acc = uow.account(identifiers.canonical(user_id))
        return Role(acc.role) if acc is not None and acc.status == Status.ACTIVE.value else None


def actor_of(deps: Deps, user_id: str, terminal: str = "", source: str = "") -> Actor | None:
    """An administrative account that may log on now (not departed, inside its window ...) as
    it acts now: its role and its company (R24), flagged if it is a maintenance account (R26);
    None for anyone else."""
    with deps.uow(read_only=True) as uow:
        acc = uow.account(identifiers.canonical_or_none(user_id) or "")
        if (acc is None or sessions.refusal(deps, acc, deps.clock.now()) is not None
                or Role(acc.role) not in ADMIN_ROLES):
            return None
        return Actor(acc.user_id, frozenset({Role(acc.role)}), terminal=terminal[:100],
                     source=source[:100], company=acc.contract.company,
                     maintenance=acc.window_ends_at is not None)


def may_open(deps: Deps, user_id: str, client: Client) -> bool:
    """A console session only for administrative roles (a data manager's too: their approvals),
    and from outside the internal networks only for users approved in advance (R17)."""
    return (_role(deps, user_id) in ADMIN_ROLES
            and network.may_administer(client.remote, user_id, deps.settings.network.remote_admin))


def console_actor(deps: Deps, view: SessionView) -> Actor | None:
    """Who acts in a console session: the account, with its role and company as they are now
    (a role taken away ends the console at the next request)."""
    if view.surface != CONSOLE:
        return None
    actor = actor_of(deps, view.user_id, view.terminal, view.source)
    return None if actor is None else Actor(view.user_id, actor.roles, actor.terminal, actor.source,
                                            actor.company)
