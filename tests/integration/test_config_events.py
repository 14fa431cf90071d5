"""Configuration changes are events (004 第5 1): each service start audits the effective
configuration's fingerprint (`config.started`); a start whose configuration differs from the
last one's audits `config.changed` with both fingerprints and the keys that changed. The last
fingerprint and configuration are kept in the instance folder, owner-only. Real SQLite."""

from __future__ import annotations

import json
import stat

from authsvc.services import audit, health
from authsvc.web import create_app
from tests.conftest import make_settings
from tests.integration.support import events


def started(deps):
    return [e.data for e in events(deps, "config.started")]


def changed(deps):
    return [e.data for e in events(deps, "config.changed")]


def test_a_changed_lockout_policy_between_two_starts_is_an_event(make_deps):
    first = make_deps("sqlite")
    result = health.config_started(first)
    assert result.previous is None and not result.is_change
    [ev] = started(first)
    assert ev == {"fingerprint": result.fingerprint, "baseline": True}
    assert changed(first) == []
    folder = first.settings.instance_path
    for name in ("config.fingerprint", "config.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    assert (folder / "config.fingerprint").read_text() == result.fingerprint

    same = make_deps("sqlite")  # the same settings again: started, nothing changed
    again = health.config_started(same)
    assert again.fingerprint == result.fingerprint and not again.is_change
    assert len(started(same)) == 2 and changed(same) == []

    other = make_deps("sqlite", lockout={"max_failures": 3})
    moved = health.config_started(other)
    assert moved.is_change and moved.changed == ("lockout.max_failures",)
    [ev] = changed(other)
    assert ev == {"old": result.fingerprint, "new": moved.fingerprint, "sections": ["lockout"],
                  "keys": ["lockout.max_failures"]}
    assert started(other)[-1] == {"fingerprint": moved.fingerprint}
    assert json.loads((folder / "config.json").read_text())["lockout"]["max_failures"] == 3

    back = make_deps("sqlite")  # changed back: a change again, the other way
    assert health.config_started(back).changed == ("lockout.max_failures",)
    assert [e["new"] for e in changed(back)] == [moved.fingerprint, result.fingerprint]
    assert audit.verify(back).ok  # the events are in the chain like any other


def test_the_fingerprint_holds_no_password(tmp_path):
    a = make_settings(str(tmp_path), "postgresql+psycopg://authsvc:s3cret@db.internal/authsvc")
    b = make_settings(str(tmp_path), "postgresql+psycopg://authsvc:other@db.internal/authsvc")
    config = health.effective_config(a)
    assert "s3cret" not in json.dumps(config)
    assert config["database"]["url"] == "postgresql+psycopg://authsvc:***@db.internal/authsvc"
    # a rotated password is no policy change; another database host is
    assert health.fingerprint(config) == health.fingerprint(health.effective_config(b))
    c = make_settings(str(tmp_path), "postgresql+psycopg://authsvc:s3cret@db2.internal/authsvc")
    assert health.changed_keys(config, health.effective_config(c)) == ["database.url"]


def test_the_app_factory_records_its_start(make_deps):
    deps = make_deps("sqlite")  # migrates the database; the app factory checks the schema
    create_app(deps.settings)  # what gunicorn's wsgi.py does
    assert [e["baseline"] for e in started(deps)] == [True]
    create_app(deps=deps)  # given its services (tests, `authsvc serve`): the caller records
    assert len(started(deps)) == 1
