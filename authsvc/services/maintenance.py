"""The maintenance job: disables identifiers left unused too long (R6), revokes leavers (R7:
within `accounts.revocation_hours` of their departure when it runs at least that often) and
ends access after the contract's data-cleanup period (R7), as of the clock's now; tells relying
parties of sessions that ended unnoticed and retries their logouts ([8 of 12]). Meant to run on
a schedule (every few minutes for the logouts' sake; hourly at least)."""

from __future__ import annotations

from dataclasses import dataclass, field

from authsvc.domain import identifiers, lifecycle
from authsvc.domain.lifecycle import Status
from authsvc.domain.roles import Actor, Perm
from authsvc.services import Deps, audit, audit_export, backchannel, guard, registration
from authsvc.services.accounts import access_end, last_use, revoke


@dataclass
class Report:
    expired: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    registrations_expired: list[str] = field(default_factory=list)
    evidence_purged: int = 0
    oidc_logouts_owed: int = 0  # relying parties told of sessions that ended by idling ([8 of 12])
    oidc_codes_forgotten: int = 0
    audit_archived: int = 0  # events moved to archive files (audit.retention_days)
    audit_exported: int = 0  # events sent to the separate log system on this run ([audit_export])
    audit_verified: str = ""  # "ok", or the first problem (an alert is raised); "" when not checked


@guard.audited("maintenance.run", None)
def run(deps: Deps, actor: Actor) -> Report:
    actor.require(Perm.RUN_MAINTENANCE)
    now = deps.clock.now()
    report = Report()
    days = deps.settings.identifiers.disable_after_days
    with deps.uow() as uow:
        for acc in uow.accounts():
            status = Status(acc.status)
            if status in (Status.DELETED, Status.EXPIRED):
                continue
            if acc.leaves_at is not None and now >= acc.leaves_at:  # R7: a leaver, revoked now
                acc.status = lifecycle.transition(status, "delete").value
                acc.status_changed_at = now
                returns = revoke(uow, acc, now)
                uow.audit(now, actor, "account.revoke", acc.user_id, status_from=status.value,
                          left_at=acc.leaves_at.isoformat(), returns=returns)
                report.revoked.append(acc.user_id)
                continue
            ends = access_end(deps, acc.contract)
            if ends is not None and now >= ends:
                acc.status = lifecycle.transition(status, "expire").value
                acc.status_changed_at = acc.revoked_at = now
                uow.audit(now, actor, "account.expire", acc.user_id, status_from=status.value,
                          access_ended=ends.isoformat())
                report.expired.append(acc.user_id)
                continue
            last = last_use(acc)
            if status is Status.ACTIVE and identifiers.is_inactive(last, now, days):
                acc.status = lifecycle.transition(status, "disable").value
                acc.status_changed_at = now
                uow.audit(now, actor, "account.disable", acc.user_id, reason="inactive",
                          last_used=last.isoformat(), days=days)
                report.disabled.append(acc.user_id)
        uow.commit()
    for user_id in report.expired + report.disabled + report.revoked:  # after the commit: their sessions end
        backchannel.end_all(deps, identifiers.canonical(user_id), "account_disabled")
    report.registrations_expired = registration.expire_idle(deps, actor)
    report.evidence_purged = registration.purge_evidence(deps, actor)
    report.oidc_logouts_owed = backchannel.sweep(deps)
    report.oidc_codes_forgotten = backchannel.forget_codes(deps)
    if audit_export.destinations(deps.settings):  # also runs as `audit export --follow`
        report.audit_exported = sum(r["sent"] for r in audit_export.export(deps).values())
    if deps.settings.audit.retention_days > 0:  # after the export: archiving waits for it
        report.audit_archived = int(audit.archive(deps, actor).get("archived", 0))
    if deps.checkpointer is not None:  # the scheduled verification (R22): a failure alerts the inbox
        checked = audit.checkpoint(deps, actor)
        report.audit_verified = "ok" if checked.ok else str(checked.problem)
    return report
