"""Registration under concurrency (R14): two enrolments of one palm for two person records at
the same moment must not both succeed (one human, two identities); two administrators joining
one session at once, or a registrant opening twice, leave exactly one of each. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from adapters.vein import open_reader
from authsvc.domain.errors import DomainError
from authsvc.domain.roles import Actor, Role
from authsvc.services import vein
from tests.conftest import COMPANY
from tests.integration.support import active_account, add_contract, events

PALM = 42
# staff of the accounts' company (tests/integration/support.py), who may witness their palm
STAFF = Actor("kanri", frozenset({Role.STAFF}), terminal="STATION-1", company=COMPANY)


def test_parallel_enrolments_of_one_palm_for_two_persons(deps, operator, account_admin):
    add_contract(deps, operator)
    active_account(deps, account_admin, operator, "yamada", name="山田 花子")
    active_account(deps, account_admin, operator, "yamada2", name="山田 華子")  # another person record
    both_searched = threading.Barrier(2)

    def enrol(user_id: str) -> str:
        with open_reader("emulated", seed=0, reader_id=f"STATION-{user_id}", clock=deps.clock) as reader:
            first = [True]

            def take(challenge: bytes):
                if first[0]:  # both have read the enrolled palms (none yet) before either writes
                    first[0] = False
                    both_searched.wait(timeout=30)
                reader.control.present(PALM, quality=90)
                return reader.capture("enrol", challenge)

            try:
                vein.enrol(deps, STAFF, user_id, reader, take)
            except DomainError as exc:
                return exc.code
            return "enrolled"

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = sorted(pool.map(enrol, ["yamada", "yamada2"]))
    assert results == ["enrolled", "vein_duplicate_person"]
    assert vein.is_enrolled(deps, "yamada") != vein.is_enrolled(deps, "yamada2")
    alerts = [e for e in events(deps, "vein.duplicate_person") if e.result == "alert"]
    assert len(alerts) == 1


def test_parallel_joins_and_opens_leave_one_of_each(deps, operator, account_admin):
    """Two administrators of the company joining one session at once: exactly one attends.
    The registrant opening twice at once (two tabs): one session."""
    from authsvc.services import registration
    from authsvc.services.passwords import change_password
    from tests.integration.support import CHOSEN

    add_contract(deps, operator)
    for user_id, role in (("yamada", "user"), ("sato", "system_admin"), ("kato", "system_admin")):
        active_account(deps, account_admin, operator, user_id, name=f"{user_id} 太郎", role=role)
        change_password(deps, Actor(user_id), user_id, CHOSEN[0])
    registration.record_consent(deps, operator, "yamada", True)
    me = Actor("yamada", terminal="TERMINAL-1")
    gate = threading.Barrier(2)

    def open_once(_: int) -> str:
        gate.wait(timeout=30)
        return registration.open_session(deps, me, "yamada").id

    with ThreadPoolExecutor(max_workers=2) as pool:
        opened = set(pool.map(open_once, range(2)))
    assert len(opened) == 1
    [sid] = opened
    admins = [Actor(a, frozenset({Role.SYSTEM_ADMIN}), company=COMPANY) for a in ("sato", "kato")]

    def join(admin: Actor) -> str:
        gate.wait(timeout=30)
        try:
            return registration.join(deps, admin, sid).admin or ""
        except DomainError as exc:
            return exc.code

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(join, admins))
    winner = registration.get(deps, me, sid).admin
    assert winner in ("sato", "kato") and sorted(results) == sorted([winner, "registration_wrong_step"])
    assert len(events(deps, "registration.joined", "yamada")) == 1
    assert len(events(deps, "registration.opened", "yamada")) == 1
