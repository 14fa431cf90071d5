"""The audit log's copy on a separate system (R22; 004 第9 1(2)ア): real receivers on loopback
sockets (a TCP and a TLS syslog collector parsing RFC 6587 octet-counted frames), a real
JSON-lines file. A receiver down for a while: nothing lost, order kept."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.syslog_export import BOM, SD_ID, read_frames
from authsvc.cli import main
from authsvc.domain import audit as chain
from authsvc.services import audit_export
from tests.conftest import AGENCY
from tests.integration.support import add_contract, audit_count
from tests.ldap_support import _make_ca, _pem_cert, _write_tls

HOSTILE = 'evil"] \\x=1 [x'  # '"', ']' and '\' in a PARAM-VALUE must be escaped
HEADER = re.compile(
    r"<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+09:00) (?P<host>[!-~]{1,255}) "
    r"authsvc - (?P<msgid>[!-~]{1,32}) \[" + re.escape(SD_ID) + r" (?P<sd>.*)\] $", re.S)
PARAM = re.compile(r'([a-z_]+)="((?:[^"\\\]]|\\["\\\]])*)"')


class Receiver(socketserver.ThreadingTCPServer):
    """A syslog collector on 127.0.0.1: reads each connection to its end, keeps every complete
    octet-counted frame, then closes (as rsyslog does). `tls`: (cert, key) to serve TLS with.
    `drop_after`: read that many bytes of a connection, then close with the rest unread (a
    collector that dies mid-batch)."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int = 0, tls: tuple[Path, Path] | None = None,
                 drop_after: int | None = None) -> None:
        self.frames: list[bytes] = []
        self.lock = threading.Lock()
        self.drop_after = drop_after
        self.context: ssl.SSLContext | None = None
        if tls:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(*tls)
        super().__init__(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def get_request(self):  # the TLS handshake: a client that refuses our certificate fails here
        sock, addr = super().get_request()
        if self.context is None:
            return sock, addr
        try:
            sock.settimeout(5)
            return self.context.wrap_socket(sock, server_side=True), addr
        except (OSError, ssl.SSLError):
            sock.close()
            raise

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(5)

    def messages(self) -> list[dict]:
        with self.lock:
            return [parse(f) for f in self.frames]


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: Receiver = self.server  # type: ignore[assignment]
        self.request.settimeout(5)
        data, seen = b"", 0
        while True:
            if server.drop_after is not None and seen >= server.drop_after:
                time.sleep(0.3)  # the rest of the batch is in our buffer now: closing resets
                self.request.close()
                return
            try:
                chunk = self.request.recv(65536 if server.drop_after is None else 16)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                chunk = b""
            if not chunk:
                break
            seen += len(chunk)
            data += chunk
            frames, data = read_frames(data)
            with server.lock:
                server.frames.extend(frames)
        assert data == b"", f"a partial frame at the end: {data[:80]!r}"


def parse(frame: bytes) -> dict:
    """An RFC 5424 message as the collector sees it: the header fields, the SD params
    (unescaped) and the MSG, which starts with the UTF-8 BOM."""
    head, bom, msg = frame.partition(BOM)
    assert bom, frame[:200]
    match = HEADER.fullmatch(head.decode())
    assert match, head
    params = {k: re.sub(r"\\([\"\\\]])", r"\1", v) for k, v in PARAM.findall(match["sd"])}
    assert " ".join(f'{k}="{v}"' for k, v in PARAM.findall(match["sd"])) == match["sd"]
    return {**match.groupdict(), **params, "seq": int(params["seq"]), "msg": msg.decode()}


def seed(deps, count: int, start: int = 0) -> None:
    """`count` audited actions through the services: contracts created by the agency."""
    for i in range(start, start + count):
        add_contract(deps, AGENCY, number=f"C-EXP-{i:03}", company=f"会社{i}")


def hostile_event(deps) -> None:
    with deps.uow() as uow:
        uow.audit(deps.clock.now(), AGENCY, "test.export \"odd\" action name that is long", HOSTILE,
                  result="refused", note="詳細 ]\"\\")
        uow.commit()


def cursor_seq(deps, name: str) -> int:
    return audit_export.cursor_of(deps.settings, name).read()[0]


def stored_rows(deps) -> list[dict]:
    with deps.uow(read_only=True) as uow:
        return list(uow.audit_rows())


@pytest.mark.backends("sqlite", "postgres")
def test_syslog_export_keeps_order_and_loses_nothing_across_a_receiver_restart(make_deps, backend):
    receiver = Receiver()
    port = receiver.port
    deps = make_deps(backend, audit_export={"syslog": f"tcp://127.0.0.1:{port}", "batch": 4})
    seed(deps, 5)
    hostile_event(deps)
    seed(deps, 3, start=5)
    first = audit_count(deps)

    result = audit_export.export(deps)
    assert result["syslog"] == {"sent": first, "backlog": 0, "error": None, "busy": False}
    got = receiver.messages()
    assert [m["seq"] for m in got] == list(range(1, first + 1))
    rows = {r["seq"]: r for r in stored_rows(deps)}
    for m in got:
        row = rows[m["seq"]]
        assert m["ts"] == row["ts"] and m["ts"].endswith("+09:00")
        assert (m["subject"], m["actor"], m["result"], m["hash"]) == (
            row["subject"], row["actor"], row["result"], row["hash"])
        assert m["msg"] == row["detail"]
        assert int(m["pri"]) == 10 * 8 + (5 if row["result"] == "ok" else 4)
    odd = next(m for m in got if m["subject"] == HOSTILE)
    assert odd["action"] == "test.export \"odd\" action name that is long"
    assert odd["msgid"] == "test.export_\"odd\"_action_name_th"  # PRINTUSASCII, 32 at most
    assert 'subject="evil\\"\\] \\\\x=1 [x"' in receiver.frames[odd["seq"] - 1].decode()
    assert audit_export.backlog(deps) == {"syslog": 0}

    receiver.stop()  # the collector is down ...
    seed(deps, 6, start=10)
    result = audit_export.export(deps)["syslog"]
    assert result["sent"] == 0 and result["backlog"] == 6 and "127.0.0.1" in result["error"]
    assert cursor_seq(deps, "syslog") == first
    seed(deps, 2, start=20)  # ... and events keep coming
    assert audit_export.backlog(deps) == {"syslog": 8}

    receiver = Receiver(port)  # back on the same port
    try:
        result = audit_export.export(deps)["syslog"]
        assert result == {"sent": 8, "backlog": 0, "error": None, "busy": False}
        assert [m["seq"] for m in receiver.messages()] == list(range(first + 1, first + 9))
        assert audit_export.export(deps)["syslog"]["sent"] == 0  # nothing twice
        assert len(receiver.frames) == 8
    finally:
        receiver.stop()
    assert cursor_seq(deps, "syslog") == audit_count(deps)


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
def test_a_collector_dying_mid_batch_gets_the_batch_again(make_deps, tmp_path, scheme):
    """The batch counts as delivered only when the collector read it to the end: one that
    closes with frames unread resets the connection, the cursor stays, the next pass sends the
    batch again (at least once: the receiver keeps the first of each seq)."""
    tls = None
    conf: dict = {"batch": 100}
    if scheme == "tls":
        ca_file, cert_file, key_file = _write_tls(tmp_path)
        tls, conf["syslog_ca_file"] = (cert_file, key_file), str(ca_file)
    dying = Receiver(tls=tls, drop_after=300)
    port = dying.port
    deps = make_deps(audit_export={"syslog": f"{scheme}://127.0.0.1:{port}", **conf})
    seed(deps, 12)
    total = audit_count(deps)
    result = audit_export.export(deps)["syslog"]
    dying.stop()
    assert result["error"] and result["sent"] == 0 and cursor_seq(deps, "syslog") == 0
    partial = [m["seq"] for m in dying.messages()]
    assert partial == list(range(1, len(partial) + 1)) and len(partial) < total

    receiver = Receiver(port, tls=tls)
    try:
        assert audit_export.export(deps)["syslog"]["backlog"] == 0
        arrived = partial + [m["seq"] for m in receiver.messages()]
    finally:
        receiver.stop()
    kept = list(dict.fromkeys(arrived))  # drop repeated seqs, keep the first
    assert kept == list(range(1, total + 1))


def test_tls_collector_verified_against_the_configured_ca(make_deps, tmp_path):
    ca_file, cert_file, key_file = _write_tls(tmp_path)
    wrong_ca = tmp_path / "wrong-ca.pem"
    wrong_ca.write_bytes(_pem_cert(_make_ca("Someone else's CA")[1]))
    receiver = Receiver(tls=(cert_file, key_file))
    try:
        url = f"tls://127.0.0.1:{receiver.port}"
        wrong = make_deps(audit_export={"syslog": url, "syslog_ca_file": str(wrong_ca)})
        seed(wrong, 3)
        result = audit_export.export(wrong)["syslog"]
        assert result["sent"] == 0 and result["backlog"] == 3
        assert "CERTIFICATE_VERIFY_FAILED" in result["error"]
        assert receiver.frames == [] and cursor_seq(wrong, "syslog") == 0

        right = make_deps(audit_export={"syslog": url, "syslog_ca_file": str(ca_file)})
        assert audit_export.export(right)["syslog"] == {"sent": 3, "backlog": 0, "error": None,
                                                        "busy": False}
        assert [m["seq"] for m in receiver.messages()] == [1, 2, 3]
        assert all(m["ts"].endswith("+09:00") for m in receiver.messages())
    finally:
        receiver.stop()


def test_json_lines_file_gets_every_event_and_verifies_on_its_own(make_deps, tmp_path):
    target = tmp_path / "export" / "audit.jsonl"
    deps = make_deps(audit_export={"jsonl_file": str(target), "batch": 3})
    seed(deps, 4)
    hostile_event(deps)
    assert audit_export.export(deps) == {"jsonl": {"sent": 5, "backlog": 0, "error": None,
                                                   "busy": False}}
    seed(deps, 2, start=4)
    assert audit_export.export(deps)["jsonl"]["sent"] == 2
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert lines == stored_rows(deps)  # every column, seq, hash and mac included, in order
    with deps.uow(read_only=True) as uow:
        head = uow.audit_head()
        signed = (head.seq, head.hash, head.mac)
    assert chain.verify(lines, *signed, deps.audit_key) == (7, None)


def test_a_cursor_the_chain_no_longer_holds_starts_over(make_deps, tmp_path):
    """A restored or replaced database: the cursor's seq has another hash (or is gone). The
    destination gets the log again from its start rather than missing what was written since."""
    target = tmp_path / "audit.jsonl"
    deps = make_deps(audit_export={"jsonl_file": str(target)})
    seed(deps, 3)
    audit_export.cursor_of(deps.settings, "jsonl").write(2, "0" * 64)
    assert audit_export.export(deps)["jsonl"]["sent"] == 3
    audit_export.cursor_of(deps.settings, "jsonl").write(9, "f" * 64)  # beyond the head
    assert audit_export.backlog(deps) == {"jsonl": 3}
    assert audit_export.export(deps)["jsonl"]["sent"] == 3
    seqs = [json.loads(line)["seq"] for line in target.read_text(encoding="utf-8").splitlines()]
    assert seqs == [1, 2, 3, 1, 2, 3]


def test_a_growing_backlog_raises_one_alert_an_hour(make_deps):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # a port nobody listens on
    port = dead.getsockname()[1]
    try:
        deps = make_deps(audit_export={"syslog": f"tcp://127.0.0.1:{port}", "backlog_alert": 3,
                                       "timeout_seconds": 1})
        seed(deps, 3)
        assert audit_export.export(deps)["syslog"]["backlog"] == 3
        assert alerts_of(deps) == []  # not beyond the threshold yet
        seed(deps, 1, start=3)
        audit_export.export(deps)
        audit_export.export(deps)
        (alert,) = alerts_of(deps)
        assert alert["subject"] == "syslog" and alert["company"] is None
        assert alert["detail"]["backlog"] == 4 and alert["detail"]["threshold"] == 3
        deps.clock.advance(seconds=timedelta(minutes=61).total_seconds())
        audit_export.export(deps)
        assert len(alerts_of(deps)) == 2
    finally:
        dead.close()


def alerts_of(deps) -> list[dict]:
    from authsvc.services import alerts
    return [a for a in alerts.inbox(deps, AGENCY, open_only=False)
            if a["kind"] == audit_export.ALERT]


def test_the_command_exits_1_naming_the_backlog_then_0_once_sent(make_deps, tmp_path):
    receiver = Receiver()
    port = receiver.port
    receiver.stop()
    deps = make_deps()
    seed(deps, 2)
    env = {"AUTHSVC__PATHS__INSTANCE_DIR": str(tmp_path / "instance"), "AUTHSVC__DATABASE__URL": "",
           "AUTHSVC__AUDIT_EXPORT__SYSLOG": f"tcp://127.0.0.1:{port}", "AUTHSVC_LANG": "en"}
    runner = CliRunner()
    down = runner.invoke(main, ["audit", "export"], env=env, catch_exceptions=False)
    assert down.exit_code == 1
    assert "could not be sent to syslog" in down.stderr and "the 2 events waiting" in down.stderr
    receiver = Receiver(port)
    try:
        up = runner.invoke(main, ["audit", "export", "--json"], env=env, catch_exceptions=False)
    finally:
        receiver.stop()
    assert up.exit_code == 0, up.output
    assert json.loads(up.stdout)["destinations"]["syslog"]["sent"] == 2
    assert [m["seq"] for m in receiver.messages()] == [1, 2]
    none = runner.invoke(main, ["audit", "export"], catch_exceptions=False,
                         env={**env, "AUTHSVC__AUDIT_EXPORT__SYSLOG": ""})
    assert none.exit_code == 78 and "no audit export destination" in none.output


@pytest.mark.parametrize("url", ["udp://127.0.0.1:514", "tcp://collector", "collector:514",
                                 "tls://:6514", "tcp://h:0"])
def test_a_wrong_collector_address_stops_the_start(url):
    from authsvc.settings import ConfigError, load_settings
    with pytest.raises(ConfigError, match=r"audit_export\.syslog"):
        load_settings({"audit_export": {"syslog": url}}, environ={})


# ---- Debian's rsyslog as the collector -----------------------------------------------------

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


class Rsyslog:
    """rsyslogd in the foreground on a loopback port, writing each received message's raw text
    to `out` (one line each). Stopped with SIGTERM, started again on the same port."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port, self.out = folder, port, folder / "received.log"
        self.proc: subprocess.Popen | None = None
        (folder / "work").mkdir(parents=True, exist_ok=True)
        self.conf = folder / "rsyslog.conf"
        self.conf.write_text(
            f'global(workDirectory="{folder / "work"}")\n'
            'module(load="imtcp")\n'
            f'input(type="imtcp" address="127.0.0.1" port="{port}")\n'
            'template(name="raw" type="string" string="%rawmsg%\\n")\n'
            f'*.* action(type="omfile" file="{self.out}" template="raw")\n')

    def start(self) -> Rsyslog:
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.folder / "rsyslogd.pid")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stdout.read().decode(errors="replace")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError("rsyslogd did not listen within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def seqs(self, expected: int) -> list[int]:
        """The seqs written so far, waiting (up to 10 s) until `expected` lines are there."""
        deadline = time.monotonic() + 10
        while True:
            lines = self.out.read_text(encoding="utf-8").splitlines() if self.out.exists() else []
            if len(lines) >= expected or time.monotonic() > deadline:
                return [parse(line.encode())["seq"] for line in lines]
            time.sleep(0.05)


def test_rsyslog_receives_every_event_in_order_across_its_restart(make_deps, tmp_path):
    if not Path(RSYSLOGD).exists():  # fails, never skips: scripts/test-backends installs it
        pytest.fail("rsyslogd is required (scripts/test-backends installs Debian's rsyslog)", pytrace=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    collector = Rsyslog(tmp_path / "rsyslog", port).start()
    try:
        deps = make_deps(audit_export={"syslog": f"tcp://127.0.0.1:{port}", "batch": 3})
        seed(deps, 4)
        hostile_event(deps)
        first = audit_count(deps)
        assert audit_export.export(deps)["syslog"]["error"] is None
        assert collector.seqs(first) == list(range(1, first + 1))

        collector.stop()
        seed(deps, 4, start=4)
        assert audit_export.export(deps)["syslog"]["backlog"] == 4
        collector.start()
        assert audit_export.export(deps)["syslog"] == {"sent": 4, "backlog": 0, "error": None,
                                                       "busy": False}
        assert collector.seqs(first + 4) == list(range(1, first + 5))
        line = collector.out.read_text(encoding="utf-8").splitlines()[first - 1]
        assert parse(line.encode())["subject"] == HOSTILE
    finally:
        collector.stop()


def test_follow_keeps_exporting_until_sigterm(make_deps, tmp_path):
    """`audit export --follow` (the systemd service): events written while it runs reach the
    file within a pass or two; SIGTERM ends it cleanly (exit 0)."""
    target = tmp_path / "follow.jsonl"
    deps = make_deps()
    seed(deps, 2)
    env = {**os.environ, "AUTHSVC__PATHS__INSTANCE_DIR": str(tmp_path / "instance"),
           "AUTHSVC__DATABASE__URL": "", "AUTHSVC__AUDIT_EXPORT__JSONL_FILE": str(target),
           "AUTHSVC_LANG": "en"}
    command = [str(Path(sys.executable).parent / "authsvc"), "audit", "export", "--follow",
               "--interval", "1"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_lines(target, 2)
        seed(deps, 3, start=2)
        lines = wait_lines(target, 5)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5]
    assert b"jsonl: sent" in out


def wait_lines(path: Path, count: int, timeout: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.1)
    raise AssertionError(f"{path}: {count} lines expected within {timeout} s")
