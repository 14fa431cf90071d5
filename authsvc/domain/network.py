"""Where a request comes from (R17): the client address, believing X-Forwarded-For only from a
configured trusted proxy, and whether that address is inside the internal networks."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(specs: Iterable[str]) -> tuple[Net, ...]:
    return tuple(ipaddress.ip_network(s, strict=False) for s in specs)


def _addr(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _within(addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None, nets: tuple[Net, ...]) -> bool:
    return addr is not None and any(addr.version == n.version and addr in n for n in nets)


def client_address(peer: str, forwarded_for: str | None, trusted_proxies: tuple[Net, ...]) -> str:
    """The peer's address, unless the peer is a trusted proxy: then the right-most address in
    X-Forwarded-For that is not itself a trusted proxy (the left part is client-controlled)."""
    addr = _addr(peer or "")
    if not _within(addr, trusted_proxies) or not forwarded_for:
        return str(addr) if addr else ""
    for hop in reversed(forwarded_for.split(",")):
        hop_addr = _addr(hop)
        if hop_addr is None:
            return ""  # a malformed chain: believe nothing of it
        if not _within(hop_addr, trusted_proxies):
            return str(hop_addr)
    return str(addr)


def is_remote(address: str, internal: tuple[Net, ...]) -> bool:
    """Outside the internal networks, or unknown: remote (fail closed)."""
    return not _within(_addr(address), internal)


def may_administer(remote: bool, user_id: str, approved: Iterable[str]) -> bool:
    """R17: administrative functions from a remote session only when approved in advance."""
    return not remote or user_id.casefold() in {a.casefold() for a in approved}
