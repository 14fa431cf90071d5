"""Where the audit log goes besides the database (R22; 004 第9 1(2)ア: a copy on a separate
system): RFC 5424 syslog messages over TCP (RFC 6587 octet counting) or TLS (RFC 5425) to a
collector, a JSON-lines file, and the cursor file that remembers what a destination has.

Delivery is at least once. A batch counts as delivered only when the collector has read all of
it: after the last frame the sender half-closes the connection (TLS: close_notify) and waits for
the collector to close its side. A collector that closes with frames still unread (it crashed,
or was stopped mid-batch) resets the connection instead, and the batch is sent again by the next
pass. A crash between delivery and the cursor's write sends a batch twice too: every message
carries the event's `seq` and `hash`, so a receiver drops what it already holds."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import ssl
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

SD_ID = "audit@32473"  # 32473: the enterprise number RFC 5612 reserves for examples
APP_NAME = "authsvc"
BOM = b"\xef\xbb\xbf"  # RFC 5424 6.4: a UTF-8 MSG starts with the byte order mark
NOTICE, WARNING, ERROR = 5, 4, 3
SD_PARAMS = ("seq", "action", "actor", "subject", "result", "terminal", "source", "prev_hash",
             "hash", "mac")
ROW_FIELDS = ("seq", "ts", "actor", "action", "subject", "result", "terminal", "source", "detail",
              "prev_hash", "hash", "mac")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)")


class ExportError(RuntimeError):
    """The destination did not take the batch: nothing of it counts as delivered."""


class Destination(Protocol):
    name: str

    def deliver(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Hand every row over in order, or raise ExportError."""


# ---- RFC 5424 ------------------------------------------------------------------------------


def printusascii(value: str, limit: int) -> str:
    """A header field (HOSTNAME, APP-NAME, MSGID): printable US-ASCII without spaces, at most
    `limit` characters; "-" (the NILVALUE) when nothing is left."""
    cleaned = "".join(ch if 33 <= ord(ch) <= 126 else "_" for ch in value)[:limit]
    return cleaned or "-"


def sd_escape(value: str) -> str:
    """RFC 5424 6.3.3: '"', '\\' and ']' in a PARAM-VALUE are escaped with a backslash."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def severity(result: str) -> int:
    """notice for what went through, warning for what was refused or failed, error for errors."""
    if result == "ok":
        return NOTICE
    return ERROR if result == "error" else WARNING


def timestamp(ts: str) -> str:
    """The event's own time with its own offset (+09:00 as written); RFC 5424 allows at most
    six fraction digits. Anything unreadable is the NILVALUE rather than a wrong time."""
    if _TIMESTAMP.fullmatch(ts):
        return ts
    try:
        moment = datetime.fromisoformat(ts)
    except ValueError:
        return "-"
    return moment.isoformat(timespec="microseconds") if moment.tzinfo else "-"


def format_rfc5424(row: Mapping[str, Any], hostname: str, facility: int = 10) -> bytes:
    """One audit row as `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] BOM MSG`.
    MSGID is the action (shortened for the header; the exact action is in the SD too); MSG is
    the event's detail JSON exactly as stored, so the row's hash can be checked from here."""
    pri = facility * 8 + severity(str(row["result"]))
    params = " ".join(f'{name}="{sd_escape(str(row[name] if row[name] is not None else ""))}"'
                      for name in SD_PARAMS)
    header = (f"<{pri}>1 {timestamp(str(row['ts']))} {printusascii(hostname, 255)} {APP_NAME} - "
              f"{printusascii(str(row['action']), 32)} [{SD_ID} {params}] ")
    return header.encode("utf-8", "replace") + BOM + str(row["detail"]).encode("utf-8", "replace")


def octet_frame(message: bytes) -> bytes:
    """RFC 6587 3.4.1 octet counting: `MSG-LEN SP SYSLOG-MSG`."""
    return str(len(message)).encode() + b" " + message


def read_frames(data: bytes) -> tuple[list[bytes], bytes]:
    """The complete octet-counted frames at the start of `data`, and the rest (a receiver's
    side, for tests and tools)."""
    frames: list[bytes] = []
    while True:
        space = data.find(b" ")
        if space <= 0 or not data[:space].isdigit():
            return frames, data
        size = int(data[:space])
        if len(data) < space + 1 + size:
            return frames, data
        frames.append(data[space + 1: space + 1 + size])
        data = data[space + 1 + size:]


# ---- destinations ----------------------------------------------------------------------------


class SyslogCollector:
    """A collector at tcp://host:port or tls://host:port. One connection per batch: the
    collector closing its side after our end of stream is the receipt (see the module's text)."""

    name = "syslog"

    def __init__(self, url: str, ca_file: str = "", facility: int = 10, timeout: float = 5.0,
                 hostname: str | None = None) -> None:
        parsed = urlsplit(url)
        if parsed.scheme not in ("tcp", "tls") or not parsed.hostname or not parsed.port:
            raise ValueError(f"not a collector address: {url!r}")
        self.url = url
        self.host, self.port, self.tls = parsed.hostname, parsed.port, parsed.scheme == "tls"
        self.facility, self.timeout = facility, timeout
        self.hostname = hostname or socket.gethostname()
        self._context: ssl.SSLContext | None = None
        if self.tls:
            self._context = ssl.create_default_context(cafile=ca_file or None)
            self._context.minimum_version = ssl.TLSVersion.TLSv1_2

    def deliver(self, rows: Sequence[Mapping[str, Any]]) -> None:
        payload = b"".join(octet_frame(format_rfc5424(r, self.hostname, self.facility)) for r in rows)
        try:
            with self._connect() as sock:
                sock.sendall(payload)
                self._await_close(sock)
        except (OSError, ssl.SSLError) as exc:  # refused, reset, timed out, certificate refused
            raise ExportError(f"{self.url}: {type(exc).__name__}: {exc}") from exc

    def _connect(self) -> socket.socket:
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        if self._context is None:
            return raw
        try:
            return self._context.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise

    def _await_close(self, sock: socket.socket) -> None:
        """End our stream and wait until the collector closed its own: it has read every byte
        (a collector closing with bytes unread resets the connection: ConnectionResetError)."""
        if isinstance(sock, ssl.SSLSocket):
            try:
                plain = sock.unwrap()  # close_notify; returns when the collector answers one
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                return  # closed after reading our close_notify, without answering it
            plain.shutdown(socket.SHUT_WR)
            sock = plain
        else:
            sock.shutdown(socket.SHUT_WR)
        while sock.recv(4096):  # a collector says nothing; read until its end of stream
            pass


class JsonLinesFile:
    """One JSON object a line (every stored column: the chain can be verified from the file
    alone), appended and fsync'd before the cursor moves. A file moved away (log rotation) is
    created anew at the next batch."""

    name = "jsonl"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def deliver(self, rows: Sequence[Mapping[str, Any]]) -> None:
        data = "".join(json.dumps({k: r[k] for k in ROW_FIELDS if k in r}, ensure_ascii=False,
                                  separators=(",", ":")) + "\n" for r in rows).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_dir(self.path.parent)
        except OSError as exc:
            raise ExportError(f"{self.path}: {type(exc).__name__}: {exc}") from exc


# ---- the cursor ------------------------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Cursor:
    """The last event a destination holds: `<seq> <hash>` in a small file, replaced atomically
    (temporary file, fsync, rename, fsync of the folder), so it never moves backwards or half."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> tuple[int, str]:
        try:
            text = self.path.read_text(encoding="ascii").split()
        except FileNotFoundError:
            return 0, ""
        if len(text) != 2 or not text[0].isdigit():
            raise ExportError(f"{self.path}: not a cursor (expected '<seq> <hash>')")
        return int(text[0]), text[1]

    def write(self, seq: int, row_hash: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f"{seq} {row_hash}\n".encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.path)
        _fsync_dir(self.path.parent)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Whether this process is the destination's only exporter now (a second exporter, a
        cron run beside `--follow`, would send the same events again and race on the cursor)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path.with_suffix(".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the lock
