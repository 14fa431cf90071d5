"""GET /metrics: the Prometheus exposition (adapters/metrics.py), for the monitoring inside the
internal networks only. A client outside `network.internal` (its address as web/common.py
`client()` finds it: X-Forwarded-For believed only from `network.trusted_proxies`) gets the
same 404 as any unknown path: the endpoint is not there for it."""

from __future__ import annotations

from flask import Blueprint, abort
from werkzeug.wrappers import Response

from adapters import metrics
from authsvc.web.common import client

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    if client().remote:
        abort(404)
    body, content_type = metrics.exposition()
    return Response(body, 200, {"Content-Type": content_type, "Cache-Control": "no-store"})
