"""One human, two identities, at the same moment (R14): two enrolments of the same palm for two
person records, run in parallel so that each searches the enrolled palms before either has
written, must not both succeed. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from adapters.vein import open_reader
from authsvc.domain.errors import DomainError
from authsvc.domain.roles import Actor, Role
from authsvc.services import vein
from tests.integration.support import active_account, add_contract, events

PALM = 42
STAFF = Actor("kanri", frozenset({Role.STAFF}), terminal="STATION-1")


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
