"""What one palm enrolment costs as the enrolled population grows (R14): `vein.enrol` as the
registration pages and the station run it — read every other person's sealed template, open
it, search the new palm 1:N (max FMR 1e-10), then, under the audit chain's lock, search again
what landed meanwhile and write — against a 1:N search over a gallery already prepared in
memory (what a cached gallery would cost). Figures are printed, never asserted.

    .venv/bin/python bench/vein_enrol.py                       # N = 1,000, 10,000, 50,000 on SQLite
    .venv/bin/python bench/vein_enrol.py --n 20000 --db postgres

Templates are made by vein_sdk_stub.bulk (the emulator's own enrolment, vectorised), sealed
with the service's key ring and inserted as the store holds them."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402

from adapters.clock import FixedClock  # noqa: E402
from adapters.vein import open_reader  # noqa: E402
from authsvc.bootstrap import build  # noqa: E402
from authsvc.domain.roles import Actor, Role  # noqa: E402
from authsvc.services import accounts, vein  # noqa: E402
from authsvc.store.models import Person, VeinEnrolment  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from vein_sdk_stub import Hand, Population  # noqa: E402
from vein_sdk_stub.bulk import enrol_batch, template_records  # noqa: E402

OPERATOR = Actor("bench-ops", frozenset({Role.AGENCY_OPERATOR}))
STAFF = Actor("bench-staff", frozenset({Role.AGENCY_OPERATOR}), terminal="STATION-1")
CHUNK = 20_000
PG_ADMIN = os.environ.get("AUTHSVC_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def seed_population(deps, pop: Population, n: int, first_palm: int) -> int:
    """n enrolled persons with palms first_palm…, inserted in bulk; returns the next free palm."""
    palm, done = first_palm, 0
    now = datetime.now(UTC)
    while done < n:
        palms = np.arange(palm, palm + min(CHUNK, n - done))
        palm = int(palms[-1]) + 1
        en = enrol_batch(pop, palms, Hand.RIGHT)
        blobs = [b for b, ok in zip(template_records(en.codes, en.scales, en.quality, Hand.RIGHT),
                                    en.ok, strict=True) if ok]
        with deps.uow() as uow:
            ids = list(uow.session.scalars(insert(Person).returning(Person.id),
                                           [{"name": "bench", "created_at": now} for _ in blobs]))
            uow.session.execute(insert(VeinEnrolment), [
                {"person_id": pid, "template": deps.sealer.seal(b, f"vein:{pid}".encode()),
                 "reader_id": "BENCH", "enrolled_by": "bench", "enrolled_at": now,
                 "consecutive_failures": 0, "total_failures": 0} for pid, b in zip(ids, blobs, strict=True)])
            uow.commit()
        done += len(blobs)
    return palm


def time_enrolments(deps, reader, palms: list[int]) -> list[float]:
    """One full `vein.enrol` per new person (a new account each), seconds each."""
    took = []
    for palm in palms:
        user = f"bench-{palm}"
        accounts.create_account(deps, OPERATOR, user, "ベンチ 太郎", "C-BENCH", "user")
        accounts.approve_identifier(deps, OPERATOR, user)

        def take(challenge: bytes, palm: int = palm):
            reader.control.present(palm, quality=90)
            return reader.capture("enrol", challenge)

        t = time.perf_counter()
        vein.enrol(deps, STAFF, user, reader, take)
        took.append(time.perf_counter() - t)
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="1000,10000,50000", help="enrolled populations, comma-separated")
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--enrolments", type=int, default=5, help="timed enrolments per population")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.n.split(","))
    print(f"authsvc palm enrolment benchmark — {platform.node()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {args.db}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        url, drop = "", None
        if args.db == "postgres":
            name = f"authsvc_bench_{os.getpid()}"
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
            url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
            drop = (admin, name)
        try:
            settings = make_settings(tmp, url)
            deps = build(settings, clock=FixedClock(datetime.now(UTC)))
            accounts.create_contract(deps, OPERATOR, "C-BENCH", "ベンチ株式会社", date.today(), None)
            pop = Population(args.seed)
            reader = open_reader("emulated", seed=args.seed, reader_id="STATION-1")
            matcher = open_reader("emulated", seed=args.seed, unit_id=None)
            palm, have = 0, 0
            print(f"{'N':>8}  {'enrol median':>13}  {'p90':>8}  {'gallery 1:N':>11}  {'ratio':>6}  "
                  "per template")
            for n in sizes:
                palm = seed_population(deps, pop, n - have, palm)
                have = n
                new = list(range(palm + 10_000, palm + 10_000 + args.enrolments))
                took = time_enrolments(deps, reader, new)
                have += len(new)
                # the same search over a gallery prepared once (opened templates kept in memory)
                with deps.uow(read_only=True) as uow:
                    rows = {r.person_id: deps.sealer.open(r.template, f"vein:{r.person_id}".encode())
                            for r in uow.session.query(VeinEnrolment)}
                gallery = matcher.prepare_gallery(rows)
                reader.control.present(palm + 20_000, quality=90)
                probe = reader.capture("enrol", os.urandom(32))
                searches = []
                for _ in range(5):
                    t = time.perf_counter()
                    matcher.identify(probe, gallery, 1e-10, 1)
                    searches.append(time.perf_counter() - t)
                med, g = statistics.median(took), statistics.median(searches)
                print(f"{have:>8,}  {med * 1e3:>10.0f} ms  {np.percentile(took, 90) * 1e3:>5.0f} ms  "
                      f"{g * 1e3:>8.1f} ms  {med / g:>6.0f}  {med / have * 1e6:.1f} µs")
            reader.close()
            deps.engine.dispose()
        finally:
            if drop:
                with drop[0].connect() as c:
                    c.execute(text(f'DROP DATABASE "{drop[1]}" WITH (FORCE)'))
    print("An enrolment is rare (once per person) and includes three captures and two writes; the "
          "ratio shows what a cached gallery would save as N grows.")


if __name__ == "__main__":
    main()
