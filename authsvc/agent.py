"""The terminal agent (R11, R12): runs on the user's registered terminal, owns the palm reader
and the terminal's Ed25519 key, and answers capture requests from the logon page on loopback
only. It captures a palm bound to the server's challenge and returns the capture record signed
with the terminal's key, or (`/attest`, for a logon by TOTP or WebAuthn) signs the challenge
alone as the terminal's proof; the server decides everything else. In emulator mode it also serves a
small page (and a control endpoint) to choose what the emulated reader sees next."""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask, Response, jsonify, render_template_string, request
from werkzeug.exceptions import HTTPException

from adapters.vein import (
    Cancelled,
    CaptureTimeout,
    InvalidRecord,
    NoHand,
    PoorQuality,
    PresentationAttack,
    ReaderDisconnected,
    Reposition,
    VeinError,
    VeinReader,
)
from adapters.vein.records import b64url_decode
from authsvc.web.jsonbody import install, json_body

CAPTURE_TIMEOUT_S = 20.0
# What the page may tell the user. A presentation attack is reported like a failed reading:
# saying "spoof detected" would help whoever is trying one.
ERROR_CODES: dict[type[VeinError], str] = {
    NoHand: "vein_no_hand",
    CaptureTimeout: "vein_timeout",
    ReaderDisconnected: "vein_disconnected",
    PoorQuality: "vein_not_read",
    PresentationAttack: "vein_not_read",
    Cancelled: "vein_cancelled",
}


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The terminal's private key (PEM, owner-only), created on first start."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return key


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def error_code(exc: VeinError) -> str:
    if isinstance(exc, Reposition):
        return "vein_reposition"
    return next((code for cls, code in ERROR_CODES.items() if isinstance(exc, cls)), "vein_reader_error")


_EMULATOR_PAGE = """<!doctype html><html lang="ja"><head><meta charset="utf-8">
<title>authsvc agent (emulator)</title></head><body>
<h1>Palm-vein emulator — {{ device_id }}</h1>
<p>The next capture sees (次の読み取りで提示するもの):</p>
<form method="post" action="/control"><label>palm <input name="palm" type="number" value="42" min="0"></label>
<button name="command" value="present">present</button>
<button name="command" value="spoof">spoof</button></form>
<form method="post" action="/control">
{% for c in ["no_hand", "poor_quality", "reposition left", "timeout", "unplug", "plug"] %}
<button name="command" value="{{ c }}">{{ c }}</button>{% endfor %}</form>
<p>Pending: {{ pending }}</p></body></html>"""


def create_agent(reader: VeinReader, device_id: str, origins: tuple[str, ...]) -> Flask:
    """A Flask app for loopback only. `origins`: the logon pages allowed to ask for captures."""
    app = Flask("authsvc.agent")
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    install(app)  # the service's JSON reader: bounded, strict, 400 invalid_json
    lock = threading.Lock()  # one capture at a time: the reader is one device
    emulator = hasattr(reader, "control")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        # JSON for the page's script, with the error's own headers (Allow on a 405)
        headers = [h for h in exc.get_headers() if h[0].lower() != "content-type"]
        return jsonify(error="request_invalid"), exc.code or 400, headers

    @app.before_request
    def _loopback_host() -> Response | None:
        # DNS rebinding: a foreign page re-pointing its own name at 127.0.0.1 still sends its
        # own Host header; answer only requests addressed to the loopback names.
        host = (request.host or "").rsplit(":", 1)[0].strip("[]")
        if host not in ("127.0.0.1", "localhost", "::1"):
            return Response(status=421)
        return None

    @app.after_request
    def _cors(resp: Response) -> Response:
        origin = request.headers.get("Origin", "")
        if origin in origins:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Access-Control-Allow-Methods"] = "POST"
            resp.headers["Access-Control-Allow-Headers"] = "Content-Type"
            resp.headers["Access-Control-Allow-Private-Network"] = "true"
            resp.headers["Vary"] = "Origin"
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp

    @app.route("/capture", methods=["OPTIONS"])
    @app.route("/attest", methods=["OPTIONS"])
    def _preflight() -> Response:
        return Response(status=204)

    def _challenge(body: dict[str, Any]) -> bytes:
        """The server's challenge: canonical unpadded base64url, 16..64 bytes; else b""."""
        try:  # strict: nothing skipped (the server's own form)
            challenge = b64url_decode(body.get("challenge"), "challenge", 64)
        except InvalidRecord:
            return b""
        return challenge if 16 <= len(challenge) <= 64 else b""

    @app.post("/capture")
    def capture() -> Any:
        if request.headers.get("Origin", "") not in origins:
            return jsonify(error="origin_refused"), 403
        body = json_body()
        challenge = _challenge(body)
        purpose = body.get("purpose", "verify")
        if not challenge or purpose not in ("verify", "enrol"):
            return jsonify(error="request_invalid"), 400
        if not lock.acquire(timeout=1):
            return jsonify(error="vein_busy"), 409
        try:
            record = reader.capture(purpose, challenge, timeout_s=CAPTURE_TIMEOUT_S)
        except VeinError as exc:
            return jsonify(error=error_code(exc), hint=getattr(exc, "hint", "")), 422
        finally:
            lock.release()
        return jsonify(capture=record.to_dict(), device_id=device_id)

    @app.post("/attest")
    def attest() -> Any:
        """The terminal's proof for a logon by another factor (R12): the server's challenge
        signed with the device key under the purpose "terminal". No palm, no reader lock."""
        if request.headers.get("Origin", "") not in origins:
            return jsonify(error="origin_refused"), 403
        body = json_body()
        challenge = _challenge(body)
        if not challenge or set(body) - {"challenge"}:
            return jsonify(error="request_invalid"), 400
        return jsonify(proof=reader.prove_terminal(challenge).to_dict(), device_id=device_id)

    @app.get("/")
    def index() -> Any:
        if not emulator:
            return jsonify(device_id=device_id, status="ready")
        pending = [str(o) for o in reader.control.pending]  # type: ignore[attr-defined]
        return render_template_string(_EMULATOR_PAGE, device_id=device_id, pending=pending)

    @app.post("/control")
    def control() -> Any:
        """Emulator only: script what the next capture sees (present N, spoof N, no_hand, ...)."""
        own = request.host_url.rstrip("/")
        # only the agent's own page (or a local tool sending no Origin) scripts the emulator
        if not emulator or request.headers.get("Origin") not in (None, own):
            return jsonify(error="not_found"), 404
        data: Any = json_body() if request.is_json else request.form
        line = str(data.get("command", ""))[:100]
        if line in ("present", "spoof"):  # the control channel checks the palm number
            line = f"{line} {str(data.get('palm', '0'))[:9].strip() or 0}"
        answer = reader.control.execute(line)  # type: ignore[attr-defined]
        if request.form:
            return index()
        return jsonify(answer=answer)

    return app
