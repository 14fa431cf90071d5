"""Health checks of what the service's guarantees rest on, and the configuration's trace.

The clock (004 第9 3(3)): TOTP codes
and every audit timestamp depend on the system clock, so it is compared with the configured
NTP servers; beyond `clock.max_offset_seconds` the operators are alerted (`clock_offset`), and
when no server answers at all that is an alert of its own (`clock_unchecked`): a check that
cannot run is not a clock that is right. Either alert is raised at most once an hour.

The configuration (004 第5 1): every service start audits the effective configuration's
fingerprint (`config.started`), and a difference from the last start's is `config.changed`,
naming the keys that changed."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import statistics
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from adapters import ntp
from authsvc.domain.roles import Actor
from authsvc.services import Deps, alerts
from authsvc.settings import Settings

ALERT_EVERY = timedelta(hours=1)  # one alert of a kind per hour, however often the check runs
OK, DISABLED, OFFSET, UNCHECKED = "ok", "disabled", "clock_offset", "clock_unchecked"


@dataclass(frozen=True)
class ClockStatus:
    status: str                      # ok | disabled | clock_offset | clock_unchecked
    offset: float | None = None      # seconds the NTP servers are ahead of us (their median)
    threshold: int = 0
    answers: dict[str, float] = field(default_factory=dict)  # server -> its offset
    errors: dict[str, str] = field(default_factory=dict)     # server -> why it did not answer
    alerted: bool = False            # an alert was raised by this check (not one in the last hour)

    @property
    def ok(self) -> bool:
        return self.status in (OK, DISABLED)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "status": self.status,
                "offset_seconds": None if self.offset is None else round(self.offset, 6),
                "max_offset_seconds": self.threshold, "answers": self.answers,
                "errors": self.errors, "alerted": self.alerted}


def clock(deps: Deps, query: Any = ntp.offset) -> ClockStatus:
    """Ask every configured NTP server; the median of the answers is the clock's offset (one
    wrong server does not decide). `query(server, timeout)` is the adapter (tests may pass
    another)."""
    pol = deps.settings.clock
    if not pol.ntp_servers:
        return ClockStatus(DISABLED, threshold=pol.max_offset_seconds)
    answers: dict[str, float] = {}
    errors: dict[str, str] = {}
    for server in pol.ntp_servers:
        try:
            answers[server] = query(server, pol.timeout_seconds)
        except ntp.NtpUnavailable as exc:
            errors[server] = str(exc)[:200]
    if not answers:
        alerted = _alert(deps, UNCHECKED, servers=list(pol.ntp_servers), errors=errors)
        return ClockStatus(UNCHECKED, None, pol.max_offset_seconds, answers, errors, alerted)
    offset = statistics.median(answers.values())
    if abs(offset) <= pol.max_offset_seconds:
        return ClockStatus(OK, offset, pol.max_offset_seconds, answers, errors)
    alerted = _alert(deps, OFFSET, offset_seconds=round(offset, 3),
                     max_offset_seconds=pol.max_offset_seconds, answers=answers)
    return ClockStatus(OFFSET, offset, pol.max_offset_seconds, answers, errors, alerted)


def _alert(deps: Deps, kind: str, **detail: Any) -> bool:
    """Raise the alert unless one of its kind was raised within the hour; True when raised."""
    now = deps.clock.now()
    with deps.uow() as uow:
        if uow.alerts.recent(kind, now - ALERT_EVERY):
            return False
        alerts.note(uow, now, kind, "clock", None, **detail)
        uow.commit()
    return True


# ---- the configuration (004 第5 1: the access-control policy is approved, changes traceable) --

CONFIG_ACTOR = "system:config"
FINGERPRINT_FILE = "config.fingerprint"  # in the instance folder: the last start's fingerprint
CONFIG_FILE = "config.json"              # ... and its effective configuration, to name what changed
LOCK_FILE = "config.lock"                # workers starting together record one change, not several


def _no_password(value: str) -> str:
    """A URL without the password it may carry (postgresql://user:secret@host/db)."""
    if "://" not in value or "@" not in value:
        return value
    parts = urlsplit(value)
    if parts.password is None:
        return value
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def effective_config(settings: Settings) -> dict[str, Any]:
    """The settings in force, section by section, with every URL's password removed (the
    database's, Redis's): what the fingerprint covers and what is kept to compare."""
    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return _no_password(value) if isinstance(value, str) else value

    return clean(asdict(settings))


def _canonical(config: dict[str, Any]) -> bytes:
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint(config: dict[str, Any]) -> str:
    """SHA-256 of the effective configuration as canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(_canonical(config)).hexdigest()


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, values in config.items()
            for key, value in (values.items() if isinstance(values, dict) else [("", values)])}


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The keys ("lockout.max_failures") whose value differs, was added or was removed."""
    a, b, missing = _flat(old), _flat(new), object()
    return sorted(k for k in a.keys() | b.keys() if a.get(k, missing) != b.get(k, missing))


def _write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with an owner-only file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class ConfigStart:
    fingerprint: str
    previous: str | None   # the last start's fingerprint (None: the first start here)
    changed: tuple[str, ...] = ()

    @property
    def is_change(self) -> bool:
        return self.previous is not None and self.previous != self.fingerprint


def config_started(deps: Deps) -> ConfigStart:
    """At a service start: audit `config.started` with the effective configuration's
    fingerprint, and `config.changed` (old and new fingerprints, the changed sections and keys)
    when it differs from the last start's, kept in the instance folder with a copy of that
    configuration (owner-only) to name what changed. The events are written before the files:
    a start whose events cannot be written changes nothing here and fails."""
    config = effective_config(deps.settings)
    new = fingerprint(config)
    folder = deps.settings.instance_path
    folder.mkdir(parents=True, exist_ok=True)
    actor = Actor(CONFIG_ACTOR, terminal=socket.gethostname()[:100], source="local")
    with open(folder / LOCK_FILE, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        try:
            previous: str | None = (folder / FINGERPRINT_FILE).read_text().strip() or None
        except FileNotFoundError:
            previous = None
        try:
            old_config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            old_config = {}
        result = ConfigStart(new, previous)
        if result.is_change:
            result = ConfigStart(new, previous, tuple(changed_keys(old_config, config)))
        now = deps.clock.now()
        with deps.uow() as uow:
            uow.audit(now, actor, "config.started", "config", "ok", fingerprint=new,
                      **({"baseline": True} if previous is None else {}))
            if result.is_change:
                uow.audit(now, actor, "config.changed", "config", "ok", old=previous, new=new,
                          sections=sorted({k.split(".", 1)[0] for k in result.changed}),
                          keys=list(result.changed))
            uow.commit()
        if previous != new or not (folder / CONFIG_FILE).exists():
            _write_private(folder / CONFIG_FILE, _canonical(config))
            _write_private(folder / FINGERPRINT_FILE, new.encode())
    return result
