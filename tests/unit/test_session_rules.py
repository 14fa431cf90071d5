"""R8/R16 as rules over a typed session record (domain/session.py), no store involved."""

from __future__ import annotations

from dataclasses import replace

import pytest

from authsvc.domain.session import CONSOLE, USER, Lifetime, Record, idle, seen

LIFE = Lifetime(idle_minutes=15, absolute_hours=10)
T0 = 1_780_000_000.0
REC = Record("tanaka", ("password", "vein"), T0, T0, terminal="pc-1", source="10.0.0.5")


def test_a_fresh_session_is_as_it_was():
    assert seen(REC, T0 + 60, LIFE) == REC


@pytest.mark.parametrize("surface", [USER, CONSOLE])
def test_the_absolute_lifetime_ends_any_session(surface):
    rec = replace(REC, surface=surface, last_seen=T0 + 10 * 3600)  # active to the end
    assert seen(rec, T0 + 10 * 3600, LIFE) is not None
    assert seen(rec, T0 + 10 * 3600 + 1, LIFE) is None


def test_an_idle_user_session_locks_and_stays_locked():
    assert not idle(REC, T0 + 15 * 60, LIFE)
    locked = seen(REC, T0 + 15 * 60 + 1, LIFE)
    assert locked == replace(REC, locked=True)
    assert seen(locked, T0 + 3600, LIFE) == locked


def test_an_idle_console_session_ends_instead_of_locking():
    console = replace(REC, surface=CONSOLE)
    assert seen(console, T0 + 15 * 60, LIFE) == console
    assert seen(console, T0 + 15 * 60 + 1, LIFE) is None


def test_the_store_entry_round_trips_and_other_entries_are_no_session():
    for rec in (REC, replace(REC, locked=True, surface=CONSOLE, remote=True, flow={"step": "x"})):
        assert Record.of(rec.data()) == rec
    assert REC.data()["kind"] == "session" and "flow" not in REC.data()
    assert Record.of({"kind": "logon", "flow": {}}) is None
    assert Record.of(None) is None and Record.of({}) is None


def test_a_session_keeps_its_name_and_authentication_time_through_the_store():
    named = replace(REC, ref="r-1", auth_time=T0 + 60, device="TERM-1")
    again = Record.of(named.data())
    assert again == named and again.authenticated_at == T0 + 60
    assert Record.of(REC.data()).authenticated_at == T0  # before any re-authentication: its logon
