"""GET /metrics (Prometheus): the counters move with what the service does, and the endpoint
is not there (404) for a client outside `network.internal` -- X-Forwarded-For believed only
from `network.trusted_proxies`. Flask's test client on the real app; multiprocess mode in
processes of their own sharing one PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from adapters import metrics
from authsvc.services import audit

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = "203.0.113.5"


def value(body: str, name: str, **labels: str) -> float:
    """A sample's value in the exposition text (0 when it is not there yet)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        m = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if m and m.group(1) == name and ",".join(sorted((m.group(2) or "").split(","))) == want:
            return float(m.group(3))
    return 0.0


def scrape(client, address: str = "127.0.0.1", forwarded: str | None = None):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.get("/metrics", environ_base={"REMOTE_ADDR": address}, headers=headers)


def test_a_logon_attempt_moves_the_counters(make_client):
    _deps, client = make_client()
    before = scrape(client)
    assert before.status_code == 200
    assert before.headers["Content-Type"].startswith("text/plain")
    assert before.headers["Cache-Control"] == "no-store"
    text_before = before.get_data(as_text=True)
    r = client.post("/api/v1/logon", json={"user_id": "nobody", "password": "Wrong#pass99"},
                    base_url="https://localhost")
    assert r.status_code == 401
    after = scrape(client).get_data(as_text=True)
    for name, labels in (("authsvc_logons_total", {"outcome": "failed", "step": "password"}),
                         ("authsvc_factor_failures_total", {"factor": "password"})):
        assert value(after, name, **labels) == value(text_before, name, **labels) + 1, name
    # the attempt's audit event was timed
    assert value(after, "authsvc_audit_write_seconds_count") >= \
        value(text_before, "authsvc_audit_write_seconds_count") + 1


def test_locks_and_factor_failures_are_counted(make_client):
    _deps, client = make_client(lockout={"max_failures": 2})
    before = scrape(client).get_data(as_text=True)
    for _ in range(3):  # two failures lock the key, the third is refused as locked
        client.post("/api/v1/logon", json={"user_id": "ghost", "password": "Wrong#pass99"},
                    base_url="https://localhost")
    after = scrape(client).get_data(as_text=True)
    assert value(after, "authsvc_account_locks_total") == value(before, "authsvc_account_locks_total") + 1
    assert value(after, "authsvc_logons_total", outcome="refused", step="password") == \
        value(before, "authsvc_logons_total", outcome="refused", step="password") + 1


def test_the_verification_and_the_export_backlog_are_gauges(make_client):
    deps, client = make_client()
    assert audit.verify(deps).ok
    body = scrape(client).get_data(as_text=True)
    assert value(body, "authsvc_audit_verification_ok") == 1
    metrics.set_export_backlog("syslog", 7)
    assert value(scrape(client).get_data(as_text=True), "authsvc_audit_export_backlog",
                 destination="syslog") == 7
    assert "authsvc_active_sessions" not in body  # no cheap count in the session stores


def test_an_outside_address_gets_404(make_client):
    _deps, client = make_client()
    r = scrape(client, OUTSIDE)
    assert r.status_code == 404 and "authsvc_" not in r.get_data(as_text=True)
    # X-Forwarded-For from an address that is no trusted proxy is not believed
    assert scrape(client, OUTSIDE, forwarded="127.0.0.1").status_code == 404
    assert scrape(client, "10.1.2.3").status_code == 200  # another internal network


def test_behind_a_trusted_proxy_the_forwarded_address_decides(make_client):
    _deps, client = make_client(network={"trusted_proxies": ["10.0.0.1/32"]})
    assert scrape(client, "10.0.0.1", forwarded=OUTSIDE).status_code == 404
    assert scrape(client, "10.0.0.1", forwarded="192.168.1.20").status_code == 200


COUNT = """
from adapters import metrics
metrics.logon("password", "ok")
metrics.set_audit_verification(True)
"""
SCRAPE = """
from adapters import metrics
body, _ = metrics.exposition()
print(body.decode())
"""


def test_multiprocess_mode_adds_up_every_process(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(3):  # three "workers", each counting one logon, then gone
        subprocess.run([sys.executable, "-c", COUNT], cwd=ROOT, env=env, check=True, timeout=60)
    out = subprocess.run([sys.executable, "-c", SCRAPE], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    assert value(out, "authsvc_logons_total", outcome="ok", step="password") == 3
    assert value(out, "authsvc_audit_verification_ok") == 1
