"""Every bad input at the command line and at start-up: one line naming the problem, the exit
code the README documents (sysexits style: 64 usage, 69 a backend or the port unavailable,
70 internal error, 78 configuration; 1 refused), and never a Python traceback.

The commands run through click's runner where that suffices, and as the real `authsvc`
program (a subprocess) where the process itself matters: `serve` and `agent` binding ports,
and `wsgi.py` at a gunicorn start."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from authsvc.cli import (
    EX_CONFIG,
    EX_IOERR,
    EX_REFUSED,
    EX_SOFTWARE,
    EX_UNAVAILABLE,
    EX_USAGE,
    default_lang,
    main,
)
from authsvc.settings import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]
AUTHSVC = Path(sys.executable).parent / "authsvc"
GOOD_KEY = "ab" * 32
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One migrated instance folder for the module (the bad inputs change nothing in it)."""
    folder = tmp_path_factory.mktemp("cli-errors")
    environ = {
        "AUTHSVC__PATHS__INSTANCE_DIR": str(folder / "instance"),
        "AUTHSVC__DATABASE__URL": "",
        "AUTHSVC__ARGON2__TIME_COST": "1",
        "AUTHSVC__ARGON2__MEMORY_COST_KIB": "1024",
        "AUTHSVC__ARGON2__PARALLELISM": "1",
        "AUTHSVC_LANG": "en",
    }
    runner = CliRunner()
    for args in (["db", "upgrade"],
                 ["contract", "create", "C-1", "--company", "X", "--start", "2026-04-01"],
                 ["user", "create", "yamada", "--name", "Yamada", "--contract", "C-1", "--role", "user"]):
        done = runner.invoke(main, args, env=environ)
        assert done.exit_code == 0, done.output
    return environ


def run(env: dict[str, str], *args: str, code: int, **extra: str | None) -> Result:
    result = CliRunner().invoke(main, list(args), env={**env, **extra})
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    return result


def one_line(result: Result | subprocess.CompletedProcess[str]) -> str:
    """The message: the last line of standard error."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result.stdout
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    return lines[-1]


def only_line(result: Result) -> str:
    """A usage error: one line on standard error and nothing else (no Usage/Try lines)."""
    assert "Traceback" not in result.output
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.stdout == "" and not line.startswith(("Usage:", "Try ")), result.output
    return line


# ---- usage errors: 64 ---------------------------------------------------------------------


def _leaves(group: click.Group,
            path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _leaves(cmd, (*path, name))
        else:
            yield (*path, name), cmd


COMMANDS = list(_leaves(main))


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_every_command_refuses_an_unknown_option_as_a_usage_error(env, path):
    line = only_line(run(env, *path, "--no-such-option", code=EX_USAGE))
    assert "No such option" in line and "--no-such-option" in line


@pytest.mark.parametrize("path", [p for p, c in COMMANDS
                                  if any(isinstance(a, click.Argument) and a.required for a in c.params)],
                         ids=" ".join)
def test_every_command_names_its_missing_argument(env, path):
    line = only_line(run(env, *path, code=EX_USAGE))
    assert line.startswith("Error: Missing argument")


@pytest.mark.parametrize(("args", "named"), [
    (["vein", "enroll", "yamada", "--palm", "-1"], "--palm"),
    (["vein", "enroll", "yamada", "--palm", "many"], "--palm"),
    (["user", "list", "--status", "bogus"], "'pending', 'active', 'suspended', 'disabled', 'expired'"),
    (["user", "list", "--role", "emperor"], "--role"),
    (["serve", "--port", "-1"], "--port"),
    (["serve", "--port", "70000"], "--port"),
    (["agent", "--port", "0"], "--port"),
    (["agent", "--origin", "http://localhost:8080/"], "not an origin"),
    (["agent", "--origin", "localhost:8080"], "not an origin"),
    (["contract", "create", "C-2", "--start", "2026-04-01"], "--company"),
    (["contract", "create", "C-2", "--company", "X", "--start", "1 April"], "--start"),
    (["user", "window", "yamada", "--from", "soon", "--to", "later"], "--from"),
    (["audit", "show", "--limit", "0"], "--limit"),
    (["no-such-command"], "No such command"),
    (["--lang", "fr", "user", "list"], "--lang"),
    (["--as", "a", "--as-client", "b", "user", "list"], "exclude each other"),
])
def test_bad_values_are_usage_errors_naming_the_option(env, args, named):
    line = only_line(run(env, *args, code=EX_USAGE))
    assert line.startswith("Error:") and named in line and "--help" in line
    assert not JAPANESE.search(line)


# Japanese (the default), one line each: the option or argument, the value, what is allowed
JA_USAGE = [
    (["vein", "enroll", "yamada", "--palm", "-1"],
     "オプション --palm の値 -1 は使えません（0〜2147483647）。"),
    (["vein", "enroll", "yamada", "--palm", "many"], "オプション --palm の値 many は整数ではありません"),
    (["vein", "enroll", "yamada", "--palm"], "オプション --palm に値がありません。"),
    (["user", "show"], "引数 USER_ID がありません。"),
    (["user", "show", "a", "b"], "余分な引数があります（b）。"),
    (["user", "list", "--foo"], "--foo というオプションはありません。"),
    (["user", "list", "--locked=yes"], "オプション --locked は値をとりません。"),
    (["user", "list", "--status", "bogus"],
     "オプション --status の値 bogus は使えません（次のいずれか: pending、active、suspended、disabled、"
     "expired、deleted）。"),
    (["contract", "create", "C-2", "--start", "2026-04-01"], "オプション --company を指定してください。"),
    (["contract", "create", "C-2", "--company", "X", "--start", "1 April"],
     "オプション --start の値 「1 April」 は日付・時刻の形式に合いません（形式: YYYY-MM-DD）。"),
    (["audit", "show", "--limit", "0"], "オプション --limit の値 0 は使えません（1〜10000）。"),
    (["alert", "ack", "abc"], "引数 ALERT_ID の値 abc は整数ではありません。"),
    (["application", "roster", "C-1", "x"],
     "引数 KIND の値 x は使えません（次のいずれか: handlers、system_users）。"),
    (["application", "import", "/nonexistent/form.xlsx"], "のファイル /nonexistent/form.xlsx がありません。"),
    (["agent", "--origin", "localhost:8080"],
     "オプション --origin の値 'localhost:8080' はオリジンではありません"),
    (["usr", "list"], "usr というコマンドはありません。（もしかして: user）"),
    (["--as", "a", "--as-client", "b", "user", "list"], "--as と --as-client は同時に指定できません。"),
    (["--lang", "fr", "user", "list"], "オプション --lang の値 fr は使えません（次のいずれか: ja、en）。"),
]


@pytest.mark.parametrize(("args", "said"), JA_USAGE, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_usage_errors_in_japanese_are_one_japanese_line(env, args, said):
    line = only_line(run(env, *args, code=EX_USAGE, AUTHSVC_LANG="ja"))
    assert said in line, line
    assert "使い方: " in line and "--help" in line
    for english in ("Error", "Invalid value", "No such", "Missing", "Usage", "Try "):
        assert english not in line, line


def test_usage_errors_follow_the_language_of_the_environment(env):
    ja = only_line(run(env, "user", "show", code=EX_USAGE, AUTHSVC_LANG="ja"))
    assert ja.startswith("引数 USER_ID がありません。")
    en = only_line(run(env, "user", "show", code=EX_USAGE, AUTHSVC_LANG="en"))
    assert en == "Error: Missing argument 'USER_ID'. Try 'main user show --help'."
    assert only_line(run(env, "--lang", "en", "user", "show", code=EX_USAGE, AUTHSVC_LANG="ja")) == en
    line = only_line(run(env, "vein", "enroll", "yamada", "--palm", "-1", code=EX_USAGE))
    assert line == ("Error: Invalid value for '--palm': -1 is not in the range 0<=x<=2147483647. "
                    "Try 'main vein enroll --help'.")


@pytest.mark.parametrize(("args", "lang", "said"), [
    (["vein", "enroll", "yamada", "--palm", "-1", "--json"], "en",
     "Invalid value for '--palm': -1 is not in the range 0<=x<=2147483647."),
    (["vein", "enroll", "yamada", "--palm", "-1", "--json"], "ja",
     "オプション --palm の値 -1 は使えません（0〜2147483647）。"),
    (["user", "list", "--json", "--no-such-option"], "en", "No such option '--no-such-option'."),
    (["user", "list", "--json", "--no-such-option"], "ja", "--no-such-option というオプションはありません。"),
    (["user", "show", "--json"], "en", "Missing argument 'USER_ID'."),
    (["user", "show", "--json"], "ja", "引数 USER_ID がありません。"),
    (["no-such-command", "--json"], "en", "No such command 'no-such-command'."),
    (["user", "list", "--status", "bogus", "--json"], "ja",
     "オプション --status の値 bogus は使えません（次のいずれか: pending、active、suspended、disabled、"
     "expired、deleted）。"),
])
def test_usage_errors_with_json_are_one_json_object(env, args, lang, said):
    result = run(env, *args, code=EX_USAGE, AUTHSVC_LANG=lang)
    assert json.loads(result.stdout) == {"error": "usage", "message": said}
    assert result.stderr == "" and len(result.stdout.strip().splitlines()) == 1


def test_a_bad_language_in_the_environment_is_named(env):
    line = only_line(run(env, "user", "list", code=EX_USAGE, AUTHSVC_LANG="fr"))
    assert "AUTHSVC_LANG" in line and "'fr'" in line  # in the locale's language


def test_a_bad_status_lists_the_valid_ones_instead_of_printing_nothing(env):
    line = one_line(run(env, "user", "list", "--status", "bogus", code=EX_USAGE))
    assert "'bogus' is not one of" in line and "'deleted'" in line


# ---- refused by the service: 1 --------------------------------------------------------------


def test_a_bad_device_id_is_named_as_a_device_id(env):
    result = run(env, "device", "register", "T!", "--public-key", "x" * 43, code=EX_REFUSED)
    line = one_line(result)
    assert "device ID" in line and "user ID" not in line
    ja = run(env, "--lang", "ja", "device", "register", "T!", "--public-key", "x" * 43, code=EX_REFUSED)
    assert "機器ID" in one_line(ja)


# ---- configuration: 78 ----------------------------------------------------------------------


CONFIG_CASES = {
    "database url": ({"AUTHSVC__DATABASE__URL": "nonsense://x"}, "database.url"),
    "audit key not hex": ({"AUTHSVC_AUDIT_KEY": "zz"}, "AUTHSVC_AUDIT_KEY is not a hex key"),
    "audit key 1 byte": ({"AUTHSVC_AUDIT_KEY": "aa"}, "AUTHSVC_AUDIT_KEY is 1 bytes"),
    "secret key not hex": ({"AUTHSVC_SECRET_KEY": "zz"}, "AUTHSVC_SECRET_KEY is not a hex key"),
    "secret key short": ({"AUTHSVC_SECRET_KEY": "ab" * 16}, "AUTHSVC_SECRET_KEY is 16 bytes"),
    "data keys garbage": ({"AUTHSVC_DATA_KEYS": "garbage"}, "AUTHSVC_DATA_KEYS must be a list of kid:hex"),
    "data key not hex": ({"AUTHSVC_DATA_KEYS": "k1:zz"}, "AUTHSVC_DATA_KEYS (k1) is not a hex key"),
    "data key short": ({"AUTHSVC_DATA_KEYS": "k1:abcd"}, "AUTHSVC_DATA_KEYS (k1) is 2 bytes"),
    "second data key": ({"AUTHSVC_DATA_KEYS": f"k2:{GOOD_KEY},k1:zz"}, "(k1) is not a hex key"),
    "redis url": ({"AUTHSVC__COUNTERS__BACKEND": "redis", "AUTHSVC__REDIS__URL": "foo://bar"}, "redis.url"),
    "redis port": ({"AUTHSVC__SESSIONS__BACKEND": "redis", "AUTHSVC__REDIS__URL": "redis://h:port/0"},
                   "redis.url"),
    "out of range": ({"AUTHSVC__LOCKOUT__MAX_FAILURES": "0"}, "lockout.max_failures"),
    "unknown key": ({"AUTHSVC__LOCKOUT__MAX_FAILUER": "3"}, "lockout.max_failuer"),
    "not a number": ({"AUTHSVC__SERVER__PORT": "eighty"}, "server.port"),
    "public url": ({"AUTHSVC__SERVER__PUBLIC_URL": "ftp://gateway"}, "server.public_url"),
    "config file": ({"AUTHSVC_CONFIG": "/nonexistent/authsvc.toml"}, "AUTHSVC_CONFIG"),
}


@pytest.mark.parametrize("case", CONFIG_CASES, ids=str)
@pytest.mark.parametrize("command", [("user", "list"), ("audit", "verify"), ("device", "list")],
                         ids=" ".join)
def test_bad_configuration_is_one_line_and_78(env, case, command):
    extra, named = CONFIG_CASES[case]
    line = one_line(run(env, *command, code=EX_CONFIG, **extra))
    assert named in line, line
    assert GOOD_KEY not in line


def test_bad_configuration_in_json_is_one_object(env):
    result = run(env, "user", "list", "--json", code=EX_CONFIG, AUTHSVC_AUDIT_KEY="zz")
    assert json.loads(result.stdout) == {
        "error": "config", "message": "config: AUTHSVC_AUDIT_KEY is not a hex key (64 hex digits: 32 bytes)"}


def test_a_damaged_key_file_is_named(env, tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "audit.key").write_text("aa\n")
    line = one_line(run(env, "user", "list", code=EX_CONFIG,
                        AUTHSVC__PATHS__INSTANCE_DIR=str(instance)))
    assert str(instance / "audit.key") in line and "1 bytes" in line


# ---- unavailable backends: 69 -----------------------------------------------------------------


def test_redis_down_with_redis_counters_names_it_and_exits_69(env):
    result = run(env, "user", "unlock", "yamada", code=EX_UNAVAILABLE,
                 AUTHSVC__COUNTERS__BACKEND="redis", AUTHSVC__REDIS__URL="redis://:hunter2@127.0.0.1:1/15")
    line = one_line(result)
    assert "Redis (127.0.0.1:1) does not answer" in line and "hunter2" not in line


def test_unreachable_postgresql_names_host_and_port_but_never_the_password(env):
    result = run(env, "user", "list", code=EX_UNAVAILABLE,
                 AUTHSVC__DATABASE__URL="postgresql://authsvc:s3cret-pw@127.0.0.1:1/authsvc")
    line = one_line(result)
    assert "PostgreSQL 127.0.0.1:1" in line and "s3cret" not in result.output
    as_json = run(env, "user", "list", "--json", code=EX_UNAVAILABLE,
                  AUTHSVC__DATABASE__URL="postgresql://authsvc:s3cret-pw@127.0.0.1:1/authsvc")
    assert json.loads(as_json.stdout)["error"] == "database_unavailable"
    ja = run(env, "--lang", "ja", "user", "list", code=EX_UNAVAILABLE,
             AUTHSVC__DATABASE__URL="postgresql://authsvc:s3cret-pw@127.0.0.1:1/authsvc")
    assert "データベース（PostgreSQL 127.0.0.1:1）に接続できません" in one_line(ja)


def test_an_address_that_cannot_be_listened_on_is_named(env):
    line = one_line(run(env, "serve", "--host", "203.0.113.5", "--port", "0", code=EX_UNAVAILABLE))
    assert line.startswith("Cannot listen on 203.0.113.5:0 (")


# ---- files: 74 --------------------------------------------------------------------------------


def test_an_instance_folder_that_cannot_be_made_is_named(env):
    line = one_line(run(env, "user", "list", code=EX_IOERR,
                        AUTHSVC__PATHS__INSTANCE_DIR="/dev/null/instance"))
    assert line.startswith("authsvc: ") and "/dev/null/instance" in line


def test_serve_with_the_database_down_names_it_and_exits_69(env):
    line = one_line(run(env, "serve", "--port", "0", code=EX_UNAVAILABLE,
                        AUTHSVC__DATABASE__URL="postgresql://authsvc:pw@127.0.0.1:1/authsvc"))
    assert "PostgreSQL 127.0.0.1:1" in line


# ---- internal errors: 70, one line ----------------------------------------------------------


def test_an_unexpected_failure_is_one_line_not_a_traceback(env, monkeypatch):
    from authsvc.services import accounts

    def broken(*_args: object, **_kw: object) -> None:
        raise RuntimeError("something\nunexpected")

    monkeypatch.setattr(accounts, "list_contracts", broken)
    line = one_line(run(env, "contract", "list", code=EX_SOFTWARE))
    assert line == ("authsvc: internal error (RuntimeError: something unexpected); "
                    "AUTHSVC_DEBUG=1 shows the details")
    with pytest.raises(RuntimeError):
        CliRunner().invoke(main, ["contract", "list"], env={**env, "AUTHSVC_DEBUG": "1"},
                           catch_exceptions=False)


# ---- the language of messages -----------------------------------------------------------------


def test_the_language_follows_lang_then_authsvc_lang_then_the_locale():
    assert default_lang({}) == "ja"
    assert default_lang({"LANG": "C.UTF-8"}) == "ja"
    assert default_lang({"LANG": "ja_JP.UTF-8"}) == "ja"
    assert default_lang({"LANG": "en_US.UTF-8"}) == "en"
    assert default_lang({"LANG": "en_US.UTF-8", "LC_ALL": "ja_JP.UTF-8"}) == "ja"
    assert default_lang({"LANG": "ja_JP.UTF-8", "AUTHSVC_LANG": "en"}) == "en"


def test_one_command_speaks_one_language(env):
    en = run(env, "user", "unlock", "yamada", code=EX_UNAVAILABLE,
             AUTHSVC__COUNTERS__BACKEND="redis", AUTHSVC__REDIS__URL="redis://127.0.0.1:1/15")
    assert not JAPANESE.search(en.output)
    ja = run(env, "--lang", "ja", "user", "unlock", "yamada", code=EX_UNAVAILABLE,
             AUTHSVC__COUNTERS__BACKEND="redis", AUTHSVC__REDIS__URL="redis://127.0.0.1:1/15")
    assert JAPANESE.search(one_line(ja)) and "does not answer" not in ja.output
    for args in (["audit", "verify"], ["maintenance", "run"], ["db", "upgrade"]):
        english = run(env, *args, code=0).output
        assert not JAPANESE.search(english), english
        japanese = run(env, "--lang", "ja", *args, code=0).output
        assert JAPANESE.search(japanese) and not re.search(r"\b(rows|expired|schema)\b", japanese), japanese


# ---- public_url: one setting the origins follow -----------------------------------------------


def test_the_webauthn_and_agent_origins_follow_public_url():
    default = load_settings(environ={})
    assert default.server.public_url == "http://localhost:8080"
    assert default.webauthn.rp_id == "localhost" and default.webauthn.origins == ("http://localhost:8080",)
    moved = load_settings({"server": {"port": 9000}}, environ={})
    assert moved.server.public_url == "http://localhost:9000"
    assert moved.webauthn.origins == ("http://localhost:9000",)
    public = load_settings({"server": {"public_url": "https://gateway.example.go.jp/"}}, environ={})
    assert public.webauthn.rp_id == "gateway.example.go.jp"
    assert public.webauthn.origins == ("https://gateway.example.go.jp",)
    explicit = load_settings({"server": {"public_url": "https://a.example"},
                              "webauthn": {"rp_id": "example", "origins": ["https://b.example"]}}, environ={})
    assert explicit.webauthn.rp_id == "example" and explicit.webauthn.origins == ("https://b.example",)
    wide = load_settings({"server": {"host": "0.0.0.0", "port": 8443}}, environ={})
    assert wide.server.public_url == "http://localhost:8443"
    for bad in ("gateway.example", "https://", "https://user@gw.example", "https://gw.example/?x=1"):
        with pytest.raises(ConfigError, match=r"server\.public_url"):
            load_settings({"server": {"public_url": bad}}, environ={})


def test_the_page_names_the_address_to_use():
    from authsvc.domain.messages import text

    assert text("agent_wrong_address", "en", url="http://localhost:8080/factor/vein").startswith(
        "Open this page at http://localhost:8080/factor/vein:")
    assert "http://localhost:8080/" in text("agent_wrong_address", "ja", url="http://localhost:8080/")
    for script in ("vein.js", "terminal.js", "registration.js"):  # they fill in {url} themselves
        body = (ROOT / "authsvc" / "web" / "static" / script).read_text(encoding="utf-8")
        assert "agent_wrong_address" in body and "location.origin" in body


def test_a_page_opened_at_127_0_0_1_goes_to_the_public_url(make_deps):
    from authsvc.web import create_app

    app = create_app(deps=make_deps())
    client = app.test_client()
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    moved = client.get("/password?lang=en", base_url="http://127.0.0.1:8080", headers=html)
    assert moved.status_code == 302 and moved.headers["Location"] == "http://localhost:8080/password?lang=en"
    assert client.get("/", base_url="http://localhost:8080", headers=html).status_code != 302
    # not another port, not an API or a scraper, not a form post
    assert client.get("/", base_url="http://127.0.0.1:9999", headers=html).status_code != 302
    assert client.get("/api/v1/openapi.json", base_url="http://127.0.0.1:8080",
                      headers={"Accept": "*/*"}).status_code == 200
    assert client.post("/", base_url="http://127.0.0.1:8080", headers=html).status_code != 302


# ---- the real program: ports, --port 0, start-up ----------------------------------------------


def _program_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC")}
    return {**base, **env, **extra}


def _authsvc(env: dict[str, str], *args: str, timeout: float = 60,
             **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AUTHSVC), *args], env=_program_env(env, **extra), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_serve_on_a_port_in_use_says_so_and_exits_69(env, taken_port):
    done = _authsvc(env, "serve", "--port", str(taken_port))
    assert done.returncode == EX_UNAVAILABLE, done.stderr
    line = one_line(done)
    assert f"Port {taken_port} on 127.0.0.1 is already in use" in line
    assert f"make serve PORT={taken_port + 1}" in line and "Errno" not in done.stderr


def test_the_agent_on_a_port_in_use_says_so_and_exits_69(env, taken_port):
    done = _authsvc(env, "agent", "--port", str(taken_port))
    assert done.returncode == EX_UNAVAILABLE, done.stderr
    line = one_line(done)
    assert f"Port {taken_port} on 127.0.0.1 is already in use" in line and "agent --port" in line


@pytest.mark.parametrize(("variable", "value", "named"), [
    ("AUTHSVC_SECRET_KEY", "zz", "AUTHSVC_SECRET_KEY is not a hex key"),
    ("AUTHSVC_AUDIT_KEY", "aa", "AUTHSVC_AUDIT_KEY is 1 bytes"),
    ("AUTHSVC_DATA_KEYS", "k1:zz", "AUTHSVC_DATA_KEYS (k1) is not a hex key"),
])
def test_serve_checks_the_keys_before_it_starts_anything(env, variable, value, named):
    done = _authsvc(env, "serve", "--port", "0", **{variable: value})
    assert done.returncode == EX_CONFIG, done.stderr
    assert named in one_line(done) and done.stdout == ""  # no password shown, nothing started


def test_serve_on_port_0_announces_the_port_it_bound(env, tmp_path):
    proc = subprocess.Popen([str(AUTHSVC), "serve", "--port", "0", "--json"], cwd=ROOT,
                            env=_program_env(env, AUTHSVC__PATHS__INSTANCE_DIR=str(tmp_path / "i")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        text = ""
        while not text.rstrip().endswith("}"):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            text += line
        info = json.loads(text)
        port = int(info["listen"].rsplit(":", 1)[1])
        assert port not in (0, 8080) and info["url"] == f"http://localhost:{port}/"
        assert info["agent_command"].endswith(f"agent --origin http://localhost:{port}")
        assert "initial_password" in info
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass  # the port announced is the one it listens on
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_agent_prints_a_register_command_that_runs(env, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([str(AUTHSVC), "agent", "--port", str(port), "--json",
                             "--key-file", str(tmp_path / "terminal.key")], cwd=ROOT,
                            env=_program_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        text = ""
        while not text.rstrip().endswith("}"):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            text += line
        command = json.loads(text)["register_command"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert command.split()[0] in (".venv/bin/authsvc", str(AUTHSVC), "authsvc")
    # exactly the printed command, in a shell, from the same folder
    done = subprocess.run(f"{command} --json", shell=True, cwd=ROOT, env=_program_env(env),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["device_id"] == "TERMINAL-1"


def test_a_gunicorn_start_with_a_bad_key_is_one_line(env):
    done = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False,
                          env=_program_env(env, AUTHSVC_SECRET_KEY="zz"))
    assert done.returncode == EX_CONFIG, done.stderr
    assert one_line(done) == "authsvc: config: AUTHSVC_SECRET_KEY is not a hex key (64 hex digits: 32 bytes)"


# ---- one language per command: the human output of vein enroll, directory, audit export -------

ENGLISH_LABELS = re.compile(r"\b(user ID|person ID|reader|re-enrolment|yes|no|sync|full|incremental|"
                            r"dry run|nothing was written|export|created|updated|linked|resumed|suspended|"
                            r"deleted|groups|memberships|skipped|seen|added|changed|disabled|ok|stopped|"
                            r"sent|backlog|busy)\b")
JAPANESE_LABELS = re.compile(r"利用者ID|本人番号|読み取り装置|再登録|取り込み|書き出し|試行|作成|更新|追加|"
                             r"変更|無効化|確認したエントリ|全件|完了|送信|未送信")


def test_vein_enroll_prints_one_language(env):
    for user_id in ("kimura", "kimura2"):
        run(env, "user", "create", user_id, "--name", "木村 一", "--contract", "C-1", "--role", "user",
            code=0)
        run(env, "identifier", "approve", user_id, code=0)
    ja = run(env, "--lang", "ja", "vein", "enroll", "kimura", "--palm", "7001", code=0).stdout
    assert ja.splitlines()[0] == "利用者ID: kimura" and "再登録: いいえ" in ja
    assert not ENGLISH_LABELS.search(ja) and "user_id" not in ja and "False" not in ja, ja
    en = run(env, "--lang", "en", "vein", "enroll", "kimura2", "--palm", "7002", code=0).stdout
    assert en.splitlines()[0] == "user ID: kimura2" and "re-enrolment: no" in en
    assert not JAPANESE.search(en), en


def test_directory_commands_print_one_language(env, monkeypatch):
    from tests.e2e.test_admin_api import FakeDirectory, directory_person, directory_source

    company = "株式会社ディレクトリ"
    fake = FakeDirectory(directory_source(company, "C-DIR"), [directory_person("tanaka", "田中 一郎", 1)])
    monkeypatch.setattr("authsvc.bootstrap.directories", lambda settings: {company: fake}.get)
    run(env, "contract", "create", "C-DIR", "--company", company, "--start", "2026-04-01", code=0)
    outputs = {}
    for lang in ("ja", "en"):
        outputs[lang] = "\n".join(run(env, "--lang", lang, "directory", *args, code=0).stdout for args in (
            ("sync", company, "--full", "--dry-run"), ("export", company, "--dry-run"),
            ("runs", "--company", company)))
    ja, en = outputs["ja"], outputs["en"]
    assert f"{company}: ディレクトリからの取り込み（全件）（試行: 何も書き込んでいません）" in ja
    assert "作成（承認待ち）:\n  tanaka" in ja and "\t全件（試行）\t完了\t" in ja, ja
    assert f"{company}: ディレクトリへの書き出し（試行: 何も書き込んでいません）" in ja
    assert not ENGLISH_LABELS.search(ja.replace(company, "")), ja
    assert f"{company}: full sync (dry run: nothing was written)" in en and "created:\n  tanaka" in en
    assert f"{company}: export (dry run: nothing was written)" in en and "\tfull (dry run)\tok\t" in en
    assert not JAPANESE_LABELS.search(en), en
    as_json = json.loads(run(env, "--lang", "ja", "directory", "sync", company, "--full", "--dry-run",
                             "--json", code=0).stdout)
    assert as_json["mode"] == "full" and as_json["created"] == ["tanaka"]  # --json: unchanged


def test_audit_export_prints_one_language(env, tmp_path):
    target = {"AUTHSVC__AUDIT_EXPORT__JSONL_FILE": str(tmp_path / "audit.jsonl")}
    ja = run(env, "--lang", "ja", "audit", "export", code=0, **target).stdout
    assert re.fullmatch(r"jsonl: 送信 \d+ 件、未送信 0 件\n", ja) and not ENGLISH_LABELS.search(ja), ja
    en = run(env, "--lang", "en", "audit", "export", code=0, **target).stdout
    assert re.fullmatch(r"jsonl: sent \d+, backlog 0\n", en) and not JAPANESE.search(en), en
    assert json.loads(run(env, "audit", "export", "--json", code=0, **target).stdout)["ok"] is True
