"""Loads the policy numbers from config/default.toml, an override file and the environment,
and refuses to start on any unknown, mistyped or out-of-range key (R23)."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "config" / "default.toml"
ENV_FILE = "AUTHSVC_CONFIG"
ENV_PREFIX = "AUTHSVC__"


class ConfigError(ValueError):
    """A configuration key is unknown, of the wrong type or out of range."""


def _num(lo: int, hi: int) -> Any:
    return field(metadata={"range": (lo, hi)})


def _one_of(*choices: str) -> Any:
    return field(metadata={"choices": choices})


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = _num(10, 128)
    max_length: int = _num(16, 4096)
    min_classes: int = _num(3, 4)
    history: int = _num(0, 50)


@dataclass(frozen=True)
class Argon2Params:
    time_cost: int = _num(1, 50)
    memory_cost_kib: int = _num(8, 4 * 1024 * 1024)
    parallelism: int = _num(1, 64)
    hash_len: int = _num(16, 64)
    salt_len: int = _num(16, 64)


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = _num(1, 100)
    lock_minutes: int = _num(1, 7 * 24 * 60)
    pending_seconds: int = _num(5, 600)


@dataclass(frozen=True)
class IdentifierPolicy:
    reuse_after_days: int = _num(0, 36500)
    disable_after_days: int = _num(1, 3650)
    four_eyes: bool


@dataclass(frozen=True)
class AccountPolicy:
    cleanup_business_days: int = _num(0, 365)
    revocation_hours: int = _num(1, 24 * 30)


@dataclass(frozen=True)
class SessionPolicy:
    idle_minutes: int = _num(1, 24 * 60)
    absolute_hours: int = _num(1, 24 * 7)
    backend: str = _one_of("sql", "redis")
    concurrent: str = _one_of("replace", "refuse")


@dataclass(frozen=True)
class Counters:
    backend: str = _one_of("sql", "redis")


@dataclass(frozen=True)
class Redis:
    url: str
    prefix: str  # keys of this deployment: two deployments may share one Redis database


@dataclass(frozen=True)
class Mfa:
    second_factors: tuple[str, ...] = _one_of("vein", "totp", "webauthn")
    logon_minutes: int = _num(1, 60)  # a logon must finish its factors within this time


@dataclass(frozen=True)
class Totp:
    issuer: str
    digits: int = _num(6, 8)
    period: int = _num(15, 120)
    window: int = _num(0, 2)


@dataclass(frozen=True)
class Webauthn:
    rp_id: str
    rp_name: str
    origins: tuple[str, ...]


@dataclass(frozen=True)
class Vein:
    reader: str = _one_of("emulated", "sdk")  # the matcher on the server side
    fmr_exponent: int = _num(4, 12)           # decision threshold: false-match rate <= 10^-n
    duplicate_fmr_exponent: int = _num(6, 14)  # the 1:N duplicate search at enrolment
    min_quality: int = _num(0, 100)
    challenge_seconds: int = _num(10, 600)
    consecutive_limit: int = _num(1, 10)      # NIST SP 800-63B-4: 5 without PAD, 10 with it
    delay_seconds: int = _num(30, 3600)       # then at least 30 s, doubling at each failure
    disable_after: int = _num(5, 100)         # consecutive failures that disable the biometric
    agent_url: str                            # the terminal agent on the user's machine


@dataclass(frozen=True)
class Devices:
    require_terminal: bool  # R12: every logon proves a registered terminal (its agent's device key)


@dataclass(frozen=True)
class DirectorySync:
    sources_file: str  # "": no directory; else the TOML file of [[source]] tables ([9 of 12])


@dataclass(frozen=True)
class Registration:
    idle_minutes: int = _num(1, 240)               # an idle registration session expires
    evidence_retention_days: int = _num(1, 3650)   # the ID image is destroyed after this


@dataclass(frozen=True)
class Audit:
    checkpoint_dir: str                          # signed checkpoints, outside the database (R22)
    checkpoint_seconds: int = _num(0, 3600)      # at most this long between two of a process's
    retention_days: int = _num(0, 36500)         # events older are archived out (0: kept forever)
    archive_dir: str                             # "": "<instance_dir>-audit-archive" beside it
    seal_grace_seconds: int = _num(1, 86400)     # an event unsealed longer: the sequencer is stuck


@dataclass(frozen=True)
class AlertPolicy:
    lock_storm_accounts: int = _num(2, 100000)  # this many accounts locked ...
    lock_storm_minutes: int = _num(1, 1440)     # ... within this many minutes: one alert (R25)


@dataclass(frozen=True)
class AuditExport:
    syslog: str                                   # "": off; "tcp://host:port" | "tls://host:port"
    syslog_ca_file: str                           # TLS: the CA that signed the collector ("": system CAs)
    syslog_facility: int = _num(0, 23)            # RFC 5424 facility (10: authpriv)
    jsonl_file: str                               # "": off; else a JSON-lines file, one event a line
    batch: int = _num(1, 100000)                  # events per write (the cursor moves per batch)
    backlog_alert: int = _num(1, 1_000_000_000)   # events not yet exported: beyond this, an alert
    timeout_seconds: int = _num(1, 300)           # connect and write timeout of the collector


@dataclass(frozen=True)
class ClockCheck:
    ntp_servers: tuple[str, ...]                 # empty: the clock health check is off
    max_offset_seconds: int = _num(1, 3600)      # beyond this offset from NTP: an alert
    timeout_seconds: int = _num(1, 30)           # one NTP server's wait


@dataclass(frozen=True)
class Oidc:
    issuer: str                                      # "": derived from the request's host URL
    signing_alg: str = _one_of("ES256", "EdDSA", "RS256")
    key_dir: str                                     # "": <instance_dir>/oidc-keys
    rotate_days: int = _num(1, 3650)                 # a signing key older than this is replaced
    id_token_minutes: int = _num(1, 60)              # an ID token's lifetime
    code_seconds: int = _num(10, 600)                # an authorization code's lifetime
    access_token_minutes: int = _num(1, 60)          # an access token's lifetime (userinfo)
    logout_timeout_seconds: int = _num(1, 30)        # one back-channel logout delivery's wait
    logout_attempts: int = _num(1, 20)               # deliveries tried before an alert
    logout_retry_seconds: int = _num(1, 3600)        # the first retry's delay (doubled each time)


@dataclass(frozen=True)
class Applications:
    folder: str                                        # "": <instance_dir>/applications
    service_url: str                                   # written on the parameter sheets
    max_bytes: int = _num(1024, 100 * 1024 * 1024)     # an uploaded file larger is refused
    max_unzipped_bytes: int = _num(1024, 1024 * 1024 * 1024)  # a workbook unpacking to more
    max_ratio: int = _num(2, 10000)                    # one part's unpacked / packed size
    max_rows: int = _num(2, 100000)
    max_columns: int = _num(2, 1000)


@dataclass(frozen=True)
class Network:
    internal: tuple[str, ...]
    trusted_proxies: tuple[str, ...]
    remote_admin: tuple[str, ...]  # user IDs approved in advance to administer from outside


@dataclass(frozen=True)
class Database:
    url: str


@dataclass(frozen=True)
class Paths:
    instance_dir: str


@dataclass(frozen=True)
class Server:
    host: str
    port: int = _num(0, 65535)  # 0: any free port (`serve` says which)
    public_url: str             # the address users open; "": derived from host and port


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
_ANY_HOSTS = ("0.0.0.0", "::", "")  # noqa: S104 (names compared, nothing bound here)


def default_public_url(host: str, port: int) -> str:
    """The address users open when server.public_url is empty: `localhost` for a loopback or
    wildcard address (WebAuthn needs a host name, and one name keeps the agent's origin check
    simple), else the host itself."""
    name = "localhost" if host in LOOPBACK_HOSTS + _ANY_HOSTS else host
    if ":" in name:
        name = f"[{name}]"
    return f"http://{name}:{port}"


def origin_of(url: str) -> str:
    """The browser's origin of a URL: scheme://host[:port], the scheme's default port left out."""
    parsed = urlsplit(url)
    host = (parsed.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parsed.port
    default = {"http": 80, "https": 443}.get(parsed.scheme)
    return f"{parsed.scheme}://{host}" + (f":{port}" if port and port != default else "")


@dataclass(frozen=True)
class Ui:
    notice_ja: str    # the authorised-use notice above the logon form (NIST SP 800-53 AC-8)
    notice_en: str
    help_url: str     # the footer's help link; "": the service's own help page (/help)
    contact_ja: str   # who to ask, as the footer and the help page name them
    contact_en: str
    contact_url: str  # a link for the contact (mailto:, tel: or https:); "": none


@dataclass(frozen=True)
class Settings:
    password: PasswordPolicy
    argon2: Argon2Params
    lockout: LockoutPolicy
    identifiers: IdentifierPolicy
    accounts: AccountPolicy
    sessions: SessionPolicy
    counters: Counters
    redis: Redis
    mfa: Mfa
    totp: Totp
    webauthn: Webauthn
    vein: Vein
    devices: Devices
    directory: DirectorySync
    registration: Registration
    audit: Audit
    alerts: AlertPolicy
    audit_export: AuditExport
    clock: ClockCheck
    oidc: Oidc
    applications: Applications
    network: Network
    database: Database
    paths: Paths
    server: Server
    ui: Ui

    @property
    def instance_path(self) -> Path:
        return Path(self.paths.instance_dir).resolve()

    @property
    def checkpoint_path(self) -> Path:
        """Where the audit checkpoints are kept: by default beside the instance folder, not in
        it, so a copy or restore of the instance folder (database and all) leaves them alone."""
        if self.audit.checkpoint_dir:
            return Path(self.audit.checkpoint_dir).resolve()
        return self.instance_path.parent / f"{self.instance_path.name}-checkpoints"

    @property
    def audit_archive_path(self) -> Path:
        """The audit archive files (retention): beside the instance folder by default, like the
        checkpoints, so the database's administrators need not be able to write them."""
        if self.audit.archive_dir:
            return Path(self.audit.archive_dir).resolve()
        return self.instance_path.parent / f"{self.instance_path.name}-audit-archive"

    @property
    def oidc_key_path(self) -> Path:
        """The OpenID provider's signing keys: outside the database, in the instance folder by
        default (every instance behind a balancer must share it)."""
        if self.oidc.key_dir:
            return Path(self.oidc.key_dir).resolve()
        return self.instance_path / "oidc-keys"

    @property
    def applications_path(self) -> Path:
        """The application storage site (申請書等格納サイト): each company's folder below it."""
        if self.applications.folder:
            return Path(self.applications.folder).resolve()
        return self.instance_path / "applications"

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.instance_path / 'authsvc.db'}"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for section, values in extra.items():
        if not isinstance(values, dict):
            raise ConfigError(f"config: [{section}] must be a table of keys")
        base.setdefault(section, {}).update(values)


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        if len(parts) != 2:
            raise ConfigError(f"config: {name} must look like AUTHSVC__SECTION__KEY")
        out.setdefault(parts[0], {})[parts[1]] = raw  # typed in _coerce
    return out


def _coerce(where: str, kind: type, value: Any) -> Any:
    if kind is tuple:  # a TOML array, or a comma-separated environment value
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"config: {where} must be a list of strings, not {value!r}")
        return tuple(i.strip() for i in items if i.strip())
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        if kind is bool:
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise ConfigError(f"config: {where} must be true or false, not {value!r}")
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"config: {where} must be a whole number, not {value!r}") from None
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"config: {where} must be a whole number, not {value!r}")
    if kind is not int and not isinstance(value, kind):
        raise ConfigError(f"config: {where} must be a {kind.__name__}, not {value!r}")
    return value


def _build(raw: dict[str, Any]) -> Settings:
    sections = {}
    hints = {f.name: f.type for f in fields(Settings)}
    unknown = set(raw) - set(hints)
    if unknown:
        raise ConfigError(f"config: unknown section [{sorted(unknown)[0]}]")
    for name in hints:
        cls = globals()[hints[name]]
        values = dict(raw.get(name, {}))
        known = {f.name: f for f in fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(f"config: unknown key {name}.{key}")
        kwargs = {}
        for key, f in known.items():
            where = f"{name}.{key}"
            if key not in values:
                raise ConfigError(f"config: missing key {where}")
            kind = {"int": int, "bool": bool, "str": str, "tuple[str, ...]": tuple}[str(f.type)]
            value = _coerce(where, kind, values[key])
            lo_hi = f.metadata.get("range")
            if lo_hi and not lo_hi[0] <= value <= lo_hi[1]:
                raise ConfigError(
                    f"config: {where} = {value} is out of range ({lo_hi[0]}..{lo_hi[1]})"
                )
            choices = f.metadata.get("choices")
            if choices and any(v not in choices for v in (value if kind is tuple else (value,))):
                raise ConfigError(f"config: {where} = {value!r} must be one of {', '.join(choices)}")
            kwargs[key] = value
        sections[name] = cls(**kwargs)
    settings = _follow_public_url(Settings(**sections))
    _check_relations(settings)
    return settings


def _follow_public_url(s: Settings) -> Settings:
    """server.public_url (or, empty, the one derived from server.host and server.port) gives
    the WebAuthn RP ID and origins where those are left empty, and with them the origin the
    terminal agent accepts: one setting to change when the service moves."""
    url = (s.server.public_url or default_public_url(s.server.host, s.server.port)).rstrip("/")
    parsed = urlsplit(url)
    try:
        parsed.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise ConfigError(f"config: server.public_url {url!r} has a bad port") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.username \
            or parsed.query or parsed.fragment:
        raise ConfigError("config: server.public_url must look like https://host[:port] (the "
                          f"address users open), not {url!r}")
    webauthn = replace(s.webauthn, rp_id=s.webauthn.rp_id or parsed.hostname,
                       origins=s.webauthn.origins or (origin_of(url),))
    return replace(s, server=replace(s.server, public_url=url), webauthn=webauthn)


def _check_relations(s: Settings) -> None:
    for where, nets in (("network.internal", s.network.internal),
                        ("network.trusted_proxies", s.network.trusted_proxies)):
        for net in nets:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ConfigError(f"config: {where} has {net!r}, which is not a network") from None
    if not s.mfa.second_factors:
        raise ConfigError("config: mfa.second_factors must name at least one factor")
    issuer = s.oidc.issuer
    if issuer:
        parsed = urlsplit(issuer)
        local = parsed.scheme == "http" and parsed.hostname in ("localhost", "127.0.0.1", "::1")
        if (parsed.scheme != "https" and not local) or not parsed.hostname or parsed.query \
                or parsed.fragment or issuer.endswith("/"):
            raise ConfigError("config: oidc.issuer must be an https URL without query, fragment or "
                              "trailing slash (http only for localhost)")
    if s.password.max_length < s.password.min_length:
        raise ConfigError("config: password.max_length must not be below password.min_length")
    if s.argon2.memory_cost_kib < 8 * s.argon2.parallelism:
        raise ConfigError("config: argon2.memory_cost_kib must be at least 8 × argon2.parallelism")
    if s.audit_export.syslog:
        _check_syslog_url(s.audit_export.syslog)


def _check_syslog_url(url: str) -> None:
    """The audit export's collector: tcp:// or tls:// with a host and a port, nothing else (a
    typo must stop the start, not silently leave the events unexported)."""
    parsed = urlsplit(url)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme not in ("tcp", "tls") or not parsed.hostname or not port \
            or parsed.path not in ("", "/") or parsed.query or parsed.fragment or parsed.username:
        raise ConfigError("config: audit_export.syslog must look like tcp://host:port or "
                          f"tls://host:port, not {url!r}")


def load_settings(
    overrides: dict[str, dict[str, Any]] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Defaults, then the AUTHSVC_CONFIG file, then AUTHSVC__* variables, then `overrides`."""
    environ = dict(os.environ if environ is None else environ)
    with DEFAULT_FILE.open("rb") as fh:
        raw: dict[str, Any] = tomllib.load(fh)
    extra_file = environ.get(ENV_FILE)
    if extra_file:
        try:
            with open(extra_file, "rb") as fh:
                _merge(raw, tomllib.load(fh))
        except OSError as exc:
            raise ConfigError(f"config: cannot read {ENV_FILE}={extra_file}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {extra_file} is not valid TOML: {exc}") from None
    _merge(raw, _from_env(environ))
    _merge(raw, overrides or {})
    return _build(raw)
