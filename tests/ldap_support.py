"""A real OpenLDAP slapd for the directory-sync tests and benchmark (issue 13): no ldap3 mock.

`Slapd` generates, in a temporary folder, a slapd.conf (slapd 2.5 still reads it; a cn=config
tree buys nothing here) with one MDB database for `dc=dsg,dc=example`, loads a skeleton with
slapadd (the suffix, ou=people, ou=groups, ou=services and the sync's service account) and runs
`slapd -d none` in the foreground on free loopback ports, so a test can stop it, start it again on
the same port and data, or freeze it.

Accounts:
  * `bind_dn`/`password`: `cn=authsvc-sync,ou=services,...`, the account the sync binds as. It
    may read and write everything (import and export) but, like any non-root DN, is held to the
    size limit of 500: an unpaged search of more entries ends in sizeLimitExceeded (4) after 500;
    a paged search (simple paged results control) gets them all (`size.prtotal=unlimited`).
  * `root_dn`/`root_password`: the rootdn `cn=admin,...`. slapd never applies size limits to the
    rootdn, so it cannot show the cap; the helpers (`add_ldif`, `modify`, `search`) use it.

Invalid UTF-8: slapd refuses a non-UTF-8 value of a directoryString attribute (cn, description,
displayName, ...) with invalidAttributeSyntax (21) "value #0 invalid per syntax", so no standard
directory value can carry it. The harness adds a tiny schema (dsg-test.schema) with
`dsgLegacyName`, an octet-string attribute (auxiliary class `dsgLegacyEntry`), and `seed()` puts
non-UTF-8 bytes there and in `jpegPhoto` of `uid=legacy` (what a server without syntax checks,
or a binary attribute mapped by mistake, hands the sync).

Command-line tools run with LDAPNOINIT=1 (the machine's /etc/ldap/ldap.conf is never read).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as dt
import hashlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
LDAPSEARCH = "/usr/bin/ldapsearch"
LDAPADD = "/usr/bin/ldapadd"
LDAPMODIFY = "/usr/bin/ldapmodify"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

BASE = "dc=dsg,dc=example"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
SERVICES = f"ou=services,{BASE}"
ROOT_DN = f"cn=admin,{BASE}"
ROOT_PASSWORD = "root-secret-Adm1n"  # a throwaway test server's password
SYNC_DN = f"cn=authsvc-sync,{SERVICES}"
SYNC_PASSWORD = "sync-secret-Sync1"
SIZE_LIMIT = 500
START_TIMEOUT = 10.0
COMPANY = "防衛産業株式会社"  # the tests' default company (tests/conftest.py)

# OpenLDAP's experimental arc (1.3.6.1.4.1.4203.666), fine for a test-only schema.
TEST_SCHEMA = """\
attributetype ( 1.3.6.1.4.1.4203.666.11.9713.1.1 NAME 'dsgLegacyName'
    DESC 'test only: a name as raw bytes, no syntax check (may be invalid UTF-8)'
    EQUALITY octetStringMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.4203.666.11.9713.2.1 NAME 'dsgLegacyEntry'
    DESC 'test only: carries dsgLegacyName' AUXILIARY MAY ( dsgLegacyName ) )
"""


class SlapdError(RuntimeError):
    """slapd or one of the ldap-utils failed (the message carries its output)."""


def _fail(message: str) -> None:
    """Fail the test (pytest.fail: never a skip) or, outside pytest (bench), raise."""
    pytest = sys.modules.get("pytest")
    if pytest is not None:
        pytest.fail(message, pytrace=False)
    raise SlapdError(message)


def _require_binaries() -> None:
    missing = [path for path in (SLAPD, SLAPADD, LDAPSEARCH, LDAPADD, LDAPMODIFY)
               if not os.access(path, os.X_OK)]
    if missing or not (SCHEMA_DIR / "core.schema").exists():
        _fail("the LDAP tests need OpenLDAP's slapd and ldap-utils (Debian packages `slapd` and "
              f"`ldap-utils`; `bash scripts/test-backends` installs them); missing: "
              f"{', '.join(missing) or SCHEMA_DIR / 'core.schema'}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ssha(password: str) -> str:
    """An {SSHA} userPassword value."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # slapd's {SSHA}
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def ldif_value(attr: str, value: str | bytes) -> str:
    """One LDIF line, base64 (`attr:: `) when the value is binary, not plain-safe or long."""
    if isinstance(value, str):
        raw = value.encode()
        safe = (value.isascii() and value.isprintable() and not value.startswith((" ", ":", "<"))
                and not value.endswith(" "))
    else:
        raw, safe = value, False
    if safe:
        return f"{attr}: {value}\n"
    return f"{attr}:: {base64.b64encode(raw).decode()}\n"


def escape_dn_value(value: str) -> str:
    """RFC 4514 escaping of an RDN value (for building seed DNs)."""
    out = "".join("\\" + ch if ch in ',+"\\<>;=' else ch for ch in value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out


# ---------------------------------------------------------------------------------------------
# TLS material (cryptography): a CA, a server certificate for 127.0.0.1/localhost, a wrong CA.

def _make_ca(common_name: str) -> tuple:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DSG test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _pem_cert(cert: object) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_tls(folder: Path) -> tuple[Path, Path, Path]:
    """CA, server certificate and key (PKCS#8, no passphrase) in `folder`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key, ca_cert = _make_ca("DSG test LDAP CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(_pem_cert(ca_cert))
    cert_file.write_bytes(_pem_cert(cert))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


# ---------------------------------------------------------------------------------------------

_LIVE: set[subprocess.Popen] = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        with contextlib.suppress(OSError):
            proc.kill()


class Slapd:
    """One OpenLDAP server on loopback, its configuration, data and logs in a temporary folder.

    `with Slapd(tls=True) as server: seed(server); ...` -- or `start()`/`close()` by hand.
    `parent` is where the folder is made (default: the system's temp folder).
    """

    def __init__(self, *, tls: bool = False, parent: str | Path | None = None,
                 loglevel: str = "none", size_limit: int = SIZE_LIMIT) -> None:
        _require_binaries()
        self.base = BASE
        self.people = PEOPLE
        self.groups = GROUPS
        self.bind_dn, self.password = SYNC_DN, SYNC_PASSWORD
        self.root_dn, self.root_password = ROOT_DN, ROOT_PASSWORD
        self.size_limit = size_limit
        self.tls = tls
        self.workdir = Path(tempfile.mkdtemp(prefix="slapd-", dir=parent))
        self.log_path = self.workdir / "slapd.log"
        self.conf_path = self.workdir / "slapd.conf"
        self.port = _free_port()
        self.ldaps_port: int | None = _free_port() if tls else None
        self.ca_file: Path | None = None
        self.cert_file: Path | None = None
        self.key_file: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._closed = False
        self._started = False  # once it has run, its ports are kept
        try:
            (self.workdir / "db").mkdir()
            (self.workdir / "dsg-test.schema").write_text(TEST_SCHEMA)
            if tls:
                self.ca_file, self.cert_file, self.key_file = _write_tls(self.workdir)
            self.conf_path.write_text(self._config(loglevel))
            self._slapadd_text(self._skeleton())
        except BaseException:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise

    # --- addresses --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """ldap://127.0.0.1:PORT (StartTLS available when tls=True)."""
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        if self.ldaps_port is None:
            raise SlapdError("this Slapd was made without tls=True: no ldaps:// listener")
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running else None

    def wrong_ca_file(self) -> Path:
        """A CA file of another CA (same subject name as the right one, different key): a
        client trusting only it must refuse the server's certificate."""
        path = self.workdir / "wrong-ca.pem"
        if not path.exists():
            path.write_bytes(_pem_cert(_make_ca("DSG test LDAP CA")[1]))
        return path

    # --- configuration ----------------------------------------------------------------------
    def _config(self, loglevel: str) -> str:
        d = self.workdir
        schemas = "".join(f"include {SCHEMA_DIR / name}.schema\n"
                          for name in ("core", "cosine", "inetorgperson", "nis"))
        tls = ""
        if self.tls:
            tls = (f"TLSCACertificateFile {self.ca_file}\nTLSCertificateFile {self.cert_file}\n"
                   f"TLSCertificateKeyFile {self.key_file}\n")
        limit = self.size_limit
        return f"""\
{schemas}include {d / "dsg-test.schema"}
pidfile {d / "slapd.pid"}
argsfile {d / "slapd.args"}
modulepath {MODULE_DIR}
moduleload back_mdb
loglevel {loglevel}
# soft = hard = {limit} for every DN but the rootdn; paged searches are not capped in total
sizelimit size.soft={limit} size.hard={limit} size.prtotal=unlimited
{tls}
database mdb
suffix "{BASE}"
rootdn "{ROOT_DN}"
rootpw {ssha(ROOT_PASSWORD)}
directory {d / "db"}
maxsize 4294967296
dbnosync
lastmod on
index objectClass eq
index entryCSN eq
index entryUUID eq
index modifyTimestamp eq
index uid,mail,cn eq
index member eq

access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read
access to attrs=userPassword
    by dn.exact="{SYNC_DN}" write
    by self write
    by anonymous auth
    by * none
access to *
    by dn.exact="{SYNC_DN}" write
    by users read
    by * none
"""

    def _skeleton(self) -> str:
        return (f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: dsg\n"
                f"o: Defense Security Gateway\n\n"
                f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
                f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n\n"
                f"dn: {SERVICES}\nobjectClass: organizationalUnit\nou: services\n\n"
                f"dn: {SYNC_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n"
                f"cn: authsvc-sync\nuserPassword: {ssha(SYNC_PASSWORD)}\n"
                "description: the account authsvc's directory sync binds as\n\n")

    # --- process ----------------------------------------------------------------------------
    def _listen(self) -> str:
        urls = [f"ldap://127.0.0.1:{self.port}/"]
        if self.ldaps_port is not None:
            urls.append(f"ldaps://127.0.0.1:{self.ldaps_port}/")
        return " ".join(urls)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start(self, timeout: float = START_TIMEOUT) -> Slapd:
        """Start slapd (again: same ports, same data) and wait until it answers. A port taken
        by someone else on the very first start is replaced by another free port."""
        if self._closed:
            raise SlapdError("this Slapd is closed")
        if self.running:
            return self
        for attempt in range(3):
            try:
                self._spawn(timeout)
                return self
            except SlapdError as exc:
                if attempt == 2 or "bind" not in str(exc).lower() or self._started:
                    _fail(f"slapd did not start: {exc}")
                self.port = _free_port()
                if self.ldaps_port is not None:
                    self.ldaps_port = _free_port()
        return self

    def _spawn(self, timeout: float) -> None:
        # -d none: foreground, and only the uncategorised messages (errors, start, stop) on stderr
        args = [SLAPD, "-h", self._listen(), "-f", str(self.conf_path), "-d", "none"]
        pidfile = self.workdir / "slapd.pid"
        pidfile.unlink(missing_ok=True)  # slapd writes it once its listeners are bound
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        _LIVE.add(self._proc)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                self._reap()
                raise SlapdError(f"slapd exited (status {self._proc.returncode}) while starting: "
                                 f"{self._log_tail()}")
            if self._own_pidfile(pidfile) and self._answers():
                self._started = True
                return
            if time.monotonic() > deadline:
                self.stop()
                raise SlapdError(f"slapd did not answer on {self.url} within {timeout:.0f} s: "
                                 f"{self._log_tail()}")
            time.sleep(0.01)

    def _own_pidfile(self, pidfile: Path) -> bool:
        """Our slapd has bound its ports (not someone else answering on a port taken meanwhile)."""
        try:
            return int(pidfile.read_text().split()[0]) == self._proc.pid
        except (OSError, ValueError, IndexError):
            return False

    def _answers(self) -> bool:
        try:
            done = subprocess.run([LDAPSEARCH, "-x", "-LLL", "-H", self.url, "-o", "nettimeout=1",
                                   "-b", "", "-s", "base", "namingContexts"],
                                  capture_output=True, env=self._env(), timeout=2, check=False)
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def _reap(self) -> None:
        if self._proc is not None:
            _LIVE.discard(self._proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self, graceful: bool = False) -> None:
        """Stop slapd: SIGKILL by default (the server dies mid-operation, connections drop),
        SIGTERM (clean shutdown) with graceful=True. The data stays; start() brings it back."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGCONT)  # a frozen slapd cannot act on SIGTERM
                proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._reap()
        self._proc = None

    def freeze(self) -> None:
        """SIGSTOP: the server accepts TCP connections (kernel backlog) but never answers, for
        timeout tests. thaw() resumes it."""
        if self.running:
            os.kill(self._proc.pid, signal.SIGSTOP)
            # the stop takes effect asynchronously: wait (bounded) until every thread is stopped,
            # or a request sent at once could still be answered on a loaded machine
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not self._all_stopped():
                time.sleep(0.01)

    def _all_stopped(self) -> bool:
        try:
            tasks = Path(f"/proc/{self._proc.pid}/task").iterdir()
            return all((t / "stat").read_text().rsplit(")", 1)[1].split()[0] in "tT" for t in tasks)
        except OSError:
            return True

    def thaw(self) -> None:
        if self.running:
            os.kill(self._proc.pid, signal.SIGCONT)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[Slapd]:
        self.freeze()
        try:
            yield self
        finally:
            self.thaw()

    def close(self) -> None:
        """Stop slapd and remove the folder (configuration, data, certificates, log)."""
        if self._closed:
            return
        self.stop()
        self._closed = True
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Slapd:
        try:
            return self.start()
        except BaseException:  # pytest.fail too: leave no folder behind
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- data -------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        return {**os.environ, "LDAPNOINIT": "1"}

    def _tool(self, args: list[str], stdin: str | bytes | None = None, timeout: float = 120) -> str:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        done = subprocess.run(args, input=data, capture_output=True, env=self._env(),
                              timeout=timeout, check=False)
        if done.returncode != 0:
            raise SlapdError(f"{Path(args[0]).name} failed ({done.returncode}): "
                             f"{done.stderr.decode(errors='replace').strip()} "
                             f"{done.stdout.decode(errors='replace').strip()[-2000:]}")
        return done.stdout.decode(errors="replace")

    def _root_args(self) -> list[str]:
        return ["-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PASSWORD]

    def add_ldif(self, text: str) -> str:
        """ldapadd (as the rootdn) the entries of an LDIF text."""
        return self._tool([LDAPADD, *self._root_args()], text)

    def modify(self, ldif: str) -> str:
        """ldapmodify (as the rootdn) an LDIF of change records: `changetype: modify|add|delete|
        modrdn` (plain entries without changetype are not accepted: use add_ldif)."""
        return self._tool([LDAPMODIFY, *self._root_args()], ldif)

    def search(self, base: str | None = None, filter: str = "(objectClass=*)",
               attrs: list[str] | tuple[str, ...] = (), scope: str = "sub") -> str:
        """`ldapsearch -LLL -o ldif-wrap=no` as the rootdn (no size limit): the raw LDIF text.
        attrs: e.g. ["*", "+"] for operational attributes too."""
        return self._tool([LDAPSEARCH, "-LLL", "-o", "ldif-wrap=no", *self._root_args(),
                           "-b", base or self.base, "-s", scope, filter, *attrs])

    def _slapadd_text(self, text: str) -> None:
        path = self.workdir / "slapadd-input.ldif"
        path.write_text(text)
        self._slapadd(path)
        path.unlink()

    def _slapadd(self, path: Path, continue_on_error: bool = False) -> None:
        args = [SLAPADD, "-q", "-f", str(self.conf_path), "-l", str(path)]
        if continue_on_error:
            args.append("-c")
        self._tool(args, timeout=3600)

    def load(self, ldif_path: str | Path, continue_on_error: bool = False) -> None:
        """Load many entries fast: stop slapd (cleanly), `slapadd -q`, start it again. The
        entries must not exist yet (the skeleton does: see generate_ldif). slapadd sets
        entryUUID, entryCSN, create/modifyTimestamp as an add would."""
        was_running = self.running
        self.stop(graceful=True)
        self._slapadd(Path(ldif_path), continue_on_error)
        if was_running:
            self.start()


# ---------------------------------------------------------------------------------------------
# Seed data: a company's staff, three groups, hostile values.

# (uid, family name kanji, given name kanji, sn, givenName, department number = contract)
_STAFF = [
    ("yamada.taro", "山田", "太郎", "Yamada", "Taro", "C-2026-001"),
    ("sato.hanako", "佐藤", "花子", "Sato", "Hanako", "C-2026-001"),
    ("suzuki.ichiro", "鈴木", "一郎", "Suzuki", "Ichiro", "C-2026-001"),
    ("takahashi.yuki", "高橋", "由紀", "Takahashi", "Yuki", "C-2026-001"),
    ("tanaka.kenji", "田中", "健二", "Tanaka", "Kenji", "C-2026-001"),
    ("watanabe.mai", "渡辺", "舞", "Watanabe", "Mai", "C-2026-001"),
    ("ito.hiroshi", "伊藤", "博", "Ito", "Hiroshi", "C-2026-001"),
    ("nakamura.aya", "中村", "彩", "Nakamura", "Aya", "C-2026-002"),
    ("kobayashi.daisuke", "小林", "大輔", "Kobayashi", "Daisuke", "C-2026-002"),
    ("kato.megumi", "加藤", "恵", "Kato", "Megumi", "C-2026-002"),
    ("yoshida.shota", "吉田", "翔太", "Yoshida", "Shota", "C-2026-002"),
    ("yamaguchi.naoko", "山口", "直子", "Yamaguchi", "Naoko", "C-2026-002"),
    ("matsumoto.ryo", "松本", "亮", "Matsumoto", "Ryo", "C-2026-002"),
    ("inoue.sakura", "井上", "さくら", "Inoue", "Sakura", "C-2026-002"),
    ("kimura.takeshi", "木村", "武", "Kimura", "Takeshi", "C-2026-003"),
    ("hayashi.emi", "林", "恵美", "Hayashi", "Emi", "C-2026-003"),
    ("shimizu.kazuo", "清水", "和夫", "Shimizu", "Kazuo", "C-2026-003"),
    ("yamazaki.rina", "山崎", "里奈", "Yamazaki", "Rina", "C-2026-003"),
    ("mori.tetsuya", "森", "哲也", "Mori", "Tetsuya", "C-2026-003"),
    ("ikeda.yoko", "池田", "洋子", "Ikeda", "Yoko", "C-2026-003"),
]
MAIL_DOMAIN = "boei-sangyo.example"

HOSTILE_UID = "hostile"
# filter metacharacters, a backslash and an injection attempt; NUL-free
HOSTILE_CN = "Evil *)(uid=*))(|(cn=* \\2a \\ user"
# leading/trailing spaces, a right-to-left override, a zero-width joiner, a combining mark
HOSTILE_DISPLAY_NAME = " 悪意\u202eのある\u200d利用者e\u0301 "
HOSTILE_DESCRIPTION = ("長い説明" * 5000)[:20_000]  # 20,000 characters (60,000 bytes of UTF-8)
# a uid that must be escaped in a DN: `,` `+` `=` `"` `\` ... (RFC 4514)
ESCAPED_UID = 'sato,taro+1="x"\\y'
LEGACY_UID = "legacy"
LEGACY_BYTES = b"\xff\xfe\x80 Shift_JIS \x8e\x52\x93\x63 \xc3\x28 not UTF-8"  # never valid UTF-8

SEED_GROUPS = {  # cn -> member uids
    "engineering": [u[0] for u in _STAFF if u[5] == "C-2026-001"] + [HOSTILE_UID],
    "sales": [u[0] for u in _STAFF if u[5] == "C-2026-002"] + [ESCAPED_UID],
    "all-staff": [u[0] for u in _STAFF] + [LEGACY_UID],
}
SEED_UIDS = [u[0] for u in _STAFF] + [HOSTILE_UID, ESCAPED_UID, LEGACY_UID]


def user_dn(uid: str, base: str = PEOPLE) -> str:
    return f"uid={escape_dn_value(uid)},{base}"


def group_dn(cn: str, base: str = GROUPS) -> str:
    return f"cn={escape_dn_value(cn)},{base}"


def _person(uid: str, cn: str, sn: str, display: str, number: int, contract: str,
            given: str | None = None, mail: str | None = None, extra: str = "") -> str:
    mail = mail if mail is not None else f"{uid}@{MAIL_DOMAIN}"
    return (f"dn: {user_dn(uid)}\nobjectClass: inetOrgPerson\n" + ldif_value("uid", uid)
            + ldif_value("cn", cn) + ldif_value("sn", sn)
            + (ldif_value("givenName", given) if given else "")
            + ldif_value("displayName", display) + f"mail: {mail}\n"
            + f"employeeNumber: E{number:05d}\ndepartmentNumber: {contract}\n"
            + ldif_value("o", COMPANY) + ldif_value("userPassword", ssha(f"pw-{number}"))
            + extra + "\n")


def seed_ldif() -> str:
    """The seed tree as LDIF (ldapadd input)."""
    parts = []
    for number, (uid, fam, given, sn, given_en, contract) in enumerate(_STAFF, start=1):
        parts.append(_person(uid, f"{given_en} {sn}", sn, f"{fam} {given}", number, contract,
                             given=given_en, extra=ldif_value("title", "技術者" if number % 2 else "営業")))
    parts.append(_person(HOSTILE_UID, HOSTILE_CN, "Evil)(", HOSTILE_DISPLAY_NAME, 900, "C-2026-001",
                         extra=ldif_value("description", HOSTILE_DESCRIPTION)))
    parts.append(_person(ESCAPED_UID, "佐藤 太郎 (2)", "佐藤", "佐藤 太郎", 901, "C-2026-002",
                         mail=f"sato.taro.1@{MAIL_DOMAIN}"))
    parts.append(_person(LEGACY_UID, "Legacy Entry", "Legacy", "旧システム 利用者", 902, "C-2026-003",
                         extra="objectClass: dsgLegacyEntry\n" + ldif_value("dsgLegacyName", LEGACY_BYTES)
                         + ldif_value("jpegPhoto", LEGACY_BYTES)))
    for cn, members in SEED_GROUPS.items():
        parts.append(f"dn: {group_dn(cn)}\nobjectClass: groupOfNames\ncn: {cn}\n"
                     + ldif_value("description", f"{COMPANY} {cn}")
                     + "".join(ldif_value("member", user_dn(uid)) for uid in members) + "\n")
    return "".join(parts)


def seed(server: Slapd) -> Slapd:
    """Add the seed tree (ldapadd, so the entries get real entryCSN/modifyTimestamp):
    20 staff users under ou=people (uid, cn, sn, givenName, displayName in Japanese, mail,
    employeeNumber, departmentNumber = contract number C-2026-00N, o = the company), and
      * uid=hostile: cn with filter metacharacters (HOSTILE_CN), odd displayName
        (HOSTILE_DISPLAY_NAME) and a 20,000-character description;
      * uid=ESCAPED_UID: a uid that needs DN escaping (`,` `+` `=` `"` `\\`);
      * uid=legacy: invalid UTF-8 (LEGACY_BYTES) in dsgLegacyName (octet string) and jpegPhoto;
    and 3 groupOfNames under ou=groups (SEED_GROUPS: engineering, sales, all-staff)."""
    server.add_ldif(seed_ldif())
    return server


# ---------------------------------------------------------------------------------------------
# Benchmark data

_FAMILY = ["山田", "佐藤", "鈴木", "高橋", "田中", "渡辺", "伊藤", "中村", "小林", "加藤"]
_GIVEN = ["太郎", "花子", "一郎", "由紀", "健二", "舞", "博", "彩", "大輔", "恵"]


def generate_ldif(path: str | Path, users: int = 100_000, groups: int = 1_000, *,
                  prefix: str = "bench", include_skeleton: bool = False) -> Path:
    """Write `users` inetOrgPerson entries under ou=people and `groups` groupOfNames under
    ou=groups (user i is a member of group i % groups; groups of users/groups members), streamed
    to the file in chunks. uids: f"{prefix}{i:06d}"; groups: f"{prefix}-group-{g:04d}".
    The skeleton (suffix, ou=people, ...) is left out: every Slapd already has it, so the file
    is ready for Slapd.load()."""
    path = Path(path)
    with path.open("w", encoding="utf-8", buffering=1 << 20) as out:
        if include_skeleton:
            out.write(f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: dsg\n"
                      f"o: Defense Security Gateway\n\n"
                      f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
                      f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n\n")
        chunk: list[str] = []
        for i in range(users):
            uid = f"{prefix}{i:06d}"
            fam, given = _FAMILY[i % 10], _GIVEN[(i // 10) % 10]
            chunk.append(
                f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\n"
                f"cn: User {i}\nsn: {prefix.capitalize()}{i}\n"
                f"displayName:: {base64.b64encode(f'{fam} {given}{i}'.encode()).decode()}\n"
                f"mail: {uid}@{MAIL_DOMAIN}\nemployeeNumber: B{i:06d}\n"
                f"departmentNumber: C-2026-{i % groups:03d}\n\n")
            if len(chunk) >= 5000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))
        chunk.clear()
        for g in range(groups):
            chunk.append(f"dn: cn={prefix}-group-{g:04d},{GROUPS}\nobjectClass: groupOfNames\n"
                         f"cn: {prefix}-group-{g:04d}\n")
            members = range(g, users, groups)
            if not members:  # groupOfNames needs a member
                chunk.append(f"member: {BASE}\n")
            chunk.extend(f"member: uid={prefix}{i:06d},{PEOPLE}\n" for i in members)
            chunk.append("\n")
            if len(chunk) >= 20_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))
    return path


def parse_ldif(text: str) -> dict[str, dict[str, list[bytes]]]:
    """search() output -> {dn: {attribute: [raw values]}} (`::` values base64-decoded; the DN
    as slapd printed it, base64-decoded when given as `dn::`). Attribute names keep their case."""
    entries: dict[str, dict[str, list[bytes]]] = {}
    lines: list[str] = []
    for line in text.splitlines():  # unfold continuation lines (ldif-wrap=no makes none anyway)
        if line.startswith(" ") and lines:
            lines[-1] += line[1:]
        else:
            lines.append(line)
    current: dict[str, list[bytes]] | None = None
    for line in lines:
        if not line or line.startswith("#"):
            current = None if not line else current
            continue
        name, _, rest = line.partition(":")
        if rest.startswith(":"):
            value = base64.b64decode(rest[1:].strip())
        else:
            value = rest[1:].encode() if rest.startswith(" ") else rest.encode()
        if name.lower() == "dn":
            current = entries.setdefault(value.decode(errors="replace"), {})
        elif current is not None:
            current.setdefault(name, []).append(value)
    return entries
