"""The audit chain's anchor outside the database (R22): signed checkpoints appended to files
in a folder of their own, one file a day, one line a checkpoint, each line one write() on a
file opened for appending (so lines of several processes never interleave). The folder is
meant for a place the database's administrators cannot rewrite (a volume of its own, made
append-only with `chattr +a`, or shipped on by the log export); `Checkpointer` decides when a
process writes: at most every `interval` seconds while it audits, and at exit."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from authsvc.domain.audit import Checkpoint, parse_checkpoint

log = logging.getLogger("authsvc.audit")
PATTERN = "checkpoints-*.jsonl"


class FileCheckpoints:
    def __init__(self, folder: Path, key: bytes) -> None:
        self.folder = Path(folder)
        self._key = key

    def append(self, seq: int, head_hash: str, kind: str = "head", at: datetime | None = None) -> Checkpoint:
        now = datetime.now(UTC)
        stamp = (at or now).astimezone(UTC).isoformat(timespec="microseconds")
        cp = Checkpoint(seq, head_hash, stamp, kind).signed(self._key)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.folder / f"checkpoints-{now:%Y%m%d}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (cp.to_line() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return cp

    def read(self) -> tuple[list[Checkpoint], list[str]]:
        """Every signed checkpoint, and where the lines are that are not (file:line)."""
        good: list[Checkpoint] = []
        bad: list[str] = []
        for path in sorted(self.folder.glob(PATTERN)) if self.folder.is_dir() else []:
            with path.open(encoding="utf-8", errors="replace") as fh:
                for number, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    cp = parse_checkpoint(line, self._key)
                    if cp is None:
                        bad.append(f"{path.name}:{number}")
                    else:
                        good.append(cp)
        return good, bad


class Checkpointer:
    """One per process: told the head after each audited commit, it appends a checkpoint when
    `interval` seconds have passed since its last one (0: every time), and the last head it was
    told at exit. Writing never fails the action it follows: a failure is an operator alert."""

    def __init__(self, store: FileCheckpoints, interval: float) -> None:
        self.store = store
        self._interval = interval
        self._lock = threading.Lock()
        self._noted: tuple[int, str] | None = None
        self._written = 0
        self._last = float("-inf")
        atexit.register(self.flush)

    def note(self, seq: int, head_hash: str) -> None:
        with self._lock:
            if self._noted is None or seq > self._noted[0]:
                self._noted = (seq, head_hash)
            due = time.monotonic() - self._last >= self._interval
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if self._noted is None or self._noted[0] <= self._written:
                return
            seq, head_hash = self._noted
            try:
                self.store.append(seq, head_hash)
            except OSError as exc:
                log.critical("ALERT audit checkpoint cannot be written to %s: %s",
                             self.store.folder, type(exc).__name__)
                return
            self._written, self._last = seq, time.monotonic()
