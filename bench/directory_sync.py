"""Directory-sync benchmark ([9 of 12]): a generated directory of 100,000 users in 1,000 groups in
a real slapd; prints, in one run, the time `ldapsearch` takes to dump the entries the sync reads
(the floor), the full sync (the first import, which creates every account, and a full sync of an
unchanged directory), an incremental sync after 1,000 changes, and the peak memory. Figures are
printed beside their targets, never asserted. See bench/README.md.

    .venv/bin/python bench/directory_sync.py                 # 100,000 users, PostgreSQL
    .venv/bin/python bench/directory_sync.py --users 20000 --db sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from authsvc.bootstrap import build  # noqa: E402
from authsvc.domain.roles import Actor, Role  # noqa: E402
from authsvc.services import accounts, directory_sync  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.ldap_support import LDAPSEARCH, PEOPLE, Slapd, generate_ldif  # noqa: E402
from tests.security.instances import fresh_database  # noqa: E402

COMPANY = "防衛産業株式会社"
OPERATOR = Actor("bench-ops", frozenset({Role.AGENCY_OPERATOR}), terminal="bench", source="127.0.0.1")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


@contextlib.contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        yield ""
    else:
        with fresh_database("authsvc_bench_dir") as url:
            yield url


def dump_seconds(server: Slapd) -> float:
    """ldapsearch paging through every user with the attributes the sync reads: the floor."""
    args = [LDAPSEARCH, "-x", "-LLL", "-H", server.url, "-D", server.bind_dn, "-w", server.password,
            "-b", PEOPLE, "-E", "pr=500/noprompt", "(objectClass=inetOrgPerson)",
            "uid", "displayName", "cn", "departmentNumber", "entryUUID", "modifyTimestamp"]
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "LDAPNOINIT": "1"})
    return time.perf_counter() - start


def change_ldif(users: int, changes: int) -> str:
    """`changes` modifications of users' display names, spread over the directory."""
    step = max(1, users // changes)
    return "".join(f"dn: uid=bench{i:06d},{PEOPLE}\nchangetype: modify\nreplace: displayName\n"
                   f"displayName: 変更後 {i}\n\n" for i in range(0, step * changes, step))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=1_000)
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="authsvc-bench-dir-") as tmp, Slapd(size_limit=500) as server, \
            database(args.db) as url:
        ldif = generate_ldif(Path(tmp) / "directory.ldif", args.users, args.groups)
        t0 = time.perf_counter()
        server.load(ldif)
        print(f"directory: {args.users:,} users in {args.groups:,} groups loaded into slapd in "
              f"{time.perf_counter() - t0:.1f} s")
        sources = Path(tmp) / "directory.toml"
        os.environ["AUTHSVC_BENCH_LDAP_PASSWORD"] = server.password
        sources.write_text(
            f'[[source]]\ncompany = "{COMPANY}"\nurls = ["{server.url}"]\nbind_dn = "{server.bind_dn}"\n'
            f'bind_password_env = "AUTHSVC_BENCH_LDAP_PASSWORD"\nusers_base = "{server.people}"\n'
            f'groups_base = "{server.groups}"\ncontract_attribute = "departmentNumber"\n'
            f'page_size = 500\ntimeout_seconds = 60\n', encoding="utf-8")
        deps = build(make_settings(str(Path(tmp) / "instance"), url,
                                   directory={"sources_file": str(sources)}))
        for g in range(args.groups):
            accounts.create_contract(deps, OPERATOR, f"C-2026-{g:03d}", COMPANY, date(2026, 1, 1), None)
        floor = min(dump_seconds(server) for _ in range(3))
        print(f"floor: ldapsearch dumps the {args.users:,} users in {floor:.2f} s (best of 3)")

        rss_before = peak_rss_mib()
        t0 = time.perf_counter()
        first = directory_sync.sync(deps, OPERATOR, COMPANY, full=True)
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        steady = directory_sync.sync(deps, OPERATOR, COMPANY, full=True)
        steady_s = time.perf_counter() - t0
        server.modify(change_ldif(args.users, args.changes))
        t0 = time.perf_counter()
        inc = directory_sync.sync(deps, OPERATOR, COMPANY)
        inc_s = time.perf_counter() - t0
        rss_after = peak_rss_mib()

        print(f"\nfirst import: {len(first.created):,} accounts created, "
              f"{len(first.memberships):,} memberships requested, in {first_s:.1f} s")
        print(f"full sync of the unchanged directory: {steady.seen:,} entries seen, "
              f"{len(steady.updated)} updated, in {steady_s:.1f} s")
        print(f"incremental sync after {args.changes:,} changes: {len(inc.updated):,} updated "
              f"in {inc_s:.2f} s")
        print(f"peak RSS: {rss_after:.0f} MiB (before the syncs {rss_before:.0f} MiB)\n")
        print(f"{'target':<58} {'figure':>12}  verdict")
        rows = [
            ("full sync (unchanged directory) <= 3 x the ldapsearch dump", f"{steady_s / floor:.1f} x",
             steady_s <= 3 * floor),
            ("first import (creates every account) <= 3 x the dump", f"{first_s / floor:.1f} x",
             first_s <= 3 * floor),
            (f"incremental sync of {args.changes:,} changes < 5 s", f"{inc_s:.2f} s", inc_s < 5),
            ("memory bounded: peak RSS grows < 300 MiB over the syncs", f"{rss_after - rss_before:.0f} MiB",
             rss_after - rss_before < 300),
        ]
        for label, figure, ok in rows:
            print(f"{label:<58} {figure:>12}  {verdict(ok)}")
        deps.engine.dispose()


if __name__ == "__main__":
    main()
