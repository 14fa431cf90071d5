"""The OpenID provider's key ring (adapters/oidc_keys.py): files outside the database, the
newest signs, a replaced key stays published until its tokens have expired."""

from __future__ import annotations

import json
import stat
from datetime import timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from adapters.clock import FixedClock
from adapters.oidc_keys import GRACE, KeyRing
from authsvc.settings import ConfigError
from tests.conftest import START, make_settings

PRIVATE = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def ring(folder, clock, alg="ES256", rotate_days=90, minutes=10):
    return KeyRing(folder, alg, rotate_days, minutes, clock.now)


def test_the_first_key_is_made_on_demand_as_an_owner_only_file(tmp_path):
    folder = tmp_path / "oidc-keys"
    keys = ring(folder, FixedClock(START))
    assert keys.inventory() == [] and not folder.exists()
    current = keys.current()
    files = list(folder.glob("*.json"))
    assert [f.name for f in files] == [f"{current.kid}.json"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    saved = json.loads(files[0].read_text())
    assert saved["kid"] == current.kid == saved["jwk"]["kid"] and saved["created"] == START.isoformat()
    assert keys.current() == current  # the same key until it is replaced
    assert ring(folder, FixedClock(START)).current() == current  # another process reads it


def test_rotation_keeps_the_old_key_published_until_its_tokens_expire(tmp_path):
    clock = FixedClock(START)
    keys = ring(tmp_path, clock, minutes=10)
    old = keys.current()
    clock.advance(days=30)
    new = keys.rotate()
    assert keys.current().kid == new.kid != old.kid
    assert [k["kid"] for k in keys.published()] == [new.kid, old.kid]
    clock.advance(minutes=10, seconds=GRACE.total_seconds() - 1)
    assert [k["kid"] for k in keys.published()] == [new.kid, old.kid]
    clock.advance(seconds=1)
    assert [k["kid"] for k in keys.published()] == [new.kid]
    assert [(k.kid, k.published) for k in keys.inventory()] == [(new.kid, True), (old.kid, False)]


def test_a_key_older_than_rotate_days_is_replaced(tmp_path):
    clock = FixedClock(START)
    keys = ring(tmp_path, clock, rotate_days=90)
    first = keys.current()
    clock.advance(days=89)
    assert keys.current().kid == first.kid
    clock.advance(days=1)
    second = keys.current()
    assert second.kid != first.kid and second.created == clock.now()
    assert {k["kid"] for k in keys.published()} == {first.kid, second.kid}


def test_published_never_holds_private_parts(tmp_path):
    clock = FixedClock(START)
    for alg in ("ES256", "EdDSA", "RS256"):
        keys = ring(tmp_path / alg, clock, alg=alg)
        keys.current()
        keys.rotate()
        for jwk in keys.published():
            assert not PRIVATE & set(jwk), jwk
            assert jwk["alg"] == alg and jwk["use"] == "sig"


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_signed_tokens_verify_against_the_published_keys(alg):
    keys = ring(None, FixedClock(START), alg=alg)
    token = keys.sign({"sub": "yamada", "aud": "rp"})
    verified = jwt.decode(token, KeySet.import_key_set({"keys": keys.published()}), algorithms=[alg])
    assert verified.claims == {"sub": "yamada", "aud": "rp"}
    assert verified.header["kid"] == keys.current().kid and verified.header["alg"] == alg


def test_a_changed_algorithm_makes_a_new_key_and_publishes_both_for_a_while(tmp_path):
    clock = FixedClock(START)
    es = ring(tmp_path, clock).current()
    clock.advance(minutes=1)
    ed = ring(tmp_path, clock, alg="EdDSA")
    assert ed.current().alg == "EdDSA"
    assert [k["alg"] for k in ed.published()] == ["EdDSA", "ES256"]
    clock.advance(minutes=10)
    clock.advance(seconds=(GRACE + timedelta(seconds=1)).total_seconds())
    assert [k["kid"] for k in ed.published()] == [ed.current().kid] != [es.kid]


def test_an_unreadable_key_file_is_skipped_without_its_content_in_the_log(tmp_path, caplog):
    keys = ring(tmp_path, FixedClock(START))
    (tmp_path / "broken.json").write_text('{"d": "secret-part"')
    assert len(keys.published()) == 1
    assert "broken.json" in caplog.text and "secret-part" not in caplog.text


def test_oidc_settings_are_validated(tmp_path):
    s = make_settings(str(tmp_path))
    assert s.oidc.signing_alg == "ES256" and s.oidc_key_path == tmp_path.resolve() / "oidc-keys"
    with pytest.raises(ConfigError, match=r"oidc\.signing_alg"):
        make_settings(str(tmp_path), oidc={"signing_alg": "HS256"})
    with pytest.raises(ConfigError, match=r"oidc\.rotate_days"):
        make_settings(str(tmp_path), oidc={"rotate_days": 0})
    for bad in ("http://gateway.example", "https://gateway.example/", "https://g.example?x=1", "gateway"):
        with pytest.raises(ConfigError, match=r"oidc\.issuer"):
            make_settings(str(tmp_path), oidc={"issuer": bad})
    assert make_settings(str(tmp_path), oidc={"issuer": "https://g.example/sub"}).oidc.issuer \
        == "https://g.example/sub"
