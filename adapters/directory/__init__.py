"""LDAP directories ([9 of 12], R20) behind the `authsvc.ports.Directory` port: the sources
(per company, config/directory.toml) and an ldap3 connection to a pool of servers with failover,
timeouts, LDAPS or StartTLS with certificate verification, paged searches streamed page by page,
and every value escaped in filters and DNs."""

from adapters.directory.config import DirectoryConfig, Source, load_sources
from adapters.directory.ldap import DirectoryError, Entry, LdapDirectory

__all__ = ["DirectoryConfig", "DirectoryError", "Entry", "LdapDirectory", "Source", "load_sources"]
