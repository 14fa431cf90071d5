"""The gate of the administrators' console (R8, R17), applied on every console request: a
console session, unlocked, of an account whose role may administer as it is now, and from
outside the internal networks only for users approved in advance — both where the session
was opened and where this request comes from (a session opened inside does not administer
from outside)."""

from __future__ import annotations

from authsvc.domain import network
from authsvc.domain.roles import Actor
from authsvc.services import Deps, logon


def may_use_console(deps: Deps, view: logon.SessionView | None, client: logon.Client) -> Actor | None:
    """Who acts in this console request, or None when the gate refuses it."""
    if view is None or view.surface != logon.CONSOLE:
        return None
    approved = deps.settings.network.remote_admin
    if not view.may_administer(approved) or not network.may_administer(client.remote, view.user_id,
                                                                       approved):
        return None
    return logon.console_actor(deps, view)


def admit(deps: Deps, view: logon.SessionView | None, token: str, client: logon.Client) -> Actor | None:
    """`may_use_console`, and an admitted request is activity: the session's idle clock moves."""
    actor = may_use_console(deps, view, client)
    if actor is not None:
        logon.touch(deps, token)
    return actor
