"""TOTP as a second factor (R10, R11, R15): enrolment with a QR code, confirmation, verification
that accepts each code at most once, and removal.

Design:

* **Where the secrets live.** The confirmed secret is the account's one `totp_credentials` row
  (`confirmed_at` set). A *pending* secret (between `begin_enrolment` and `confirm_enrolment`)
  always lives in a `challenges` row (purpose "totp_enrol", subject the canonical user ID,
  expiring after `ENROL_MINUTES`), never in `totp_credentials`: so one code path serves both a
  first enrolment and a replacement, and a confirmed credential keeps working until its
  replacement is confirmed. Beginning again discards the earlier pending enrolment (and any
  unconfirmed credential row, should one exist). The interface returns no enrolment id: an
  account has at most one pending enrolment, found by purpose and subject.
* **Sealing.** Secrets are sealed with AES-256-GCM under the key ring (`deps.sealer`) with the
  associated data b"totp:<account id>", pending and confirmed alike, so a sealed value copied to
  another account's row does not open there (verify answers False). A successful verify re-seals
  a secret sealed under an older key with the current primary key (key rotation).
* **Replay (R11).** `last_step` is the newest time step accepted. A code counts only if its step
  is newer, and it is claimed with one conditional UPDATE (`... WHERE last_step IS NULL OR
  last_step < :step`) whose row count says whether this request won: exact between threads,
  processes and instances on PostgreSQL and SQLite. The UPDATE also requires the sealed secret to
  be the one the code was checked against, so a code for a secret replaced meanwhile is refused
  (a rare concurrent verify during a re-seal is refused too: failing closed). Confirming an
  enrolment stores the confirming code's step, so that code cannot then be used to log on.
* **Who may act.** Enrolment and confirmation are the account holder's own (the actor's id is
  the user ID); removal is the holder's or an account manager's (`Perm.MANAGE_ACCOUNTS`).
  The caller has authenticated the actor; attempt counting and the logon's audit are the
  caller's, `verify` neither counts nor audits.
* **No secret in clear**: not in the audit detail, not in logs, not in `repr(Enrolment)`.
"""

from __future__ import annotations

import hmac
import logging
import unicodedata
from dataclasses import dataclass, field
from datetime import timedelta

import pyotp
import segno

from authsvc.domain import identifiers
from authsvc.domain.errors import DomainError, Forbidden, NotFound, SealError
from authsvc.domain.lifecycle import Status
from authsvc.domain.roles import Actor, Perm
from authsvc.services import Deps, guard
from authsvc.store.credentials import TOTP_ENROL
from authsvc.store.models import Account, TotpCredential
from authsvc.store.uow import UnitOfWork

log = logging.getLogger(__name__)

PURPOSE = TOTP_ENROL  # the challenge rows of pending enrolments
ENROL_MINUTES = 10
_MAX_INPUT = 64  # longer input is refused before any normalisation work


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows once. Never log or store it: all three carry the secret."""

    secret: str = field(repr=False)  # base32, for manual entry
    uri: str = field(repr=False)     # otpauth:// provisioning URI
    qr_svg: str = field(repr=False)  # inline SVG of the URI (no image file, no script)


def _aad(account_id: int) -> bytes:
    return f"totp:{account_id}".encode()


def _totp(deps: Deps, secret: str) -> pyotp.TOTP:
    t = deps.settings.totp
    return pyotp.TOTP(secret, digits=t.digits, interval=t.period)


def _require_self(actor: Actor, key: str) -> None:
    if actor.id.lower() != key:
        raise Forbidden()


def _active_account(uow: UnitOfWork, user_id: str, key: str) -> Account:
    acc = uow.account(key, lock=True)
    if acc is None or acc.status != Status.ACTIVE:
        raise NotFound("account_not_found", user_id=user_id)
    return acc


def _normalise(code: object, digits: int) -> str | None:
    """The code as ASCII digits, or None when it cannot be one. NFKC first, so full-width
    digits typed on a Japanese keyboard count; spaces (as authenticator apps show them) go."""
    if not isinstance(code, str) or len(code) > _MAX_INPUT:
        return None
    code = unicodedata.normalize("NFKC", code).replace(" ", "").strip()
    if len(code) != digits or not all("0" <= c <= "9" for c in code):
        return None
    return code


def _matching_step(deps: Deps, secret: str, code: str, after: int | None) -> int | None:
    """The newest step within ±window of now whose code is `code` and that is newer than
    `after`; every candidate is compared in constant time."""
    totp = _totp(deps, secret)
    now_step = totp.timecode(deps.clock.now())
    window = deps.settings.totp.window
    found = None
    for step in range(now_step - window, now_step + window + 1):
        if step < 0:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code) and (after is None or step > after):
            found = step
    return found


def begin_enrolment(deps: Deps, actor: Actor, user_id: str) -> Enrolment:
    """A new secret for `user_id`, pending until confirmed with a code from it."""
    key = identifiers.canonical(user_id)
    _require_self(actor, key)
    now = deps.clock.now()
    secret = pyotp.random_base32()  # 32 characters: 160 bits
    with deps.uow() as uow:
        acc = _active_account(uow, user_id, key)
        uow.credentials.drop_pending_totp(key)
        current = uow.credentials.totp_of(acc.id)
        if current is not None and current.confirmed_at is None:
            uow.credentials.remove_totp(current)  # an unconfirmed credential is replaced
            current = None
        uow.put_challenge(
            PURPOSE, key,
            {"account_id": acc.id, "sealed": deps.sealer.seal(secret.encode(), _aad(acc.id))},
            now + timedelta(minutes=ENROL_MINUTES),
        )
        uow.audit(now, actor, "totp.enrol_begin", acc.user_id, replaces=current is not None)
        uow.commit()
        name = acc.user_id
    return _enrolment(deps, secret, name)


def _enrolment(deps: Deps, secret: str, name: str) -> Enrolment:
    uri = _totp(deps, secret).provisioning_uri(name=name, issuer_name=deps.settings.totp.issuer)
    return Enrolment(secret=secret, uri=uri, qr_svg=segno.make(uri).svg_inline(scale=4))


def pending_enrolment(deps: Deps, actor: Actor, user_id: str) -> Enrolment | None:
    """The enrolment still waiting for its code (the page shown again after a mistyped code
    keeps the same QR code), or None when there is none or it has expired."""
    key = identifiers.canonical(user_id)
    _require_self(actor, key)
    now = deps.clock.now()
    with deps.uow(read_only=True) as uow:
        data = uow.credentials.pending_totp(key, now)
        acc = uow.account(key)
        if data is None or acc is None:
            return None
        try:
            secret = deps.sealer.open(data["sealed"], _aad(int(data["account_id"]))).decode()
        except (SealError, KeyError, ValueError):
            return None
        return _enrolment(deps, secret, acc.user_id)


def confirm_enrolment(deps: Deps, actor: Actor, user_id: str, code: str) -> None:
    """Make the pending secret the account's credential, proven by a current code from it.
    Wrong code: DomainError("totp_invalid") and nothing changes (the pending secret stays until
    it expires). No pending enrolment, or an expired one: DomainError("totp_enrol_expired")."""
    key = identifiers.canonical(user_id)
    _require_self(actor, key)
    now = deps.clock.now()
    with deps.uow() as uow:
        acc = _active_account(uow, user_id, key)
        data = uow.credentials.pending_totp(key, now)
        if data is None or data.get("account_id") != acc.id:
            raise DomainError("totp_enrol_expired")
        sealed = str(data["sealed"])
        try:
            secret = deps.sealer.open(sealed, _aad(acc.id)).decode()
        except (SealError, UnicodeDecodeError):
            raise DomainError("totp_enrol_expired") from None
        normalised = _normalise(code, deps.settings.totp.digits)
        step = _matching_step(deps, secret, normalised, None) if normalised else None
        if step is None:
            uow.audit(now, actor, "totp.enrolled", acc.user_id, "failed", reason="wrong_code")
            uow.commit()
            raise DomainError("totp_invalid")
        if deps.sealer.needs_reseal(sealed):
            sealed = deps.sealer.seal(secret.encode(), _aad(acc.id))
        uow.credentials.drop_pending_totp(key)
        cred = uow.credentials.totp_of(acc.id)
        replaced = cred is not None and cred.confirmed_at is not None
        if cred is None:
            cred = TotpCredential(account_id=acc.id)
        cred.secret, cred.created_at, cred.confirmed_at, cred.last_step = sealed, now, now, step
        uow.credentials.save_totp(cred)
        uow.audit(now, actor, "totp.enrolled", acc.user_id, replaced=replaced)
        uow.commit()


def is_enrolled(deps: Deps, user_id: str) -> bool:
    """Whether the account has a confirmed TOTP credential."""
    key = identifiers.canonical_or_none(user_id)
    if key is None:
        return False
    with deps.uow(read_only=True) as uow:
        acc = uow.account(key)
        if acc is None:
            return False
        cred = uow.credentials.totp_of(acc.id)
        return cred is not None and cred.confirmed_at is not None


def verify(deps: Deps, user_id: str, code: str) -> bool:
    """True iff `code` is a current code of the confirmed secret and newer than every code
    accepted before; the step is claimed atomically, so one code is accepted exactly once
    however many requests carry it. Anything malformed is simply False."""
    normalised = _normalise(code, deps.settings.totp.digits)
    if normalised is None:
        return False
    key = identifiers.canonical_or_none(user_id)
    if key is None:
        return False
    with deps.uow(read_only=True) as uow:
        acc = uow.account(key)
        if acc is None or acc.status != Status.ACTIVE:
            return False
        account_id = acc.id
        cred = uow.credentials.totp_of(account_id)
        if cred is None or cred.confirmed_at is None:
            return False
        sealed, last_step = cred.secret, cred.last_step
    try:
        secret = deps.sealer.open(sealed, _aad(account_id)).decode()
    except (SealError, UnicodeDecodeError):
        log.warning("TOTP secret of account %s cannot be opened (wrong key or moved)", account_id)
        return False
    step = _matching_step(deps, secret, normalised, last_step)
    if step is None:
        return False
    reseal = (deps.sealer.seal(secret.encode(), _aad(account_id))
              if deps.sealer.needs_reseal(sealed) else None)
    with deps.uow() as uow:
        if not uow.credentials.claim_totp_step(account_id, sealed, step, reseal):
            return False
        uow.commit()
    return True


@guard.audited("totp.remove")
def remove(deps: Deps, actor: Actor, user_id: str) -> None:
    """Remove the account's TOTP credential and any pending enrolment (the holder, or an
    account manager). Nothing to remove: NotFound("totp_not_enrolled")."""
    key = identifiers.canonical(user_id)
    if actor.id.lower() != key:
        actor.require(Perm.MANAGE_ACCOUNTS)
    now = deps.clock.now()
    with deps.uow() as uow:
        acc = uow.account(key, lock=True)
        if acc is None:
            raise NotFound("account_not_found", user_id=user_id)
        if actor.id.lower() != key:  # an account manager of the holder's company
            guard.check(actor, Perm.MANAGE_ACCOUNTS, acc.contract.company, "account_not_found",
                        user_id=user_id)
        pending = uow.credentials.drop_pending_totp(key)
        cred = uow.credentials.totp_of(acc.id)
        if cred is None and not pending:
            raise NotFound("totp_not_enrolled", user_id=user_id)
        confirmed = cred is not None and cred.confirmed_at is not None
        if cred is not None:
            uow.credentials.remove_totp(cred)
        uow.audit(now, actor, "totp.removed", acc.user_id, confirmed=confirmed,
                  pending=bool(pending))
        uow.commit()
