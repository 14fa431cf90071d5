"""Prometheus metrics (prometheus-client): every metric object of the service, and the one
exposition the `/metrics` route serves. The only module that imports prometheus_client.

Multiprocess mode (gunicorn runs several workers, each with its own counters): when the
environment variable PROMETHEUS_MULTIPROC_DIR names a folder, every process writes its values
to files there and a scrape merges them with a MultiProcessCollector in a fresh registry. The
variable must be set before the first import of prometheus_client (in gunicorn's environment,
not in a worker), the folder must be writable by every worker and emptied each time gunicorn
starts (e.g. `rm -rf "$PROMETHEUS_MULTIPROC_DIR"/*` in the unit's ExecStartPre) — otherwise
counters of an earlier run are added to the new one. A CLI run (`authsvc audit verify` from a
scheduler) given the same variable and folder reports its verification result there too.

`authsvc_active_sessions` is not exported: the session stores (SQL, Redis) keep logon flows and
sessions side by side under tokens and have no cheap count of live sessions."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

LOGONS = Counter("authsvc_logons", "Logon attempts noted in the audit log and the logon history, "
                 "by step (password, totp, webauthn, vein, terminal, complete, ...) and outcome "
                 "(ok, failed, refused)", ["outcome", "step"])
ACCOUNT_LOCKS = Counter("authsvc_account_locks", "Accounts locked by failed attempts (R4)")
FACTOR_FAILURES = Counter("authsvc_factor_failures", "Failed attempts counted toward the lockout, "
                          "by factor (password, totp, webauthn, vein, terminal)", ["factor"])
AUDIT_WRITE = Histogram("authsvc_audit_write_seconds", "Time to append one event to the audit chain "
                        "(inside the action's transaction, head row lock included)",
                        buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
AUDIT_VERIFICATION_OK = Gauge("authsvc_audit_verification_ok", "1: the last verification of the "
                              "audit chain passed; 0: it failed (or none ran since the start)",
                              multiprocess_mode="mostrecent")
EXPORT_BACKLOG = Gauge("authsvc_audit_export_backlog", "Audit events spooled and not yet delivered, "
                       "by export destination", ["destination"], multiprocess_mode="mostrecent")


def logon(step: str, outcome: str) -> None:
    """One logon attempt noted (`logon.<step>` in the audit log with result `outcome`)."""
    LOGONS.labels(outcome=outcome, step=step).inc()


def factor_failed(factor: str) -> None:
    FACTOR_FAILURES.labels(factor=factor).inc()


def account_locked() -> None:
    ACCOUNT_LOCKS.inc()


def audit_write() -> AbstractContextManager[Any]:
    """`with audit_write(): ...` observes how long the block took."""
    return AUDIT_WRITE.time()


def set_audit_verification(ok: bool) -> None:
    AUDIT_VERIFICATION_OK.set(1 if ok else 0)


def set_export_backlog(destination: str, n: int) -> None:
    """How many events wait for `destination` (the export's spool sets it)."""
    EXPORT_BACKLOG.labels(destination=destination).set(n)


def exposition() -> tuple[bytes, str]:
    """The text a scrape answers, and its content type: in multiprocess mode every process's
    values merged (a fresh registry each scrape), else this process's registry."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE
    return generate_latest(REGISTRY), CONTENT_TYPE
