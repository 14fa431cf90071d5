"""Roles (R8): what each may do, and where (R24: a company's administrators act only on their
company; agency operators on all). One table that the console, the API and the CLI all read."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum

from authsvc.domain.errors import DomainError, Forbidden, InvalidInput


class Role(StrEnum):
    AGENCY_OPERATOR = "agency_operator"  # agency operators above the companies
    SYSTEM_ADMIN = "system_admin"        # 保護システム管理者
    ACCOUNT_ADMIN = "account_admin"      # アカウント管理者
    STAFF = "staff"                      # 保護システム担当者
    DATA_MANAGER = "data_manager"        # データ管理責任者
    USER = "user"                        # 利用者
    PROCURING_OFFICE = "procuring_office"  # 事業元 (調達要求元): checks usage applications (R21)


class Perm(StrEnum):
    READ_ACCOUNTS = "read_accounts"              # search accounts, read state, history, reasons
    MANAGE_ACCOUNTS = "manage_accounts"          # create, update, suspend, resume, delete, reset
    UNLOCK = "unlock"
    END_SESSIONS = "end_sessions"                # end every session of an account (R16)
    APPROVE_IDENTIFIERS = "approve_identifiers"  # only system administrators (004 第6 1(1)ア)
    APPROVE_ACCESS = "approve_access"            # access-right changes of one's data (003 6)
    APPROVE_REMOTE = "approve_remote"            # remote access approved in advance (R17)
    MANAGE_CONTRACTS = "manage_contracts"        # the agency's contracts with companies
    READ_AUDIT = "read_audit"                    # only system administrators and staff (R22)
    RUN_MAINTENANCE = "run_maintenance"
    MANAGE_DEVICES = "manage_devices"            # register, suspend, revoke terminals/readers (R12)
    MANAGE_CLIENTS = "manage_clients"            # create, rotate, suspend, revoke service clients (R6)
    ENROL_BIOMETRICS = "enrol_biometrics"        # enrol a palm with the person present (R14)
    READ_EVIDENCE = "read_evidence"              # ID images: the agency's staff and admins only
    #                                              (registration._agency checks the agency, R14)
    SUBMIT_APPLICATIONS = "submit_applications"  # usage applications of one's company (R21)
    READ_APPLICATIONS = "read_applications"      # see applications and their state (R21)
    CHECK_APPLICATIONS = "check_applications"    # the procuring office checks against rosters (R21)
    APPROVE_APPLICATIONS = "approve_applications"  # the agency approves and issues (R21)
    MANAGE_ROSTERS = "manage_rosters"            # handler / system-user rosters per contract (R21)


_AGENCY_ONLY = frozenset({Perm.MANAGE_CONTRACTS, Perm.RUN_MAINTENANCE})
# R21: the steps of a usage application above the companies (the procuring office, the agency)
_ABOVE_COMPANIES = frozenset({Perm.CHECK_APPLICATIONS, Perm.APPROVE_APPLICATIONS,
                              Perm.MANAGE_ROSTERS})

# Least privilege (R8; 004 第4 4, 第5 2(1)イ,カ). The agency operator runs the gateway for every
# company; a company's system administrator approves identifiers and runs its terminals, its
# account administrator assigns identifiers and manages accounts, its staff help users (unlock,
# palm enrolment) and read its log; the data manager approves access to the data they own.
GRANTS: dict[Role, frozenset[Perm]] = {
    Role.AGENCY_OPERATOR: frozenset(Perm),
    Role.SYSTEM_ADMIN: frozenset(Perm) - _AGENCY_ONLY - _ABOVE_COMPANIES,
    Role.ACCOUNT_ADMIN: frozenset({Perm.READ_ACCOUNTS, Perm.MANAGE_ACCOUNTS, Perm.UNLOCK,
                                   Perm.END_SESSIONS, Perm.MANAGE_CLIENTS}),
    Role.STAFF: frozenset({Perm.READ_ACCOUNTS, Perm.READ_AUDIT, Perm.UNLOCK, Perm.END_SESSIONS,
                           Perm.ENROL_BIOMETRICS, Perm.READ_EVIDENCE}),
    Role.DATA_MANAGER: frozenset({Perm.APPROVE_ACCESS}),
    Role.USER: frozenset(),
    # the procuring office checks applications against the rosters it keeps (services/applications.py
    # admits it only on the agency's operations contract)
    Role.PROCURING_OFFICE: frozenset({Perm.READ_APPLICATIONS, Perm.CHECK_APPLICATIONS,
                                      Perm.MANAGE_ROSTERS}),
}


class Scope(StrEnum):
    """What a service client may be given (R6): processes acting for the gateway, such as the
    directory sync, authenticate as themselves with a scope each."""

    ACCOUNTS_READ = "accounts:read"
    ACCOUNTS_WRITE = "accounts:write"
    DIRECTORY_SYNC = "directory:sync"
    AUDIT_READ = "audit:read"
    DEVICES_WRITE = "devices:write"


# Approvals are for humans: no scope ever grants these (nor palm enrolment with the person
# present, registration evidence, or the management of service clients themselves).
HUMAN_ONLY = frozenset({Perm.APPROVE_IDENTIFIERS, Perm.APPROVE_ACCESS, Perm.APPROVE_REMOTE,
                        Perm.MANAGE_CONTRACTS, Perm.RUN_MAINTENANCE, Perm.ENROL_BIOMETRICS,
                        Perm.READ_EVIDENCE, Perm.MANAGE_CLIENTS, Perm.SUBMIT_APPLICATIONS,
                        Perm.CHECK_APPLICATIONS, Perm.APPROVE_APPLICATIONS, Perm.MANAGE_ROSTERS})

SCOPES: dict[Scope, frozenset[Perm]] = {
    Scope.ACCOUNTS_READ: frozenset({Perm.READ_ACCOUNTS}),
    Scope.ACCOUNTS_WRITE: frozenset({Perm.READ_ACCOUNTS, Perm.MANAGE_ACCOUNTS, Perm.UNLOCK,
                                     Perm.END_SESSIONS}),
    Scope.DIRECTORY_SYNC: frozenset({Perm.READ_ACCOUNTS, Perm.MANAGE_ACCOUNTS}),
    Scope.AUDIT_READ: frozenset({Perm.READ_AUDIT}),
    Scope.DEVICES_WRITE: frozenset({Perm.MANAGE_DEVICES}),
}


def parse_scopes(values: object) -> tuple[Scope, ...]:
    """Scopes from their names, each once, in the table's order; at least one, none unknown."""
    if not isinstance(values, (list, tuple)) or not values:
        raise InvalidInput("client_scopes_required", scopes=", ".join(Scope))
    found: set[Scope] = set()
    for value in values:
        try:
            found.add(Scope(value))
        except ValueError:
            raise InvalidInput("client_scope_unknown", scope=str(value)[:64],
                              scopes=", ".join(Scope)) from None
    return tuple(s for s in Scope if s in found)


def scope_grants(scopes: tuple[Scope, ...] | list[Scope]) -> frozenset[Perm]:
    """The rights the scopes give together (never one of HUMAN_ONLY)."""
    granted = frozenset().union(*(SCOPES[s] for s in scopes))
    return granted - HUMAN_ONLY


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise DomainError("role_unknown", role=value) from None


def company_key(name: str | None) -> str:
    """Company names compare after NFKC, case folding and whitespace collapsing."""
    return " ".join(unicodedata.normalize("NFKC", name or "").split()).casefold()


@dataclass(frozen=True)
class Actor:
    """Who performs an action: a signed-in account, or a process with its own identifier (R6).
    `company` is the company the actor administers ("" for none: only an agency operator, who
    administers every company, needs no company to act). `grants`, when set, bounds what the
    roles give (a service client: its roles are the ceiling and its company reach, its scopes
    the rights it has within them); None for a person."""

    id: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    terminal: str = ""
    source: str = ""
    company: str = ""
    grants: frozenset[Perm] | None = None
    maintenance: bool = False  # a maintenance account (R26): every action of it is flagged

    def can(self, perm: Perm) -> bool:
        if self.grants is not None and perm not in self.grants:
            return False
        return any(perm in GRANTS[r] for r in self.roles)

    @property
    def process(self) -> bool:
        """A process acting with a scope of its own (a service client), not a person."""
        return self.grants is not None

    def require(self, perm: Perm) -> None:
        if not self.can(perm):
            raise Forbidden()

    @property
    def everywhere(self) -> bool:
        """An agency operator (or a process acting for the agency) reaches every company."""
        return Role.AGENCY_OPERATOR in self.roles

    def reaches(self, company: str | None) -> bool:
        """Whether this actor administers what belongs to `company` (None: to no company,
        e.g. a terminal that serves every company: the agency's)."""
        if self.everywhere:
            return True
        return bool(company) and bool(self.company) and company_key(company) == company_key(self.company)
