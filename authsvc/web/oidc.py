"""The OpenID provider's public documents ([8 of 12], first part): discovery and the JWKS.
Read-only, no session, no CSRF token; the other endpoints arrive with the rest of [8 of 12]."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from werkzeug.wrappers import Response

from authsvc.services import oidc
from authsvc.web.common import deps

bp = Blueprint("oidc", __name__)


@bp.get("/.well-known/openid-configuration")
def configuration() -> Response:
    d = deps()
    return jsonify(oidc.discovery(d, oidc.issuer(d, request.host_url)))


@bp.get("/oidc/jwks")
def jwks() -> Response:
    g.cache_control = "public, max-age=300"  # public keys: relying parties may cache them a while
    return jsonify(oidc.jwks(deps()))
