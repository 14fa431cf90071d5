"""One LDAP directory through ldap3: a pool of servers tried in order (failover), bounded
connect and receive timeouts, TLS verified against the configured CA (LDAPS, or StartTLS before
the bind), paged searches yielded entry by entry (a page at a time in memory, never the whole
directory), values read as raw bytes and decoded strictly (an entry with invalid UTF-8 is
reported, not guessed at), and writes for the export. Every failure is one DirectoryError
naming the server and what went wrong, never a password."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ldap3 import (
    AUTO_BIND_NO_TLS,
    AUTO_BIND_TLS_BEFORE_BIND,
    BASE,
    FIRST,
    MODIFY_REPLACE,
    NONE,
    SUBTREE,
    Connection,
    Server,
    ServerPool,
    Tls,
)
from ldap3.core.exceptions import LDAPException, LDAPInvalidDnError, LDAPNoSuchObjectResult
from ldap3.utils.config import set_config_parameter
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from adapters.directory.config import Source

# The pool tries each server once (FIRST, one pass); ldap3 would then wait 10 s before saying
# none answered. A dead pool is reported at once: the scheduler and the operator wait for nothing.
set_config_parameter("POOLING_LOOP_TIMEOUT", 0)


class DirectoryError(RuntimeError):
    """The directory cannot be read or written now (down, refused, timed out, TLS)."""


@dataclass(frozen=True)
class Entry:
    """One entry as read: its DN, its stable ID, and each attribute's values, decoded."""

    dn: str
    entry_id: str
    values: Mapping[str, tuple[str, ...]]
    invalid: tuple[str, ...] = ()  # attributes whose values were not UTF-8 (left out of `values`)

    def first(self, name: str) -> str:
        found = self.values.get(name.lower(), ())
        return found[0] if found else ""


def escape(value: str) -> str:
    """A value for a search filter: `*`, `(`, `)`, `\\` and NUL escaped (RFC 4515)."""
    return escape_filter_chars(value)


def dn_key(dn: str) -> str:
    """A DN as compared: each RDN's attribute and value trimmed, lower case (a member value and
    an entry's own DN may differ in case and spacing)."""
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except LDAPInvalidDnError:
        return dn.lower()[:1000]
    return ",".join(f"{a.lower()}={v.lower()}" for a, v, _sep in parts)[:1000]


def rdn(attribute: str, value: str) -> str:
    """One RDN, its value escaped (RFC 4514)."""
    return f"{attribute}={escape_rdn(value)}"


class LdapDirectory:
    def __init__(self, source: Source) -> None:
        self.source = source
        self._conn: Connection | None = None

    # ---- the connection --------------------------------------------------------------------

    def _servers(self) -> list[Server]:
        s = self.source
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=s.ca_file or None,
                  version=ssl.PROTOCOL_TLS_CLIENT)
        out = []
        for url in s.urls:
            parts = urlsplit(url)
            secure = parts.scheme == "ldaps"
            out.append(Server(parts.hostname, port=parts.port or (636 if secure else 389), use_ssl=secure,
                              tls=tls, get_info=NONE, connect_timeout=s.timeout_seconds))
        return out

    def connect(self) -> Connection:
        if self._conn is not None and self._conn.bound:
            return self._conn
        s = self.source
        pool = ServerPool(self._servers(), FIRST, active=1, exhaust=False)
        try:
            self._conn = Connection(pool, user=s.bind_dn, password=s.password, raise_exceptions=True,
                                    receive_timeout=s.timeout_seconds, read_only=False,
                                    auto_bind=AUTO_BIND_TLS_BEFORE_BIND if s.start_tls else AUTO_BIND_NO_TLS)
        except LDAPException as exc:
            raise DirectoryError(self._explain(exc)) from None
        return self._conn

    def _explain(self, exc: Exception) -> str:
        text = str(exc) or type(exc).__name__
        return f"{', '.join(self.source.urls)}: {type(exc).__name__}: {text[:300]}"

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(LDAPException):
                self._conn.unbind()
            self._conn = None

    def __enter__(self) -> LdapDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading ---------------------------------------------------------------------------

    def search(self, base: str, flt: str, attributes: list[str]) -> Iterator[Entry]:
        """Every entry under `base` matching `flt`, a page at a time (the server's size limit
        never caps it); DirectoryError when the server fails before the last page."""
        conn = self.connect()
        id_attr = self.source.id_attribute
        wanted = sorted({*attributes, id_attr})
        try:
            for item in conn.extend.standard.paged_search(
                    base, flt, search_scope=SUBTREE, attributes=wanted, paged_size=self.source.page_size,
                    generator=True, time_limit=self.source.timeout_seconds * 6):
                if item.get("type") != "searchResEntry":
                    continue
                yield _entry(item, id_attr)
        except LDAPNoSuchObjectResult:
            return
        except LDAPException as exc:
            self.close()
            raise DirectoryError(self._explain(exc)) from None

    def read(self, dn: str, attributes: list[str]) -> Entry | None:
        conn = self.connect()
        try:
            conn.search(dn, "(objectClass=*)", search_scope=BASE, attributes=attributes)
        except LDAPNoSuchObjectResult:
            return None
        except LDAPException as exc:
            self.close()
            raise DirectoryError(self._explain(exc)) from None
        found = [e for e in conn.response if e.get("type") == "searchResEntry"]
        return _entry(found[0], "entryUUID") if found else None

    # ---- writing (the export) --------------------------------------------------------------

    def add(self, dn: str, object_classes: list[str], attributes: dict[str, list[str]]) -> None:
        self._write(lambda c: c.add(dn, object_classes, attributes))

    def replace(self, dn: str, attributes: dict[str, list[str]]) -> None:
        changes = {k: [(MODIFY_REPLACE, v)] for k, v in attributes.items()}
        self._write(lambda c: c.modify(dn, changes))

    def delete(self, dn: str) -> None:
        self._write(lambda c: c.delete(dn))

    def _write(self, op: Any) -> None:
        conn = self.connect()
        try:
            op(conn)
        except LDAPException as exc:
            raise DirectoryError(self._explain(exc)) from None


def _entry(item: dict[str, Any], id_attr: str) -> Entry:
    values: dict[str, tuple[str, ...]] = {}
    invalid = []
    for name, raw in (item.get("raw_attributes") or {}).items():
        try:
            values[name.lower()] = tuple(v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in raw)
        except UnicodeDecodeError:
            invalid.append(name.lower())
    ident = values.get(id_attr.lower(), ("",))[0] if values.get(id_attr.lower()) else ""
    return Entry(str(item.get("dn", "")), ident, values, tuple(invalid))
