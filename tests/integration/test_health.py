"""The clock health check (004 第9 3(3)) against a real NTP responder on the loopback: a
small UDP server answering NTPv4 client packets (mode 3) with server packets (mode 4) whose
receive and transmit timestamps are the real time plus a chosen offset. Within the threshold
the check passes; beyond it, an alert `clock_offset` (once an hour); no server answering, an
alert `clock_unchecked`. Also `authsvc health clock` through click."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from adapters import ntp
from authsvc.cli import main
from authsvc.services import alerts, health
from tests.conftest import AGENCY

NTP_EPOCH = 2208988800  # 1900-01-01 to 1970-01-01, in seconds


def _ntp_time(t: float) -> tuple[int, int]:
    t += NTP_EPOCH
    return int(t), int((t % 1) * 2**32)


class NtpResponder:
    """Answers every NTP request on 127.0.0.1:<port> with the clock `offset` seconds ahead."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.answered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(1024)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) < 48 or data[0] & 0x7 != 3:  # only client requests
                continue
            now = time.time() + self.offset
            orig = data[40:48]  # the client's transmit timestamp, echoed as the originate one
            recv_i, recv_f = _ntp_time(now)
            tx_i, tx_f = _ntp_time(now + 0.0001)
            packet = struct.pack("!BBbbII4s", (0 << 6) | (4 << 3) | 4, 1, 4, -20, 0, 0, b"LOCL")
            packet += struct.pack("!II", recv_i, recv_f) + orig
            packet += struct.pack("!IIII", recv_i, recv_f, tx_i, tx_f)
            assert len(packet) == 48
            self.answered += 1  # counted before the answer leaves: the client may read it at once
            self.sock.sendto(packet, peer)

    def __enter__(self) -> NtpResponder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def responder() -> Iterator[NtpResponder]:
    with NtpResponder() as r:
        yield r


def dead_address() -> str:
    """A loopback UDP port nobody listens on (bound, then released)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"127.0.0.1:{port}"


def clock_deps(make_deps, *servers: str):
    return make_deps("sqlite", clock={"ntp_servers": list(servers), "max_offset_seconds": 2,
                                      "timeout_seconds": 1})


def kinds(deps) -> list[str]:
    return [a["kind"] for a in alerts.inbox(deps, AGENCY)]


def test_the_adapter_reads_the_responders_offset(responder):
    assert abs(ntp.offset(responder.address, 1)) < 0.5
    responder.offset = 10
    assert 9.5 < ntp.offset(responder.address, 1) < 10.5
    responder.offset = -30
    assert -30.5 < ntp.offset(responder.address, 1) < -29.5
    with pytest.raises(ntp.NtpUnavailable):
        ntp.offset(dead_address(), 0.5)


def test_a_clock_in_step_with_ntp_passes(make_deps, responder):
    deps = clock_deps(make_deps, responder.address)
    result = health.clock(deps)
    assert result.ok and result.status == health.OK and responder.answered == 1
    assert abs(result.offset) < 0.5 and not result.alerted
    assert kinds(deps) == []


def test_a_clock_ten_seconds_off_alerts_once_an_hour(make_deps, responder, clock):
    responder.offset = 10
    deps = clock_deps(make_deps, responder.address)
    result = health.clock(deps)
    assert not result.ok and result.status == "clock_offset" and result.alerted
    assert 9.5 < result.offset < 10.5
    [alert] = alerts.inbox(deps, AGENCY)
    assert alert["kind"] == "clock_offset" and alert["company"] is None
    assert alert["detail"]["max_offset_seconds"] == 2 and 9.5 < alert["detail"]["offset_seconds"] < 10.5
    again = health.clock(deps)  # the scheduler runs it again within the hour: no second alert
    assert again.status == "clock_offset" and not again.alerted
    clock.advance(minutes=61)
    assert health.clock(deps).alerted
    assert kinds(deps) == ["clock_offset", "clock_offset"]


def test_no_server_answering_is_its_own_alert(make_deps):
    deps = clock_deps(make_deps, dead_address(), dead_address())
    result = health.clock(deps)
    assert result.status == "clock_unchecked" and not result.ok and result.offset is None
    assert len(result.errors) == 2
    assert kinds(deps) == ["clock_unchecked"]
    assert not health.clock(deps).alerted  # once an hour


def test_one_server_down_of_two_still_checks(make_deps, responder):
    deps = clock_deps(make_deps, dead_address(), responder.address)
    result = health.clock(deps)
    assert result.ok and list(result.answers) == [responder.address] and len(result.errors) == 1


def test_no_server_configured_is_no_check(make_deps):
    deps = make_deps("sqlite")
    assert deps.settings.clock.ntp_servers == ()  # the default: off
    result = health.clock(deps)
    assert result.ok and result.status == health.DISABLED and kinds(deps) == []


def test_the_command_exits_one_with_one_line_beyond_the_threshold(tmp_path, responder):
    env = {"AUTHSVC__PATHS__INSTANCE_DIR": str(tmp_path / "instance"), "AUTHSVC__DATABASE__URL": "",
           "AUTHSVC__CLOCK__NTP_SERVERS": responder.address, "AUTHSVC__CLOCK__TIMEOUT_SECONDS": "1",
           "AUTHSVC_LANG": "en"}
    runner = CliRunner()
    ok = runner.invoke(main, ["health", "clock"], env=env, catch_exceptions=False)
    assert ok.exit_code == 0 and ok.output.startswith("System clock: ")
    data = json.loads(runner.invoke(main, ["health", "clock", "--json"], env=env).stdout)
    assert data["ok"] is True and data["status"] == "ok" and data["max_offset_seconds"] == 2
    responder.offset = 10
    off = runner.invoke(main, ["health", "clock"], env=env, catch_exceptions=False)
    assert off.exit_code == 1 and off.stdout == ""
    assert len(off.stderr.strip().splitlines()) == 1 and "off NTP" in off.stderr
    refused = runner.invoke(main, ["health", "clock", "--json"], env=env)
    assert refused.exit_code == 1 and json.loads(refused.stdout)["error"] == "clock_offset"
    env["AUTHSVC__CLOCK__NTP_SERVERS"] = dead_address()
    down = runner.invoke(main, ["health", "clock"], env=env, catch_exceptions=False)
    assert down.exit_code == 1 and "No NTP server" in down.stderr
