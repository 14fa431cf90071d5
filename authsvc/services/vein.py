"""Palm vein on the server (R11–R15): single-use capture challenges, verification of a signed
capture from a registered terminal, in-person enrolment with a 1:N duplicate check, and the
biometric attempt limits of NIST SP 800-63B-4. Templates are sealed with AES-256-GCM and bound
to their person; raw samples are never stored.

A terminal key can leak. So a sample identical or implausibly close to one already seen for
the person (a recorded capture signed again for a new challenge) is refused as a replay and
audited as an alert (the check, `deps.replay`, keeps only keyed one-way digests), and a
terminal bound to a company serves only users of that company's contracts."""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from adapters.vein import Capture, InvalidRecord, VeinError, VeinReader
from authsvc.domain import identifiers
from authsvc.domain.errors import DomainError, InvalidInput, NotFound, SealError
from authsvc.domain.roles import Actor, Perm, company_key
from authsvc.ports import SampleSketch
from authsvc.services import Deps, alerts, devices, guard
from authsvc.store.models import VeinEnrolment
from authsvc.store.uow import UnitOfWork

PURPOSE = "vein_logon"
ENROL_PURPOSE = "vein_enrol"  # challenges for the captures of an enrolment through a terminal agent
CHALLENGE_BYTES = 32
SKEW = timedelta(seconds=5)  # clock difference tolerated between terminal and server
REPLAYED = "replayed_sample"  # the audit reason of a sample seen before for the person


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
    return _issue(deps, PURPOSE, identifiers.canonical(user_id), 1)[0]


def issue_enrol_challenges(deps: Deps, subject: str, count: int) -> list[Challenge]:
    """Challenges for the captures of one enrolment (a registration session, a station), one
    per sample; they live as long as a logon challenge, times the number of samples."""
    return _issue(deps, ENROL_PURPOSE, subject, count)


def _issue(deps: Deps, purpose: str, subject: str, count: int) -> list[Challenge]:
    now = deps.clock.now()
    expires = now + timedelta(seconds=deps.settings.vein.challenge_seconds * count)
    made = []
    with deps.uow() as uow:
        for _ in range(count):
            raw = _b64(secrets.token_bytes(CHALLENGE_BYTES))
            cid = uow.put_challenge(purpose, subject, {"challenge": raw, "issued": now.isoformat()},
                                    expires)
            made.append(Challenge(cid, raw, expires))
        uow.commit()
    return made


def _refuse(deps: Deps, actor: Actor, user: str, reason: str, **detail: Any) -> bool:
    now = deps.clock.now()
    with deps.uow() as uow:
        uow.audit(now, actor, "vein.capture", user, "refused", reason=reason, **detail)
        uow.commit()
    return False


def verify(deps: Deps, user_id: str, challenge_id: str, capture: object, actor: Actor) -> bool:
    """True only if: the challenge is the one issued for this user, unused and unexpired; the
    capture is bound to it, fresh, signed by an *active registered* device's key (R12), one
    that serves the user's company if it is bound to one; its sample was never seen before for
    the person (nor one implausibly close: a replay, audited as an alert and counted as a
    failed palm); quality and liveness pass; and the palm matches the person's template. Every
    refusal is audited with its reason; the caller counts the attempt toward the lockout (R4,
    R15)."""
    user = identifiers.canonical(user_id)
    cap, reason, detail = _signed_capture(deps, PURPOSE, user, challenge_id, capture, "verify", user,
                                          screen=lambda c: _replayed(deps, actor, user, c))
    if reason == REPLAYED:
        return False  # audited as an alert and counted by the screen
    if cap is None:
        return _refuse(deps, actor, user, reason, **detail)
    pol = deps.settings.vein
    if not cap.liveness_passed:
        return _attempt(deps, actor, user, None, "presentation_attack", cap.reader_id)
    if cap.quality < pol.min_quality:
        return _refuse(deps, actor, user, "quality", quality=cap.quality, device=cap.reader_id)
    return _attempt(deps, actor, user, cap, "", cap.reader_id)


def _signed_capture(deps: Deps, purpose: str, subject: str, challenge_id: object, capture: object,
                    kind: str, user: str, screen: Callable[[Capture], bool] | None = None,
                    ) -> tuple[Capture | None, str, dict[str, Any]]:
    """The capture, if it is bound to a challenge issued for `subject` (taken now, so used
    even if the capture is refused), fresh, of the expected kind and signed by an active
    registered device (R11, R12) that serves `user`'s company if it is bound to one; else None
    with the reason and detail for the audit log. `screen`, given a capture whose signature
    holds (so one of the person's samples), records its sample and says whether it is a
    replay (reason REPLAYED, already audited)."""
    now = deps.clock.now()
    with deps.uow() as uow:
        stored = uow.take_challenge(str(challenge_id)[:64], purpose, subject, now)
        uow.commit()
    if stored is None:
        return None, "challenge", {}  # replayed, expired, foreign or unknown
    try:
        cap = Capture.from_dict(capture)
    except (InvalidRecord, ValueError, TypeError):
        return None, "malformed", {}
    device = {"device": cap.reader_id[:64]}
    if _b64(cap.challenge) != stored["challenge"]:
        return None, "other_challenge", device
    found = devices.active_device(deps, cap.reader_id)
    if found is None:
        return None, "device_not_active", device
    if not cap.verify_signature(found.public_key):
        return None, "signature", device
    if screen is not None and screen(cap):
        return None, REPLAYED, device
    issued = datetime.fromisoformat(stored["issued"])
    if not issued - SKEW <= cap.created_at <= now + SKEW:
        return None, "stale", device
    if str(cap.purpose) != kind:
        return None, "purpose", device
    if found.company is not None and not of_company(deps, user, found.company):
        return None, "device_company", device
    return cap, "", device


def of_company(deps: Deps, user: str, company: str) -> bool:
    """Whether `user`'s account belongs to a contract of `company` (a terminal bound to it)."""
    with deps.uow(read_only=True) as uow:
        acc = uow.account(user)
        return acc is not None and company_key(acc.contract.company) == company_key(company)


def _sketch(deps: Deps, cap: Capture) -> SampleSketch:
    """The replay check's record and probes of the capture's sample (no sample is kept)."""
    return deps.replay.sketch(cap.sample, deps.vein.sample_vector(cap))


def _enrolment_for_update(uow: UnitOfWork, user: str) -> VeinEnrolment | None:
    """The enrolment of `user`'s person, its row locked (taken before the audit chain's head)."""
    acc = uow.account(user)
    return uow.biometrics.enrolment_of(acc.person_id, lock=True) if acc else None


def _replayed(deps: Deps, actor: Actor, user: str, cap: Capture) -> bool:
    """Record the capture's sample among those seen for the person and say whether it was seen
    before (or one implausibly close): a replay, audited as an alert and counted as a failed
    palm. Checked and recorded under the enrolment's row lock, so of two concurrent copies of
    one sample at most one passes. A person not enrolled has nothing to compare with."""
    sketch = _sketch(deps, cap)  # outside the lock: it is the costly part
    pol, now = deps.settings.vein, deps.clock.now()
    with deps.uow() as uow:
        row = _enrolment_for_update(uow, user)
        if row is None:
            return False
        again = deps.replay.seen(row.seen_samples, sketch)
        row.seen_samples = deps.replay.remember(row.seen_samples, sketch)
        if again:
            extra = _count_failure(row, pol, now)
            uow.audit(now, actor, "vein.capture", user, "alert", reason=REPLAYED,
                      device=cap.reader_id[:64], consecutive=row.consecutive_failures, **extra)
            alerts.note(uow, now, "replayed_sample", user, None, device=cap.reader_id[:64])
        uow.commit()
    return again


def _count_failure(row: VeinEnrolment, pol: Any, now: datetime) -> dict[str, Any]:
    """A failed palm on the biometric attempt limits; the audit detail it adds."""
    row.consecutive_failures += 1
    row.total_failures += 1
    over = row.consecutive_failures - pol.consecutive_limit
    if row.consecutive_failures >= pol.disable_after:
        row.disabled_at = now  # until an operator acts (re-enrolment or reset)
    elif over >= 0:
        row.delay_until = now + timedelta(seconds=pol.delay_seconds * 2 ** over)
    return {"biometrics_disabled": True} if row.disabled_at else {}


def enrol_captures(deps: Deps, actor: Actor, user_id: str, subject: str,
                   items: object) -> Callable[[bytes], Capture]:
    """The captures of an enrolment sent from a terminal agent (a list of {challenge_id,
    capture}), each checked like a logon capture; returned as the `capture` source for
    `enrol`. One bad capture refuses them all (audited); too few asks for more samples."""
    user = identifiers.canonical(user_id)
    if not isinstance(items, list) or not 1 <= len(items) <= 8 or not all(
            isinstance(i, dict) for i in items):
        raise InvalidInput("request_invalid")
    taken: list[Capture] = []
    for item in items:
        cap, reason, detail = _signed_capture(deps, ENROL_PURPOSE, subject, item.get("challenge_id"),
                                              item.get("capture"), "enrol", user)
        if cap is None:
            _refuse(deps, actor, user, reason, purpose="enrol", **detail)
            raise DomainError("vein_capture_refused")
        taken.append(cap)
    left = iter(taken)

    def take(_challenge: bytes) -> Capture:
        try:
            return next(left)
        except StopIteration:
            raise DomainError("vein_more_samples", needed=1) from None

    return take


def _attempt(deps: Deps, actor: Actor, user: str, cap: Capture | None, reason: str,
             device: str) -> bool:
    """Match (if the capture got this far) and apply the biometric attempt limits."""
    pol, now = deps.settings.vein, deps.clock.now()
    with deps.uow() as uow:
        row = _enrolment_for_update(uow, user)
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
            extra = _count_failure(row, pol, now)
            uow.audit(now, actor, "vein.capture", user, "failed", reason=reason, device=device,
                      consecutive=row.consecutive_failures, **extra)
        uow.commit()
    return matched


def is_enrolled(deps: Deps, user_id: str) -> bool:
    with deps.uow(read_only=True) as uow:
        acc = uow.account(identifiers.canonical(user_id))
        return acc is not None and uow.biometrics.is_enrolled(acc.person_id)


@guard.audited("vein.enrol")
def enrol(deps: Deps, witness: Actor, user_id: str, reader: VeinReader,
          capture: Callable[[bytes], Capture] | None = None, samples: int = 3,
          replace: bool = False, max_captures: int = 8) -> dict[str, Any]:
    """`enrol_witnessed` by a witness of the account's company (or the agency); never of their
    own account."""
    witness.require(Perm.ENROL_BIOMETRICS)
    with deps.uow(read_only=True) as uow:
        acc = uow.account(identifiers.canonical(user_id))
        if acc is None:
            raise NotFound("account_not_found", user_id=user_id)
        guard.check(witness, Perm.ENROL_BIOMETRICS, acc.contract.company, "account_not_found",
                    own=acc.user_id, user_id=user_id)
    return enrol_witnessed(deps, witness, user_id, reader, capture, samples, replace, max_captures)


def enrol_witnessed(deps: Deps, witness: Actor, user_id: str, reader: VeinReader,
                    capture: Callable[[bytes], Capture] | None = None, samples: int = 3,
                    replace: bool = False, max_captures: int = 8) -> dict[str, Any]:
    """Enrolment witnessed by `witness`, whom the caller has admitted (R14): several
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
        replacing = uow.biometrics.is_enrolled(person_id)
        if replacing and not replace:
            raise DomainError("vein_already_enrolled", person=person_id)
        seen = uow.biometrics.other_templates(person_id)
    take = capture or (lambda ch: reader.capture("enrol", ch))
    captures: list[Capture] = [take(secrets.token_bytes(CHALLENGE_BYTES)) for _ in range(samples)]
    result = reader.enrol(captures)
    while not result.complete and len(captures) < max_captures:  # "more samples needed"
        captures.append(take(secrets.token_bytes(CHALLENGE_BYTES)))
        result = reader.enrol(captures)
    sketches = [_sketch(deps, c) for c in captures]
    for i, sketch in enumerate(sketches):  # one sample presented as several readings
        if deps.replay.seen(deps.replay.remember(None, *sketches[:i]), sketch):
            _enrol_replay(deps, witness, shown_id, captures[i])
    if not result.complete or result.template is None:
        raise DomainError("vein_more_samples", needed=result.samples_needed)
    now = deps.clock.now()
    # the 1:N probe: the best reading (a poor first one would weaken the duplicate check)
    probe = max(captures, key=lambda c: (c.liveness_passed, c.quality))
    _refuse_duplicate(deps, witness, shown_id, person_id, reader, probe, seen)
    with deps.uow() as uow:
        # The person's row first, then the chain: the order a logon's capture takes them in
        # (_replayed, _attempt), so a re-enrolment and a logon never wait on each other in a cycle.
        row = uow.biometrics.enrolment_of(person_id, lock=True)
        # The search above ran outside any lock; enrolments that landed since are searched
        # again under the chain's lock, so two enrolments of one palm never both pass (R14).
        uow.serialize()
        late = {pid: t for pid, t in uow.biometrics.other_templates(person_id).items()
                if seen.get(pid) != t}
        _refuse_duplicate(deps, witness, shown_id, person_id, reader, probe, late, uow)
        if row is None:  # a first enrolment of this person may have landed meanwhile
            row = uow.biometrics.enrolment_of(person_id, lock=True)
        for cap, sketch in zip(captures, sketches, strict=True):  # a sample of the person seen before
            if row is not None and deps.replay.seen(row.seen_samples, sketch):
                _enrol_replay(deps, witness, shown_id, cap, uow)
        first = row is None
        if row is None:
            row = VeinEnrolment(person_id=person_id)
        row.seen_samples = deps.replay.remember(row.seen_samples, *sketches)
        row.template = deps.sealer.seal(result.template, _aad(person_id))
        row.reader_id, row.enrolled_by, row.enrolled_at = captures[0].reader_id, witness.id, now
        row.consecutive_failures, row.total_failures, row.disabled_at, row.delay_until = 0, 0, None, None
        if first:
            uow.add(row)
        uow.audit(now, witness, "vein.enrol", shown_id, person=person_id, reader=row.reader_id,
                  replaced=replacing, quality=result.quality)
        uow.commit()
    return {"user_id": shown_id, "person_id": person_id, "reader_id": captures[0].reader_id,
            "replaced": replacing}


def _enrol_replay(deps: Deps, witness: Actor, shown_id: str, cap: Capture, uow: Any = None) -> None:
    """An enrolment reading that repeats a sample seen before: alert (in `uow` if given) and
    refuse the enrolment."""
    with contextlib.nullcontext(uow) if uow is not None else deps.uow() as alert:
        alert.audit(deps.clock.now(), witness, "vein.capture", shown_id, "alert", reason=REPLAYED,
                    purpose="enrol", device=cap.reader_id[:64])
        alerts.note(alert, deps.clock.now(), "replayed_sample", shown_id, None, purpose="enrol",
                    device=cap.reader_id[:64])
        alert.commit()
    raise DomainError("vein_capture_refused")


def _refuse_duplicate(deps: Deps, witness: Actor, shown_id: str, person_id: int, reader: VeinReader,
                      probe: Capture, sealed: dict[int, str], uow: Any = None) -> None:
    """Search the new palm 1:N among `sealed` (other persons' templates); a match raises the
    alert (audited, in `uow` if given) and DomainError("vein_duplicate_person")."""
    if not sealed:
        return
    others = {pid: deps.sealer.open(t, _aad(pid)) for pid, t in sealed.items()}
    hits = list(reader.identify(probe, others, 10.0 ** -deps.settings.vein.duplicate_fmr_exponent, 1))
    if not hits:
        return
    with contextlib.nullcontext(uow) if uow is not None else deps.uow() as alert:
        alert.audit(deps.clock.now(), witness, "vein.duplicate_person", shown_id, "alert",
                    other_person=hits[0].id, person=person_id)
        alerts.note(alert, deps.clock.now(), "duplicate_person", shown_id, None,
                    other_person=hits[0].id, person=person_id, witness=witness.id)
        alert.commit()
    raise DomainError("vein_duplicate_person")
