"""The OpenID provider's first part through the Flask test client and the command line:
discovery, the JWKS that verifies what `services.oidc.sign` signs, and audited key rotation."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import create_engine, text

from adapters.oidc_keys import GRACE
from authsvc.cli import main
from authsvc.services import oidc
from authsvc.web import create_app


@pytest.fixture
def web(sqlite_deps):
    app = create_app(deps=sqlite_deps)
    return app.test_client()


def served_keys(web) -> KeySet:
    resp = web.get("/oidc/jwks")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "public, max-age=300"
    assert resp.mimetype == "application/json"
    return KeySet.import_key_set(resp.get_json())


def test_a_signed_token_verifies_against_the_served_jwks_until_its_key_retires(web, sqlite_deps, clock):
    deps = sqlite_deps
    old_token = oidc.sign(deps, {"sub": "yamada", "aud": "rp"})
    assert jwt.decode(old_token, served_keys(web), algorithms=["ES256"]).claims["sub"] == "yamada"
    clock.advance(days=1)
    deps.signing_keys.rotate()
    new_token = oidc.sign(deps, {"sub": "suzuki"})
    keys = served_keys(web)
    assert jwt.decode(old_token, keys, algorithms=["ES256"]).claims["sub"] == "yamada"  # still published
    assert jwt.decode(new_token, keys, algorithms=["ES256"]).claims["sub"] == "suzuki"
    clock.advance(minutes=deps.settings.oidc.id_token_minutes, seconds=GRACE.total_seconds())
    keys = served_keys(web)
    assert len(keys.keys) == 1
    with pytest.raises(JoseError):  # the retired key left the JWKS
        jwt.decode(old_token, keys, algorithms=["ES256"])
    assert jwt.decode(new_token, keys, algorithms=["ES256"]).claims["sub"] == "suzuki"


def test_the_keys_are_files_in_the_instance_folder(web, sqlite_deps):
    web.get("/oidc/jwks")
    folder = sqlite_deps.settings.instance_path / "oidc-keys"
    [path] = folder.glob("*.json")
    assert path.stem == sqlite_deps.signing_keys.current().kid


def test_discovery_derives_the_issuer_from_the_request(web):
    resp = web.get("/.well-known/openid-configuration", base_url="https://gw.example:8443")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    doc = resp.get_json()
    assert doc["issuer"] == "https://gw.example:8443"
    assert doc["jwks_uri"] == "https://gw.example:8443/oidc/jwks"
    assert doc["authorization_endpoint"] == "https://gw.example:8443/oidc/authorize"
    assert doc["token_endpoint"] == "https://gw.example:8443/oidc/token"
    assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_types_supported"] == ["code"]
    assert doc["backchannel_logout_supported"] is True


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
def test_the_configured_issuer_and_algorithm(make_deps, alg):
    deps = make_deps(oidc={"issuer": "https://login.gw.example", "signing_alg": alg})
    web = create_app(deps=deps).test_client()
    doc = web.get("/.well-known/openid-configuration", base_url="https://elsewhere.example").get_json()
    assert doc["issuer"] == "https://login.gw.example"
    assert doc["jwks_uri"] == "https://login.gw.example/oidc/jwks"
    assert doc["id_token_signing_alg_values_supported"] == [alg]
    token = oidc.sign(deps, {"iss": doc["issuer"], "sub": "yamada"})
    verified = jwt.decode(token, served_keys(web), algorithms=[alg])
    assert verified.header["alg"] == alg and verified.claims["iss"] == "https://login.gw.example"
    assert [k.alg for k in deps.signing_keys.inventory()] == [alg]


def test_the_public_documents_need_no_session_nor_csrf_token(web):
    for path in ("/.well-known/openid-configuration", "/oidc/jwks"):
        assert web.get(path).status_code == 200
        assert web.post(path).status_code == 405


def test_rotate_key_from_the_command_line_is_audited_without_key_material(tmp_path):
    env = {"AUTHSVC__PATHS__INSTANCE_DIR": str(tmp_path / "instance"), "AUTHSVC__DATABASE__URL": "",
           "AUTHSVC__ARGON2__TIME_COST": "1", "AUTHSVC__ARGON2__MEMORY_COST_KIB": "1024",
           "AUTHSVC__ARGON2__PARALLELISM": "1", "AUTHSVC_LANG": "en"}
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert run("oidc", "keys", "--json") == []
    first = run("oidc", "rotate-key", "--json")["kid"]
    second = run("oidc", "rotate-key", "--json")["kid"]
    listed = run("oidc", "keys", "--json")
    assert [k["kid"] for k in listed] == [second, first]
    assert all(k["published"] and k["alg"] == "ES256" for k in listed)
    private = {json.loads(p.read_text())["jwk"]["d"]
               for p in (tmp_path / "instance" / "oidc-keys").glob("*.json")}
    engine = create_engine(f"sqlite:///{tmp_path / 'instance' / 'authsvc.db'}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT action, subject, result, detail, actor FROM audit_events "
                                 "WHERE action = 'oidc.key_rotated' ORDER BY seq")).all()
    engine.dispose()
    assert [(r.subject, r.result) for r in rows] == [(first, "ok"), (second, "ok")]
    assert all(r.actor.startswith("cli:") for r in rows)
    assert not any(d in str(tuple(r)) for r in rows for d in private)
