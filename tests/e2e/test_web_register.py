"""The registrant's pages over HTTP (Flask's test client against the real app and SQLite): a
logon that needs a palm not yet enrolled stops at the REGISTER step, whose token reaches only
the registration pages (R14, R8); consent decides between the remote path and the station;
the photo ID upload's limits; enrolment captures checked like logon captures (R11, R12); and
the logon going on to the palm just registered."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from adapters.vein import open_reader
from authsvc.domain.messages import text
from authsvc.domain.roles import Actor, Role
from authsvc.services import registration, vein
from authsvc.services.accounts import OPERATIONS_CONTRACT
from authsvc.store.models import RegistrationSession
from tests.e2e.test_web_console import (
    ACCOUNT_ADMIN,
    BASE,
    COMPANY,
    JPEG,
    PALM,
    PASSWORD,
    QUALITY,
    TERMINAL,
    Web,
    b64decode,
    captures,
    console,
    console_token,
    cookie,
    evidence_rows,
    get,
    log_on,
    make_web,
    post,
    state_of,
    where,
)
from tests.e2e.test_web_console import web as web
from tests.integration.support import events

SATO = Actor("sato", frozenset({Role.SYSTEM_ADMIN}), company=COMPANY)  # of C-1, as the registrants
MIB = 1024 * 1024


def populate(web: Web) -> Web:
    web.person("yamada")  # a user: password changed, no second factor, palm vein the policy's
    web.person("ito", name="伊藤 五郎", consent=True)
    web.person("sato", role="system_admin", name="佐藤 一郎", otp=True)
    web.person("kato", role="account_admin", name="加藤 六郎", otp=True)
    web.person("kanri", role="staff", name="管理 三郎", contract=OPERATIONS_CONTRACT, otp=True)
    return web


@pytest.fixture
def world(web):
    return populate(web)


@pytest.fixture(params=["sqlite", "production"])
def any_world(request, make_deps):
    """The embedded default, and the production shape: PostgreSQL with Redis counters and
    sessions (the registration token and the console session live in Redis there)."""
    if request.param == "production":
        made = make_web(make_deps, "postgres", counters={"backend": "redis"},
                        sessions={"backend": "redis"})
    else:
        made = make_web(make_deps)
    yield populate(made)
    made.reader.close()


def at_register(web: Web, user_id: str = "yamada") -> Any:
    """A browser whose logon of `user_id` stopped at the registration step."""
    client = web.client()
    assert where(post(client, "/login", {"user_id": user_id, "password": PASSWORD})) == "/register/"
    return client


def opened(web: Web, client: Any) -> str:
    path = where(post(client, "/register/open"))
    assert path.startswith("/register/") and len(path) > len("/register/")
    return path.removeprefix("/register/")


def joined(web: Web, user_id: str = "yamada", consent: bool = True) -> tuple[Any, str]:
    """The registrant's browser and their session, joined by sato."""
    if consent:
        registration.record_consent(web.deps, ACCOUNT_ADMIN, user_id, True)
    client = at_register(web, user_id)
    sid = opened(web, client)
    registration.join(web.deps, SATO, sid)
    return client, sid


def confirmed(web: Web) -> tuple[Any, str]:
    client, sid = joined(web)
    assert post(client, f"/register/{sid}/id", body=JPEG).status_code == 200
    registration.confirm(web.deps, SATO, sid)
    return client, sid


def challenges(client: Any, sid: str) -> list[dict[str, str]]:
    made = post(client, f"/register/{sid}/vein/challenges", json={})
    assert made.status_code == 200, made.json
    assert len(made.json["challenges"]) == registration.ENROL_SAMPLES
    return made.json["challenges"]


def enrol(client: Any, sid: str, items: Any) -> Any:
    return post(client, f"/register/{sid}/vein/enrol", json={"captures": items})


def at_the_station(web: Web, user_id: str, document: str = "passport") -> Any:
    """kanri (agency staff) enrols `user_id`'s palm in person at the registration station."""
    station = console(web, "kanri")
    form = {"user_id": user_id, "id_document": document, "id_checked": "yes"}
    made = post(station, "/console/enrol/challenges", json=form)
    return post(station, "/console/enrol/vein",
                json={**form, "captures": captures(web.reader, made.json["challenges"])})


def sessions_of(web: Web, user_id: str) -> int:
    with web.deps.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(RegistrationSession)
                                  .where(RegistrationSession.registrant == user_id))


# ---- what the registrant's token reaches ----------------------------------------------------


def test_a_registrant_token_reaches_only_the_registration_pages(world):
    web = world
    client = at_register(web)
    token = cookie(client)
    assert token
    assert where(get(client, "/home")) == "/"
    assert where(get(client, "/")) == "/register/"
    for page in ("/factor", "/enrol", "/enrol/totp", "/factor/vein", "/factor/webauthn", "/password",
                 "/lock"):
        assert get(client, page).status_code == 302, page
    for path in ("/vein/challenge", "/webauthn/options"):
        resp = post(client, path, json={})
        assert resp.status_code == 401 and resp.json["error"] == "logon_failed", path
    bearer = {"Authorization": f"Bearer {token}"}
    for path in ("/api/v1/session", "/api/v1/history", "/api/v1/sessions"):
        assert client.get(path, base_url=BASE, headers=bearer).status_code == 401, path
    totp_enrol = client.post("/api/v1/logon/totp/enrol", base_url=BASE, json={}, headers=bearer)
    assert totp_enrol.status_code == 401
    assert where(get(client, "/console/")) == "/console/logon/"
    client.set_cookie("authsvc_console", token, domain="localhost", path="/console")
    assert where(get(client, "/console/")) == "/console/logon/"
    assert post(client, "/console/enrol/challenges", json={}).status_code == 401
    # nothing was opened or issued on its behalf; the registration page is still its own
    assert web.deps.sessions.of_user("yamada") == {}
    assert vein.is_enrolled(web.deps, "yamada") is False
    page = get(client, "/register/")
    assert page.status_code == 200 and 'id="register-in-person"' in page.get_data(as_text=True)
    [noted] = [e for e in events(web.deps, "logon.password", "yamada")]
    assert noted.result == "ok"


def test_each_registration_request_restarts_the_logon_clock(world):
    web = world
    client = at_register(web)
    minutes = web.deps.settings.mfa.logon_minutes
    for _ in range(3):  # attended at length: each visit gives the logon its time again
        web.deps.clock.advance(minutes=minutes - 1)
        assert get(client, "/register/").status_code == 200
    web.deps.clock.advance(minutes=minutes, seconds=1)
    assert where(get(client, "/register/")) == "/"  # left alone too long: the logon is gone


def test_the_registration_pages_need_a_logon_waiting_there(world):
    web = world
    nobody = web.client()
    assert where(get(nobody, "/register/")) == "/"
    assert where(post(nobody, "/register/open")) == "/"
    assert where(get(nobody, "/register/some-session")) == "/"
    assert get(nobody, "/register/some-session/state.json").status_code == 401
    assert post(nobody, "/register/some-session/id", body=JPEG).status_code == 401
    assert post(nobody, "/register/some-session/vein/challenges", json={}).status_code == 401
    assert post(nobody, "/register/some-session/vein/enrol", json={"captures": []}).status_code == 401
    assert where(post(nobody, "/register/continue")) == "/"
    # neither a logon at another step nor a complete session is a registrant
    halfway = web.client()
    assert where(post(halfway, "/login", {"user_id": "sato", "password": PASSWORD})) == "/factor"
    assert where(get(halfway, "/register/")) == "/"
    assert where(post(halfway, "/register/open")) == "/"
    signed_in = web.client()
    assert where(log_on(web, signed_in, "sato")) == "/home"
    assert where(get(signed_in, "/register/")) == "/"
    assert where(post(signed_in, "/register/open")) == "/"
    assert sessions_of(web, "sato") == 0
    assert get(signed_in, "/home").status_code == 200  # and the session was left alone


def test_consent_decides_between_the_remote_path_and_the_station(world):
    web = world
    client = at_register(web)
    page = get(client, "/register/").get_data(as_text=True)
    assert 'id="register-in-person"' in page and 'id="register-remote"' not in page
    assert text("ui_register_in_person", "ja") in page
    refused = post(client, "/register/open")  # the button is not there; the request is refused too
    assert refused.status_code == 409
    assert text("registration_no_consent", "ja") in refused.get_data(as_text=True)
    [audited] = events(web.deps, "registration.open", "yamada")
    assert audited.result == "refused" and audited.data["reason"] == "registration_no_consent"
    assert sessions_of(web, "yamada") == 0
    # an account administrator records consent in the console
    admin = console(web, "kato")
    recorded = post(admin, "/console/consent", {"user_id": "yamada", "given": "yes"})
    assert where(recorded) == "/console/consent?done=yamada&given=yes"
    page = get(client, "/register/").get_data(as_text=True)
    assert 'id="register-remote"' in page and 'id="register-in-person"' not in page


def test_opening_twice_gives_the_same_live_session(world):
    web = world
    client = at_register(web, "ito")
    sid = opened(web, client)
    assert opened(web, client) == sid
    assert where(get(client, "/register/")) == f"/register/{sid}"  # back to it, not a new one
    page = get(client, f"/register/{sid}")
    assert page.status_code == 200 and 'data-state="waiting"' in page.get_data(as_text=True)
    assert get(client, f"/register/{sid}/state.json").json == {"state": "waiting"}
    assert sessions_of(web, "ito") == 1
    assert [e.action for e in events(web.deps, subject="ito") if e.action == "registration.opened"] == [
        "registration.opened"]


def test_another_users_session_is_not_theirs(world):
    web = world
    ito, theirs = joined(web, "ito", consent=False)
    client, own = joined(web)
    page = get(client, f"/register/{theirs}")
    assert page.status_code == 403 and 'id="registration"' not in page.get_data(as_text=True)
    assert get(client, f"/register/{theirs}/state.json").status_code == 403
    upload = post(client, f"/register/{theirs}/id", body=JPEG)
    assert upload.status_code == 403 and upload.json["error"] == "registration_not_registrant"
    assert post(client, f"/register/{theirs}/vein/challenges", json={}).status_code == 403
    assert evidence_rows(web.deps) == 0 and state_of(web.deps, theirs) == "joined"
    assert get(client, "/register/no-such-session").status_code == 404
    assert get(client, "/register/no-such-session/state.json").status_code == 404
    assert get(ito, f"/register/{theirs}").status_code == 200 and own != theirs


# ---- the photo ID ---------------------------------------------------------------------------


# The photo ID may be up to 2 MiB although the logon forms are held to 64 KiB: the limit is
# raised for this endpoint before the CSRF check reads the body, and a refusal is JSON the
# page's script can show.


def test_an_oversized_upload_is_refused_and_nothing_stored(world):
    web = world
    client, sid = joined(web)
    resp = post(client, f"/register/{sid}/id", body=b"\xff\xd8\xff" + b"\0" * (3 * MIB))
    assert resp.status_code == 413
    assert evidence_rows(web.deps) == 0 and state_of(web.deps, sid) == "joined"
    assert not events(web.deps, "registration.id_captured", "yamada")
    assert post(client, f"/register/{sid}/id", body=JPEG).json == {"state": "id_captured"}


def test_an_oversized_upload_answers_in_json(world):
    web = world
    client, sid = joined(web)
    resp = post(client, f"/register/{sid}/id", body=b"\xff\xd8\xff" + b"\0" * (3 * MIB))
    assert resp.status_code == 413
    assert resp.is_json and resp.json["error"] == "registration_image_too_large"


def test_just_over_the_image_limit_is_refused_by_the_service(world):
    web = world
    client, sid = joined(web)
    body = b"\xff\xd8\xff" + b"\0" * (registration.MAX_IMAGE_BYTES - 2)  # one byte too many
    resp = post(client, f"/register/{sid}/id", body=body)
    assert resp.status_code == 413 and resp.is_json
    assert resp.json["error"] == "registration_image_too_large"
    assert resp.json["message"] == text("registration_image_too_large", "ja", limit=2)
    assert evidence_rows(web.deps) == 0 and state_of(web.deps, sid) == "joined"


def test_a_camera_sized_image_is_accepted(world):
    """A still from a real camera is easily larger than the logon forms' 64 KiB."""
    web = world
    client, sid = joined(web)
    image = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 1024 + b"\xff\xd9"  # 256 KiB
    resp = post(client, f"/register/{sid}/id", body=image)
    assert resp.status_code == 200 and resp.json == {"state": "id_captured"}
    assert evidence_rows(web.deps) == 1


def test_a_non_image_is_refused(world):
    web = world
    client, sid = joined(web)
    for body in (b"GIF89a" + b"x" * 64, b"%PDF-1.7 not a photo", b""):
        resp = post(client, f"/register/{sid}/id", body=body)
        assert resp.status_code == 400 and resp.json["error"] == "registration_image_invalid", body[:8]
    assert evidence_rows(web.deps) == 0 and state_of(web.deps, sid) == "joined"
    refused = [e for e in events(web.deps, "registration.capture_id", "yamada")]
    assert [e.data["reason"] for e in refused] == ["registration_image_invalid"] * 3
    assert post(client, f"/register/{sid}/id", body=JPEG).json == {"state": "id_captured"}


def test_no_image_before_an_administrator_attends(world):
    web = world
    registration.record_consent(web.deps, ACCOUNT_ADMIN, "yamada", True)
    client = at_register(web)
    sid = opened(web, client)
    resp = post(client, f"/register/{sid}/id", body=JPEG)
    assert resp.status_code == 409 and resp.json["error"] == "registration_wrong_step"
    assert evidence_rows(web.deps) == 0


# ---- the palm: enrolment captures -----------------------------------------------------------


def _refused(web: Web, client: Any, sid: str, items: Any, reason: str) -> None:
    resp = enrol(client, sid, items)
    assert resp.status_code == 409 and resp.json["error"] == "vein_capture_refused", resp.json
    assert resp.json["message"] == text("vein_capture_refused", "ja")
    last = events(web.deps, "vein.capture", "yamada")[-1]
    assert (last.result, last.data["reason"], last.data["purpose"]) == ("refused", reason, "enrol")
    assert state_of(web.deps, sid) == "confirmed"  # the registrant may try again
    assert not vein.is_enrolled(web.deps, "yamada")


def test_enrolment_captures_are_checked_like_logon_captures(world):
    web = world
    client, sid = confirmed(web)
    made = challenges(client, sid)
    _refused(web, client, sid, [{"challenge_id": made[0]["id"], "capture": {"junk": True}}], "malformed")
    # the challenge was spent by that attempt: a good capture for it is a replay now
    good = captures(web.reader, made)
    _refused(web, client, sid, good, "challenge")
    _refused(web, client, sid, captures(web.reader, challenges(client, sid), purpose="verify"), "purpose")
    rogue = open_reader("emulated", seed=0, key=Ed25519PrivateKey.generate(), reader_id="ROGUE-1",
                        clock=web.deps.clock)
    try:
        _refused(web, client, sid, captures(rogue, challenges(client, sid)), "device_not_active")
        # the registered terminal's name, another key: the signature gives it away
        impostor = open_reader("emulated", seed=0, key=Ed25519PrivateKey.generate(), reader_id=TERMINAL,
                               clock=web.deps.clock)
        try:
            _refused(web, client, sid, captures(impostor, challenges(client, sid)), "signature")
        finally:
            impostor.close()
    finally:
        rogue.close()
    # challenges of another enrolment (the station's) are not this session's
    station = console(web, "kanri")
    theirs = post(station, "/console/enrol/challenges",
                  json={"user_id": "yamada", "id_document": "passport", "id_checked": "yes"})
    _refused(web, client, sid, captures(web.reader, theirs.json["challenges"]), "challenge")
    bad_shape = enrol(client, sid, "not a list")
    assert bad_shape.status_code == 400 and bad_shape.json["error"] == "request_invalid"
    # after all that, a proper reading enrols the palm
    done = enrol(client, sid, captures(web.reader, challenges(client, sid)))
    assert done.status_code == 200 and done.json == {"next": f"/register/{sid}"}
    assert state_of(web.deps, sid) == "enrolled" and vein.is_enrolled(web.deps, "yamada")
    [witnessed] = events(web.deps, "vein.enrol", "yamada")
    assert witnessed.actor == "sato"  # the attending administrator is the witness


def test_no_enrolment_before_the_identity_is_confirmed(world):
    web = world
    client, sid = joined(web)
    resp = post(client, f"/register/{sid}/vein/challenges", json={})
    assert resp.status_code == 409 and resp.json["error"] == "registration_wrong_step"
    assert post(client, f"/register/{sid}/id", body=JPEG).status_code == 200
    assert post(client, f"/register/{sid}/vein/challenges", json={}).status_code == 409
    assert not vein.is_enrolled(web.deps, "yamada")


# ---- back to the logon ----------------------------------------------------------------------


def _vein_logon(web: Web, client: Any) -> Any:
    made = post(client, "/vein/challenge", json={})
    assert made.status_code == 200, made.json
    web.reader.control.present(PALM, quality=QUALITY)
    cap = web.reader.capture("verify", b64decode(made.json["challenge"]))
    return post(client, "/vein/verify", json={"challenge_id": made.json["challenge_id"],
                                              "capture": cap.to_dict()})


def test_the_full_remote_path_goes_on_to_a_palm_vein_logon(any_world):
    web = any_world
    registration.record_consent(web.deps, ACCOUNT_ADMIN, "yamada", True)
    client = at_register(web)
    registering = cookie(client)
    assert where(post(client, "/register/continue")) == "/register/"  # nothing enrolled yet
    sid = opened(web, client)
    admin = console(web, "sato")
    assert where(post(admin, f"/console/registrations/{sid}/join")) == f"/console/registrations/{sid}"
    assert get(client, f"/register/{sid}/state.json").json == {"state": "joined"}
    assert post(client, f"/register/{sid}/id", body=JPEG).json == {"state": "id_captured"}
    assert get(admin, f"/console/registrations/{sid}/id").data == JPEG
    assert where(post(admin, f"/console/registrations/{sid}/confirm")) == f"/console/registrations/{sid}"
    done = enrol(client, sid, captures(web.reader, challenges(client, sid)))
    assert done.status_code == 200
    page = get(client, f"/register/{sid}").get_data(as_text=True)
    assert 'id="continue"' in page
    # the logon goes on to the palm just registered
    assert where(post(client, "/register/continue")) == "/factor"
    assert cookie(client) == registering  # still the logon, not yet a session
    factor = get(client, "/factor")
    assert factor.status_code == 200 and "vein" in factor.get_data(as_text=True)
    assert where(get(client, "/register/")) == "/"  # no longer at the registration step
    answer = _vein_logon(web, client)
    assert answer.status_code == 200 and answer.json == {"next": "/home"}
    assert cookie(client) != registering
    assert get(client, "/home").status_code == 200
    [session] = [d for d in web.deps.sessions.of_user("yamada").values() if d.get("kind") == "session"]
    assert session["factors"] == ["password", "vein"] and session["surface"] == "user"
    assert where(post(admin, f"/console/registrations/{sid}/close")) == "/console/registrations"
    assert console_token(admin)


def test_registered_at_the_station_the_logon_goes_on(world):
    web = world
    client = at_register(web)
    assert 'id="register-in-person"' in get(client, "/register/").get_data(as_text=True)
    assert at_the_station(web, "yamada", "my_number_card").status_code == 200
    assert vein.is_enrolled(web.deps, "yamada")
    assert where(post(client, "/register/continue")) == "/factor"
    assert _vein_logon(web, client).json == {"next": "/home"}


def test_a_palm_disabled_after_failures_is_not_registered_again(world):
    """Enrolled but disabled (too many failures): back at the registration step, the page says
    to contact the operators and offers no remote registration; re-enrolment is theirs."""
    from sqlalchemy import update

    from authsvc.store.models import VeinEnrolment

    web = world
    assert at_the_station(web, "ito").status_code == 200  # ito has consent, too
    with web.deps.uow() as uow:
        uow.session.execute(update(VeinEnrolment).values(disabled_at=web.deps.clock.now()))
        uow.commit()
    client = at_register(web, "ito")
    page = get(client, "/register/").get_data(as_text=True)
    assert 'id="register-disabled"' in page and text("registration_vein_disabled", "ja") in page
    assert 'id="register-remote"' not in page and 'id="register-in-person"' not in page


# A second click on "continue" keeps the logon that had just moved on to the palm check, and a
# signed-in user keeps the cookie of their session.


def test_continuing_again_keeps_the_logon_and_a_session(world):
    web = world
    client = at_register(web)
    assert at_the_station(web, "yamada").status_code == 200
    assert where(post(client, "/register/continue")) == "/factor"
    post(client, "/register/continue")  # the button clicked twice
    assert get(client, "/factor").status_code == 200
    signed_in = web.client()
    assert where(log_on(web, signed_in, "sato")) == "/home"
    post(signed_in, "/register/continue")
    assert get(signed_in, "/home").status_code == 200
