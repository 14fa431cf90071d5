"""A relying party's registration ([8 of 12], R18): the redirect URIs it may be sent back to
(matched exactly, so each must be exactly right when registered), its logout URIs, its keys for
private_key_jwt (public keys only), and the levels of assurance and methods a logon proved."""

from __future__ import annotations

import json

import pytest
from joserfc.jwk import ECKey, OKPKey

from authsvc.domain import relying_party as rp
from authsvc.domain.errors import DomainError

CB = "https://rp.example.jp/callback"


def refused(code: str, **kwargs) -> str:
    with pytest.raises(DomainError) as exc:
        rp.parse(**{"name": "設計支援", "redirect_uris": [CB], **kwargs})
    assert exc.value.code == code
    return exc.value.code


# ---- redirect URIs ---------------------------------------------------------------------------


@pytest.mark.parametrize("uri", [
    CB, "https://rp.example.jp:8443/cb?tenant=a", "http://127.0.0.1:8000/cb", "http://localhost/cb",
    "http://[::1]:9000/cb", "https://rp.example.jp/" + "a" * (rp.MAX_URI - len("https://rp.example.jp/")),
])
def test_good_redirect_uris_are_kept_exactly(uri):
    assert rp.parse("設計支援", [uri]).redirect_uris == (uri,)


@pytest.mark.parametrize("uri", [
    "http://rp.example.jp/cb",                   # http only on the loopback
    "http://127.0.0.1.evil.example/cb",          # a loopback name as a prefix is no loopback
    "http://localhost.evil.example/cb",
    "ftp://rp.example.jp/cb", "javascript:alert(1)", "rp.example.jp/cb", "/cb", "https:///cb",
    CB + "#fragment", CB + "#",                  # no fragment, not even an empty one
    "https://user@rp.example.jp/cb", "https://user:pw@rp.example.jp/cb",  # no user info
    "https://rp.example.jp/c b", " " + CB, CB + " ", CB + "\t", CB + "\n", "https://rp.example.jp/c\x00b",
    "https://rp.example.jp/c\x7fb",              # no whitespace, no control characters
    "https://[::1/cb",                           # unparseable
    "https://rp.example.jp/" + "a" * rp.MAX_URI,  # too long
    "",
])
def test_bad_redirect_uris_are_refused(uri):
    refused("oidc_redirect_uri_invalid", redirect_uris=[uri])


def test_at_least_one_and_at_most_max_redirect_uris_duplicates_folded():
    refused("oidc_redirect_uri_invalid", redirect_uris=[])
    refused("oidc_redirect_uri_invalid", redirect_uris=None)
    many = [f"https://rp.example.jp/cb{n}" for n in range(rp.MAX_URIS + 1)]
    refused("oidc_redirect_uri_invalid", redirect_uris=many)
    assert len(rp.parse("x", many[:rp.MAX_URIS]).redirect_uris) == rp.MAX_URIS
    assert rp.parse("x", [CB, CB, CB + "/"]).redirect_uris == (CB, CB + "/")  # a trailing / is another URI
    assert rp.parse("x", CB).redirect_uris == (CB,)  # one URI given as a string
    refused("oidc_redirect_uri_invalid", redirect_uris=[CB, 42])


def test_logout_and_backchannel_uris_follow_the_same_rule_with_their_own_codes():
    made = rp.parse("x", [CB], post_logout_redirect_uris=["https://rp.example.jp/bye"],
                    backchannel_logout_uri="https://rp.example.jp/backchannel")
    assert made.post_logout_redirect_uris == ("https://rp.example.jp/bye",)
    assert made.backchannel_logout_uri == "https://rp.example.jp/backchannel"
    assert rp.parse("x", [CB]).post_logout_redirect_uris == ()  # optional
    refused("oidc_logout_uri_invalid", post_logout_redirect_uris=["http://rp.example.jp/bye"])
    refused("oidc_logout_uri_invalid",
            post_logout_redirect_uris=[f"https://rp.example.jp/{n}" for n in range(rp.MAX_URIS + 1)])
    refused("oidc_backchannel_uri_invalid", backchannel_logout_uri="https://rp.example.jp/bc#x")
    refused("oidc_backchannel_uri_invalid", backchannel_logout_uri="https://u@rp.example.jp/bc")


def test_name_auth_method_and_subject_type():
    assert rp.parse("  設計   支援  ", [CB]).name == "設計 支援"
    refused("oidc_name_invalid", name="   ")
    refused("oidc_name_invalid", name="x" * 101)
    refused("oidc_auth_method_invalid", auth_method="client_secret_post")
    refused("oidc_auth_method_invalid", auth_method="none")  # no public clients
    refused("oidc_subject_type_invalid", subject_type="random")
    assert rp.parse("x", [CB], subject_type="pairwise").subject_type == "pairwise"


# ---- keys for private_key_jwt ----------------------------------------------------------------


def ec_key() -> ECKey:
    return ECKey.generate_key("P-256")


def test_a_public_ec_key_is_accepted_as_given_or_as_json_text():
    public = ec_key().as_dict(private=False)
    made = rp.parse("x", [CB], "private_key_jwt", jwks={"keys": [public]})
    assert made.jwks == {"keys": [public]} and made.auth_method == "private_key_jwt"
    assert rp.parse("x", [CB], "private_key_jwt", jwks=json.dumps({"keys": [public]})).jwks == made.jwks
    okp = OKPKey.generate_key("Ed25519").as_dict(private=False)
    assert rp.parse("x", [CB], "private_key_jwt", jwks={"keys": [public, okp]}).jwks["keys"][1] == okp


def test_a_private_key_is_refused():
    private = ec_key().as_dict(private=True)
    assert "d" in private
    refused("oidc_jwks_invalid", auth_method="private_key_jwt", jwks={"keys": [private]})
    refused("oidc_jwks_invalid", auth_method="private_key_jwt", jwks=json.dumps({"keys": [private]}))
    secret = {"kty": "oct", "k": "c2VjcmV0"}  # a shared secret is no public key either
    refused("oidc_jwks_invalid", auth_method="private_key_jwt", jwks={"keys": [secret]})


@pytest.mark.parametrize("jwks", [
    None, "", "garbage", "{not json", [], {}, {"keys": []}, {"keys": "x"}, {"keys": ["x"]},
    {"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA"}]},  # half a point
    {"keys": [{"kty": "EC", "crv": "P-256", "x": 1, "y": 2}]},
    {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": ""}]},
    {"keys": [{"kty": "RSA", "e": "AQAB"}]},
    {"keys": [{"kty": "XX"}]}, {"keys": [{"crv": "P-256", "x": "AA", "y": "AA"}]},
])
def test_garbage_is_refused(jwks):
    refused("oidc_jwks_invalid", auth_method="private_key_jwt", jwks=jwks)


def test_too_many_keys_and_keys_for_a_secret_client_are_refused():
    public = ec_key().as_dict(private=False)
    refused("oidc_jwks_invalid", auth_method="private_key_jwt", jwks={"keys": [public] * 6})
    refused("oidc_jwks_invalid", jwks={"keys": [public]})  # client_secret_basic takes no keys
    assert rp.parse("x", [CB]).jwks == {}


def test_a_registration_survives_its_json():
    public = ec_key().as_dict(private=False)
    made = rp.parse("設計支援", [CB, "http://127.0.0.1/cb"], "private_key_jwt", ["https://rp.example.jp/bye"],
                    "https://rp.example.jp/bc", {"keys": [public]}, True, "pairwise")
    assert rp.Registration.from_json(made.to_json()) == made
    assert "設計支援" in made.to_json()  # kept readable (ensure_ascii=False)
    assert rp.Registration.from_json(None) == rp.Registration("", ())


# ---- acr and amr -----------------------------------------------------------------------------


def test_acr_states_the_level_reached():
    assert rp.acr(("password", "vein"), terminal=True) == rp.ACR_VEIN_TERMINAL
    assert rp.acr(("password", "vein"), terminal=False) == rp.ACR_VEIN
    assert rp.acr(["password", "totp"], terminal=True) == rp.ACR_MFA  # a terminal without the palm
    assert rp.acr(("password", "webauthn"), terminal=False) == rp.ACR_MFA
    assert rp.acr(("vein",), terminal=True) == ""  # one factor is no level (no session has one)
    assert rp.acr(("password",), terminal=False) == ""


def test_amr_names_each_method_mfa_and_the_terminal():
    assert rp.amr(("password", "vein"), True) == ["pwd", "vein", "mfa", "terminal"]
    assert rp.amr(("password", "totp"), False) == ["pwd", "otp", "mfa"]
    assert rp.amr(("password", "webauthn"), False) == ["pwd", "hwk", "mfa"]
    assert rp.amr(("password",), False) == ["pwd"]  # one method: no "mfa"
    assert rp.amr(("password", "unknown"), False) == ["pwd"]  # what it does not know it does not claim


def test_meets_orders_the_levels_and_refuses_what_it_does_not_know():
    levels = rp.ACR_LEVELS
    for i, reached in enumerate(levels):
        for j, wanted in enumerate(levels):
            assert rp.meets(reached, wanted) is (i >= j), (reached, wanted)
    assert not rp.meets(rp.ACR_VEIN_TERMINAL, "urn:other:acr")
    assert not rp.meets("urn:other:acr", rp.ACR_MFA)
    assert not rp.meets("", "")


def test_missing_names_the_factor_and_the_terminal_a_demand_needs():
    assert rp.missing(rp.ACR_MFA) == (False, False)
    assert rp.missing(rp.ACR_VEIN) == (True, False)
    assert rp.missing(rp.ACR_VEIN_TERMINAL) == (True, True)
    assert rp.missing("urn:other:acr") == (False, False)


@pytest.mark.parametrize("uri", ["https://rp.example/cb\x85", "https://rp.example/\u202ecb",
                                 "https://rp.example/c\u00a0b", "https://rp.example/cb\u2028",
                                 "https://rp.example:99999/cb", "https://rp.example/c b"])
def test_uris_are_printable_ascii_with_a_real_port(uri):
    refused("oidc_redirect_uri_invalid", redirect_uris=[uri])


def test_uris_of_another_type_are_a_clear_refusal():
    with pytest.raises(DomainError) as exc:
        rp.parse("x", 5)
    assert exc.value.code == "oidc_redirect_uri_invalid"
