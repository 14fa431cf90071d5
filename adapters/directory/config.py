"""The directory sources: one TOML file (`directory.sources_file`) with a `[[source]]` table per
company, checked strictly at load like the rest of the configuration. Bind passwords are never
in the file: each source names the environment variable that holds its password."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class DirectoryConfigError(ValueError):
    """The sources file is missing, unreadable, or has an unknown or invalid key."""


@dataclass(frozen=True)
class Source:
    company: str                       # the company its accounts belong to (as its contracts name it)
    urls: tuple[str, ...]              # ldap:// or ldaps://, tried in order (failover)
    bind_dn: str
    bind_password_env: str             # the variable holding the bind password
    users_base: str
    users_filter: str = "(objectClass=inetOrgPerson)"
    groups_base: str = ""              # "": groups are not imported
    groups_filter: str = "(objectClass=groupOfNames)"
    start_tls: bool = False            # on ldap:// URLs; ldaps:// is TLS from the start
    ca_file: str = ""                  # "": the system's CAs; certificates are always verified
    id_attribute: str = "entryUUID"    # stable across renames (AD: objectGUID)
    changed_attribute: str = "modifyTimestamp"  # for incremental syncs (AD: whenChanged/uSNChanged)
    user_id_attribute: str = "uid"
    name_attribute: str = "displayName"
    name_fallback_attribute: str = "cn"
    contract_attribute: str = ""       # "": every account of this source is under `contract`
    contract: str = ""
    member_attribute: str = "member"
    group_name_attribute: str = "cn"
    page_size: int = 500
    timeout_seconds: int = 10
    guard_min_ratio: float = 0.9       # a full listing with fewer than this share of the known entries stops
    guard_max_removals: float = 0.05   # a sync that would suspend more than this share stops
    removal_grace_days: int = 14       # suspended when gone; deleted this long after
    export_base: str = ""              # "": nothing is exported to this directory
    export_groups_base: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def password(self) -> str:
        return os.environ.get(self.bind_password_env, "")


@dataclass(frozen=True)
class DirectoryConfig:
    sources: tuple[Source, ...] = ()

    def of(self, company: str) -> Source | None:
        return next((s for s in self.sources if s.company == company), None)


_KINDS = {f.name: f.type for f in fields(Source) if f.name != "extra"}
_REQUIRED = ("company", "urls", "bind_dn", "bind_password_env", "users_base")


def _source(i: int, raw: dict[str, Any]) -> Source:
    where = f"directory source {i + 1}"
    unknown = sorted(set(raw) - set(_KINDS))
    if unknown:
        raise DirectoryConfigError(f"{where}: unknown key {unknown[0]!r}")
    missing = [k for k in _REQUIRED if not raw.get(k)]
    if missing:
        raise DirectoryConfigError(f"{where}: {missing[0]} is required")
    urls = raw["urls"] if isinstance(raw["urls"], list) else [raw["urls"]]
    for url in urls:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise DirectoryConfigError(f"{where}: {url!r} is not an ldap:// or ldaps:// URL")
    values = {**raw, "urls": tuple(urls)}
    for name in ("page_size", "timeout_seconds", "removal_grace_days"):
        if name in values and (not isinstance(values[name], int) or not 1 <= values[name] <= 100000):
            raise DirectoryConfigError(f"{where}: {name} must be a whole number from 1")
    for name in ("guard_min_ratio", "guard_max_removals"):
        if name in values and (not isinstance(values[name], int | float) or not 0 <= values[name] <= 1):
            raise DirectoryConfigError(f"{where}: {name} must be between 0 and 1")
    if not values.get("contract_attribute") and not values.get("contract"):
        raise DirectoryConfigError(f"{where}: name a contract_attribute or a fixed contract")
    return Source(**values)


def load_sources(path: str | Path | None) -> DirectoryConfig:
    """The sources in `path`; none when `path` is empty."""
    if not path:
        return DirectoryConfig()
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise DirectoryConfigError(f"cannot read the directory sources {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DirectoryConfigError(f"{path} is not valid TOML: {exc}") from None
    tables = raw.get("source", [])
    if set(raw) - {"source"} or not isinstance(tables, list):
        raise DirectoryConfigError(f"{path}: only [[source]] tables are expected")
    sources = tuple(_source(i, t) for i, t in enumerate(tables))
    companies = [s.company for s in sources]
    if len(set(companies)) != len(companies):
        raise DirectoryConfigError(f"{path}: one source per company")
    return DirectoryConfig(sources)
