"""Roles (R8) and what each may do; least privilege, checked by the services."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from authsvc.domain.errors import DomainError, Forbidden


class Role(StrEnum):
    AGENCY_OPERATOR = "agency_operator"  # agency operators above the companies
    SYSTEM_ADMIN = "system_admin"        # 保護システム管理者
    ACCOUNT_ADMIN = "account_admin"      # アカウント管理者
    STAFF = "staff"                      # 保護システム担当者
    DATA_MANAGER = "data_manager"        # データ管理責任者
    USER = "user"                        # 利用者


class Perm(StrEnum):
    MANAGE_ACCOUNTS = "manage_accounts"          # create, update, suspend, resume, delete, reset
    UNLOCK = "unlock"
    APPROVE_IDENTIFIERS = "approve_identifiers"  # only system administrators (004 第6 1(1)ア)
    MANAGE_CONTRACTS = "manage_contracts"
    READ_AUDIT = "read_audit"                    # only system administrators and staff (R22)
    RUN_MAINTENANCE = "run_maintenance"
    MANAGE_DEVICES = "manage_devices"            # register, suspend, revoke terminals/readers (R12)
    ENROL_BIOMETRICS = "enrol_biometrics"        # enrol a palm with the person present (R14)
    READ_EVIDENCE = "read_evidence"              # registration evidence (ID images): agency only (R14)


GRANTS: dict[Role, frozenset[Perm]] = {
    Role.AGENCY_OPERATOR: frozenset(Perm),
    Role.SYSTEM_ADMIN: frozenset(Perm),
    Role.ACCOUNT_ADMIN: frozenset({Perm.MANAGE_ACCOUNTS, Perm.UNLOCK}),
    Role.STAFF: frozenset({Perm.READ_AUDIT, Perm.UNLOCK, Perm.ENROL_BIOMETRICS, Perm.READ_EVIDENCE}),
    Role.DATA_MANAGER: frozenset(),
    Role.USER: frozenset(),
}


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise DomainError("role_unknown", role=value) from None


@dataclass(frozen=True)
class Actor:
    """Who performs an action: a signed-in account, or a process with its own identifier (R6)."""

    id: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    terminal: str = ""
    source: str = ""

    def can(self, perm: Perm) -> bool:
        return any(perm in GRANTS[r] for r in self.roles)

    def require(self, perm: Perm) -> None:
        if not self.can(perm):
            raise Forbidden()
