"""A relying party's registration with the OpenID provider ([8 of 12], R18): where it may be sent
back (redirect URIs, matched exactly), where its logout notices go, how it authenticates at the
token endpoint, whether it may hold refresh tokens, and the kind of subject it is given. Also the
levels of assurance (`acr`) and the methods (`amr`) a session's logon proved."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from authsvc.domain.errors import DomainError

AUTH_METHODS = ("client_secret_basic", "private_key_jwt")
SUBJECT_TYPES = ("public", "pairwise")
MAX_URIS = 10
MAX_URI = 500
LOOPBACK = ("127.0.0.1", "localhost", "::1")

# Levels of assurance, each above the one before (acr values a relying party may demand):
# two factors of different kinds; two kinds one of which is the palm vein (the gateway's logon,
# seed 004 第5 2(3)カ); and that, from a registered terminal proven by its key (R12).
ACR_MFA = "urn:dsg:acr:mfa"
ACR_VEIN = "urn:dsg:acr:vein"
ACR_VEIN_TERMINAL = "urn:dsg:acr:vein+terminal"
ACR_LEVELS = (ACR_MFA, ACR_VEIN, ACR_VEIN_TERMINAL)
# amr values (RFC 8176 where it has one; "vein" and "terminal" are this gateway's own)
AMR = {"password": "pwd", "totp": "otp", "webauthn": "hwk", "vein": "vein"}


def acr(factors: tuple[str, ...] | list[str], terminal: bool) -> str:
    """The level a logon with `factors` (and a proven registered terminal, or not) reached; ""
    for none (one factor is no level here: every session has two)."""
    if len(set(factors)) < 2:
        return ""
    if "vein" in factors:
        return ACR_VEIN_TERMINAL if terminal else ACR_VEIN
    return ACR_MFA


def amr(factors: tuple[str, ...] | list[str], terminal: bool) -> list[str]:
    """What was proven: each factor's method, "mfa", and "terminal" when a registered terminal was."""
    methods = [AMR[f] for f in factors if f in AMR]
    return [*methods, *(["mfa"] if len(methods) >= 2 else []), *(["terminal"] if terminal else [])]


def meets(reached: str, wanted: str) -> bool:
    """Whether the level `reached` satisfies a demand for `wanted` (an unknown demand: never)."""
    return (reached in ACR_LEVELS and wanted in ACR_LEVELS
            and ACR_LEVELS.index(reached) >= ACR_LEVELS.index(wanted))


def missing(wanted: str) -> tuple[bool, bool]:
    """(palm vein needed, registered terminal needed) to reach `wanted`."""
    return wanted in (ACR_VEIN, ACR_VEIN_TERMINAL), wanted == ACR_VEIN_TERMINAL


@dataclass(frozen=True)
class Registration:
    name: str
    redirect_uris: tuple[str, ...]
    auth_method: str = "client_secret_basic"
    post_logout_redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str = ""
    jwks: dict[str, Any] = field(default_factory=dict)  # public keys, for private_key_jwt
    refresh: bool = False
    subject_type: str = "public"

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "redirect_uris": list(self.redirect_uris),
                           "post_logout_redirect_uris": list(self.post_logout_redirect_uris)},
                          ensure_ascii=False, sort_keys=True)

    @staticmethod
    def from_json(raw: str | None) -> Registration:
        d = json.loads(raw or "{}")
        return Registration(d.get("name", ""), tuple(d.get("redirect_uris", ())),
                            d.get("auth_method", "client_secret_basic"),
                            tuple(d.get("post_logout_redirect_uris", ())),
                            d.get("backchannel_logout_uri", ""), d.get("jwks") or {},
                            bool(d.get("refresh")), d.get("subject_type", "public"))


def _uri(value: object, code: str) -> str:
    """An absolute https URL (http only on the loopback, for development and the tests), with no
    fragment, no user info, at most MAX_URI characters; kept exactly as given (matched exactly)."""
    # printable ASCII only: anything else must be percent-encoded (no control, bidi or space
    # characters that would make two URIs look alike to the operator who approves them)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_URI \
            or any(not 0x21 <= ord(c) <= 0x7e for c in value):
        raise DomainError(code)
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:
        raise DomainError(code) from None
    secure = parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK)
    if not secure or not host or parts.fragment or "#" in value or parts.username or parts.password:
        raise DomainError(code)
    return value


def _uris(values: object, code: str, required: bool) -> tuple[str, ...]:
    if values is None:
        values = []
    if not isinstance(values, str | list | tuple):
        raise DomainError(code)
    items = [values] if isinstance(values, str) else list(values)
    if (required and not items) or len(items) > MAX_URIS:
        raise DomainError(code)
    return tuple(dict.fromkeys(_uri(v, code) for v in items))


def _jwks(value: object) -> dict[str, Any]:
    """A JWK set of public signing keys (never a private one: `d`, `p`, `q` … refused)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise DomainError("oidc_jwks_invalid") from None
    keys = value.get("keys") if isinstance(value, dict) else None
    if not isinstance(keys, list) or not 1 <= len(keys) <= 5:
        raise DomainError("oidc_jwks_invalid")
    needs = {"EC": ("crv", "x", "y"), "OKP": ("crv", "x"), "RSA": ("n", "e")}
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in needs \
                or any(k in key for k in ("d", "p", "q", "dp", "dq", "qi", "k")) \
                or not all(isinstance(key.get(k), str) and key.get(k) for k in needs[key["kty"]]):
            raise DomainError("oidc_jwks_invalid")
    return {"keys": keys}


def parse(name: str, redirect_uris: object, auth_method: str = "client_secret_basic",
          post_logout_redirect_uris: object = (), backchannel_logout_uri: str = "",
          jwks: object = None, refresh: bool = False, subject_type: str = "public") -> Registration:
    """A registration from what an operator typed, or a DomainError naming the field."""
    name = " ".join(str(name or "").split())
    if not 1 <= len(name) <= 100:
        raise DomainError("oidc_name_invalid")
    if auth_method not in AUTH_METHODS:
        raise DomainError("oidc_auth_method_invalid", methods=", ".join(AUTH_METHODS))
    if subject_type not in SUBJECT_TYPES:
        raise DomainError("oidc_subject_type_invalid")
    keys = _jwks(jwks) if auth_method == "private_key_jwt" else {}
    if jwks and auth_method != "private_key_jwt":
        raise DomainError("oidc_jwks_invalid")
    backchannel = (_uri(backchannel_logout_uri, "oidc_backchannel_uri_invalid")
                   if backchannel_logout_uri else "")
    return Registration(name, _uris(redirect_uris, "oidc_redirect_uri_invalid", True), auth_method,
                        _uris(post_logout_redirect_uris, "oidc_logout_uri_invalid", False),
                        backchannel, keys, bool(refresh), subject_type)
