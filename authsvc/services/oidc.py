"""The OpenID provider ([8 of 12], R18): what a relying party may ask of a session here (a fresh
logon, a higher level of assurance, the right to use it at all), the single-use codes, the
tokens and their grant bound to the session, the claims, and the signing-key rotation. The
protocol itself (request validation, PKCE, client authentication, token responses) is
Authlib's, in web/oidc.py; it calls these rules. Back-channel logout is services/backchannel.py."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.jwk import KeySet

from authsvc.domain import identifiers
from authsvc.domain import relying_party as rp_rules
from authsvc.domain import session as sess
from authsvc.domain.relying_party import Registration
from authsvc.domain.roles import Actor, Perm
from authsvc.services import Deps, alerts, guard, sessions
from authsvc.services.sessions import Client
from authsvc.store.models import OidcCode, OidcGrant
from authsvc.store.uow import UnitOfWork

CLAIMS = ("iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "at_hash",
          "name", "preferred_username", "company", "contract", "groups")
SCOPES = ("openid", "profile")


def digest(value: str) -> str:
    """What is stored of a code or a token: its SHA-256 (they are 256-bit random values)."""
    return hashlib.sha256(value.encode()).hexdigest()


def issuer(deps: Deps, request_base: str) -> str:
    """The configured issuer, or (empty in config) the request's own base URL."""
    return deps.settings.oidc.issuer or request_base.rstrip("/")


def discovery(deps: Deps, issuer: str) -> dict[str, Any]:
    """The OpenID Provider Metadata (OpenID Connect Discovery 1.0 §3)."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oidc/authorize",
        "token_endpoint": f"{issuer}/oidc/token",
        "userinfo_endpoint": f"{issuer}/oidc/userinfo",
        "end_session_endpoint": f"{issuer}/oidc/logout",
        "jwks_uri": f"{issuer}/oidc/jwks",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": list(rp_rules.SUBJECT_TYPES),
        "id_token_signing_alg_values_supported": [deps.settings.oidc.signing_alg],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": list(rp_rules.AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "EdDSA", "RS256"],
        "scopes_supported": list(SCOPES),
        "claims_supported": list(CLAIMS),
        "acr_values_supported": list(rp_rules.ACR_LEVELS),
        "prompt_values_supported": ["none", "login"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }


def jwks(deps: Deps) -> dict[str, Any]:
    """The public keys that verify our tokens: the current one and those whose tokens may live."""
    return {"keys": deps.signing_keys.published()}


def sign(deps: Deps, claims: Mapping[str, Any], typ: str = "JWT") -> str:
    """A JWT of `claims` signed with the current key (its `kid` in the header)."""
    return deps.signing_keys.sign(claims, typ)


@guard.audited("oidc.key_rotated", None)
def rotate_key(deps: Deps, actor: Actor) -> str:
    """A new signing key from now on (the agency's operators): audited with its kid, never the key."""
    actor.require(Perm.RUN_MAINTENANCE)  # the agency's alone: never a company's administrators
    info = deps.signing_keys.rotate()
    with deps.uow() as uow:
        uow.audit(deps.clock.now(), actor, "oidc.key_rotated", info.kid, alg=info.alg)
        uow.commit()
    return info.kid


# ---- relying parties ---------------------------------------------------------------------


@dataclass(frozen=True)
class RelyingParty:
    client_id: str
    company: str | None  # None: the agency's (its users are of every company)
    registration: Registration


def relying_party(deps: Deps, client_id: object, any_state: bool = False) -> RelyingParty | None:
    """The active relying party registered as `client_id`, or None (unknown, not a relying
    party, not approved yet, suspended or revoked: one answer). `any_state`: whatever its state
    (a suspended client is still told that its users' sessions ended)."""
    key = identifiers.canonical_or_none(client_id)
    if key is None:
        return None
    with deps.uow(read_only=True) as uow:
        row = uow.service_clients.by_identifier(key)
        if row is None or row.kind != "oidc" or (row.status != "active" and not any_state):
            return None
        return RelyingParty(row.client_id, row.company, Registration.from_json(row.oidc))


def subject(deps: Deps, rp: RelyingParty, user_id: str, created_at: datetime) -> str:
    """The `sub` a relying party knows the user by: stable, and never the ID itself (IDs may be
    reassigned after a while: the account's creation time tells two holders apart); a pairwise
    client gets one of its own, which no other client can link."""
    sector = rp.client_id if rp.registration.subject_type == "pairwise" else ""
    mac = hmac.new(deps.signing_keys.subject_key(),
                   f"{sector}|{user_id}|{created_at.astimezone(UTC).isoformat()}".encode(), hashlib.sha256)
    return mac.hexdigest()[:40]


def _may_use(uow: UnitOfWork, rp: RelyingParty, account_id: int) -> bool:
    """R8: the user is an approved member of a group that lists this relying party among the
    services its members may use (a company's client: a group of that company)."""
    return any(rp.client_id in json.loads(g.services) and (rp.company is None or g.company == rp.company)
               for g in uow.groups.memberships(account_id))


# ---- what an authorization request needs of the session ----------------------------------


class Need(StrEnum):
    LOGIN = "login"        # no session: the logon pages
    UNLOCK = "unlock"      # a locked session: the lock screen
    REAUTH = "reauth"      # too old for max_age, or prompt=login: the password and a factor again
    STEP_UP = "step_up"    # the level demanded is missing a factor: only that one
    REFUSED = "refused"    # the user may not use this relying party (R8)
    UNMET = "unmet"        # the level demanded cannot be reached (no palm enrolled)
    OK = "ok"


@dataclass(frozen=True)
class Proof:
    """What the session behind a request proved, as a relying party is told it."""

    user_id: str
    ref: str
    auth_time: float
    factors: tuple[str, ...]
    device: str

    @property
    def acr(self) -> str:
        return rp_rules.acr(self.factors, bool(self.device))

    @property
    def amr(self) -> list[str]:
        return rp_rules.amr(self.factors, bool(self.device))


@dataclass(frozen=True)
class Decision:
    need: Need
    proof: Proof | None = None
    vein: bool = False      # STEP_UP: the palm vein is missing
    terminal: bool = False  # STEP_UP: the registered terminal is missing


def demanded(acr_values: str | None) -> str | None:
    """The lowest level among those requested that we know (an unknown one is no demand)."""
    known = [a for a in (acr_values or "").split() if a in rp_rules.ACR_LEVELS]
    return min(known, key=rp_rules.ACR_LEVELS.index) if known else None


def decide(deps: Deps, token: str, rp: RelyingParty, max_age: int | None, acr: str | None,
           login: bool, fresh_since: float | None) -> Decision:
    """What the session behind `token` still needs before `rp` may be given a code. `login`:
    prompt=login; `fresh_since`: when this request first sent the user to authenticate again
    (a logon at or after it satisfies `max_age` and `login`)."""
    view = sessions.current(deps, token)
    if view is None:
        return Decision(Need.LOGIN)
    if view.locked:
        return Decision(Need.UNLOCK)
    rec = sess.Record.of(deps.sessions.get(token))
    if rec is None:
        return Decision(Need.LOGIN)
    proof = Proof(rec.user_id, rec.ref, rec.authenticated_at, rec.factors, rec.device)
    if not rec.ref:  # a session from before the provider: authenticated again, it is named
        return Decision(Need.REAUTH, proof)
    with deps.uow(read_only=True) as uow:
        acc = uow.account(rec.user_id)
        if acc is None or not _may_use(uow, rp, acc.id):
            return Decision(Need.REFUSED, proof)
    now = sessions.time_now(deps)
    fresh = fresh_since is not None and proof.auth_time >= fresh_since
    if not fresh and (login or (max_age is not None and now - proof.auth_time > max_age)):
        return Decision(Need.REAUTH, proof)
    if acr is not None and not rp_rules.meets(proof.acr, acr):
        vein, terminal = rp_rules.missing(acr)
        return Decision(Need.STEP_UP, proof, vein and "vein" not in proof.factors,
                        terminal and not proof.device)
    return Decision(Need.OK, proof)


# ---- codes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeGrant:
    """A redeemed code: what the tokens are issued for."""

    code_hash: str
    client_id: str
    user_id: str
    session_ref: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    auth_time: datetime
    acr: str
    amr: list[str]


def issue_code(deps: Deps, rp: RelyingParty, proof: Proof, code: str, redirect_uri: str, scope: str,
               nonce: str | None, challenge: str, method: str, client: Client) -> None:
    """Keep `code` (random, from the protocol library) for `rp`: single-use, short-lived, bound
    to the session, the redirect URI and the PKCE challenge."""
    now = deps.clock.now()
    with deps.uow() as uow:
        uow.oidc.add_code(OidcCode(
            code_hash=digest(code), client_id=rp.client_id, user_id=proof.user_id, session_ref=proof.ref,
            redirect_uri=redirect_uri, scope=scope, nonce=nonce, code_challenge=challenge,
            code_challenge_method=method, auth_time=datetime.fromtimestamp(proof.auth_time, UTC),
            acr=proof.acr, amr=json.dumps(proof.amr), created_at=now,
            expires_at=now + timedelta(seconds=deps.settings.oidc.code_seconds)))
        uow.audit(now, client.actor(proof.user_id), "oidc.authorize", proof.user_id, client=rp.client_id,
                  acr=proof.acr, scope=scope)
        uow.commit()


def redeem(deps: Deps, code: object, client_id: str, client: Client) -> CodeGrant | None:
    """The code's grant, once: None for an unknown, expired, another client's or already
    redeemed code, or one whose session has ended. A replayed code revokes every token issued
    with it and raises an alert (someone else holds it)."""
    if not isinstance(code, str) or not 20 <= len(code) <= 100:
        return None
    h = digest(code)
    now = deps.clock.now()
    who = client.actor("oidc:" + client_id)
    with deps.uow() as uow:
        row = uow.oidc.code(h)
        if row is None or row.client_id != client_id:
            uow.audit(now, who, "oidc.token", client_id, "refused", reason="code_unknown")
            uow.commit()
            return None
        if not uow.oidc.redeem(h, now):
            revoked = _revoke(uow, uow.oidc.of_code(h), now, "code_replayed")
            uow.audit(now, who, "oidc.token", row.user_id, "refused", reason="code_replayed",
                      client=client_id, revoked=revoked)
            alerts.note(uow, now, "oidc_code_replayed", client_id, _company(uow, row.user_id),
                        user=row.user_id, revoked=revoked)
            uow.commit()
            return None
        reason = "code_expired" if row.expires_at <= now else None
        grant = CodeGrant(h, row.client_id, row.user_id, row.session_ref, row.redirect_uri, row.scope,
                          row.nonce, row.code_challenge, row.code_challenge_method, row.auth_time,
                          row.acr, json.loads(row.amr))
        if reason is None and sessions.live(deps, row.user_id, row.session_ref) is None:
            reason = "session_ended"
        if reason:
            uow.audit(now, who, "oidc.token", row.user_id, "refused", reason=reason, client=client_id)
        uow.commit()
    return None if reason else grant


def refusal(deps: Deps, step: str, client_id: str, reason: str, client: Client, user_id: str = "") -> None:
    """Audit an authorization or token request refused (`step` "authorize" or "token"): an
    unknown client, a redirect URI that differs, a missing or wrong PKCE verifier …; a user
    outside the client's groups (`group_not_allowed`, R8) also alerts their company."""
    client_id = (client_id or "")[:64]
    now = deps.clock.now()
    with deps.uow() as uow:
        uow.audit(now, client.actor(user_id or "oidc:" + (client_id or "-")), f"oidc.{step}",
                  user_id or client_id or "-", "refused", reason=reason[:64],
                  **({"client": client_id} if client_id else {}))
        if reason == "group_not_allowed":
            alerts.note(uow, now, "privilege_refused", user_id, _company(uow, user_id), client=client_id)
        uow.commit()


def _company(uow: UnitOfWork, user_id: str) -> str | None:
    acc = uow.account(user_id)
    return acc.contract.company if acc is not None else None


def _revoke(uow: UnitOfWork, grants: list[OidcGrant], now: datetime, reason: str) -> int:
    n = 0
    for g in grants:
        if g.revoked_at is None:
            g.revoked_at, g.revoked_reason = now, reason
            n += 1
    return n


# ---- tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    """What a grant is for (a redeemed code, or the grant a refresh token continues)."""

    code_hash: str
    client_id: str
    user_id: str
    session_ref: str
    scope: str
    acr: str
    amr: list[str]
    auth_time: datetime
    issuer: str


def save_grant(deps: Deps, issued: Issued, access_token: str, refresh_token: str | None,
               client: Client) -> None:
    """Keep the hashes of what was issued, bound to the session; audit it (client, user, acr,
    scopes)."""
    now = deps.clock.now()
    pol = deps.settings
    with deps.uow() as uow:
        uow.oidc.add_grant(OidcGrant(
            code_hash=issued.code_hash, client_id=issued.client_id, user_id=issued.user_id,
            session_ref=issued.session_ref, issuer=issued.issuer, scope=issued.scope, acr=issued.acr,
            amr=json.dumps(issued.amr),
            auth_time=issued.auth_time, access_hash=digest(access_token),
            access_expires_at=now + timedelta(minutes=pol.oidc.access_token_minutes),
            refresh_hash=digest(refresh_token) if refresh_token else None,
            refresh_expires_at=now + timedelta(hours=pol.sessions.absolute_hours) if refresh_token else None,
            issued_at=now))
        uow.audit(now, client.actor("oidc:" + issued.client_id), "oidc.token_issued", issued.user_id,
                  client=issued.client_id, acr=issued.acr, scope=issued.scope, refresh=bool(refresh_token))
        uow.commit()


def _claims_of(uow: UnitOfWork, deps: Deps, rp: RelyingParty, user_id: str, scope: str) -> dict[str, Any]:
    """The user's claims for `rp`: `sub`, the company, contract and groups it may act on, and
    with the `profile` scope the name and ID."""
    acc = uow.account(user_id)
    if acc is None:
        return {}
    out: dict[str, Any] = {
        "sub": subject(deps, rp, acc.user_id.lower(), acc.created_at),
        "company": acc.contract.company, "contract": acc.contract.number,
        "groups": [g.name for g in uow.groups.memberships(acc.id)],
    }
    if "profile" in scope.split():
        out |= {"name": acc.person.name, "preferred_username": acc.user_id}
    return out


def id_token(deps: Deps, rp: RelyingParty, grant: CodeGrant, access_token: str, issuer: str) -> str:
    """The ID token of a redeemed code: who, when and how (acr, amr), which session (sid)."""
    now = int(deps.clock.now().timestamp())
    with deps.uow(read_only=True) as uow:
        claims = _claims_of(uow, deps, rp, grant.user_id, grant.scope)
    claims |= {"iss": issuer, "aud": rp.client_id, "iat": now,
               "exp": now + deps.settings.oidc.id_token_minutes * 60,
               "auth_time": int(grant.auth_time.timestamp()), "acr": grant.acr, "amr": grant.amr,
               "sid": grant.session_ref, "azp": rp.client_id}
    if grant.nonce:
        claims["nonce"] = grant.nonce
    half = create_half_hash(access_token, deps.signing_keys.alg)
    if half is not None:
        claims["at_hash"] = half.decode() if isinstance(half, bytes) else str(half)
    return sign(deps, claims)


def refreshable(deps: Deps, refresh_token: object, client_id: str, client: Client) -> Issued | None:
    """The grant a refresh token continues, or None: another client's, expired, revoked, or its
    session ended. A refresh token used twice (it is replaced at each use) revokes every grant
    of its code: someone else holds a copy."""
    if not isinstance(refresh_token, str) or not 20 <= len(refresh_token) <= 100:
        return None
    now = deps.clock.now()
    who = client.actor("oidc:" + client_id)
    with deps.uow() as uow:
        g = uow.oidc.by_refresh(digest(refresh_token), lock=True)
        reason = None
        if g is None or g.client_id != client_id:
            reason = "refresh_unknown"
        elif g.revoked_at is not None:
            reason = "refresh_reused" if g.revoked_reason == "refreshed" else "refresh_revoked"
            if reason == "refresh_reused":
                revoked = _revoke(uow, uow.oidc.of_code(g.code_hash), now, "refresh_reused")
                alerts.note(uow, now, "oidc_code_replayed", client_id, _company(uow, g.user_id),
                            user=g.user_id, revoked=revoked)
        elif g.refresh_expires_at is None or g.refresh_expires_at <= now:
            reason = "refresh_expired"
        elif sessions.live(deps, g.user_id, g.session_ref) is None:
            reason = "session_ended"
            _revoke(uow, [g], now, "session_ended")
        if reason:
            uow.audit(now, who, "oidc.token", g.user_id if g else client_id, "refused", reason=reason,
                      client=client_id)
            uow.commit()
            return None
        assert g is not None
        _revoke(uow, [g], now, "refreshed")  # replaced by the grant save_grant keeps next
        issued = Issued(g.code_hash, g.client_id, g.user_id, g.session_ref, g.scope, g.acr,
                        json.loads(g.amr), g.auth_time, g.issuer)
        uow.commit()
    return issued


def userinfo(deps: Deps, access_token: str) -> dict[str, Any] | None:
    """The claims behind a live access token (its grant not revoked, not expired, its session
    alive), or None."""
    if not access_token or len(access_token) > 100:
        return None
    now = deps.clock.now()
    with deps.uow(read_only=True) as uow:
        g = uow.oidc.by_access(digest(access_token))
        if g is None or g.revoked_at is not None or g.access_expires_at is None or g.access_expires_at <= now:
            return None
        rp = relying_party(deps, g.client_id)
        if rp is None or sessions.live(deps, g.user_id, g.session_ref) is None:
            return None
        return _claims_of(uow, deps, rp, g.user_id, g.scope)


# ---- logout and assertions ---------------------------------------------------------------


@dataclass(frozen=True)
class Hint:
    """What an `id_token_hint` of ours names: the relying party, the session, the subject."""

    client_id: str
    sid: str


def logout_hint(deps: Deps, token: str) -> Hint | None:
    """The ID token a relying party sent back at logout, if we signed it (expired or not: a
    hint, not a credential); None otherwise."""
    if not token:
        return None
    try:
        found = jwt.decode(token, KeySet.import_key_set({"keys": deps.signing_keys.published()}))
    except Exception:  # joserfc raises many kinds for a token that is not ours
        return None
    aud = found.claims.get("aud")
    aud = aud[0] if isinstance(aud, list) and aud else aud
    return Hint(str(aud or ""), str(found.claims.get("sid") or ""))


def post_logout_uri(deps: Deps, hint: Hint | None, client_id: str, uri: str, state: str) -> str | None:
    """Where to send the browser after logout: the relying party's registered post-logout URI,
    exactly, with its `state`; None for anything else (no open redirect)."""
    named = hint.client_id if hint else client_id
    if not uri or not named or (hint and client_id and client_id != hint.client_id):
        return None
    rp = relying_party(deps, named)
    if rp is None or uri not in rp.registration.post_logout_redirect_uris:
        return None
    return add_params_to_uri(uri, [("state", state)]) if state else uri


def session_ref(deps: Deps, token: str) -> str | None:
    """The name relying parties know the user session behind `token` by, if there is one."""
    rec = sess.Record.of(deps.sessions.get(token)) if token else None
    return rec.ref if rec is not None and rec.surface == sess.USER and rec.ref else None


def first_use(deps: Deps, key: str) -> bool:
    """Whether a client assertion's `jti` is seen for the first time (kept for 10 minutes,
    longer than any assertion lives); a second use is refused."""
    name = "jti:" + key[:200]
    if deps.sessions.get(name) is not None:
        return False
    deps.sessions.put(name, {"kind": "jti"}, None, 600)
    return True
