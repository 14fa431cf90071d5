"""The OpenID provider ([8 of 12]), first part: the discovery document, the JWKS and signing
with the current key. Authorization, token, userinfo, end-session and back-channel logout arrive
with the rest of [8 of 12] (the discovery document already names their endpoints)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authsvc.domain.roles import Actor, Perm
from authsvc.services import Deps, guard

CLAIMS = ("iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "name",
          "preferred_username", "updated_at")


def issuer(deps: Deps, request_base: str) -> str:
    """The configured issuer, or (empty in config) the request's own base URL."""
    return deps.settings.oidc.issuer or request_base.rstrip("/")


def discovery(deps: Deps, issuer: str) -> dict[str, Any]:
    """The OpenID Provider Metadata (OpenID Connect Discovery 1.0 §3)."""
    return {
        "issuer": issuer,
        # these endpoints answer with the rest of [8 of 12]; only discovery and JWKS serve today
        "authorization_endpoint": f"{issuer}/oidc/authorize",
        "token_endpoint": f"{issuer}/oidc/token",
        "userinfo_endpoint": f"{issuer}/oidc/userinfo",
        "end_session_endpoint": f"{issuer}/oidc/logout",
        "jwks_uri": f"{issuer}/oidc/jwks",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": [deps.settings.oidc.signing_alg],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "EdDSA", "RS256"],
        "scopes_supported": ["openid", "profile"],
        "claims_supported": list(CLAIMS),
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }


def jwks(deps: Deps) -> dict[str, Any]:
    """The public keys that verify our tokens: the current one and those whose tokens may live."""
    return {"keys": deps.signing_keys.published()}


def sign(deps: Deps, claims: Mapping[str, Any]) -> str:
    """A JWT of `claims` signed with the current key (its `kid` in the header)."""
    return deps.signing_keys.sign(claims)


@guard.audited("oidc.key_rotated", None)
def rotate_key(deps: Deps, actor: Actor) -> str:
    """A new signing key from now on (the agency's operators): audited with its kid, never the key."""
    actor.require(Perm.RUN_MAINTENANCE)  # the agency's alone: never a company's administrators
    info = deps.signing_keys.rotate()
    with deps.uow() as uow:
        uow.audit(deps.clock.now(), actor, "oidc.key_rotated", info.kid, alg=info.alg)
        uow.commit()
    return info.kid
