"""The audit log's copy on a separate system (R22; 004 第9 1(2)ア, 003 別紙1 6-8): every event
also goes to a syslog collector (RFC 5424 over TCP or TLS) and/or a JSON-lines file, in the
chain's order, nothing lost while a destination is down.

The database is the spool: an event is durable there the moment its action commits, so the
export needs no queue of its own. Each destination has a cursor (the last seq and hash it
holds, `<instance>/audit-export/<name>.cursor`); a pass sends the events after it in seq order,
in batches, and moves it only once the destination took the batch. A collector that is down
leaves the cursor where it is, and the next pass sends the backlog in order. This relies on
seqs becoming visible in order, which the sequencer guarantees: seqs are given only by a
sealing pass, one pass at a time, each committing its run of seqs at once
(store/audit_chain.py). A pass seals what is committed before it sends.

Delivery is at least once (adapters/syslog_export.py): a batch may arrive twice after a crash
or a broken connection, each message naming its seq and hash, so a receiver keeps the first of
each. The export itself is not audited (that would feed itself, one event per pass); failures
are logged, and a backlog beyond `audit_export.backlog_alert` raises an alert (R25), at most
one an hour."""

from __future__ import annotations

import itertools
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from adapters import metrics
from adapters.syslog_export import Cursor, Destination, ExportError, JsonLinesFile, SyslogCollector
from authsvc.services import Deps, alerts
from authsvc.settings import ConfigError, Settings
from authsvc.store.uow import UnitOfWork

log = logging.getLogger("authsvc.audit_export")
ALERT = "audit_export_backlog"
ALERT_EVERY = timedelta(hours=1)


def destinations(settings: Settings) -> dict[str, Destination]:
    """The configured destinations by name ("syslog", "jsonl"); none configured: empty."""
    conf = settings.audit_export
    found: dict[str, Destination] = {}
    if conf.syslog:
        found["syslog"] = SyslogCollector(conf.syslog, conf.syslog_ca_file, conf.syslog_facility,
                                          float(conf.timeout_seconds))
    if conf.jsonl_file:
        path = Path(conf.jsonl_file)
        found["jsonl"] = JsonLinesFile(path if path.is_absolute() else settings.instance_path / path)
    return found


def cursor_of(settings: Settings, name: str) -> Cursor:
    return Cursor(settings.instance_path / "audit-export" / f"{name}.cursor")


def _rows_after(uow: UnitOfWork, after: int, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` rows with seq > `after`, in seq order."""
    return list(itertools.islice(uow.audit_rows(batch=limit, after=after), limit))


def _position(uow: UnitOfWork, cursor: Cursor, name: str) -> int:
    """Where the destination stands. A cursor the chain no longer holds (its row is gone or has
    another hash: a restored or replaced database) starts the destination over from the
    beginning: the receiver sees those seqs again with other hashes, and `audit verify`
    reports the rollback; skipping them would lose the events written since the restore."""
    seq, digest = cursor.read()
    if seq == 0:
        return 0
    row = _rows_after(uow, seq - 1, 1)
    if row and row[0]["seq"] == seq and row[0]["hash"] == digest:
        return seq
    log.warning("audit export %s: the cursor (seq %d) is not in the chain any more; "
                "sending the log again from its start", name, seq)
    return 0


def _head(uow: UnitOfWork) -> int:
    head = uow.audit_head()
    return head.seq if head is not None else 0


def _send(deps: Deps, name: str, dest: Destination) -> dict[str, Any]:
    """One destination's pass: its backlog up to the head seen at the start, batch by batch."""
    cursor = cursor_of(deps.settings, name)
    batch = deps.settings.audit_export.batch
    sent, error = 0, None
    with cursor.exclusive() as alone:
        if not alone:
            return {"sent": 0, "backlog": backlog_of(deps, name), "error": None, "busy": True}
        try:
            with deps.uow(read_only=True) as uow:
                after, until = _position(uow, cursor, name), _head(uow)
            while after < until:
                with deps.uow(read_only=True) as uow:
                    rows = _rows_after(uow, after, min(batch, until - after))
                if not rows:
                    break
                dest.deliver(rows)
                cursor.write(rows[-1]["seq"], rows[-1]["hash"])
                after, sent = rows[-1]["seq"], sent + len(rows)
        except ExportError as exc:
            error = str(exc)
            log.warning("audit export %s failed after %d events: %s", name, sent, error)
    return {"sent": sent, "backlog": backlog_of(deps, name), "error": error, "busy": False}


def export(deps: Deps, destination_name: str | None = None) -> dict[str, dict[str, Any]]:
    """One pass over every configured destination (or the one named): per destination, how
    many events were sent, the backlog left, and the error that stopped it (None: delivered).
    A destination another exporter is serving right now is skipped ("busy": True)."""
    found = destinations(deps.settings)
    if found:
        deps.seal_audit()  # what is committed goes out now, not at the next pass
    if destination_name is not None:
        if destination_name not in found:
            raise ConfigError(f"config: the audit export destination {destination_name!r} is not "
                              "configured (audit_export.syslog, audit_export.jsonl_file)")
        found = {destination_name: found[destination_name]}
    results = {name: _send(deps, name, dest) for name, dest in found.items()}
    for name, r in results.items():
        metrics.set_export_backlog(name, r["backlog"])
    check_backlog(deps, {name: r["backlog"] for name, r in results.items()},
                  {name: r["error"] for name, r in results.items()})
    return results


def _waiting(head: int, delivered: int) -> int:
    """A cursor beyond the head (a restored database) means the whole log goes again."""
    return head if delivered > head else head - delivered


def backlog_of(deps: Deps, name: str) -> int:
    with deps.uow(read_only=True) as uow:
        return _waiting(_head(uow), cursor_of(deps.settings, name).read()[0])


def backlog(deps: Deps) -> dict[str, int]:
    """Events each configured destination does not hold yet (the metric and the alert's measure)."""
    deps.seal_audit()
    with deps.uow(read_only=True) as uow:
        head = _head(uow)
    return {name: _waiting(head, cursor_of(deps.settings, name).read()[0])
            for name in destinations(deps.settings)}


def check_backlog(deps: Deps, backlogs: dict[str, int],
                  errors: dict[str, str | None] | None = None) -> list[str]:
    """Alert the operators (the agency's inbox) of each destination whose backlog is beyond
    `audit_export.backlog_alert`: the separate copy is falling behind, and a long outage would
    leave the events only in the database. No new alert of this kind within the hour after the
    last one. Returns the destinations alerted of."""
    threshold = deps.settings.audit_export.backlog_alert
    over = {name: n for name, n in backlogs.items() if n > threshold}
    if not over:
        return []
    now = deps.clock.now()
    with deps.uow() as uow:
        if uow.alerts.recent(ALERT, now - ALERT_EVERY):
            return []
        for name, n in over.items():
            alerts.note(uow, now, ALERT, name, None, backlog=n, threshold=threshold,
                        error=(errors or {}).get(name))
        uow.commit()
    return sorted(over)
