"""SQLAlchemy 2 tables: contracts, persons, identifiers, accounts, password history,
logon throttling and the audit chain. Times are stored in UTC and read back timezone-aware."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Contract(Base):
    __tablename__ = "contracts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    company: Mapped[str] = mapped_column(String(200))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)  # None: open-ended (agency operations)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # R21 (003 3, 4①): no usage application before the contract is concluded, and only for a
    # contract with the information-security clause or a documented exemption (通達第8項)
    concluded_on: Mapped[date | None] = mapped_column(Date)
    eligibility: Mapped[str | None] = mapped_column(String(16))  # clause | exemption
    exemption_note: Mapped[str | None] = mapped_column(String(200))  # the exemption's basis
    # a subcontract (003 4①(4)): the prime contractor's contract, whose company submits for it
    prime_contract_id: Mapped[int | None] = mapped_column(Integer)


class Person(Base):
    """The human behind one or more accounts (one per contract); enrolled biometrically once."""

    __tablename__ = "persons"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Identifier(Base):
    """The namespace of identifiers for accounts, devices and service processes (R6).
    A row outlives its holder: `released_at` is the tombstone that blocks early reuse."""

    __tablename__ = "identifiers"
    value: Mapped[str] = mapped_column(String(64), primary_key=True)  # canonical, lower-case
    kind: Mapped[str] = mapped_column(String(16))  # account | device | service
    holder_id: Mapped[int | None] = mapped_column(Integer)
    assigned_by: Mapped[str] = mapped_column(String(100))
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(100))
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)  # as assigned; canonical in identifiers
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"))
    role: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(512))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    first_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # R9: usage began
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    password_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # R7: revocation recorded
    leaves_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # R7: a departure recorded
    remote_until: Mapped[date | None] = mapped_column(Date)  # R17: remote access approved to
    # R26: a maintenance account, valid only inside its approved window
    window_starts_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    window_ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    person: Mapped[Person] = relationship(lazy="joined")
    contract: Mapped[Contract] = relationship(lazy="joined")


class PasswordHistory(Base):
    __tablename__ = "password_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    hash: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class LogonThrottle(Base):
    """Failed-attempt state per *submitted* identifier, whether or not an account exists (R4, R5)."""

    __tablename__ = "logon_throttle"
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    pending: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")  # in flight (lockout.py)


class AuditEvent(Base):
    """One audit event. Inserted by its action's transaction with `writer`, `wseq` and `emac`
    (domain/audit.sign_event) and no place in the chain yet; sealed into the chain by the
    sequencer (store/audit_chain.py), which sets `seq`, `prev_hash`, `hash` and `mac`. On
    SQLite events are sealed as they are inserted. A negative `seq` marks an event the
    sequencer refused (forged or replayed): kept for the verification to report."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    seq: Mapped[int | None] = mapped_column(Integer, unique=True)  # None until sealed
    ts: Mapped[str] = mapped_column(String(40))  # ISO 8601, JST, +09:00
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(100))
    result: Mapped[str] = mapped_column(String(32))
    terminal: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(100))
    detail: Mapped[str] = mapped_column(Text)  # canonical JSON
    writer: Mapped[str] = mapped_column(String(32), default="", server_default="")
    wseq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    emac: Mapped[str | None] = mapped_column(String(64))  # the event's MAC until it is sealed
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
    mac: Mapped[str | None] = mapped_column(String(64))  # signed checkpoint: HMAC of seq and hash

    __table_args__ = (Index("ix_audit_subject", "subject"), Index("ix_audit_action", "action"),
                      Index("ix_audit_ts", "ts"))  # reports' periods, retention's cut-off


class AuditHead(Base):
    """One row: the last sequence number and hash, signed with the audit key."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))


class AuditWriter(Base):
    """A writer's last sealed position (domain/audit.place), signed: the sequencer finds a
    writer's missing or replayed events by it."""

    __tablename__ = "audit_writers"
    writer: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_wseq: Mapped[int] = mapped_column(Integer)
    mac: Mapped[str] = mapped_column(String(64))


class AuditArchive(Base):
    """A run of audit events moved out to an archive file (R22 retention): the signed record
    that carries the chain across the rows no longer in the database (domain/audit.Archive)."""

    __tablename__ = "audit_archives"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_seq: Mapped[int] = mapped_column(Integer, unique=True)
    last_seq: Mapped[int] = mapped_column(Integer)
    first_prev_hash: Mapped[str] = mapped_column(String(64))
    last_hash: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    mac: Mapped[str] = mapped_column(String(64))


class TotpCredential(Base):
    """An account's TOTP secret, sealed with AES-256-GCM (key outside the database). `last_step`
    is the newest time step accepted: a code at or below it is a replay (R11)."""

    __tablename__ = "totp_credentials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), unique=True)
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_step: Mapped[int | None] = mapped_column(BigInteger)


class WebauthnCredential(Base):
    __tablename__ = "webauthn_credentials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1024), unique=True)
    credential_data: Mapped[bytes] = mapped_column(LargeBinary(4096))  # AttestedCredentialData
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Challenge(Base):
    """A single-use, short-lived server challenge (WebAuthn now, vein captures later): taken
    with DELETE ... RETURNING, so two requests can never both use one (R11)."""

    __tablename__ = "challenges"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(100))
    data: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class SessionRow(Base):
    """Server-side sessions for the embedded default (Redis holds them in production). The key
    is the SHA-256 of the session token, so the table holds no usable token."""

    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(64), index=True)
    data: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class LogonHistory(Base):
    """Every logon attempt (R9): the user sees their own, operators also see the real reason."""

    __tablename__ = "logon_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(100), index=True)  # canonical ID or pseudonym
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    result: Mapped[str] = mapped_column(String(16))  # ok | failed | refused
    step: Mapped[str] = mapped_column(String(32))  # password | totp | webauthn | unlock ...
    factors: Mapped[str] = mapped_column(String(100))
    terminal: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(100))
    remote: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(64))


class Device(Base):
    """A registered terminal or reader (R12): logons are accepted only through one that proves
    possession of the private key matching `public_key`. Its identifier lives in the shared
    identifier namespace (R6), so it is never reused for another device or account.

    Rows are never deleted: a revoked device's row is its key's tombstone. `key_fingerprint`
    (SHA-256 of the raw key, hex) is unique over every row in every state, so a key serves one
    device ID only, and a revoked key is refused for good, whatever happens to the identifier.
    NULL only on rows migration 0005 revoked as duplicates of an older row with the same key
    (which keeps the fingerprint). `company`: captures are accepted only for users of that
    company's contracts; NULL: any user (docs/decisions/0003-vein.md §8)."""

    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)  # as assigned
    kind: Mapped[str] = mapped_column(String(16))  # terminal | reader | token | card
    public_key: Mapped[bytes] = mapped_column(LargeBinary(64))  # raw Ed25519 public key
    key_fingerprint: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    company: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # active | suspended | revoked
    registered_by: Mapped[str] = mapped_column(String(100))
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(String(200), default="")


class VeinEnrolment(Base):
    """A person's palm-vein template, sealed with AES-256-GCM (R15); raw samples are never
    stored. One per person: every account of that person uses it (R7, R14)."""

    __tablename__ = "vein_enrolments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), unique=True)
    template: Mapped[str] = mapped_column(Text)  # sealed, bound to the person
    reader_id: Mapped[str] = mapped_column(String(64))
    enrolled_by: Mapped[str] = mapped_column(String(100))  # the witness
    enrolled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # NIST SP 800-63B-4 biometric attempt limits
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    total_failures: Mapped[int] = mapped_column(Integer, default=0)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delay_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # keyed one-way digests of the samples seen for the person, newest last, for the
    # replayed-sample check (adapters/vein/replay.py): never a sample or its features (R15)
    seen_samples: Mapped[bytes | None] = mapped_column(LargeBinary)


class Consent(Base):
    """Consent to remote biometric registration, including capture of the ID image (R14),
    recorded per account when the application is submitted (by an operator until the
    application import sets it). Without `given` no remote registration session opens."""

    __tablename__ = "registration_consents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), unique=True)
    given: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_by: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RegistrationSession(Base):
    """A remote biometric registration attended by the registrant's company's system
    administrator (R14). `id` is unguessable; the state machine is domain/registration.py."""

    __tablename__ = "registration_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    registrant: Mapped[str] = mapped_column(String(64))  # the registrant's user ID as assigned
    admin: Mapped[str | None] = mapped_column(String(64))  # the attending administrator's user ID
    admin_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    company: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), index=True)
    terminal: Mapped[str] = mapped_column(String(100))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_activity_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(String(200), default="")


class Evidence(Base):
    """A captured ID image, sealed with AES-256-GCM and bound to its session (R14, R15); its
    SHA-256 is in the audit log. Destroyed (sealed value emptied) after `retain_until`."""

    __tablename__ = "registration_evidence"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("registration_sessions.id"), index=True)
    sealed: Mapped[str] = mapped_column(Text)  # "" once destroyed
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    captured_by: Mapped[str] = mapped_column(String(100))
    captured_at: Mapped[datetime] = mapped_column(UtcDateTime)
    retain_until: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    destroyed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Group(Base):
    """A company's group (R8): which DSG services its members may use, and which second
    factors a logon of a member may use (R10; at least the password and one other kind)."""

    __tablename__ = "groups"
    __table_args__ = (Index("ix_groups_company_name", "company", "name", unique=True),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(100))
    factors: Mapped[str] = mapped_column(Text)   # JSON list: vein, totp, webauthn
    services: Mapped[str] = mapped_column(Text)  # JSON list of DSG service names
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class GroupMember(Base):
    """A membership: an access-right change (003 6①), requested and then approved."""

    __tablename__ = "group_members"
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(100))  # None: waiting for approval
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Alert(Base):
    """An alert for a company's operators (R25): raised by a rule, acknowledged by a person."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company: Mapped[str | None] = mapped_column(String(200), index=True)  # None: the agency's
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(100))
    detail: Mapped[str] = mapped_column(Text)  # JSON
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ServiceClient(Base):
    """A process acting for the gateway with an identifier of its own (R6): the directory sync,
    a reporting job. Its `client_id` (canonical) is claimed in the one namespace of identifiers
    (kind "service"), assigned by one administrator and approved by another; it authenticates
    with a secret of which only the argon2 hash is kept (None once revoked), and acts within its
    `scopes` (JSON list, domain/roles.py:SCOPES) for its `company` (NULL: the agency's, every
    company). Rows are never deleted: a revoked client's row is its identifier's history."""

    __tablename__ = "service_clients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)  # canonical
    company: Mapped[str | None] = mapped_column(String(200))
    scopes: Mapped[str] = mapped_column(Text)  # JSON list of scope names
    secret_hash: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16))  # pending | active | suspended | revoked
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(100))
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # "service": acts on the admin API within its scopes; "oidc": a relying party of the OpenID
    # provider ([8 of 12]), its registration in `oidc` (JSON, domain/relying_party.py). A kind's
    # credentials are never accepted by the other's endpoints.
    kind: Mapped[str] = mapped_column(String(16), default="service")
    oidc: Mapped[str | None] = mapped_column(Text)


class OidcCode(Base):
    """An authorization code ([8 of 12]): only its SHA-256 is kept; single-use (`used_at` set by
    the one redemption that wins), short-lived, and remembered until it expires so a replay is
    recognised (and revokes what the code issued)."""

    __tablename__ = "oidc_codes"
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(100))
    session_ref: Mapped[str] = mapped_column(String(64))  # the session it was issued in (its `sid`)
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(512))
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    auth_time: Mapped[datetime] = mapped_column(UtcDateTime)
    acr: Mapped[str] = mapped_column(String(64))
    amr: Mapped[str] = mapped_column(Text)  # JSON list
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class OidcGrant(Base):
    """What one authorization code issued to a relying party, and its refreshes: the access
    token and the refresh token (their SHA-256 only), bound to the session they came from; they
    die with it (`revoked_at`)."""

    __tablename__ = "oidc_grants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(100), index=True)
    session_ref: Mapped[str] = mapped_column(String(64), index=True)
    issuer: Mapped[str] = mapped_column(String(500))  # the `iss` its tokens carry (and its logout will)
    scope: Mapped[str] = mapped_column(Text)
    acr: Mapped[str] = mapped_column(String(64))
    amr: Mapped[str] = mapped_column(Text)  # JSON list
    auth_time: Mapped[datetime] = mapped_column(UtcDateTime)
    access_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    access_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    refresh_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class OidcLogout(Base):
    """A back-channel logout owed to a relying party (its outbox): retried until delivered or
    given up on (then an alert)."""

    __tablename__ = "oidc_logouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(100))
    session_ref: Mapped[str] = mapped_column(String(64))
    issuer: Mapped[str] = mapped_column(String(500))
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    given_up_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))


class DirectoryEntry(Base):
    """An entry of a company's directory ([9 of 12], R20) as the last sync saw it: its stable ID,
    its DN, the account (or group) it feeds, a digest of what was imported from it, when a
    listing last saw it, and when it left the directory (its account suspended then; deleted
    after the grace period)."""

    __tablename__ = "directory_entries"
    __table_args__ = (Index("ix_directory_entries_company_entry", "company", "entry_id", unique=True),
                      Index("ix_directory_entries_company_dn", "company", "dn_key"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company: Mapped[str] = mapped_column(String(200))
    entry_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(8))   # user | group
    dn: Mapped[str] = mapped_column(Text)
    dn_key: Mapped[str] = mapped_column(String(1000))  # the DN compared: lower case, no spaces around , =
    subject: Mapped[str] = mapped_column(String(100))  # the account's user ID, or the group's name
    digest: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class DirectoryRun(Base):
    """One sync or export of a company's directory: what it did, or why it stopped."""

    __tablename__ = "directory_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company: Mapped[str] = mapped_column(String(200), index=True)
    mode: Mapped[str] = mapped_column(String(16))  # full | incremental | export
    dry_run: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    result: Mapped[str] = mapped_column(String(16))  # running | ok | stopped | failed
    high_water: Mapped[str | None] = mapped_column(String(64))  # the newest change seen (incremental)
    counts: Mapped[str] = mapped_column(Text)  # JSON
    error: Mapped[str | None] = mapped_column(String(500))


class Company(Base):
    """A subscribing company (R21, R24; 002, 003 3): its subscription state (usage applications
    only once it is complete, 加入完了) and its own folder at the application storage site
    (申請書等格納サイト), where its parameter sheets are put (None: it has none, 003 4②)."""

    __tablename__ = "companies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)  # as its contracts spell it
    subscription: Mapped[str] = mapped_column(String(16))  # applying | complete | withdrawn
    subscribed_on: Mapped[date | None] = mapped_column(Date)  # the completion notice's date
    folder: Mapped[str | None] = mapped_column(String(100))
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Application(Base):
    """A usage application ([11 of 12], R21): one workbook of one contract (users: register,
    delete, change; access: group rights; media: removable media), its validated rows, and
    its steps (domain/applications.py: submitted → checked → approved → issued, or rejected),
    each by another person. Never holds a password: the parameter sheets hold the initial
    passwords, encrypted, and `sheets` only where they were put and their SHA-256."""

    __tablename__ = "applications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"), index=True)
    company: Mapped[str] = mapped_column(String(200), index=True)  # the contract's company
    submitter_company: Mapped[str] = mapped_column(String(200))  # a subcontractor's: the prime
    batch: Mapped[str] = mapped_column(String(32), index=True)  # the workbooks uploaded together
    state: Mapped[str] = mapped_column(String(16), index=True)
    file_name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[str] = mapped_column(Text)  # JSON: the validated rows
    submitted_by: Mapped[str] = mapped_column(String(100))
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    checked_by: Mapped[str | None] = mapped_column(String(100))
    checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(100))
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    issued_by: Mapped[str | None] = mapped_column(String(100))
    issued_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    rejected_by: Mapped[str | None] = mapped_column(String(100))
    rejected_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(String(200), default="")
    sheets: Mapped[str] = mapped_column(Text, default="[]")  # JSON: [{path, sha256}]


class RosterEntry(Base):
    """One person on a contract's handler roster (取扱者名簿) or protected-system user roster
    (保護システム利用者名簿), as uploaded by the agency (003 4①(3)): only what matching needs
    (domain/applications.py: the normalised name, the birth date, the staff number)."""

    __tablename__ = "roster_entries"
    __table_args__ = (Index("ix_roster_entries_contract_kind", "contract_id", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"))
    kind: Mapped[str] = mapped_column(String(16))  # handlers | system_users
    name_key: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[date | None] = mapped_column(Date)
    staff_number: Mapped[str | None] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(String(100))
    uploaded_at: Mapped[datetime] = mapped_column(UtcDateTime)
