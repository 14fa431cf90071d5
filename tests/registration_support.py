"""Biometric registration, for the tests that drive it: the service over the in-memory fakes
(tests/unit/test_registration_service.py) and the ID image evidence at rest in a real
database (tests/integration/test_registration.py). The companies, the actors and the world
they share."""

from __future__ import annotations

from authsvc.domain.roles import Actor, Role
from authsvc.services import Deps, registration
from authsvc.services.accounts import OPERATIONS_CONTRACT
from tests.conftest import COMPANY
from tests.integration.support import Event, add_contract, events, ready

OTHER_COMPANY = "別会社株式会社"
AGENCY_COMPANY = "DSG運用"  # the company of the operations contract: the agency's own
MARKER = b"PASSPORT-PHOTO-MARKER-7731"
IMAGE = b"\xff\xd8\xff\xe0" + MARKER * 200 + b"\xff\xd9"

REGISTRANT = Actor("yamada", frozenset({Role.USER}), terminal="TERMINAL-1", source="10.0.0.8",
                   company=COMPANY)
ADMIN = Actor("sato", frozenset({Role.SYSTEM_ADMIN}), terminal="CONSOLE-S", source="10.0.0.9",
              company=COMPANY)
OTHER_ADMIN = Actor("suzuki", frozenset({Role.SYSTEM_ADMIN}), terminal="CONSOLE-X",
                    company=OTHER_COMPANY)
AGENCY_STAFF = Actor("kanri", frozenset({Role.STAFF}), terminal="STATION-1", company=AGENCY_COMPANY)
AGENCY_ADMIN = Actor("unyo", frozenset({Role.SYSTEM_ADMIN}), terminal="OPS-1", company=AGENCY_COMPANY)
# The account administrators who create the other companies' accounts (R24: each its own).
OTHER_ACCOUNT_ADMIN = Actor("acctadm-x", frozenset({Role.ACCOUNT_ADMIN}), company=OTHER_COMPANY)
AGENCY_ACCOUNT_ADMIN = Actor("acctadm-ops", frozenset({Role.ACCOUNT_ADMIN}), company=AGENCY_COMPANY)


def build_world(deps: Deps, operator: Actor, account_admin: Actor) -> Deps:
    """The contracts of COMPANY, OTHER_COMPANY and the agency, with the actors' accounts ready."""
    add_contract(deps, operator)
    add_contract(deps, operator, "C-2026-002", COMPANY)  # the same company's second contract
    add_contract(deps, operator, "C-2026-900", OTHER_COMPANY)
    add_contract(deps, operator, OPERATIONS_CONTRACT, AGENCY_COMPANY)
    ready(deps, account_admin, operator, "yamada", name="山田 花子")
    ready(deps, account_admin, operator, "sato", name="佐藤 一郎", role="system_admin")
    ready(deps, OTHER_ACCOUNT_ADMIN, operator, "suzuki", name="鈴木 次郎", contract="C-2026-900",
          role="system_admin")
    ready(deps, AGENCY_ACCOUNT_ADMIN, operator, "kanri", name="管理 三郎",
          contract=OPERATIONS_CONTRACT, role="staff")
    ready(deps, AGENCY_ACCOUNT_ADMIN, operator, "unyo", name="運用 四郎",
          contract=OPERATIONS_CONTRACT, role="system_admin")
    return deps


def confirmed_session(deps: Deps, operator: Actor, who: Actor = REGISTRANT) -> str:
    """A remote session of `who`, consent recorded, ID image captured and confirmed by ADMIN."""
    registration.record_consent(deps, operator, who.id, True)
    sid = registration.open_session(deps, who, who.id).id
    registration.join(deps, ADMIN, sid)
    registration.capture_id(deps, who, sid, IMAGE)
    registration.confirm(deps, ADMIN, sid)
    return sid


def reg_events(deps: Deps, subject: str = "yamada") -> list[Event]:
    """The registration audit events about `subject`, in chain order."""
    return [e for e in events(deps, subject=subject) if e.action.startswith("registration.")]
