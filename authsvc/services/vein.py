"""Palm vein on the server (R11–R15): single-use capture challenges, verification of a signed
capture from a registered terminal, in-person enrolment with a 1:N duplicate check, and the
biometric attempt limits of NIST SP 800-63B-4. Templates are sealed with AES-256-GCM and bound
to their person; raw samples are never stored."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from adapters.vein import Capture, InvalidRecord, VeinError, VeinReader
from authsvc.domain import identifiers
from authsvc.domain.errors import DomainError, NotFound
from authsvc.domain.roles import Actor, Perm
from authsvc.domain.sealing import SealError
from authsvc.services import Deps, devices
from authsvc.store.models import VeinEnrolment

PURPOSE = "vein_logon"
CHALLENGE_BYTES = 32
SKEW = timedelta(seconds=5)  # clock difference tolerated between terminal and server


def _aad(person_id: int) -> bytes:
    return f"vein:{person_id}".encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class Challenge:
    id: str
    challenge: str  # base64url, for the terminal agent
    expires_at: datetime


def issue_challenge(deps: Deps, user_id: str) -> Challenge:
    """A fresh, single-use, short-lived challenge the capture must be bound to (R11)."""
    now = deps.clock.now()
    raw = secrets.token_bytes(CHALLENGE_BYTES)
    expires = now + timedelta(seconds=deps.settings.vein.challenge_seconds)
    with deps.uow() as uow:
        cid = uow.put_challenge(PURPOSE, identifiers.canonical(user_id),
                                {"challenge": _b64(raw), "issued": now.isoformat()}, expires)
        uow.commit()
    return Challenge(cid, _b64(raw), expires)


def _refuse(deps: Deps, actor: Actor, user: str, reason: str, **detail: Any) -> bool:
    now = deps.clock.now()
    with deps.uow() as uow:
        uow.audit(now, actor, "vein.capture", user, "refused", reason=reason, **detail)
        uow.commit()
    return False


def verify(deps: Deps, user_id: str, challenge_id: str, capture: object, actor: Actor) -> bool:
    """True only if: the challenge is the one issued for this user, unused and unexpired; the
    capture is bound to it, fresh, signed by an *active registered* device's key (R12);
    quality and liveness pass; and the palm matches the person's template. Every refusal is
    audited with its reason; the caller counts the attempt toward the lockout (R4, R15)."""
    user = identifiers.canonical(user_id)
    now = deps.clock.now()
    with deps.uow() as uow:  # take the challenge first: used even if the capture is refused
        stored = uow.take_challenge(str(challenge_id)[:64], PURPOSE, user, now)
        uow.commit()
    if stored is None:
        return _refuse(deps, actor, user, "challenge")  # replayed, expired, foreign or unknown
    try:
        cap = Capture.from_dict(capture)
    except (InvalidRecord, ValueError, TypeError):
        return _refuse(deps, actor, user, "malformed")
    if _b64(cap.challenge) != stored["challenge"]:
        return _refuse(deps, actor, user, "other_challenge", device=cap.reader_id[:64])
    key = devices.active_key(deps, cap.reader_id)
    if key is None:
        return _refuse(deps, actor, user, "device_not_active", device=cap.reader_id[:64])
    if not cap.verify_signature(key):
        return _refuse(deps, actor, user, "signature", device=cap.reader_id)
    issued = datetime.fromisoformat(stored["issued"])
    if not issued - SKEW <= cap.created_at <= now + SKEW:
        return _refuse(deps, actor, user, "stale", device=cap.reader_id)
    pol = deps.settings.vein
    if not cap.liveness_passed:
        return _attempt(deps, actor, user, None, "presentation_attack", cap.reader_id)
    if cap.quality < pol.min_quality:
        return _refuse(deps, actor, user, "quality", quality=cap.quality, device=cap.reader_id)
    return _attempt(deps, actor, user, cap, "", cap.reader_id)


def _attempt(deps: Deps, actor: Actor, user: str, cap: Capture | None, reason: str,
             device: str) -> bool:
    """Match (if the capture got this far) and apply the biometric attempt limits."""
    pol, now = deps.settings.vein, deps.clock.now()
    with deps.uow() as uow:
        acc = uow.account(user)
        row = uow.session.scalars(select(VeinEnrolment).where(
            VeinEnrolment.person_id == acc.person_id).with_for_update()).first() if acc else None
        if row is None:
            uow.audit(now, actor, "vein.capture", user, "refused", reason="not_enrolled", device=device)
            uow.commit()
            return False
        if row.disabled_at is not None or (row.delay_until and now < row.delay_until):
            uow.audit(now, actor, "vein.capture", user, "refused",
                      reason="disabled" if row.disabled_at else "delayed", device=device)
            uow.commit()
            return False
        matched = False
        if cap is not None:
            try:
                template = deps.sealer.open(row.template, _aad(row.person_id))
                matched = deps.vein.verify(cap, template, 10.0 ** -pol.fmr_exponent).decision
            except (SealError, VeinError) as exc:
                reason = f"matcher:{type(exc).__name__}"
            reason = reason or ("" if matched else "no_match")
        if matched:
            row.consecutive_failures, row.delay_until = 0, None
            if deps.sealer.needs_reseal(row.template):  # key rotation: re-seal under the new key
                row.template = deps.sealer.seal(template, _aad(row.person_id))
            uow.audit(now, actor, "vein.capture", user, "ok", device=device)
        else:
            row.consecutive_failures += 1
            row.total_failures += 1
            over = row.consecutive_failures - pol.consecutive_limit
            if row.consecutive_failures >= pol.disable_after:
                row.disabled_at = now  # until an operator acts (re-enrolment or reset)
            elif over >= 0:
                row.delay_until = now + timedelta(seconds=pol.delay_seconds * 2 ** over)
            uow.audit(now, actor, "vein.capture", user, "failed", reason=reason, device=device,
                      consecutive=row.consecutive_failures,
                      **({"biometrics_disabled": True} if row.disabled_at else {}))
        uow.commit()
    return matched


def is_enrolled(deps: Deps, user_id: str) -> bool:
    with deps.uow(read_only=True) as uow:
        acc = uow.account(identifiers.canonical(user_id))
        return acc is not None and uow.session.scalars(select(VeinEnrolment.id).where(
            VeinEnrolment.person_id == acc.person_id)).first() is not None


def enrol(deps: Deps, witness: Actor, user_id: str, reader: VeinReader,
          capture: Callable[[bytes], Capture] | None = None, samples: int = 3,
          replace: bool = False, max_captures: int = 8) -> dict[str, Any]:
    """In-person enrolment at a registration station, the witness signed in (R14): several
    captures make a template; a person already enrolled (for another contract) is not enrolled
    again unless `replace`; the new palm is searched 1:N against every enrolled person, and a
    match to someone else stops the enrolment with an alert (one human, two identities)."""
    witness.require(Perm.ENROL_BIOMETRICS)
    user = identifiers.canonical(user_id)
    with deps.uow(read_only=True) as uow:
        acc = uow.account(user)
        if acc is None:
            raise NotFound("account_not_found", user_id=user_id)
        person_id, shown_id = acc.person_id, acc.user_id
        existing = uow.session.scalars(select(VeinEnrolment).where(
            VeinEnrolment.person_id == person_id)).first()
        if existing is not None and not replace:
            raise DomainError("vein_already_enrolled", person=person_id)
        others = {r.person_id: deps.sealer.open(r.template, _aad(r.person_id))
                  for r in uow.session.scalars(select(VeinEnrolment)) if r.person_id != person_id}
    take = capture or (lambda ch: reader.capture("enrol", ch))
    captures: list[Capture] = [take(secrets.token_bytes(CHALLENGE_BYTES)) for _ in range(samples)]
    result = reader.enrol(captures)
    while not result.complete and len(captures) < max_captures:  # "more samples needed"
        captures.append(take(secrets.token_bytes(CHALLENGE_BYTES)))
        result = reader.enrol(captures)
    if not result.complete or result.template is None:
        raise DomainError("vein_more_samples", needed=result.samples_needed)
    now = deps.clock.now()
    if others:
        dup_fmr = 10.0 ** -deps.settings.vein.duplicate_fmr_exponent
        hits = list(reader.identify(captures[0], others, dup_fmr, 1))
        if hits:
            with deps.uow() as uow:
                uow.audit(now, witness, "vein.duplicate_person", shown_id, "alert",
                          other_person=hits[0].id, person=person_id)
                uow.commit()
            raise DomainError("vein_duplicate_person")
    with deps.uow() as uow:
        row = uow.session.scalars(select(VeinEnrolment).where(
            VeinEnrolment.person_id == person_id).with_for_update()).first()
        if row is None:
            row = VeinEnrolment(person_id=person_id)
            uow.session.add(row)
        row.template = deps.sealer.seal(result.template, _aad(person_id))
        row.reader_id, row.enrolled_by, row.enrolled_at = captures[0].reader_id, witness.id, now
        row.consecutive_failures, row.total_failures, row.disabled_at, row.delay_until = 0, 0, None, None
        uow.audit(now, witness, "vein.enrol", shown_id, person=person_id, reader=row.reader_id,
                  replaced=existing is not None, quality=result.quality)
        uow.commit()
    return {"user_id": shown_id, "person_id": person_id, "reader_id": captures[0].reader_id,
            "replaced": existing is not None}
