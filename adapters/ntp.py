"""The system clock against an NTP server (ntplib): one query, the offset in seconds."""

from __future__ import annotations

import ntplib


class NtpUnavailable(OSError):
    """The server did not answer in time, or answered with something that is not NTP."""


def offset(server: str, timeout: float = 2.0, port: int | str = "ntp") -> float:
    """How far the server's clock is ahead of ours, in seconds (negative: ours is ahead).
    `server` may name a port as "host:port" (a local responder in the tests)."""
    host, sep, named = server.rpartition(":")
    if sep and named.isdigit() and "]" not in named and host.count(":") == 0:
        server, port = host, int(named)
    elif server.startswith("[") and "]:" in server:  # "[::1]:123"
        host, _, named = server[1:].partition("]:")
        server, port = host, int(named)
    try:
        return float(ntplib.NTPClient().request(server.strip("[]"), version=4, port=port,
                                                timeout=timeout).offset)
    except (ntplib.NTPException, OSError) as exc:
        raise NtpUnavailable(f"{server}: {type(exc).__name__}: {exc}") from exc
