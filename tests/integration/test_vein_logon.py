"""Palm vein as the second factor where the database matters (R11-R15): templates re-sealed
under a key ring rotated in the configuration, no sample or clear template at rest (columns,
SQLite files, SQL logs), and concurrent replays of one sample under the enrolment's row lock,
on SQLite and PostgreSQL. The service's rules over the in-memory fakes:
tests/unit/test_vein_service.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.vein import VeinReader, open_reader
from authsvc.domain.roles import Actor, Role
from authsvc.services import devices, logon, vein
from tests.conftest import COMPANY
from tests.integration.support import CHOSEN, add_contract
from tests.vein_support import (
    CLIENT,
    PALM,
    VEIN_POLICY,
    alerts,
    b64d,
    borrowed_reader,
    capture_for,
    enrolled_user,
    forge,
    logon_to_vein,
    ready,
    reasons,
    station_readers,
)


@pytest.fixture
def deps(make_deps, backend):
    return make_deps(backend, mfa=VEIN_POLICY)


@pytest.fixture
def station(deps, operator) -> Iterator[dict[str, VeinReader]]:
    yield from station_readers(deps, operator)


@pytest.fixture
def user(deps, operator, account_admin, station) -> str:
    return enrolled_user(deps, operator, account_admin, station["station"])


@pytest.fixture
def borrowed(deps, operator) -> Iterator[VeinReader]:
    yield from borrowed_reader(deps, operator)


def test_templates_are_sealed_and_resealed_after_key_rotation(make_deps, operator, account_admin,
                                                              monkeypatch, tmp_path):
    import os

    from sqlalchemy import select

    from authsvc.store.models import VeinEnrolment

    k1 = os.urandom(32).hex()
    monkeypatch.setenv("AUTHSVC_DATA_KEYS", f"k1:{k1}")
    deps = make_deps("sqlite", mfa=VEIN_POLICY)
    add_contract(deps, operator)
    ready(deps, account_admin, operator, "yamada", CHOSEN[0])
    key = Ed25519PrivateKey.generate()
    terminal = open_reader("emulated", seed=0, key=key, reader_id="T-1", clock=deps.clock)
    import base64
    devices.register(deps, operator, "T-1", base64.urlsafe_b64encode(terminal.public_key_bytes()).decode())

    def enrol_capture(ch):
        terminal.control.present(PALM)
        return terminal.capture("enrol", ch)

    staff = Actor("staff1", frozenset({Role.STAFF}), company=COMPANY)  # of yamada's company
    vein.enrol(deps, staff, "yamada", terminal, enrol_capture)
    with deps.uow() as uow:
        sealed = uow.session.scalars(select(VeinEnrolment.template)).one()
    assert sealed.startswith("v1.k1.")
    monkeypatch.setenv("AUTHSVC_DATA_KEYS", f"k2:{os.urandom(32).hex()},k1:{k1}")
    rotated = make_deps("sqlite", mfa=VEIN_POLICY)  # same database, new primary key
    token = logon_to_vein(rotated)
    made, cap = capture_for(rotated, token, terminal)
    assert logon.vein_step(rotated, token, made.id, cap.to_dict(), CLIENT).step.value == "done"
    with rotated.uow() as uow:
        assert uow.session.scalars(select(VeinEnrolment.template)).one().startswith("v1.k2.")
    terminal.close()


def test_no_biometric_sample_or_clear_template_is_stored_or_logged(deps, user, station, caplog):
    """R15: only the sealed template is kept; samples never reach the database or the logs."""
    import logging

    from adapters.vein.records import b64url
    from tests.integration.support import dump_all

    caplog.set_level(logging.DEBUG)
    token = logon_to_vein(deps)
    made, cap = capture_for(deps, token, station["terminal"])
    assert logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT).step.value == "done"
    dump = dump_all(deps).encode()
    logs = caplog.text.encode()
    for needle in (cap.sample, cap.sample.hex().encode(), b64url(cap.sample).encode(),
                   cap.sample[8:40]):
        assert needle not in dump and needle not in logs
    from sqlalchemy import select

    from authsvc.store.models import VeinEnrolment
    with deps.uow() as uow:
        sealed = uow.session.scalars(select(VeinEnrolment.template)).one()
    assert sealed.startswith("v1.")  # AES-256-GCM sealed, never the clear template


@pytest.mark.backends("sqlite", "postgres")  # concurrency: the production shape is the point
def test_concurrent_replays_of_one_sample_let_at_most_one_through(deps, user, station, borrowed):
    """One sample, never seen before, bound to several challenges of the user and sent at
    once: checked and recorded under the enrolment's row lock, so exactly one passes."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    terminal = station["terminal"]
    terminal.control.present(PALM)
    original = terminal.capture("verify", bytes(32))  # read, never sent: the server has not seen it
    copies = []
    for _ in range(4):
        made = vein.issue_challenge(deps, "yamada")
        copies.append((made.id, forge(deps, original, borrowed._key, "TERMINAL-2", b64d(made.challenge))))
    start = threading.Barrier(len(copies))

    def send(item):
        cid, cap = item
        start.wait(timeout=30)
        return vein.verify(deps, "yamada", cid, cap.to_dict(), Actor("yamada", terminal="TERMINAL-2"))

    with ThreadPoolExecutor(max_workers=len(copies)) as pool:
        results = list(pool.map(send, copies))
    assert results.count(True) == 1, results
    assert len(alerts(deps)) == len(copies) - 1
    assert reasons(deps).count("replayed_sample") == len(copies) - 1


def test_what_is_kept_of_the_samples_cannot_give_one_back(deps, user, station, borrowed, caplog):
    """R15 with the replay check: the database keeps only 64-byte keyed digests per sample seen;
    no sample, no run of its features, in any column, in the SQLite files, or in the log (DEBUG,
    SQL included)."""
    import logging

    from sqlalchemy import select

    from adapters.vein import replay
    from adapters.vein.records import b64url
    from authsvc.store.models import VeinEnrolment
    from tests.integration.support import dump_all

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    samples = []
    for _ in range(3):
        token = logon_to_vein(deps)
        made, cap = capture_for(deps, token, station["terminal"])
        assert logon.vein_step(deps, token, made.id, cap.to_dict(), CLIENT).step.value == "done"
        samples.append(cap.sample)
    made = logon.vein_challenge(deps, token := logon_to_vein(deps))
    forged = forge(deps, cap, borrowed._key, "TERMINAL-2", b64d(made.challenge))
    logon.vein_step(deps, token, made.id, forged.to_dict(), CLIENT)
    assert reasons(deps)[-1] == "replayed_sample"
    with deps.uow() as uow:
        kept = uow.session.scalars(select(VeinEnrolment.seen_samples)).one()
    assert len(kept) == 1 + replay.RECORD * (3 + 3 + 1)  # enrolment readings, logons, the replay
    columns = []
    with deps.engine.connect() as conn:
        for table in VeinEnrolment.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                columns += [v if isinstance(v, bytes) else str(v).encode() for v in row]
    stored = b"\x00".join(columns) + dump_all(deps).encode()
    if deps.engine.dialect.name == "sqlite":
        from pathlib import Path

        stored += b"".join(p.read_bytes() for p in Path(deps.settings.instance_path).glob("authsvc.db*"))
    logs = caplog.text.encode()
    for sample in samples:
        features = sample[24:]
        runs = [features[i:i + 12] for i in range(0, len(features) - 12, 4)]
        for needle in (sample, sample.hex().encode(), b64url(sample).encode(), *runs):
            assert needle not in stored and needle not in logs
