"""The terminal proof (R12): a single-use challenge bound to one pending logon, and the terminal
agent's answer to it (the challenge signed with the terminal's device key under the purpose
"terminal"), checked against the device registry: a registered, active terminal, serving the
user's company if it is bound to one. The logon (services/logon.py) counts and audits the
attempt; a palm capture proves the terminal in the same way on its own (services/vein.py)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from adapters.vein import InvalidRecord, TerminalProof
from adapters.vein.records import b64url
from authsvc.domain import identifiers
from authsvc.services import Deps, devices, vein

PURPOSE = "terminal"


@dataclass(frozen=True)
class Proven:
    """The outcome of one proof: the registered device's ID, or the reason it was refused (for
    the audit log only) and the device ID the proof claimed."""

    device_id: str = ""
    reason: str = ""
    claimed: str = ""


def issue_challenge(deps: Deps, binding: str) -> vein.Challenge:
    """A fresh challenge for the logon `binding` names (the hash of its token): single use,
    valid for `vein.challenge_seconds`, in the store the palm captures' challenges use."""
    now = deps.clock.now()
    expires = now + timedelta(seconds=deps.settings.vein.challenge_seconds)
    raw = b64url(secrets.token_bytes(vein.CHALLENGE_BYTES))
    with deps.uow() as uow:
        cid = uow.put_challenge(PURPOSE, binding, {"challenge": raw, "issued": now.isoformat()}, expires)
        uow.commit()
    return vein.Challenge(cid, raw, expires)


def verify(deps: Deps, user_id: str, binding: str, challenge_id: object, proof: object) -> Proven:
    """The terminal that signed `proof`, if: the challenge was issued for this logon, unused and
    unexpired (taken now, so spent even if the proof is refused); the proof answers it, is fresh
    and is signed with the key of an *active registered terminal*, one that serves `user_id`'s
    company if it is bound to one. Otherwise the reason: challenge, malformed, other_challenge,
    device_unknown, device_suspended, device_revoked, device_kind, signature, stale,
    device_company."""
    now = deps.clock.now()
    with deps.uow() as uow:
        stored = uow.take_challenge(str(challenge_id)[:64], PURPOSE, binding, now)
        uow.commit()
    if stored is None:
        return Proven(reason="challenge")  # replayed, expired, another logon's or unknown
    try:
        answer = TerminalProof.from_dict(proof)
    except (InvalidRecord, ValueError, TypeError):
        return Proven(reason="malformed")
    claimed = answer.device_id[:64]
    if b64url(answer.challenge) != stored["challenge"]:
        return Proven(reason="other_challenge", claimed=claimed)
    found = devices.active_device(deps, answer.device_id)
    if found is None:
        status = devices.status_of(deps, answer.device_id)
        return Proven(reason=f"device_{status}" if status else "device_unknown", claimed=claimed)
    if found.kind != "terminal":
        return Proven(reason="device_kind", claimed=claimed)
    if not answer.verify_signature(found.public_key):
        return Proven(reason="signature", claimed=claimed)
    issued = datetime.fromisoformat(stored["issued"])
    if not issued - vein.SKEW <= answer.created_at <= now + vein.SKEW:
        return Proven(reason="stale", claimed=claimed)
    user = identifiers.canonical_or_none(user_id)
    if found.company is not None and (user is None or not vein.of_company(deps, user, found.company)):
        return Proven(reason="device_company", claimed=claimed)
    return Proven(device_id=found.device_id, claimed=claimed)
