"""Queries of the directory sync ([9 of 12]): the entries each company's directory fed, page by
page (never the whole directory at once), and the runs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from authsvc.store.models import DirectoryEntry, DirectoryRun


class Directory:
    def __init__(self, session: Session) -> None:
        self._s = session

    def entries(self, company: str, entry_ids: Iterable[str]) -> dict[str, DirectoryEntry]:
        """The known entries among `entry_ids` (one page's), by entry ID."""
        ids = list(entry_ids)
        if not ids:
            return {}
        q = select(DirectoryEntry).where(DirectoryEntry.company == company, DirectoryEntry.entry_id.in_(ids))
        return {e.entry_id: e for e in self._s.scalars(q)}

    def by_dns(self, company: str, dn_keys: Iterable[str]) -> dict[str, DirectoryEntry]:
        """The user entries with these DNs (a group's members, as `dn_key`s), by DN key."""
        wanted = list(set(dn_keys))
        out: dict[str, DirectoryEntry] = {}
        for start in range(0, len(wanted), 500):
            q = select(DirectoryEntry).where(DirectoryEntry.company == company, DirectoryEntry.kind == "user",
                                             DirectoryEntry.dn_key.in_(wanted[start:start + 500]))
            out.update((e.dn_key, e) for e in self._s.scalars(q))
        return out

    def add(self, entry: DirectoryEntry) -> None:
        self._s.add(entry)

    def seen(self, company: str, entry_ids: Iterable[str], now: datetime) -> None:
        """One listing page's entries are still in the directory."""
        ids = list(entry_ids)
        if ids:
            self._s.execute(update(DirectoryEntry)
                            .where(DirectoryEntry.company == company, DirectoryEntry.entry_id.in_(ids))
                            .values(seen_at=now).execution_options(synchronize_session=False))

    def present(self, company: str, kind: str) -> int:
        """How many entries of `kind` the directory had at the last look (not removed)."""
        q = select(func.count()).select_from(DirectoryEntry).where(
            DirectoryEntry.company == company, DirectoryEntry.kind == kind,
            DirectoryEntry.removed_at.is_(None))
        return int(self._s.scalar(q) or 0)

    def unseen(self, company: str, kind: str, before: datetime) -> list[DirectoryEntry]:
        """Entries not removed yet that a complete listing started at `before` did not see."""
        q = select(DirectoryEntry).where(
            DirectoryEntry.company == company, DirectoryEntry.kind == kind,
            DirectoryEntry.removed_at.is_(None), DirectoryEntry.seen_at < before).order_by(DirectoryEntry.id)
        return list(self._s.scalars(q))

    def removed_before(self, company: str, cutoff: datetime) -> list[DirectoryEntry]:
        """User entries gone from the directory since before `cutoff` (their grace is over)."""
        q = select(DirectoryEntry).where(
            DirectoryEntry.company == company, DirectoryEntry.kind == "user",
            DirectoryEntry.removed_at.is_not(None), DirectoryEntry.removed_at < cutoff)
        return list(self._s.scalars(q))

    def delete(self, entry: DirectoryEntry) -> None:
        self._s.delete(entry)

    def add_run(self, run: DirectoryRun) -> None:
        self._s.add(run)
        self._s.flush()

    def run(self, run_id: int) -> DirectoryRun | None:
        return self._s.get(DirectoryRun, run_id)

    def last_run(self, company: str, mode: str | None = None) -> DirectoryRun | None:
        """The newest completed (ok), not dry, run of the company (of `mode`, or any import)."""
        q = select(DirectoryRun).where(DirectoryRun.company == company, DirectoryRun.result == "ok",
                                       DirectoryRun.dry_run.is_(False))
        q = q.where(DirectoryRun.mode == mode) if mode else q.where(DirectoryRun.mode != "export")
        return self._s.scalars(q.order_by(DirectoryRun.id.desc()).limit(1)).first()

    def runs(self, company: str | None, limit: int = 20) -> list[DirectoryRun]:
        q = select(DirectoryRun)
        if company is not None:
            q = q.where(DirectoryRun.company == company)
        return list(self._s.scalars(q.order_by(DirectoryRun.id.desc()).limit(limit)))
