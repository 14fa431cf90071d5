"""The terminal agent (R11-R13) through its HTTP interface, on an emulated reader: captures bound
to the challenge the page passes and signed by the terminal's key; reader faults as the small set
of codes the page may show (a spoof is only "not read"); strict input; capture requests only from
the configured logon-page origins (CORS), the emulator's control only from the agent's own page."""

from __future__ import annotations

import base64
import secrets
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import authsvc.agent as agent_module
from adapters.vein import Capture, open_reader
from authsvc.agent import create_agent

ORIGIN = "http://localhost:8443"  # the logon page allowed to ask for captures
FOREIGN = "http://evil.example"
DEVICE = "TERMINAL-1"
PALM = 42


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.fixture
def reader():
    reader = open_reader("emulated", seed=0, key=Ed25519PrivateKey.generate(), reader_id=DEVICE)
    yield reader
    reader.close()


@pytest.fixture
def app(reader):
    return create_agent(reader, DEVICE, (ORIGIN,))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def short_timeout(monkeypatch):
    """Captures give up after 0.3 s instead of the agent's 20 s (nobody presents a hand)."""
    monkeypatch.setattr(agent_module, "CAPTURE_TIMEOUT_S", 0.3)


def control(client, command: str, origin: str | None = None):
    headers = {"Origin": origin} if origin else {}
    return client.post("/control", json={"command": command}, headers=headers)


def capture(client, challenge: object, origin: str | None = ORIGIN, **extra):
    headers = {"Origin": origin} if origin else {}
    body = {"challenge": challenge, "purpose": "verify", **extra}
    return client.post("/capture", json=body, headers=headers)


def test_scripted_palm_gives_a_capture_signed_by_the_terminal_and_bound_to_the_challenge(client, reader):
    assert control(client, f"present {PALM}").get_json() == {"answer": "ok"}
    challenge = secrets.token_bytes(32)
    resp = capture(client, b64(challenge))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["device_id"] == DEVICE
    record = Capture.from_dict(body["capture"])  # the strict parser the server uses
    assert record.challenge == challenge
    assert record.reader_id == DEVICE and str(record.purpose) == "verify"
    assert record.liveness_passed and record.quality >= 40
    assert record.verify_signature(reader.public_key_bytes())
    assert not record.verify_signature(Ed25519PrivateKey.generate().public_key())
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert resp.headers["Cache-Control"] == "no-store"
    assert reader.control.pending == []  # the scripted presentation was used once

    # it really is the scripted palm: it matches palm 42's template, and palm 7's capture does not
    enrolment, template = [], None
    while template is None and len(enrolment) < 8:  # "more samples needed" until done
        reader.control.present(PALM)
        enrolment.append(reader.capture("enrol", secrets.token_bytes(32)))
        template = reader.enrol(enrolment).template
    assert template is not None
    assert reader.verify(record, template).decision
    control(client, "present 7")
    other = Capture.from_dict(capture(client, b64(secrets.token_bytes(32))).get_json()["capture"])
    assert not reader.verify(other, template).decision


def test_no_hand_is_reported_at_once(client):
    control(client, "no_hand")
    started = time.monotonic()
    resp = capture(client, b64(secrets.token_bytes(32)))
    assert (resp.status_code, resp.get_json()["error"]) == (422, "vein_no_hand")
    assert time.monotonic() - started < 2.0
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN  # the page may read the reason


def test_timeouts(client, short_timeout):
    control(client, "timeout")
    resp = capture(client, b64(secrets.token_bytes(32)))
    assert (resp.status_code, resp.get_json()["error"]) == (422, "vein_timeout")
    started = time.monotonic()  # nothing scripted: nobody presents a hand
    resp = capture(client, b64(secrets.token_bytes(32)))
    assert (resp.status_code, resp.get_json()["error"]) == (422, "vein_timeout")
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize("command", [f"spoof {PALM}", f"poor_quality {PALM}"])
def test_a_spoof_or_a_poor_reading_is_only_not_read(client, command):
    control(client, command)
    resp = capture(client, b64(secrets.token_bytes(32)))
    assert (resp.status_code, resp.get_json()["error"]) == (422, "vein_not_read")
    text = resp.get_data(as_text=True).lower()
    for word in ("spoof", "presentation", "liveness", "attack", "quality", "score"):
        assert word not in text  # the page (and whoever drives it) learns nothing more


def test_reposition_hint(client):
    control(client, "reposition left")
    resp = capture(client, b64(secrets.token_bytes(32)))
    assert resp.status_code == 422
    assert resp.get_json() == {"error": "vein_reposition", "hint": "left"}


def test_unplugged_reader_then_plugged_again(client, reader):
    control(client, "unplug")
    control(client, f"present {PALM}")
    resp = capture(client, b64(secrets.token_bytes(32)))
    assert (resp.status_code, resp.get_json()["error"]) == (422, "vein_disconnected")
    control(client, "plug")
    challenge = secrets.token_bytes(32)
    resp = capture(client, b64(challenge))
    assert resp.status_code == 200, resp.get_json()
    record = Capture.from_dict(resp.get_json()["capture"])
    assert record.challenge == challenge and record.verify_signature(reader.public_key_bytes())


def test_unplugged_during_a_capture(app, reader):
    answers = []

    def run() -> None:  # the capture waits for a hand
        answers.append(capture(app.test_client(), b64(secrets.token_bytes(32))))

    waiting = threading.Thread(target=run)
    waiting.start()
    time.sleep(0.3)
    reader.control.unplug()
    waiting.join(timeout=10)
    assert not waiting.is_alive()
    assert (answers[0].status_code, answers[0].get_json()["error"]) == (422, "vein_disconnected")
    reader.control.plug()  # nothing half-finished: the next capture works
    reader.control.present(PALM)
    assert capture(app.test_client(), b64(secrets.token_bytes(32))).status_code == 200


def test_one_capture_at_a_time(app, reader):
    answers = []
    first = threading.Thread(target=lambda: answers.append(
        capture(app.test_client(), b64(secrets.token_bytes(32)))))
    first.start()
    time.sleep(0.2)
    second = capture(app.test_client(), b64(secrets.token_bytes(32)))
    assert second.get_json()["error"] == "vein_busy" and second.status_code == 409
    reader.control.present(PALM)
    first.join(timeout=10)
    assert answers[0].status_code == 200


@pytest.mark.parametrize("challenge", [
    None,                                   # missing
    12345,                                  # not text
    "!" * 43,                               # not base64url
    b64(secrets.token_bytes(32))[:-3] + "*/+",  # not base64url (and not canonical)
    "AAAA AAAA AAAA AAAA AAAA AAAA AAAA",   # spaces
    b64(secrets.token_bytes(8)),            # too short
    b64(secrets.token_bytes(15)),
    b64(secrets.token_bytes(65)),           # too long
    "A" * 5000,
], ids=["missing", "number", "bangs", "not-canonical", "spaces", "8-bytes", "15-bytes", "65-bytes",
        "5000-chars"])  # stable ids: every xdist worker collects the same tests
def test_bad_challenges_are_refused_and_nothing_is_captured(client, reader, challenge):
    reader.control.present(PALM)
    body = {} if challenge is None else {"challenge": challenge}
    resp = client.post("/capture", json=body, headers={"Origin": ORIGIN})
    assert resp.status_code == 400
    assert resp.get_json() == {"error": "request_invalid"}
    assert [o.kind for o in reader.control.pending] == ["present"]  # the reader was not used


def test_bad_bodies_are_refused_and_nothing_is_captured(client, reader):
    reader.control.present(PALM)
    headers = {"Origin": ORIGIN}
    assert client.post("/capture", data="not json", headers=headers,
                       content_type="application/json").status_code == 400
    assert client.post("/capture", json=["a", "list"], headers=headers).status_code == 400
    huge = {"challenge": b64(secrets.token_bytes(32)), "pad": "x" * 100_000}
    assert client.post("/capture", json=huge, headers=headers).status_code == 413
    assert [o.kind for o in reader.control.pending] == ["present"]


def test_cors_only_for_the_logon_page(client, reader):
    reader.control.present(PALM)
    for origin in (FOREIGN, "http://localhost:8444", "null", None):
        resp = capture(client, b64(secrets.token_bytes(32)), origin=origin)
        assert resp.status_code == 403, origin
        assert "Access-Control-Allow-Origin" not in resp.headers
    assert [o.kind for o in reader.control.pending] == ["present"]  # nothing captured
    resp = capture(client, b64(secrets.token_bytes(32)))
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in resp.headers.get("Vary", "")


def test_preflight(client):
    asks = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type",
            "Access-Control-Request-Private-Network": "true"}
    resp = client.options("/capture", headers={"Origin": ORIGIN, **asks})
    assert resp.status_code in (200, 204)
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    assert "content-type" in resp.headers["Access-Control-Allow-Headers"].lower()
    assert resp.headers["Access-Control-Allow-Private-Network"] == "true"
    foreign = client.options("/capture", headers={"Origin": FOREIGN, **asks})
    assert "Access-Control-Allow-Origin" not in foreign.headers
    assert "Access-Control-Allow-Private-Network" not in foreign.headers


def test_control_is_refused_from_a_foreign_origin(client, reader):
    resp = control(client, f"present {PALM}", origin=FOREIGN)
    assert resp.status_code in (403, 404)
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert reader.control.pending == []
    resp = client.post("/control", data={"command": "present", "palm": "7"}, headers={"Origin": FOREIGN})
    assert resp.status_code in (403, 404) and reader.control.pending == []


def test_emulator_page_and_its_form(client, reader):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert DEVICE in page.get_data(as_text=True)
    own = "http://localhost"  # the test client's host: the agent's own page
    resp = client.post("/control", data={"command": "present", "palm": str(PALM)}, headers={"Origin": own})
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert [(o.kind, o.palm) for o in reader.control.pending] == [("present", PALM)]
    resp = client.post("/control", data={"command": "no_hand"}, headers={"Origin": own})
    assert resp.status_code == 200
    assert [o.kind for o in reader.control.pending] == ["present", "no_hand"]
    bad = client.post("/control", data={"command": "present", "palm": "x"}, headers={"Origin": own})
    assert bad.status_code < 500  # a typo in the form is not a crash
    assert len(reader.control.pending) == 2
    assert control(client, "frobnicate").get_json()["answer"].startswith("error")
    assert client.post("/control", json=["present", "42"]).status_code < 500
    assert len(reader.control.pending) == 2


def test_without_an_emulator_there_is_no_control(reader):
    sdk = open_reader("sdk", key=Ed25519PrivateKey.generate(), reader_id=DEVICE)  # no control channel
    try:
        client = create_agent(sdk, DEVICE, (ORIGIN,)).test_client()
        assert client.get("/").get_json() == {"device_id": DEVICE, "status": "ready"}
        assert control(client, f"present {PALM}").status_code == 404
    finally:
        sdk.close()


def test_the_logon_page_cannot_script_the_emulator(client, reader):
    """Only the agent's own page (or a local tool) chooses what the emulated reader sees."""
    resp = control(client, "present 42", origin=ORIGIN)
    assert resp.status_code == 404
    assert reader.control.pending == []


@pytest.mark.parametrize("host", ["evil.example", "evil.example:7070", "10.0.0.5:7070"])
def test_requests_not_addressed_to_loopback_are_refused(client, reader, host):
    """DNS rebinding: a foreign name pointed at 127.0.0.1 still carries its own Host."""
    assert client.get("/", headers={"Host": host}).status_code == 421
    resp = client.post("/capture", json={"challenge": b64(b"x" * 32)},
                       headers={"Host": host, "Origin": ORIGIN})
    assert resp.status_code == 421


def test_the_page_asks_for_the_purpose_and_gets_it_signed(client, reader):
    control(client, f"present {PALM}")
    resp = capture(client, b64(secrets.token_bytes(32)), purpose="enrol")
    assert resp.status_code == 200
    record = Capture.from_dict(resp.get_json()["capture"])
    assert str(record.purpose) == "enrol" and record.verify_signature(reader.public_key_bytes())
    control(client, f"present {PALM}")
    for purpose in ("identify", "", None, 7, "x" * 200):  # only the two a page may ask for
        assert capture(client, b64(secrets.token_bytes(32)), purpose=purpose).status_code == 400
    assert [o.kind for o in reader.control.pending] == ["present"]  # nothing was read for those


def test_errors_are_json_and_keep_their_headers(client):
    resp = client.get("/capture")
    assert (resp.status_code, resp.get_json()) == (405, {"error": "request_invalid"})
    assert {"POST", "OPTIONS"} <= {m.strip() for m in resp.headers["Allow"].split(",")}
    resp = client.post("/capture", json={"pad": "x" * 20_000}, headers={"Origin": ORIGIN})
    assert (resp.status_code, resp.get_json()) == (413, {"error": "request_invalid"})
    resp = client.post("/capture", data=b'{"challenge": "a", "challenge": "b"}',
                       content_type="application/json", headers={"Origin": ORIGIN})
    assert (resp.status_code, resp.get_json()["error"]) == (400, "invalid_json")
