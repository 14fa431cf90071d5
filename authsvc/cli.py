"""The `authsvc` command. Each command calls the same service functions the web uses; every
command takes --json. The operator at the server's shell acts as a process with an identifier
of its own (`cli:<os user>`, R6), and every action is audited under it."""

from __future__ import annotations

import errno
import functools
import getpass
import json
import os
import re
import shlex
import shutil
import socket
import sys
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from authsvc import faults
from authsvc.domain import relying_party
from authsvc.domain.calendar import JST
from authsvc.domain.errors import DomainError
from authsvc.domain.lifecycle import Status
from authsvc.domain.messages import label, text
from authsvc.domain.roles import Actor, Role, Scope
from authsvc.services import (
    Deps,
    accounts,
    alerts,
    audit,
    backchannel,
    devices,
    directory_sync,
    maintenance,
    oidc,
    operators,
    passwords,
    service_clients,
    vein,
)
from authsvc.settings import ConfigError, load_settings

ROLES = [r.value for r in Role]
CLIENT_SECRET_ENV = "AUTHSVC_CLIENT_SECRET"  # noqa: S105 (the variable's name, not a secret)

# Exit codes (README "Command line"), in the style of sysexits(3): one scheme for every command.
EX_REFUSED = 1       # the service refused (the message says why), or a check found a problem
EX_USAGE = 64        # the command was typed wrong: unknown option, bad value, missing argument
EX_UNAVAILABLE = 69  # a backend (database, Redis, directory) does not answer, or the port is taken
EX_SOFTWARE = 70     # an internal error (a bug): one line; AUTHSVC_DEBUG=1 shows the traceback
EX_IOERR = 74        # a file or folder could not be read or written (the message names it)
EX_CONFIG = 78       # the configuration or a key is wrong (the message names it)
MAX_PALM = 2**31 - 1  # the emulator's synthetic palms (vein_sdk_stub.population.MAX_PALM)


def default_lang(environ: dict[str, str] | None = None) -> str:
    """The language of messages when --lang is not given: AUTHSVC_LANG, else English for a
    process whose locale is English, else Japanese (the service's language)."""
    env = os.environ if environ is None else environ
    if env.get("AUTHSVC_LANG"):
        return env["AUTHSVC_LANG"]
    locale_name = env.get("LC_ALL") or env.get("LC_MESSAGES") or env.get("LANG") or ""
    return "en" if locale_name.lower().startswith("en") else "ja"


class Ctx:
    def __init__(self, lang: str, as_user: str | None = None, as_client: str | None = None) -> None:
        self.lang = lang
        self.as_user = as_user
        self.as_client = as_client
        self._deps: Deps | None = None
        self._client_actor: Actor | None = None
        self.overrides: dict[str, dict[str, Any]] = {}  # settings a command's options decide

    @property
    def deps(self) -> Deps:
        if self._deps is None:  # connect only when a command needs the database
            from authsvc.bootstrap import build

            self._deps = build(load_settings(self.overrides))
        return self._deps

    @property
    def actor(self) -> Actor:
        """At the server's shell: the break-glass path, acting for the agency under an identifier
        of its own (`cli:<os user>`, the host as the terminal); with --as USER_ID, that
        administrator with their own rights and company (the OS user as the source); with
        --as-client CLIENT_ID, that service client (R6) within its scopes and company, once it
        authenticated with its current secret from AUTHSVC_CLIENT_SECRET."""
        host, os_user = socket.gethostname()[:100], getpass.getuser()
        if self.as_client is not None:
            return self._client(host, os_user)
        if self.as_user is None:
            return Actor(f"cli:{os_user}", frozenset({Role.AGENCY_OPERATOR}), terminal=host,
                         source="local")
        from authsvc.services import console_gate

        actor = console_gate.actor_of(self.deps, self.as_user, host, f"cli:{os_user}")
        if actor is None:
            raise DomainError("cli_as_not_admin", user_id=self.as_user)
        return actor

    def _client(self, host: str, os_user: str) -> Actor:
        """The service client's actor, authenticated once per command (every attempt audited
        and counted toward the client's lockout, as at the admin API)."""
        if self._client_actor is None:
            from authsvc.services.sessions import Client

            client_id = (self.as_client or "")[:100]
            secret = os.environ.get(CLIENT_SECRET_ENV, "")
            if not secret:
                raise DomainError("cli_client_secret_missing", client=client_id, variable=CLIENT_SECRET_ENV)
            actor = service_clients.authenticate(self.deps, client_id, secret,
                                                 Client(terminal=host, source=f"cli:{os_user}"))
            if actor is None:
                raise DomainError("cli_client_refused", client=client_id)
            self._client_actor = actor
        return self._client_actor


def _invisible(ch: str) -> bool:
    """Control, format (right-to-left overrides, zero-width), unassigned or private characters
    and line separators: what could drive a terminal or reorder what it shows."""
    cat = unicodedata.category(ch)
    return cat[0] == "C" or cat in ("Zl", "Zp")


def _printable(text_: str, keep: str = "\n\t") -> str:
    """Escape invisible characters, so stored hostile strings (a submitted user ID or a
    User-Agent in the audit log, say) cannot drive the operator's terminal."""
    return "".join(
        ch if ch in keep or not _invisible(ch)
        else f"\\x{ord(ch):02x}" if ord(ch) < 0x100
        else f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}"
        for ch in text_
    )


def _json_text(data: Any) -> str:
    """JSON with every invisible character as a \\u escape (a surrogate pair above the BMP):
    the same values for a parser, nothing raw for a terminal (json.dumps escapes only C0)."""
    raw = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    return "".join(ch if ch == "\n" or not _invisible(ch)
                   else json.dumps(ch, ensure_ascii=True)[1:-1] for ch in raw)


def _say(ctx: Ctx, ja: str, en: str) -> str:
    """The human text in the command's one language."""
    return ja if ctx.lang == "ja" else en


def _emit(as_json: bool, data: Any, human: str) -> None:
    if as_json:
        click.echo(_json_text(data))
    else:
        click.echo(_printable(human))


def _fail(ctx: Ctx, as_json: bool, code: str, message: str, status: int) -> None:
    if as_json:
        click.echo(json.dumps({"error": code, "message": message}, ensure_ascii=False))
    else:
        click.echo(message, err=True)
    sys.exit(status)


def command(group: click.Group, name: str) -> Callable[[Callable[..., Any]], Any]:
    """A subcommand with --json and uniform, clear errors (exit 1 refused, 78 configuration,
    69 a backend down)."""

    def wrap(fn: Callable[..., Any]) -> Any:
        @group.command(name)
        @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
        @click.pass_obj
        @functools.wraps(fn)
        def run(ctx: Ctx, as_json: bool, **kwargs: Any) -> None:
            try:
                fn(ctx, as_json, **kwargs)
            except DomainError as exc:
                _fail(ctx, as_json, exc.code, exc.message(ctx.lang), EX_REFUSED)
            except ConfigError as exc:
                _fail(ctx, as_json, "config", str(exc), EX_CONFIG)
            except faults.BACKEND_UNAVAILABLE as exc:  # the database or Redis: fail closed
                _fail(ctx, as_json, "database_unavailable", _unavailable(ctx, exc), EX_UNAVAILABLE)

        return run

    return wrap


def _lang_default() -> str:
    lang = default_lang()
    if lang not in ("ja", "en"):  # only AUTHSVC_LANG can say something else
        raise _BadValue(f"環境変数 AUTHSVC_LANG の値 {lang!r} は使えません（ja または en）。",
                        f"{lang!r} is neither ja nor en", param_hint="AUTHSVC_LANG")
    return lang


def _unavailable(ctx: Ctx, exc: BaseException) -> str:
    """One line naming the backend that did not answer and where (host:port, no password)."""
    try:
        settings = ctx.deps.settings if ctx._deps is not None else load_settings()
        database_url, redis_url = settings.database_url, settings.redis.url
    except ConfigError:
        database_url = redis_url = ""
    kind, where = faults.unavailable_backend(exc, database_url, redis_url)
    if ctx.lang == "ja":
        name = "データベース" if kind == "database" else "Redis"
        return f"{name}（{where}）に接続できません。何も行っていません。({type(exc).__name__})"
    name = "The database" if kind == "database" else "Redis"
    return f"{name} ({where}) does not answer: nothing was done. ({type(exc).__name__})"


class _Usage(click.UsageError):
    """A usage error of our own, its message in both languages (the one shown follows --lang)."""

    def __init__(self, ja: str, en: str, ctx: click.Context | None = None) -> None:
        super().__init__(en, ctx)
        self.ja = ja


class _BadValue(click.BadParameter):
    """A bad option value found by our own check, its message in both languages."""

    def __init__(self, ja: str, en: str, param_hint: str) -> None:
        super().__init__(en, param_hint=param_hint)
        self.ja = ja


def _usage_lang(args: list[str]) -> str:
    """The language of a usage error found before the command's context exists: the group's
    own --lang, else AUTHSVC_LANG and the locale (a wrong AUTHSVC_LANG: the locale alone)."""
    it = iter(args)
    for arg in it:
        if arg == "--lang" or arg.startswith("--lang="):
            value = arg.partition("=")[2] if "=" in arg else next(it, "")
            if value in ("ja", "en"):
                return value
        elif arg in ("--as", "--as-client"):
            next(it, None)
        elif not arg.startswith("-"):
            break  # the command: its own options are not the group's
    lang = default_lang()
    return lang if lang in ("ja", "en") else default_lang(
        {k: v for k, v in os.environ.items() if k != "AUTHSVC_LANG"})


def _param_name(exc: click.BadParameter) -> tuple[str, str]:
    """("オプション"/"引数"/"", the name as typed: --palm, USER_ID, AUTHSVC_LANG)."""
    param = exc.param
    if exc.param_hint is not None:
        hint = exc.param_hint if isinstance(exc.param_hint, str) else " / ".join(exc.param_hint)
        kind = "オプション" if hint.startswith("-") else ""
        return kind, hint
    if isinstance(param, click.Option):
        return "オプション", " / ".join(param.opts)
    if param is not None:
        return "引数", param.human_readable_name
    return "", ""


def _shown_value(message: str) -> str:
    """The value click's message starts with (a repr for strings), as the user typed it."""
    import ast

    m = re.match(r"(?:(?:File|Directory|Path) )?('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+) (?:is|does)\b",
                 message)
    if not m:
        return ""
    value = m.group(1)
    if value[:1] in "'\"":
        try:
            value = str(ast.literal_eval(value))
        except (ValueError, SyntaxError):
            value = value[1:-1]
    return value if value and not any(ch.isspace() for ch in value) else f"「{value}」"


def _allowed_ja(kind: click.ParamType) -> str:
    """What the option accepts, in Japanese ("" when it says nothing useful)."""
    if isinstance(kind, click.Choice):
        return "次のいずれか: " + "、".join(map(str, kind.choices))
    if isinstance(kind, click.IntRange):
        low = "" if kind.min is None else f"{kind.min}{'より大' if kind.min_open else ''}"
        high = "" if kind.max is None else f"{kind.max}{'未満' if kind.max_open else ''}"
        return f"{low}〜{high}"
    if isinstance(kind, click.DateTime):
        names = {"%Y": "YYYY", "%m": "MM", "%d": "DD", "%H": "HH", "%M": "MM"}
        return "形式: " + "、".join(re.sub(r"%[YmdHM]", lambda m: names[m.group()], f)
                                    for f in kind.formats)
    return ""


def _usage_ja(exc: click.UsageError) -> str:
    """click's usage error in one Japanese sentence, naming the option or argument, the value
    and what is allowed."""
    if isinstance(exc, _Usage | _BadValue):
        return exc.ja
    message = exc.message
    if isinstance(exc, click.NoSuchOption):
        maybe = f"（もしかして: {'、'.join(exc.possibilities)}）" if exc.possibilities else ""
        return f"{exc.option_name} というオプションはありません。{maybe}"
    if isinstance(exc, click.exceptions.NoSuchCommand):
        maybe = f"（もしかして: {'、'.join(exc.possibilities)}）" if exc.possibilities else ""
        return f"{exc.command_name} というコマンドはありません。{maybe}"
    if isinstance(exc, click.BadOptionUsage):
        if "requires an argument" in message:
            return f"オプション {exc.option_name} に値がありません。"
        if "does not take a value" in message:
            return f"オプション {exc.option_name} は値をとりません。"
        return f"オプション {exc.option_name} の使い方が正しくありません。"
    if isinstance(exc, click.BadParameter):
        kind, name = _param_name(exc)
        named = f"{kind} {name}".strip() if name else "値"
        param_type = exc.param.type if exc.param is not None else None
        allowed = _allowed_ja(param_type) if param_type is not None else ""
        allowed = f"（{allowed}）" if allowed else ""
        if isinstance(exc, click.MissingParameter):
            return (f"{named} がありません{allowed}。" if kind == "引数"
                    else f"{named} を指定してください{allowed}。")
        value = _shown_value(message)
        if isinstance(param_type, click.Path):
            what = {"does not exist": "がありません",
                    "is a directory": "はフォルダです（ファイルを指定してください）",
                    "is a file": "はファイルです（フォルダを指定してください）",
                    "is not readable": "を読めません", "is not writable": "に書き込めません"}
            found = next((ja for en, ja in what.items() if en in message), "を使えません")
            return f"{named} のファイル {value} {found}。"
        if value and "is not a valid integer" in message:
            return f"{named} の値 {value} は整数ではありません{allowed}。"
        if value and isinstance(param_type, click.DateTime):
            return f"{named} の値 {value} は日付・時刻の形式に合いません{allowed}。"
        if value and (allowed or "is not" in message):
            return f"{named} の値 {value} は使えません{allowed}。"
        return f"{named} の値が正しくありません（{message}）。"
    if message.startswith("Got unexpected extra argument"):
        extra = message.partition("(")[2].rstrip(")")
        return f"余分な引数があります（{extra}）。"
    return message  # a message of click's not foreseen here: as click says it


def _usage_show(exc: click.UsageError, args: list[str], lang: str | None) -> None:
    """Show a usage error as every other error of the CLI: one line in the command's language
    (with --json: one JSON object, where _fail puts it), pointing to the command's --help."""
    lang = lang if lang in ("ja", "en") else _usage_lang(args)
    message = _printable(" ".join((_usage_ja(exc) if lang == "ja" else exc.format_message()).split()),
                         keep="")
    if "--json" in args:
        click.echo(json.dumps({"error": "usage", "message": message}, ensure_ascii=False))
        return
    where = exc.ctx.command_path if exc.ctx is not None else "authsvc"
    click.echo(f"{message} 使い方: {where} --help" if lang == "ja"
               else f"Error: {message}{'' if message.endswith('.') else '.'} Try '{where} --help'.",
               err=True)


def _own_usage(exc: click.UsageError, args: list[str], lang: str | None) -> None:
    """The usage error with exit 64 and shown by _usage_show (not click's English lines)."""
    exc.exit_code = EX_USAGE
    if not isinstance(exc, click.exceptions.NoArgsIsHelpError):  # that one shows the help
        exc.show = lambda file=None: _usage_show(exc, args, lang)  # type: ignore[method-assign]


class _Main(click.Group):
    """The `authsvc` group: click's usage errors exit EX_USAGE (64), not click's 2, as one line
    in the command's language (one JSON object with --json; `_usage_show`), and an
    unexpected failure is one line and EX_SOFTWARE (70), not a traceback (AUTHSVC_DEBUG=1
    lets it through)."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        typed = list(args)  # as typed (click's parser consumes the list)
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            _own_usage(exc, typed, None)
            raise
        ctx.meta["authsvc.args"] = typed
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            lang = ctx.obj.lang if isinstance(ctx.obj, Ctx) else None
            _own_usage(exc, ctx.meta.get("authsvc.args", []), lang)
            raise
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: --help, Ctrl-C, its messages
        except OSError as exc:  # e.g. a file or folder that cannot be written
            if os.environ.get("AUTHSVC_DEBUG"):
                raise
            click.echo(f"authsvc: {exc.strerror or exc}"
                       + (f": {exc.filename}" if exc.filename else ""), err=True)
            sys.exit(EX_UNAVAILABLE if isinstance(exc, ConnectionError) else EX_IOERR)
        except Exception as exc:
            if os.environ.get("AUTHSVC_DEBUG"):
                raise
            detail = " ".join(str(exc).split())[:300]
            click.echo(f"authsvc: internal error ({type(exc).__name__}: {detail}); "
                       "AUTHSVC_DEBUG=1 shows the details", err=True)
            sys.exit(EX_SOFTWARE)


@click.group(cls=_Main)
@click.option("--lang", type=click.Choice(["ja", "en"]), default=lambda: _lang_default(),
              help="Message language (default: AUTHSVC_LANG, else the locale: Japanese unless "
              "it is English).")
@click.option("--as", "as_user", default=None, metavar="USER_ID",
              help="Act as this administrator, with their rights and company only.")
@click.option("--as-client", "as_client", default=None, metavar="CLIENT_ID",
              help=f"Act as this service client (R6), within its scopes and company: it "
              f"authenticates with its secret from the environment variable {CLIENT_SECRET_ENV} "
              "(never an option, which the process list would show). For a scheduler, e.g. "
              f"`{CLIENT_SECRET_ENV}=... authsvc --as-client dir-sync directory sync COMPANY`. "
              "Refused (unknown, wrong secret, not active, locked): one line, exit 1.")
@click.pass_context
def main(click_ctx: click.Context, lang: str, as_user: str | None, as_client: str | None) -> None:
    """authsvc: accounts and multi-factor logon for the Defense Security Gateway.

    Who acts: at the server's shell, the agency's break-glass operator (cli:<os user>); with
    --as USER_ID, that administrator; with --as-client CLIENT_ID, that service client, its
    secret read from the environment variable AUTHSVC_CLIENT_SECRET (how a scheduler runs the
    directory sync as its own client)."""
    if as_user is not None and as_client is not None:
        raise _Usage("--as と --as-client は同時に指定できません。どちらか一方にしてください。",
                     "--as and --as-client exclude each other: act as one of them.")
    click_ctx.obj = Ctx(lang, as_user, as_client)


def _account_lines(v: accounts.AccountView) -> str:
    return "\n".join(f"{k}: {'' if val is None else val}" for k, val in v.to_dict().items())


def _issued(as_json: bool, issued: accounts.Issued, lang: str) -> None:
    label = "初期パスワード（一度だけ表示します）" if lang == "ja" else \
        "Initial password (shown once only)"
    _emit(as_json, {**issued.account.to_dict(), "initial_password": issued.initial_password},
          f"{_account_lines(issued.account)}\n{label}: {issued.initial_password}")


# ---- serve -----------------------------------------------------------------------------------


@command(main, "serve")
@click.option("--host", default=None, help="Address to listen on (config server.host).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port (config server.port; 0: any free port, announced).")
@click.option("--admin-id", default="admin", show_default=True,
              help="User ID of the first administrator, created on an empty database.")
def serve(ctx: Ctx, as_json: bool, host: str | None, port: int | None, admin_id: str) -> None:
    """Start the service; on first start create the first administrator and print its
    one-time initial password."""
    from waitress import serve as waitress_serve

    from authsvc.bootstrap import data_keys, instance_key
    from authsvc.services import health
    from authsvc.web import create_app

    settings = load_settings()  # a configuration error stops here, before anything starts
    for name, env in (("audit.key", "AUTHSVC_AUDIT_KEY"), ("secret.key", "AUTHSVC_SECRET_KEY")):
        instance_key(settings, name, env)  # every key checked (hex, length) before anything starts
    data_keys(settings)
    host = host or settings.server.host
    port = settings.server.port if port is None else port
    sock = _listen_or_fail(ctx, as_json, host, port, "serve")  # the port, before serving
    ctx.overrides = {"server": {"host": host, "port": sock.getsockname()[1]}}  # --port 0: the real one
    try:
        deps = ctx.deps  # public_url (and so the WebAuthn and agent origins) follow host and port
        health.config_started(deps)  # the configuration's fingerprint audited at every start
        issued = accounts.bootstrap_first_admin(deps, admin_id)
    except BaseException:
        sock.close()
        raise
    url = deps.settings.server.public_url + "/"
    ja = ctx.lang == "ja"
    info: dict[str, Any] = {"url": url, "listen": f"{host}:{sock.getsockname()[1]}",
                            "database": faults.safe_url(deps.settings.database_url)}
    lines = [f"authsvc: {url}" + (f"（{host}:{sock.getsockname()[1]} で待ち受け）" if ja
                                  else f" (listening on {host}:{sock.getsockname()[1]})")]
    if issued:
        info |= {"admin_id": issued.account.user_id, "initial_password": issued.initial_password}
        reset = f"{_program()} user reset-password {issued.account.user_id}"
        lines += ([f"初期管理者: {issued.account.user_id}",
                   f"初期パスワード（一度だけ表示します）: {issued.initial_password}",
                   f"すぐにログオンして変更してください。紛失したとき: {reset}"] if ja else
                  [f"first administrator: {issued.account.user_id}",
                   f"one-time initial password (shown once only): {issued.initial_password}",
                   f"Log on and change it now. Lost it? {reset}"])
    origins = deps.settings.webauthn.origins
    agent_cmd = f"{_program()} agent"
    try:
        if load_settings().webauthn.origins != origins:  # a plain `authsvc agent` would refuse it
            agent_cmd += "".join(f" --origin {shlex.quote(o)}" for o in origins)
    except ConfigError:
        pass
    info["agent_command"] = agent_cmd
    lines.append(f"端末エージェント（別の端末で）: {agent_cmd}" if ja
                 else f"terminal agent (in a second terminal): {agent_cmd}")
    _emit(as_json, info, "\n".join(lines))
    sys.stdout.flush()
    waitress_serve(create_app(deps=deps), sockets=[sock], ident="authsvc")


def _program() -> str:
    """How to run this command again from here: `authsvc` when that is on PATH, else its path
    (`.venv/bin/authsvc` after `make serve`), so a printed command runs as printed."""
    exe = Path(sys.executable).parent / "authsvc"
    if not exe.exists():
        return "authsvc"
    found = shutil.which("authsvc")
    if found and Path(found).resolve() == exe.resolve():
        return "authsvc"
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return shlex.quote(str(exe))


def _listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (0: any free port), bound before anything starts."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not over a live listener
        sock.bind(address)
        sock.listen(1024)  # connections wait in the backlog until the server accepts them
    except OSError:
        sock.close()
        raise
    return sock


def _listen_or_fail(ctx: Ctx, as_json: bool, host: str, port: int, what: str) -> socket.socket:
    """The bound socket, or one line naming the address and what to do (exit 69): never the
    server's own OSError traceback."""
    try:
        return _listen(host, port)
    except OSError as exc:
        ja = ctx.lang == "ja"
        if exc.errno == errno.EADDRINUSE:
            if what == "agent":
                hint = (f"{_program()} agent --port {port + 1}（サービス側の vein.agent_url も同じポートに）"
                        if ja else f"{_program()} agent --port {port + 1} (and the service's "
                        "vein.agent_url to match)")
            else:
                hint = f"make serve PORT={port + 1} / {_program()} serve --port {port + 1}"
            msg = (f"ポート {port}（{host}）は使用中です。別のポートを指定してください: {hint}" if ja
                   else f"Port {port} on {host} is already in use: choose another, e.g. {hint}")
        else:
            reason = exc.strerror or str(exc)
            msg = (f"{host}:{port} で待ち受けできません（{reason}）。" if ja
                   else f"Cannot listen on {host}:{port} ({reason}).")
        _fail(ctx, as_json, "port_unavailable", msg, EX_UNAVAILABLE)
        raise SystemExit(EX_UNAVAILABLE) from None  # (not reached: _fail exits)


@main.group()
def db() -> None:
    """Database schema."""


@command(db, "upgrade")
def db_upgrade(ctx: Ctx, as_json: bool) -> None:
    """Create or migrate the schema to the newest revision."""
    ctx.deps  # noqa: B018  building the services migrates
    _emit(as_json, {"ok": True}, "スキーマは最新です。" if ctx.lang == "ja" else "schema is up to date")


_REASON = click.option("--reason", default="", help="Why: recorded in the audit log.")


# ---- contracts -------------------------------------------------------------------------------


@main.group()
def contract() -> None:
    """Contracts: accounts are per contract and per user."""


@command(contract, "create")
@click.argument("number")
@click.option("--company", required=True)
@click.option("--start", "starts_on", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--end", "ends_on", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day of the contract; access ends after the data-cleanup period.")
def contract_create(ctx: Ctx, as_json: bool, number: str, company: str, starts_on: Any,
                    ends_on: Any) -> None:
    """Register a contract."""
    end: date | None = ends_on.date() if ends_on else None
    c = accounts.create_contract(ctx.deps, ctx.actor, number, company, starts_on.date(), end)
    _emit(as_json, c, "\n".join(f"{k}: {v}" for k, v in c.items()))


@command(contract, "period")
@click.argument("number")
@click.option("--start", "starts_on", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--end", "ends_on", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day; omit for open-ended.")
@_REASON
def contract_period(ctx: Ctx, as_json: bool, number: str, starts_on: Any, ends_on: Any,
                    reason: str) -> None:
    """Change a contract's period (the agency); its accounts follow at their next request."""
    row = accounts.change_contract_period(ctx.deps, ctx.actor, number, starts_on.date(),
                                          ends_on.date() if ends_on else None, reason)
    _emit(as_json, row, "\n".join(f"{k}: {'' if v is None else v}" for k, v in row.items()))


@command(contract, "list")
def contract_list(ctx: Ctx, as_json: bool) -> None:
    """List contracts."""
    rows = accounts.list_contracts(ctx.deps, ctx.actor)
    _emit(as_json, rows, "\n".join(
        f"{c['contract']}\t{c['company']}\t{c['starts_on']}..{c['ends_on'] or ''}" for c in rows))


# ---- users -----------------------------------------------------------------------------------


@main.group()
def user() -> None:
    """Accounts."""


@command(user, "create")
@click.argument("user_id")
@click.option("--name", required=True, help="The person's name.")
@click.option("--contract", "contract_no", required=True)
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--person", "person_id", type=int, default=None,
              help="Link to an existing person record (the same human on another contract).")
def user_create(ctx: Ctx, as_json: bool, user_id: str, name: str, contract_no: str, role: str,
                person_id: int | None) -> None:
    """Assign USER_ID to a new account (pending approval); print its initial password once."""
    issued = accounts.create_account(ctx.deps, ctx.actor, user_id, name, contract_no, role,
                                     person_id)
    _issued(as_json, issued, ctx.lang)


@command(user, "show")
@click.argument("user_id")
def user_show(ctx: Ctx, as_json: bool, user_id: str) -> None:
    """Show an account, its lock state and its validity."""
    v = accounts.show(ctx.deps, ctx.actor, user_id)
    _emit(as_json, v.to_dict(), _account_lines(v))


@command(user, "list")
@click.option("--status", type=click.Choice([st.value for st in Status]), default=None)
@click.option("--contract", "contract_no", default=None)
@click.option("--role", type=click.Choice(ROLES), default=None)
@click.option("--company", default=None, help="Accounts of this company (agency operators).")
@click.option("--name", default=None, help="Part of the person's name.")
@click.option("--locked", is_flag=True, default=None, help="Only accounts locked now.")
def user_list(ctx: Ctx, as_json: bool, status: str | None, contract_no: str | None,
              role: str | None, company: str | None, name: str | None, locked: bool | None) -> None:
    """Search accounts (of your company with --as; of every company at the server)."""
    rows = accounts.list_accounts(ctx.deps, ctx.actor, status, contract_no, role, company, name,
                                  locked)
    _emit(as_json, [r.to_dict() for r in rows], "\n".join(
        f"{r.user_id}\t{r.status}{' (locked)' if r.locked else ''}\t{r.role}\t{r.contract}\t"
        f"{r.name}" for r in rows))


@command(user, "update")
@click.argument("user_id")
@click.option("--name", default=None)
@click.option("--role", type=click.Choice(ROLES), default=None)
def user_update(ctx: Ctx, as_json: bool, user_id: str, name: str | None,
                role: str | None) -> None:
    """Change an account's name or role."""
    v = accounts.update_account(ctx.deps, ctx.actor, user_id, name, role)
    _emit(as_json, v.to_dict(), _account_lines(v))


def _status_command(name: str, fn: Callable[..., accounts.AccountView], doc: str) -> None:
    def run(ctx: Ctx, as_json: bool, user_id: str, reason: str) -> None:
        v = fn(ctx.deps, ctx.actor, user_id, reason)
        _emit(as_json, v.to_dict(), _account_lines(v))

    run.__doc__ = doc
    command(user, name)(click.argument("user_id")(_REASON(run)))


_status_command("suspend", accounts.suspend, "Suspend an account.")
_status_command("resume", accounts.resume, "Resume a suspended or disabled account.")
_status_command("delete", accounts.delete, "Delete an account: its identifier is kept as a tombstone.")
_status_command("unlock", accounts.unlock, "Lift a lockout now.")


@command(user, "reset-password")
@click.argument("user_id")
@_REASON
def user_reset_password(ctx: Ctx, as_json: bool, user_id: str, reason: str) -> None:
    """Invalidate the password and issue a new initial password (printed once)."""
    _issued(as_json, accounts.reset_password(ctx.deps, ctx.actor, user_id, reason), ctx.lang)


_WHEN = click.DateTime(["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"])


def _jst(moment: Any) -> datetime:
    """A date and time as typed at the server, read as Japan time."""
    return moment.replace(tzinfo=JST)


@command(user, "leave")
@click.argument("user_id")
@click.option("--at", "leaves_at", type=_WHEN, default=None,
              help="When the person leaves (JST; default now). Access ends then.")
@_REASON
def user_leave(ctx: Ctx, as_json: bool, user_id: str, leaves_at: Any, reason: str) -> None:
    """Record a departure or change of duties: logon ends at the time given, and the
    maintenance job revokes every factor within accounts.revocation_hours."""
    when = _jst(leaves_at) if leaves_at else ctx.deps.clock.now()
    v = accounts.record_departure(ctx.deps, ctx.actor, user_id, when, reason)
    _emit(as_json, v.to_dict(), _account_lines(v))


@command(user, "remote")
@click.argument("user_id")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day of remote access; omit to withdraw the approval.")
@_REASON
def user_remote(ctx: Ctx, as_json: bool, user_id: str, until: Any, reason: str) -> None:
    """Approve remote access in advance (R17), or withdraw it."""
    v = accounts.approve_remote(ctx.deps, ctx.actor, user_id, until.date() if until else None, reason)
    _emit(as_json, v.to_dict(), _account_lines(v))


@command(user, "window")
@click.argument("user_id")
@click.option("--from", "starts_at", type=_WHEN, required=True, help="Window opens (JST).")
@click.option("--to", "ends_at", type=_WHEN, required=True, help="Window closes (JST).")
@_REASON
def user_window(ctx: Ctx, as_json: bool, user_id: str, starts_at: Any, ends_at: Any, reason: str) -> None:
    """Make a maintenance account: valid only inside the approved window (R26)."""
    v = accounts.set_window(ctx.deps, ctx.actor, user_id, _jst(starts_at), _jst(ends_at), reason)
    _emit(as_json, v.to_dict(), _account_lines(v))


@command(user, "reset-factor")
@click.argument("user_id")
@click.option("--factor", type=click.Choice(["totp", "webauthn", "vein"]), required=True)
@_REASON
def user_reset_factor(ctx: Ctx, as_json: bool, user_id: str, factor: str, reason: str) -> None:
    """Take a second factor away (lost phone or key, a palm to register again)."""
    operators.reset_factor(ctx.deps, ctx.actor, user_id, factor, reason)
    _emit(as_json, {"user_id": user_id, "factor": factor, "reset": True},
          _say(ctx, f"{user_id}: {factor} を取り消しました", f"{user_id}: {factor} reset"))


@command(user, "end-sessions")
@click.argument("user_id")
@_REASON
def user_end_sessions(ctx: Ctx, as_json: bool, user_id: str, reason: str) -> None:
    """End every session of the account now."""
    ended = operators.end_sessions(ctx.deps, ctx.actor, user_id, reason)
    _emit(as_json, {"user_id": user_id, "ended": ended},
          _say(ctx, f"{user_id}: セッション {ended} 件を終了しました",
               f"{user_id}: {ended} session(s) ended"))


# ---- identifiers, passwords, audit, maintenance ---------------------------------------------


@main.group()
def identifier() -> None:
    """Identifiers."""


@command(identifier, "approve")
@click.argument("user_id")
def identifier_approve(ctx: Ctx, as_json: bool, user_id: str) -> None:
    """Approve an assigned user ID (system administrators)."""
    v = accounts.approve_identifier(ctx.deps, ctx.actor, user_id)
    _emit(as_json, v.to_dict(), _account_lines(v))


@main.group()
def password() -> None:
    """The password rule."""


@command(password, "check")
@click.option("--user-id", default=None, help="Check the user ID and name rules against it.")
def password_check(ctx: Ctx, as_json: bool, user_id: str | None) -> None:
    """Read a candidate from standard input; exit 0 if the rule accepts it, 1 with the reasons
    if not. Nothing of the candidate is logged or stored."""
    candidate = sys.stdin.readline().rstrip("\r\n")
    reasons = passwords.check_candidate(ctx.deps, candidate, user_id)
    s = ctx.deps.settings.password
    params = {"min_length": s.min_length, "max_length": s.max_length,
              "min_classes": s.min_classes, "history": s.history}
    messages = [text(code, ctx.lang, **params) for code in reasons]
    ok_text = "受け入れ可能です。" if ctx.lang == "ja" else "Accepted."
    _emit(as_json, {"accepted": not reasons, "reasons": reasons, "messages": messages},
          "\n".join(messages) or ok_text)
    if reasons:
        sys.exit(EX_REFUSED)


@main.group(name="audit")
def audit_group() -> None:
    """The tamper-evident audit log."""


def _verification(ctx: Ctx, as_json: bool, result: audit.Verification) -> None:
    """Print a verification; exit 1 when it found a problem."""
    p = result.problem
    if p is None:
        _emit(as_json, {"ok": True, "checked": result.checked,
                        "anchored_seq": result.anchor.seq if result.anchor else None},
              _say(ctx, f"監査ログ: {result.checked} 行、ハッシュ連鎖は正常"
                   + (f"（seq {result.anchor.seq} で固定）" if result.anchor else ""),
                   f"audit log: {result.checked} rows, chain intact"
                   + (f", anchored at seq {result.anchor.seq}" if result.anchor else "")))
        return
    folder = str(ctx.deps.settings.checkpoint_path)
    code = f"audit_{p.reason}"
    why = (text(code, ctx.lang, seq=p.seq, folder=folder, lines=", ".join(result.bad_lines[:10]))
           if p.reason in ("rolled_back", "diverged", audit.UNANCHORED, audit.CHECKPOINT) else str(p))
    _emit(as_json, {"ok": False, "checked": result.checked, "seq": p.seq, "reason": p.reason,
                    "message": why}, f"{_say(ctx, '監査ログ', 'audit log')}: {why}")
    sys.exit(EX_REFUSED)


@command(audit_group, "verify")
def audit_verify(ctx: Ctx, as_json: bool) -> None:
    """Check the hash chain against its checkpoints outside the database, then anchor the
    verified head (run it from a scheduler); exit 1 naming the first problem."""
    _verification(ctx, as_json, audit.checkpoint(ctx.deps, ctx.actor))


@command(audit_group, "checkpoint")
@click.option("--adopt", is_flag=True,
              help="Anchor a chain that has no checkpoint yet (a new or moved checkpoint folder).")
def audit_checkpoint(ctx: Ctx, as_json: bool, adopt: bool) -> None:
    """Verify, then write a checkpoint of the head outside the database now."""
    _verification(ctx, as_json, audit.checkpoint(ctx.deps, ctx.actor, adopt=adopt))


@command(audit_group, "accept-rollback")
@click.option("--reason", required=True, help="Why the loss is accepted (e.g. the restore ticket).")
def audit_accept_rollback(ctx: Ctx, as_json: bool, reason: str) -> None:
    """After a restore from an old backup: record that the events behind the restored head
    are gone, so verification binds to the restored chain from now on. After a `missing`
    finding (events a writer never delivered): record that the operators accept that gap."""
    lost = audit.accept_rollback(ctx.deps, ctx.actor, reason)
    _emit(as_json, lost, "\n".join(f"{k}: {v}" for k, v in lost.items()))


@command(audit_group, "archive")
@click.option("--before", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Archive the events stamped before this day (JST); default: older than "
                   "audit.retention_days.")
def audit_archive(ctx: Ctx, as_json: bool, before: datetime | None) -> None:
    """Move old events out of the database into a signed archive file (retention); the chain
    goes on verifying across them (`audit verify`), and each file verifies on its own."""
    when = before.replace(tzinfo=JST) if before is not None else None
    done = audit.archive(ctx.deps, ctx.actor, when)
    _emit(as_json, done, f"archived: {done.get('archived', 0)}"
          + (f" (seq {done['first']}-{done['last']}, {done['file']})" if done.get("file") else ""))


@command(audit_group, "verify-archive")
@click.argument("path", type=click.Path(dir_okay=False))
def audit_verify_archive(ctx: Ctx, as_json: bool, path: str) -> None:
    """Check one archive file on its own: its bytes, its signed record, the chain of its rows."""
    problem = audit.verify_archive(ctx.deps, path)
    _emit(as_json, {"ok": problem is None, "problem": str(problem) if problem else None},
          "ok" if problem is None else f"FAILED: {problem}")
    if problem is not None:
        raise SystemExit(EX_REFUSED)


@command(audit_group, "show")
@click.option("--subject", default=None)
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
def audit_show(ctx: Ctx, as_json: bool, subject: str | None, limit: int) -> None:
    """The newest audit events, newest first. Stored strings are shown escaped (control and
    bidirectional-override characters as \\x.. / \\u....); the stored bytes are unchanged."""
    rows = audit.events(ctx.deps, ctx.actor, subject, limit)
    _emit(as_json, rows, "\n".join("\t".join(_printable(str(r[c]), keep="") for c in (
        "seq", "ts", "actor", "action", "subject", "result", "terminal", "source", "detail"))
        for r in rows))


@command(audit_group, "report")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="First day (JST), YYYY-MM-DD.")
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="Last day (JST), YYYY-MM-DD, included.")
@click.option("--company", default=None,
              help="The company reported on (default: yours; the agency: every company).")
@click.option("--format", "fmt", type=click.Choice(["html", "csv", "pdf"]), default="html",
              show_default=True)
@click.option("--lang", "report_lang", type=click.Choice(["ja", "en"]), default=None,
              help="The report's language (default: the command's, Japanese).")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the report to this file (else to standard output).")
def audit_report(ctx: Ctx, as_json: bool, start: datetime, end: datetime, company: str | None,
                 fmt: str, report_lang: str | None, output: str | None) -> None:
    """A report of the audit log over the days --from..--to (JST): logons and failures per
    company and day, locks, administrative actions, registrations, refused privileges,
    off-hours logons, repeated failures, unused accounts, shared IDs, anomaly flags with their
    rule, charts. Only system administrators and staff of the company (agency operators: any
    company, or all); every report made is audited. With --json and no --output: the report's
    data as JSON."""
    from dataclasses import asdict

    from authsvc.services import audit_report

    rep = audit_report.report(ctx.deps, ctx.actor, start.date(), end.date(), company,
                              report_lang or ctx.lang, fmt)
    if output is None and as_json:
        _emit(True, asdict(rep), "")
        return
    body = (audit_report.csv_bytes(rep) if fmt == "csv" else audit_report.to_pdf(rep) if fmt == "pdf"
            else audit_report.to_html(rep).encode("utf-8"))
    if output is not None:
        Path(output).write_bytes(body)
        _emit(as_json, {"output": output, "format": fmt, "bytes": len(body), "counts": rep.counts,
                        "flags": len(rep.flags)}, f"{output}: {fmt}, {len(body)} bytes, "
              f"{len(rep.flags)} flags")
    elif fmt == "pdf":
        if sys.stdout.isatty():
            raise _Usage("PDF は端末に表示できません。--output FILE を指定してください"
                         "（またはリダイレクト）。",
                         "A PDF is not for the terminal: give --output FILE (or redirect).")
        click.get_binary_stream("stdout").write(body)
    else:  # text: shown escaped, like every stored string the command prints
        click.echo(_printable(body.decode("utf-8-sig"), keep="\n\t\r"))


@command(audit_group, "export")
@click.option("--follow", is_flag=True,
              help="Keep exporting every --interval seconds until stopped (a systemd service).")
@click.option("--interval", type=click.IntRange(1, 3600), default=5, show_default=True,
              help="Seconds between two passes with --follow.")
@click.option("--destination", type=click.Choice(["syslog", "jsonl"]), default=None,
              help="Only this destination (default: every one configured).")
def audit_export(ctx: Ctx, as_json: bool, follow: bool, interval: int,
                 destination: str | None) -> None:
    """Send the audit events not yet exported to the separate system ([audit_export]: a syslog
    collector, RFC 5424 over TCP or TLS, and/or a JSON-lines file), in order. The database is
    the spool: a collector that is down loses nothing, its backlog goes in order at the next
    pass. Delivery is at least once: a receiver drops a repeated seq and hash (each message
    carries both).

    One pass (cron, or a systemd timer every minute): exit 0 when every destination is up to
    date, 1 with one line naming each unreachable destination and its backlog. With --follow it runs
    until SIGTERM or Ctrl-C (a systemd service, Restart=always), printing only what it sent and
    what failed. Run one exporter per deployment: a second one on the same instance folder
    skips the destination while the first holds it. Needs the agency's right to read the log."""
    import signal
    import time

    from authsvc.domain.errors import Forbidden
    from authsvc.domain.roles import Perm
    from authsvc.services import audit_export as exporter

    actor = ctx.actor
    actor.require(Perm.READ_AUDIT)
    if not actor.everywhere:  # the export carries every company's events
        raise Forbidden()
    if not exporter.destinations(ctx.deps.settings):
        raise ConfigError("config: no audit export destination: set audit_export.syslog or "
                          "audit_export.jsonl_file")

    def failures(result: dict[str, dict[str, Any]]) -> list[str]:
        return [text("audit_export_failed", ctx.lang, destination=name, error=r["error"],
                     backlog=r["backlog"]) for name, r in result.items() if r["error"]]

    def sent(name: str, r: dict[str, Any]) -> str:
        return _say(ctx, f"{name}: 送信 {r['sent']} 件、未送信 {r['backlog']} 件"
                    + ("（別の転送処理が実行中のため見送り）" if r["busy"] else ""),
                    f"{name}: sent {r['sent']}, backlog {r['backlog']}"
                    + (" (busy: another exporter is running)" if r["busy"] else ""))

    if not follow:
        result = exporter.export(ctx.deps, destination)
        failed = failures(result)
        _emit(as_json, {"ok": not failed, "destinations": result},
              "\n".join(sent(name, r) for name, r in result.items()))
        if failed:
            click.echo(_printable(" ".join(failed), keep=""), err=True)
            sys.exit(EX_REFUSED)
        return

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    told: dict[str, str | None] = {}  # the last error shown per destination: said once, not every pass
    try:
        while True:
            try:
                result = exporter.export(ctx.deps, destination)
            except faults.BACKEND_UNAVAILABLE as exc:  # the database is back soon: keep going
                click.echo(f"{text('service_unavailable', ctx.lang)} ({type(exc).__name__})", err=True)
            else:
                if any(r["sent"] for r in result.values()):
                    _emit(as_json, result, " ".join(sent(name, r) for name, r in result.items()))
                errors = {name: r["error"] for name, r in result.items()}
                if errors != told:
                    for line in failures(result):
                        click.echo(_printable(line, keep=""), err=True)
                    told = errors
            time.sleep(interval)
    except KeyboardInterrupt:
        return


@main.group()
def device() -> None:
    """Registered terminals and readers (R12)."""


def _device_lines(v: devices.DeviceView) -> str:
    return "\n".join(f"{k}: {val}" for k, val in v.to_dict().items())


@command(device, "register")
@click.argument("device_id")
@click.option("--public-key", required=True,
              help="The device's Ed25519 public key: base64url of the 32 raw bytes, or a PEM file "
              "given as @path.")
@click.option("--kind", type=click.Choice(devices.KINDS), default="terminal", show_default=True)
@click.option("--description", default="")
@click.option("--company", default=None,
              help="Bind the terminal to a company (one with a contract): it is then accepted only "
              "for users of that company's contracts.")
def device_register(ctx: Ctx, as_json: bool, device_id: str, public_key: str, kind: str,
                    description: str, company: str | None) -> None:
    """Register a terminal or reader with its public key. A key registered before, for any
    device in any state (a revoked one included), is refused."""
    if public_key.startswith("@"):
        try:
            with open(public_key[1:], encoding="utf-8") as fh:
                public_key = fh.read(10_000)
        except OSError as exc:
            raise _BadValue(f"オプション --public-key のファイル {exc.filename} を読めません"
                            f"（{exc.strerror}）。",
                            str(exc), param_hint="--public-key") from None
    v = devices.register(ctx.deps, ctx.actor, device_id, public_key, kind, description, company)
    _emit(as_json, v.to_dict(), _device_lines(v))


@command(device, "list")
def device_list(ctx: Ctx, as_json: bool) -> None:
    """List registered devices: ID, kind, status, company ("-": any), description, reason."""
    rows = devices.list_devices(ctx.deps, ctx.actor)
    _emit(as_json, [r.to_dict() for r in rows], "\n".join(
        f"{r.device_id}\t{r.kind}\t{r.status}\t{r.company or '-'}\t{r.description}\t{r.reason}"
        for r in rows))


def _device_command(action: str, doc: str) -> None:
    def run(ctx: Ctx, as_json: bool, device_id: str, reason: str) -> None:
        v = devices.change(ctx.deps, ctx.actor, device_id, action, reason)
        _emit(as_json, v.to_dict(), _device_lines(v))

    run.__doc__ = doc
    command(device, action)(click.argument("device_id")(
        click.option("--reason", default="", help="Recorded in the audit log.")(run)))


_device_command("suspend", "Suspend a device: no logon through it until resumed.")
_device_command("resume", "Resume a suspended device.")
_device_command("revoke", "Revoke a lost or damaged device: final, effective at the next request.")


@main.group(name="client")
def client_group() -> None:
    """Service clients (R6): processes acting for the gateway with identifiers of their own, and
    the OpenID Connect relying parties (kind "oidc", [8 of 12])."""


def _value(val: Any) -> str:
    return "" if val is None else ", ".join(map(str, val)) if isinstance(val, list | tuple) else str(val)


def _client_lines(v: service_clients.ClientView) -> str:
    lines = [f"{k}: {_value(val)}" for k, val in v.to_dict().items() if k != "oidc"]
    for k, val in (v.oidc or {}).items():  # the registration, one line a field (keys: a count)
        lines.append(f"oidc.{k}: {len(val.get('keys', [])) if k == 'jwks' else _value(val)}")
    return "\n".join(lines)


def _client_secret(as_json: bool, made: service_clients.IssuedSecret, lang: str) -> None:
    once = f"\n{text('client_secret_once', lang)}: {made.secret}" if made.secret else ""
    _emit(as_json, {**made.client.to_dict(), "secret": made.secret}, _client_lines(made.client) + once)


def _registration_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options of an OpenID Connect client's registration (create-oidc, update-oidc)."""
    for option in reversed((
            click.option("--name", required=True, help="The relying party's name, as users see it."),
            click.option("--redirect-uri", "redirect_uris", multiple=True, required=True,
                         help="A redirect URI, matched exactly (repeat for more; https, or http on "
                         "the loopback)."),
            click.option("--post-logout-uri", "logout_uris", multiple=True,
                         help="A post-logout redirect URI (repeat for more)."),
            click.option("--backchannel-uri", default="", help="Where back-channel logout tokens go."),
            click.option("--auth-method", type=click.Choice(relying_party.AUTH_METHODS),
                         default="client_secret_basic", show_default=True,
                         help="How it authenticates at the token endpoint."),
            click.option("--jwks", "jwks_file", default=None, metavar="FILE",
                         help="Its JWK set of public keys (private_key_jwt only)."),
            click.option("--refresh", is_flag=True, help="It may hold refresh tokens."),
            click.option("--pairwise", is_flag=True, help="Pairwise subject identifiers (else public)."))):
        fn = option(fn)
    return fn


def _registration(name: str, redirect_uris: tuple[str, ...], logout_uris: tuple[str, ...],
                  backchannel_uri: str, auth_method: str, jwks_file: str | None, refresh: bool,
                  pairwise: bool) -> relying_party.Registration:
    """The registration typed at the shell, checked by the domain (a DomainError names the field)."""
    jwks = None
    if jwks_file is not None:
        try:
            with open(jwks_file, encoding="utf-8") as fh:
                jwks = fh.read(100_000)
        except OSError as exc:
            raise _BadValue(f"オプション --jwks のファイル {exc.filename} を読めません（{exc.strerror}）。",
                            str(exc), param_hint="--jwks") from None
    return relying_party.parse(name, list(redirect_uris), auth_method, list(logout_uris), backchannel_uri,
                               jwks, refresh, "pairwise" if pairwise else "public")


@command(client_group, "create")
@click.argument("client_id")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice([s.value for s in Scope]), help="A scope (repeat for more).")
@click.option("--company", default=None,
              help="The company it acts for (default: yours with --as; none at the server: the "
              "agency's, every company).")
def client_create(ctx: Ctx, as_json: bool, client_id: str, scopes: tuple[str, ...],
                  company: str | None) -> None:
    """Create a service client (pending until another administrator approves it); print its
    secret once."""
    made = service_clients.create(ctx.deps, ctx.actor, client_id, list(scopes), company)
    _client_secret(as_json, made, ctx.lang)


@command(client_group, "create-oidc")
@click.argument("client_id")
@_registration_options
@click.option("--group", "group_names", multiple=True,
              help="A group of its company whose members may use it (repeat for more).")
@click.option("--company", default=None,
              help="Its company (default: yours with --as; none at the server: the agency's, "
              "for every company, whose administrators then add it to their groups).")
def client_create_oidc(ctx: Ctx, as_json: bool, client_id: str, group_names: tuple[str, ...],
                       company: str | None, **registration: Any) -> None:
    """Register an OpenID Connect client (pending until another administrator approves it);
    print its secret once (client_secret_basic; private_key_jwt has none)."""
    made = service_clients.create(ctx.deps, ctx.actor, client_id, [], company,
                                  oidc=_registration(**registration), groups=list(group_names))
    _client_secret(as_json, made, ctx.lang)


@command(client_group, "update-oidc")
@click.argument("client_id")
@_registration_options
@_REASON
def client_update_oidc(ctx: Ctx, as_json: bool, client_id: str, reason: str, **registration: Any) -> None:
    """Replace an OpenID Connect client's registration as a whole (give every option again).
    From private_key_jwt to client_secret_basic it has no secret until `client rotate`."""
    v = service_clients.update(ctx.deps, ctx.actor, client_id, _registration(**registration), reason)
    _emit(as_json, v.to_dict(), _client_lines(v))


@command(client_group, "list")
@click.option("--kind", type=click.Choice(service_clients.KINDS), default=None,
              help="Only clients of this kind.")
def client_list(ctx: Ctx, as_json: bool, kind: str | None) -> None:
    """List clients: ID, status, company ("-": the agency's), scopes, last use, kind."""
    rows = service_clients.list_clients(ctx.deps, ctx.actor, kind)
    _emit(as_json, [r.to_dict() for r in rows], "\n".join(
        f"{r.client_id}\t{r.status}\t{r.company or '-'}\t{','.join(r.scopes) or '-'}\t"
        f"{r.last_used_at or '-'}\t{r.kind}" for r in rows))


@command(client_group, "approve")
@click.argument("client_id")
def client_approve(ctx: Ctx, as_json: bool, client_id: str) -> None:
    """Approve a client (a system administrator; never the one who created it)."""
    v = service_clients.approve(ctx.deps, ctx.actor, client_id)
    _emit(as_json, v.to_dict(), _client_lines(v))


@command(client_group, "rotate")
@click.argument("client_id")
@_REASON
def client_rotate(ctx: Ctx, as_json: bool, client_id: str, reason: str) -> None:
    """Issue a new secret (printed once); the old one is refused from now on."""
    _client_secret(as_json, service_clients.rotate(ctx.deps, ctx.actor, client_id, reason), ctx.lang)


def _client_command(action: str, doc: str) -> None:
    def run(ctx: Ctx, as_json: bool, client_id: str, reason: str) -> None:
        fn = {"suspend": service_clients.suspend, "resume": service_clients.resume,
              "revoke": service_clients.revoke}[action]
        v = fn(ctx.deps, ctx.actor, client_id, reason)
        _emit(as_json, v.to_dict(), _client_lines(v))

    run.__doc__ = doc
    command(client_group, action)(click.argument("client_id")(_REASON(run)))


_client_command("suspend", "Suspend a client: refused from its next request until resumed.")
_client_command("resume", "Resume a suspended client.")
_client_command("revoke", "Revoke a client: final; its identifier is kept as a tombstone.")


@main.group(name="vein")
def vein_group() -> None:
    """Palm-vein enrolment at a registration station."""


@command(vein_group, "enroll")
@click.argument("user_id")
@click.option("--reader", "reader_kind", type=click.Choice(["emulated", "sdk"]), default=None,
              help="The station's reader (config vein.reader).")
@click.option("--palm", type=click.IntRange(0, MAX_PALM), default=None,
              help="Emulator only: the synthetic palm presented at each capture.")
@click.option("--replace", is_flag=True, help="Re-enrol a person whose template failed.")
def vein_enroll(ctx: Ctx, as_json: bool, user_id: str, reader_kind: str | None,
                palm: int | None, replace: bool) -> None:
    """Enrol USER_ID's palm in person, the operator at this shell being the witness (R14): the
    person's other accounts use the same enrolment; a palm already enrolled for someone else
    is refused and the operators are alerted."""
    from adapters.vein import VeinError, open_reader

    deps = ctx.deps
    kind = reader_kind or deps.settings.vein.reader
    try:
        with open_reader(kind) as reader:
            def capture(challenge: bytes) -> Any:
                if palm is not None and hasattr(reader, "control"):
                    reader.control.present(palm)
                click.echo(text("vein_place_hand", ctx.lang), err=True)
                return reader.capture("enrol", challenge)

            done = vein.enrol(deps, ctx.actor, user_id, reader, capture, replace=replace)
    except VeinError as exc:
        _fail(ctx, as_json, "vein_reader", f"{text('vein_reader_error', ctx.lang)} ({type(exc).__name__})",
              EX_REFUSED)
        return
    _emit(as_json, done, "\n".join([
        _say(ctx, f"利用者ID: {done['user_id']}", f"user ID: {done['user_id']}"),
        _say(ctx, f"本人番号: {done['person_id']}", f"person ID: {done['person_id']}"),
        _say(ctx, f"読み取り装置: {done['reader_id']}", f"reader: {done['reader_id']}"),
        _say(ctx, f"再登録: {'はい' if done['replaced'] else 'いいえ'}",
             f"re-enrolment: {'yes' if done['replaced'] else 'no'}")]))


@command(main, "agent")
@click.option("--device-id", default="TERMINAL-1", show_default=True,
              help="This terminal's registered device ID (it signs captures as this device).")
@click.option("--key-file", default=None, help="The terminal's Ed25519 key (PEM; created if missing; "
              "default instance/terminal.key).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Loopback port (default: from vein.agent_url).")
@click.option("--reader", "reader_kind", type=click.Choice(["emulated", "sdk"]), default=None)
@click.option("--origin", "origins", multiple=True, callback=lambda _c, _p, v: _check_origins(v),
              help="Logon page origin allowed to ask for captures (default: webauthn.origins, "
              "which follow server.public_url), e.g. http://localhost:8080.")
def agent(ctx: Ctx, as_json: bool, device_id: str, key_file: str | None, port: int | None,
          reader_kind: str | None, origins: tuple[str, ...]) -> None:
    """Run the terminal agent: owns the palm reader and the terminal key, on loopback only."""
    from urllib.parse import urlparse

    from waitress import serve as waitress_serve

    from adapters.vein import open_reader
    from authsvc.agent import create_agent, load_or_create_key, public_key_b64
    from authsvc.settings import load_settings

    settings = load_settings()
    key_path = Path(key_file) if key_file else settings.instance_path / "terminal.key"
    try:
        key = load_or_create_key(key_path)
    except ValueError:
        raise ConfigError(f"config: {key_path} does not hold the terminal's Ed25519 private key "
                          "(PEM); move it away to make a new key (and register it again)") from None
    port = port or urlparse(settings.vein.agent_url).port or 7070
    sock = _listen_or_fail(ctx, as_json, "127.0.0.1", port, "agent")  # the port, before serving
    reader = open_reader(reader_kind or settings.vein.reader, key=key, reader_id=device_id)
    allowed = origins or settings.webauthn.origins
    register = (f"{_program()} device register {shlex.quote(device_id)} "
                f"--public-key {public_key_b64(key)}")
    info = {"device_id": device_id, "public_key": public_key_b64(key), "url": f"http://127.0.0.1:{port}/",
            "origins": list(allowed), "register_command": register}
    ja = ctx.lang == "ja"
    _emit(as_json, info, "\n".join([
        (f"端末エージェント {device_id}: http://127.0.0.1:{port}/（受け付けるログオン画面: "
         f"{', '.join(allowed)}）") if ja else
        f"authsvc agent {device_id} on http://127.0.0.1:{port}/ for {', '.join(allowed)}",
        ("この端末を一度だけ登録してください（サーバで）:" if ja
         else "register this terminal once (at the server):"),
        f"  {register}",
    ]))
    sys.stdout.flush()
    waitress_serve(create_agent(reader, device_id, tuple(allowed)), sockets=[sock],
                   ident="authsvc-agent")


def _check_origins(values: tuple[str, ...]) -> tuple[str, ...]:
    """--origin values: each a browser origin (scheme://host[:port], no path or slash)."""
    from authsvc.settings import origin_of

    for value in values:
        try:
            same = value.startswith(("http://", "https://")) and origin_of(value) == value.lower()
        except ValueError:
            same = False
        if not same:
            raise _BadValue(f"オプション --origin の値 {value!r} はオリジンではありません（scheme://host[:port]、"
                            "例: http://localhost:8080。パスや末尾の / は付けません）。",
                            f"{value!r} is not an origin: give scheme://host[:port], "
                            "e.g. http://localhost:8080 (no path, no trailing slash)", param_hint="--origin")
    return values


@main.group(name="maintenance")
def maintenance_group() -> None:
    """Scheduled jobs."""


@command(maintenance_group, "run")
def maintenance_run(ctx: Ctx, as_json: bool) -> None:
    """Disable identifiers unused too long; revoke leavers; end access after the cleanup period."""
    r = maintenance.run(ctx.deps, ctx.actor)
    _emit(as_json, {"expired": r.expired, "disabled": r.disabled, "revoked": r.revoked,
                    "registrations_expired": r.registrations_expired, "evidence_purged": r.evidence_purged,
                    "oidc_logouts_owed": r.oidc_logouts_owed, "oidc_codes_forgotten": r.oidc_codes_forgotten,
                    "audit_archived": r.audit_archived, "audit_verified": r.audit_verified},
          _say(ctx, f"期限切れ: {', '.join(r.expired) or '-'}\n無効化: {', '.join(r.disabled) or '-'}\n"
               f"失効（離任者）: {', '.join(r.revoked) or '-'}\n"
               f"期限切れの登録セッション: {len(r.registrations_expired)}\n"
               f"破棄した本人確認画像: {r.evidence_purged}\n"
               f"セッション終了を通知した連携先: {r.oidc_logouts_owed}",
               f"expired: {', '.join(r.expired) or '-'}\ndisabled: {', '.join(r.disabled) or '-'}\n"
               f"revoked (leavers): {', '.join(r.revoked) or '-'}\n"
               f"registration sessions expired: {len(r.registrations_expired)}\n"
               f"evidence images destroyed: {r.evidence_purged}\n"
               f"relying parties told of ended sessions: {r.oidc_logouts_owed}"))


@main.group(name="oidc")
def oidc_group() -> None:
    """The OpenID provider ([8 of 12]): signing keys, back-channel logouts. Relying parties are
    registered with `authsvc client create-oidc`."""


@command(oidc_group, "logouts")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def oidc_logouts(ctx: Ctx, as_json: bool, limit: int) -> None:
    """Back-channel logouts owed to relying parties and how their delivery stands (retried by
    `maintenance run`; given up with an alert after oidc.logout_attempts tries)."""
    rows = backchannel.logouts(ctx.deps, ctx.actor, limit)
    state = {True: "delivered", False: "pending"}
    _emit(as_json, rows, "\n".join(
        f"{r['created_at']}\t{r['client']}\t{r['user']}\t{r['reason']}\t"
        f"{'given up' if r['given_up_at'] else state[bool(r['delivered_at'])]}\t{r['attempts']}\t"
        f"{r['last_error'] or '-'}" for r in rows) or "-")


@command(oidc_group, "rotate-key")
def oidc_rotate_key(ctx: Ctx, as_json: bool) -> None:
    """A new signing key from now on; the old one stays published until its tokens expire."""
    kid = oidc.rotate_key(ctx.deps, ctx.actor)
    _emit(as_json, {"kid": kid}, _say(ctx, f"新しい署名鍵: {kid}", f"new signing key: {kid}"))


@command(oidc_group, "keys")
def oidc_keys(ctx: Ctx, as_json: bool) -> None:
    """The signing keys kept: kid, algorithm, when made, whether the JWKS publishes it."""
    keys = ctx.deps.signing_keys.inventory()
    _emit(as_json, [{"kid": k.kid, "alg": k.alg, "created": k.created.isoformat(),
                     "published": k.published} for k in keys],
          "\n".join(f"{k.kid}  {k.alg}  {k.created:%Y-%m-%d %H:%M}  "
                    f"{'published' if k.published else 'retired'}" for k in keys) or "no keys yet")


@main.group(name="alert")
def alert_group() -> None:
    """The alert inbox (R25)."""


@command(alert_group, "list")
@click.option("--all", "show_all", is_flag=True, help="Acknowledged alerts too.")
def alert_list(ctx: Ctx, as_json: bool, show_all: bool) -> None:
    """Alerts of your company (every alert at the server), newest first."""
    rows = alerts.inbox(ctx.deps, ctx.actor, open_only=not show_all)
    _emit(as_json, rows, "\n".join(
        f"{r['id']}\t{r['raised_at']}\t{r['kind']}\t{r['subject']}\t{r['company'] or '-'}\t"
        f"{r['acknowledged_by'] or 'open'}" for r in rows))


@command(alert_group, "ack")
@click.argument("alert_id", type=int)
def alert_ack(ctx: Ctx, as_json: bool, alert_id: int) -> None:
    """Acknowledge an alert."""
    row = alerts.acknowledge(ctx.deps, ctx.actor, alert_id)
    _emit(as_json, row, _say(ctx, f"{row['id']}: {row['acknowledged_by']} が確認しました",
                    f"{row['id']}: acknowledged by {row['acknowledged_by']}"))


@main.group(name="health")
def health_group() -> None:
    """Checks of what the service's guarantees rest on (run them from a scheduler)."""


@command(health_group, "clock")
def health_clock(ctx: Ctx, as_json: bool) -> None:
    """Compare the system clock with the NTP servers of `clock.ntp_servers`: exit 0 within
    `clock.max_offset_seconds` (or when no server is configured), else one line and exit 1 —
    beyond the threshold (alert clock_offset) or no server answering (alert clock_unchecked);
    an alert of each kind is raised at most once an hour."""
    from authsvc.services import health

    result = health.clock(ctx.deps)
    shown = "-" if result.offset is None else f"{result.offset:+.3f}"
    servers = ", ".join(ctx.deps.settings.clock.ntp_servers)
    code = {health.OK: "clock_ok", health.DISABLED: "clock_disabled"}.get(result.status, result.status)
    message = text(code, ctx.lang, offset=shown, threshold=result.threshold, servers=servers)
    if result.ok:
        _emit(as_json, result.to_dict(), message)
        return
    if as_json:
        _emit(True, {**result.to_dict(), "error": result.status, "message": message}, "")
    else:
        click.echo(_printable(message), err=True)
    sys.exit(EX_REFUSED)


@main.group(name="registration")
def registration_group() -> None:
    """Palm registration (R14)."""


@command(registration_group, "consent")
@click.argument("user_id")
@click.option("--withdraw", is_flag=True, help="Record that consent was withdrawn.")
def registration_consent(ctx: Ctx, as_json: bool, user_id: str, withdraw: bool) -> None:
    """Record the consent to remote registration (with ID image capture) given at application."""
    from authsvc.services import registration

    registration.record_consent(ctx.deps, ctx.actor, user_id, not withdraw)
    given = registration.has_consent(ctx.deps, user_id)
    _emit(as_json, {"user_id": user_id, "consent": given},
          _say(ctx, f"{user_id}: 遠隔登録への同意 {'あり' if given else 'なし'}",
               f"{user_id}: consent {'given' if given else 'not given'}"))


# ---- directory sync ([9 of 12], R20) -----------------------------------------------------------


@main.group(name="directory")
def directory_group() -> None:
    """Directory sync with LDAP ([9 of 12], R20): a company's users and groups imported from its
    directory (config: directory.sources_file), its accounts exported to one. Nothing is removed
    until the whole directory was read; a sync that stops (the directory down, far fewer entries
    than last time, too many removals) says why on one line and exits 1. A scheduler runs it as
    its own service client (scope directory:sync): see `authsvc --as-client`."""


_SYNC_LISTS = ("created", "updated", "linked", "resumed", "suspended", "deleted", "groups",
               "memberships", "skipped")


def _items(values: list[str]) -> str:
    """A list from the directory, each item on one line of its own (its hostile characters,
    newlines too, escaped)."""
    return "".join(f"\n  {_printable(v, keep='')}" for v in values) or " -"


def _stopped(exc: directory_sync.SyncStopped) -> DomainError:
    """The refusal with its detail on one line (a directory's error text may hold newlines)."""
    detail = " ".join(_printable(str(exc.params.get("detail", "")), keep="").split())
    return directory_sync.SyncStopped(exc.code, **{**exc.params, "detail": detail[:500]})


# the counts of a sync or an export, in Japanese (English: the report's own keys)
_COUNTS_JA = {"created": "作成", "updated": "更新", "linked": "関連付け", "resumed": "再開",
              "suspended": "停止", "deleted": "削除", "groups": "グループ", "memberships": "メンバー",
              "skipped": "対象外", "seen": "確認したエントリ", "added": "追加", "changed": "変更",
              "disabled": "無効化"}
_DRY_RUN_JA = "（試行: 何も書き込んでいません）"


def _counts(ctx: Ctx, counts: dict[str, int]) -> str:
    if ctx.lang == "ja":
        return "、".join(f"{_COUNTS_JA.get(k, k)} {v}" for k, v in counts.items())
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _listed(ctx: Ctx, report: Any, names: tuple[str, ...]) -> list[str]:
    """Each list of a dry run under its heading (Japanese: the console's headings)."""
    return [f"{text(f'dirlist_{name}', 'ja') if ctx.lang == 'ja' else name}:{_items(getattr(report, name))}"
            for name in names]


def _sync_lines(ctx: Ctx, r: directory_sync.Report) -> str:
    what = _say(ctx, f"{r.company}: ディレクトリからの取り込み（{text(f'dirmode_{r.mode}', 'ja')}）"
                + (_DRY_RUN_JA if r.dry_run else ""),
                f"{r.company}: {r.mode} sync" + (" (dry run: nothing was written)" if r.dry_run else ""))
    lines = [what, _counts(ctx, r.counts)]
    if r.dry_run:  # exactly what would change
        lines += _listed(ctx, r, _SYNC_LISTS)
    return "\n".join(lines)


@command(directory_group, "sync")
@click.argument("company")
@click.option("--full", is_flag=True,
              help="Read every entry (default: those changed since the last sync, and the IDs of all).")
@click.option("--dry-run", is_flag=True,
              help="Write nothing; print exactly what would be created, updated, linked, resumed, "
              "suspended, deleted, and the groups, memberships and skipped entries.")
def directory_sync_command(ctx: Ctx, as_json: bool, company: str, full: bool, dry_run: bool) -> None:
    """Import COMPANY's users and groups from its directory. Imported accounts are pending (a
    system administrator approves the ID) and have no password (issue one here). A stopped
    sync removes nothing: one line with the reason, exit 1, and an alert."""
    try:
        r = directory_sync.sync(ctx.deps, ctx.actor, company, full=full, dry_run=dry_run)
    except directory_sync.SyncStopped as exc:
        raise _stopped(exc) from None
    _emit(as_json, r.to_dict(), _sync_lines(ctx, r))


@command(directory_group, "export")
@click.argument("company")
@click.option("--dry-run", is_flag=True, help="Write nothing; print exactly what would change.")
def directory_export_command(ctx: Ctx, as_json: bool, company: str, dry_run: bool) -> None:
    """Publish COMPANY's accounts and their state to its directory (the source's export_base):
    added, changed, or marked disabled; never a password or its hash. Idempotent."""
    try:
        r = directory_sync.export(ctx.deps, ctx.actor, company, dry_run=dry_run)
    except directory_sync.SyncStopped as exc:
        raise _stopped(exc) from None
    lines = [_say(ctx, f"{r.company}: ディレクトリへの書き出し" + (_DRY_RUN_JA if r.dry_run else ""),
                  f"{r.company}: export" + (" (dry run: nothing was written)" if r.dry_run else "")),
             _counts(ctx, {"added": len(r.added), "changed": len(r.changed), "disabled": len(r.disabled)})]
    if r.dry_run:
        lines += _listed(ctx, r, ("added", "changed", "disabled"))
    _emit(as_json, r.to_dict(), "\n".join(lines))


@command(directory_group, "runs")
@click.option("--company", default=None, help="Only this company's runs.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
def directory_runs_command(ctx: Ctx, as_json: bool, company: str | None, limit: int) -> None:
    """The newest syncs of your companies (every company at the server), newest first: when,
    company, mode, result, who ran it, the counts, and why a sync stopped."""
    rows = directory_sync.runs(ctx.deps, ctx.actor, company, limit)

    ja = ctx.lang == "ja"

    def line(r: dict[str, Any]) -> str:
        counts = ",".join(f"{_COUNTS_JA.get(k, k) if ja else k}={v}" for k, v in r["counts"].items()
                          if v) or "-"
        if ja:  # the console's labels; a value it has no label for as stored
            mode = label("dirmode_", r["mode"], "ja") + ("（試行）" if r["dry_run"] else "")
            result = label("dirres_", r["result"], "ja")
        else:
            mode, result = r["mode"] + (" (dry run)" if r["dry_run"] else ""), r["result"]
        return "\t".join(_printable(str(v), keep="") for v in (
            r["id"], r["started_at"], r["company"], mode, result, r["actor"], counts, r["error"] or "-"))

    _emit(as_json, rows, "\n".join(line(r) for r in rows) or "-")


# ---- usage applications ([11 of 12], R21) -------------------------------------------------------


@main.group(name="application")
def application_group() -> None:
    """Usage applications (R21): the Excel forms, the rosters, the approval (submitted → checked
    by the procuring office → approved by the agency → issued), the parameter sheets."""


def _application_invalid(ctx: Ctx, as_json: bool, exc: Any) -> None:
    """Every error of a refused workbook or roster, one a line (file, row, column, what)."""
    if as_json:
        click.echo(_json_text({"error": exc.code, "message": exc.message(ctx.lang),
                               "errors": [e.to_dict(ctx.lang) for e in exc.errors]}))
    else:
        click.echo(_printable(exc.message(ctx.lang)), err=True)
        for line in exc.lines(ctx.lang):
            click.echo(_printable(f"  {line}", keep=""), err=True)
    sys.exit(EX_REFUSED)


def _application_line(v: Any) -> str:
    counts = ",".join(f"{k}={n}" for k, n in v.counts.items()) or "-"
    return "\t".join(_printable(str(x), keep="") for x in (
        v.id, v.kind, v.contract, v.company, v.state, v.next_step or "-", counts, v.submitted_by))


@command(application_group, "template")
@click.option("--form", "kind", type=click.Choice(["users", "access", "media"]), default="users",
              show_default=True)
@click.option("--contract", default=None, help="Fill in this contract and its company.")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, writable=True), required=True)
def application_template(ctx: Ctx, as_json: bool, kind: str, contract: str | None, output: str) -> None:
    """Write the blank application form (an .xlsx workbook) to OUTPUT."""
    from authsvc.services import applications

    data = applications.template(ctx.deps, ctx.actor, kind, contract)
    Path(output).write_bytes(data)
    _emit(as_json, {"form": kind, "file": output, "bytes": len(data)}, output)


@command(application_group, "import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def application_import(ctx: Ctx, as_json: bool, files: tuple[str, ...]) -> None:
    """Submit application workbooks together (a prime contractor's own and its
    subcontractors'): all of them, or none, with every error by file, row and column."""
    from authsvc.domain.applications import ApplicationInvalid
    from authsvc.services import applications

    uploads = []
    for name in files:
        path = Path(name)
        limit = ctx.deps.settings.applications.max_bytes
        if path.stat().st_size > limit:  # refused before it is read
            raise DomainError("file_too_large", limit=limit // 1024)
        uploads.append(applications.Upload(path.name, path.read_bytes()))
    try:
        views = applications.submit(ctx.deps, ctx.actor, uploads)
    except ApplicationInvalid as exc:
        _application_invalid(ctx, as_json, exc)
        return
    _emit(as_json, [v.to_dict() for v in views], "\n".join(_application_line(v) for v in views))


@command(application_group, "status")
@click.argument("application_id", type=int, required=False)
@click.option("--state", default=None, help="Only applications in this state.")
def application_status(ctx: Ctx, as_json: bool, application_id: int | None, state: str | None) -> None:
    """The applications of your company (every one at the server), or one with its rows."""
    from authsvc.services import applications

    if application_id is None:
        rows = applications.list_applications(ctx.deps, ctx.actor, state)
        _emit(as_json, [v.to_dict() for v in rows], "\n".join(_application_line(v) for v in rows) or "-")
        return
    v = applications.get(ctx.deps, ctx.actor, application_id)
    lines = [_application_line(v)] + [
        "  " + "\t".join(f"{k}={'' if val is None else val}" for k, val in r.items() if k != "name_key")
        for r in v.rows]
    _emit(as_json, v.to_dict(), "\n".join(lines))


def _application_step(action: str, doc: str) -> None:
    def run(ctx: Ctx, as_json: bool, application_id: int) -> None:
        from authsvc.domain.applications import ApplicationInvalid
        from authsvc.services import applications

        step = {"check": applications.check, "approve": applications.approve}[action]
        try:
            v = step(ctx.deps, ctx.actor, application_id)
        except ApplicationInvalid as exc:
            _application_invalid(ctx, as_json, exc)
            return
        _emit(as_json, v.to_dict(), _application_line(v))

    run.__doc__ = doc
    command(application_group, action)(click.argument("application_id", type=int)(run))


_application_step("check", "The procuring office checks the application against the rosters.")
_application_step("approve", "The agency approves (access rights: the data manager; applied now).")


@command(application_group, "reject")
@click.argument("application_id", type=int)
@click.option("--reason", required=True, help="Why (kept with the application and in its audit event).")
def application_reject(ctx: Ctx, as_json: bool, application_id: int, reason: str) -> None:
    """Refuse the application instead of its next step."""
    from authsvc.services import applications

    v = applications.reject(ctx.deps, ctx.actor, application_id, reason)
    _emit(as_json, v.to_dict(), _application_line(v))


@command(application_group, "issue")
@click.argument("application_id", type=int)
def application_issue(ctx: Ctx, as_json: bool, application_id: int) -> None:
    """Create the approved application's accounts and store the encrypted parameter sheet in the
    company's folders; its password is printed here once (never stored, never logged)."""
    from authsvc.domain.applications import ApplicationInvalid
    from authsvc.services import applications

    try:
        sheet = applications.issue(ctx.deps, ctx.actor, application_id)
    except ApplicationInvalid as exc:
        _application_invalid(ctx, as_json, exc)
        return
    label = "パラメータシートのパスワード（一度だけ表示します）" if ctx.lang == "ja" else \
        "The parameter sheet's password (shown once only)"
    lines = [f"{sheet.company}\t{sheet.contract}\t{', '.join(sheet.accounts) or '-'}", *sheet.files]
    if sheet.password:
        lines.append(f"{label}: {sheet.password}")
    _emit(as_json, sheet.to_dict(), "\n".join(lines))


@command(application_group, "roster")
@click.argument("contract")
@click.argument("kind", type=click.Choice(["handlers", "system_users"]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def application_roster(ctx: Ctx, as_json: bool, contract: str, kind: str, file: str) -> None:
    """Replace CONTRACT's handler roster (取扱者名簿) or protected-system user roster with FILE
    (.xlsx or .csv: 氏名, and 生年月日 and/or 社員番号)."""
    from authsvc.domain.applications import ApplicationInvalid
    from authsvc.services import applications

    path = Path(file)
    if path.stat().st_size > ctx.deps.settings.applications.max_bytes:
        raise DomainError("file_too_large", limit=ctx.deps.settings.applications.max_bytes // 1024)
    try:
        done = applications.upload_roster(ctx.deps, ctx.actor, contract, kind,
                                          applications.Upload(path.name, path.read_bytes()))
    except ApplicationInvalid as exc:
        _application_invalid(ctx, as_json, exc)
        return
    _emit(as_json, done, f"{contract}\t{kind}\t{done['count']}")


@command(application_group, "company")
@click.argument("name")
@click.option("--subscription", type=click.Choice(["applying", "complete", "withdrawn"]), required=True)
@click.option("--since", "subscribed_on", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="The date of the subscription completion notice (加入完了通知).")
@click.option("--folder", default=None, help="The company's folder at the application storage site.")
def application_company(ctx: Ctx, as_json: bool, name: str, subscription: str, subscribed_on: Any,
                        folder: str | None) -> None:
    """Record a company's subscription state and its folder (the agency)."""
    from authsvc.services import applications

    row = applications.set_company(ctx.deps, ctx.actor, name, subscription,
                                   subscribed_on.date() if subscribed_on else None, folder)
    _emit(as_json, row, "\n".join(f"{k}: {'' if v is None else v}" for k, v in row.items()))


@command(application_group, "terms")
@click.argument("number")
@click.option("--concluded", "concluded_on", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="The contract's conclusion date (契約締結日).")
@click.option("--eligibility", type=click.Choice(["clause", "exemption"]), default=None,
              help="clause: the information-security clause; exemption: 通達第8項 (give --exemption-note).")
@click.option("--exemption-note", default=None)
@click.option("--prime", default=None, help="For a subcontract: the prime contractor's contract.")
def application_terms(ctx: Ctx, as_json: bool, number: str, concluded_on: Any, eligibility: str | None,
                      exemption_note: str | None, prime: str | None) -> None:
    """Record a contract's conclusion date and eligibility, and its prime contract (the agency)."""
    from authsvc.services import applications

    row = applications.set_terms(ctx.deps, ctx.actor, number, concluded_on.date() if concluded_on else None,
                                 eligibility, exemption_note, prime)
    _emit(as_json, row, "\n".join(f"{k}: {'' if v is None else v}" for k, v in row.items()))
