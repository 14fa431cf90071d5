"""Audit-chain benchmark ([10 of 12]): (a) verification of 1,000,000 events against plain SHA-256
over the same bytes; (b) audit appends per second from 8 concurrent writers on PostgreSQL
against plain INSERTs of the same rows. Figures are printed beside their targets, never
asserted. See bench/README.md.

    .venv/bin/python bench/audit.py                    # 1,000,000 events, 8 writers, 10 s each
    .venv/bin/python bench/audit.py --events 200000 --seconds 5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from authsvc.bootstrap import build  # noqa: E402
from authsvc.domain import audit as chain  # noqa: E402
from authsvc.domain.calendar import jst_iso  # noqa: E402
from authsvc.domain.roles import Actor  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.security.instances import fresh_database  # noqa: E402

KEY = b"k" * 32


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def make_rows(n: int) -> list[dict]:
    """A valid chain of `n` events, as the store returns them."""
    rows, prev = [], chain.GENESIS
    ts = jst_iso(datetime(2026, 12, 7, tzinfo=UTC))
    for seq in range(1, n + 1):
        row = {"seq": seq, "ts": ts, "actor": "svc:bench", "action": "logon.password",
               "subject": f"user{seq % 5000:05d}", "result": "failed", "terminal": "T-1",
               "source": "10.0.0.1", "detail": '{"reason":"wrong_password"}'}
        digest = chain.chain_hash(prev, row)
        row.update(prev_hash=prev, hash=digest, mac=chain.sign_row(KEY, seq, digest))
        rows.append(row)
        prev = digest
    return rows


def verification(n: int) -> tuple[float, float]:
    rows = make_rows(n)
    head = rows[-1]
    t0 = time.perf_counter()
    checked, problem = chain.verify(rows, head["seq"], head["hash"],
                                    chain.sign_head(KEY, head["seq"], head["hash"]), KEY)
    verify_s = time.perf_counter() - t0
    assert problem is None and checked == n
    payloads = [chain.canonical(r) for r in rows]
    t0 = time.perf_counter()
    for p in payloads:
        hashlib.sha256(p).digest()
    sha_s = time.perf_counter() - t0
    return verify_s, sha_s


def appends(url: str, writers: int, seconds: float) -> tuple[float, float, float]:
    """Audit appends/s (the unlocked insert, each process's sequencer sealing behind it), plain
    INSERTs/s, and how long after the writers stop the last of their events is sealed."""
    with tempfile.TemporaryDirectory(prefix="authsvc-bench-audit-") as tmp:
        deps = build(make_settings(str(Path(tmp) / "instance"), url, audit={"checkpoint_seconds": 3600}))
        actor = Actor("svc:bench", terminal="T-1", source="10.0.0.1")

        def audited() -> None:
            with deps.uow() as uow:
                uow.audit(deps.clock.now(), actor, "logon.password", "user00001", "failed",
                          reason="wrong_password")
                uow.commit()

        with deps.engine.begin() as conn:
            conn.execute(text("CREATE TABLE bench_plain (seq BIGSERIAL PRIMARY KEY, ts TEXT, actor TEXT, "
                              "action TEXT, subject TEXT, result TEXT, terminal TEXT, source TEXT, "
                              "detail TEXT, prev_hash TEXT, hash TEXT, mac TEXT)"))

        def plain() -> None:
            with deps.engine.begin() as conn:
                conn.execute(text("INSERT INTO bench_plain (ts, actor, action, subject, result, terminal, "
                                  "source, detail, prev_hash, hash, mac) VALUES (:ts, 'svc:bench', "
                                  "'logon.password', 'user00001', 'failed', 'T-1', '10.0.0.1', :d, :h, :h, "
                                  ":h)"),
                             {"ts": jst_iso(datetime.now(UTC)), "d": json.dumps({"reason": "wrong_password"}),
                              "h": "0" * 64})

        audited()  # the chain's head row exists before the writers race (as after the first start)
        appended = run(audited, writers, seconds)
        t0 = time.perf_counter()
        deps.sequencer.seal()  # the background pass may be running: this waits for it, then drains
        drain = time.perf_counter() - t0
        with deps.engine.connect() as conn:
            left = conn.execute(text("SELECT count(*) FROM audit_events WHERE seq IS NULL OR seq < 0")
                                ).scalar_one()
        assert left == 0, f"{left} events not sealed"
        deps.sequencer.close()
        plain_rate = run(plain, writers, seconds)
        deps.engine.dispose()
        return appended, plain_rate, drain


def run(fn, writers: int, seconds: float) -> float:
    stop = time.perf_counter() + seconds
    counts = [0] * writers

    def work(i: int) -> None:
        while time.perf_counter() < stop:
            fn()
            counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    verify_s, sha_s = verification(args.events)
    print(f"(a) verification of {args.events:,} events: {verify_s:.1f} s "
          f"({args.events / verify_s:,.0f} events/s); plain SHA-256 over the same bytes: {sha_s:.2f} s "
          f"(ratio {verify_s / sha_s:.1f})")
    with fresh_database("authsvc_bench_audit") as url:
        audited, plain, drain = appends(url, args.writers, args.seconds)
    print(f"(b) {args.writers} concurrent writers on PostgreSQL: {audited:,.0f} audit appends/s, "
          f"{plain:,.0f} plain INSERTs/s (ratio {audited / plain:.2f}); every event sealed "
          f"{drain:.2f} s after the writers stopped\n")
    scaled = verify_s * 1_000_000 / args.events
    rows = [("(a) 1,000,000 events verified in under 10 s", f"{scaled:.1f} s", scaled < 10),
            ("(b) audit appends / plain INSERTs >= 0.5", f"{audited / plain:.2f}", audited / plain >= 0.5),
            ("(b) sealed within audit.seal_grace_seconds (60 s)", f"{drain:.2f} s", drain < 60)]
    print(f"{'target':<50} {'figure':>10}  verdict")
    for label, figure, ok in rows:
        print(f"{label:<50} {figure:>10}  {verdict(ok)}")


if __name__ == "__main__":
    main()
