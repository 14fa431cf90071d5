"""AES-256-GCM sealing with a key ring (R15): round trip, tamper evidence, binding to its place
(associated data), unknown keys, rotation and key sizes."""

from __future__ import annotations

import base64
import os

import pytest

from adapters.sealing import Sealer, SealError

K1 = ("k1", bytes(range(32)))
K2 = ("k2", bytes(range(100, 132)))
AAD = b"totp:42"
SECRET = b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _body(sealed: str) -> bytes:
    return base64.urlsafe_b64decode(sealed.split(".", 2)[2])


def _with_body(sealed: str, raw: bytes) -> str:
    version, kid, _ = sealed.split(".", 2)
    return f"{version}.{kid}.{base64.urlsafe_b64encode(raw).decode()}"


def test_round_trip_and_nothing_in_clear():
    sealer = Sealer([K1])
    sealed = sealer.seal(SECRET, AAD)
    assert sealer.open(sealed, AAD) == SECRET
    assert sealed.startswith("v1.k1.")
    assert SECRET.decode() not in sealed and SECRET not in _body(sealed)
    assert len(_body(sealed)) == 12 + len(SECRET) + 16  # nonce, ciphertext, tag


def test_every_seal_uses_a_fresh_nonce():
    sealer = Sealer([K1])
    a, b = sealer.seal(SECRET, AAD), sealer.seal(SECRET, AAD)
    assert a != b
    assert _body(a)[:12] != _body(b)[:12]
    assert sealer.open(a, AAD) == sealer.open(b, AAD) == SECRET


def test_empty_plaintext_round_trips():
    sealer = Sealer([K1])
    assert sealer.open(sealer.seal(b"", AAD), AAD) == b""


@pytest.mark.parametrize("where", ["nonce", "ciphertext", "tag"])
def test_a_flipped_bit_anywhere_is_refused(where):
    sealer = Sealer([K1])
    sealed = sealer.seal(SECRET, AAD)
    raw = bytearray(_body(sealed))
    index = {"nonce": 0, "ciphertext": 12, "tag": len(raw) - 1}[where]
    raw[index] ^= 0x01
    with pytest.raises(SealError):
        sealer.open(_with_body(sealed, bytes(raw)), AAD)


def test_truncated_or_extended_values_are_refused():
    sealer = Sealer([K1])
    sealed = sealer.seal(SECRET, AAD)
    raw = _body(sealed)
    for bad in (raw[:-1], raw + b"\x00", raw[:27], b""):
        with pytest.raises(SealError):
            sealer.open(_with_body(sealed, bad), AAD)


@pytest.mark.parametrize("garbage", ["", "v1", "v1.k1", "v1.k1.", "v1.k1.!!!not-base64!!!",
                                     "v2.k1.AAAA", "plain text", "v1.k1.☃☃☃☃"])
def test_malformed_values_raise_seal_error_not_something_else(garbage):
    with pytest.raises(SealError):
        Sealer([K1]).open(garbage, AAD)


def test_a_wrong_version_is_refused_even_with_a_valid_body():
    sealer = Sealer([K1])
    sealed = sealer.seal(SECRET, AAD)
    with pytest.raises(SealError):
        sealer.open("v2" + sealed[2:], AAD)


def test_associated_data_binds_the_value_to_its_place():
    sealer = Sealer([K1])
    sealed = sealer.seal(SECRET, b"totp:42")
    for other in (b"totp:43", b"totp:4", b"", b"vein:42"):
        with pytest.raises(SealError):
            sealer.open(sealed, other)


def test_an_unknown_key_id_is_refused():
    sealed = Sealer([K2]).seal(SECRET, AAD)
    with pytest.raises(SealError):
        Sealer([K1]).open(sealed, AAD)


def test_a_key_id_swapped_in_the_value_does_not_open_under_the_other_key():
    ring = Sealer([K1, K2])
    sealed = ring.seal(SECRET, AAD)
    assert sealed.startswith("v1.k1.")
    with pytest.raises(SealError):
        ring.open("v1.k2." + sealed.split(".", 2)[2], AAD)


def test_same_key_id_with_different_key_material_does_not_open():
    sealed = Sealer([("k1", os.urandom(32))]).seal(SECRET, AAD)
    with pytest.raises(SealError):
        Sealer([K1]).open(sealed, AAD)


def test_rotation_first_key_seals_every_key_opens():
    old = Sealer([K1])
    sealed_old = old.seal(SECRET, AAD)
    rotated = Sealer([K2, K1])
    # the old value still opens, but is due for re-sealing under the new primary key
    assert rotated.open(sealed_old, AAD) == SECRET
    assert rotated.needs_reseal(sealed_old) is True
    resealed = rotated.seal(rotated.open(sealed_old, AAD), AAD)
    assert resealed.startswith("v1.k2.")
    assert rotated.needs_reseal(resealed) is False
    assert rotated.open(resealed, AAD) == SECRET
    # once the old key is retired, only the re-sealed value opens
    retired = Sealer([K2])
    assert retired.open(resealed, AAD) == SECRET
    with pytest.raises(SealError):
        retired.open(sealed_old, AAD)
    # and the old ring cannot open what the new primary key sealed
    with pytest.raises(SealError):
        old.open(resealed, AAD)


def test_needs_reseal_is_false_for_the_primary_key_and_true_otherwise():
    sealer = Sealer([K1, K2])
    assert sealer.needs_reseal(sealer.seal(SECRET, AAD)) is False
    assert sealer.needs_reseal(Sealer([K2]).seal(SECRET, AAD)) is True
    assert sealer.needs_reseal("garbage") is True
    # a key id that merely starts like the primary one is another key
    assert Sealer([("k1", K1[1])]).needs_reseal(Sealer([("k10", K2[1])]).seal(SECRET, AAD)) is True


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33, 64])
def test_keys_must_be_32_bytes(size):
    with pytest.raises(ValueError):
        Sealer([("k1", b"\x01" * size)])


def test_every_key_in_the_ring_is_checked_not_only_the_first():
    with pytest.raises(ValueError):
        Sealer([K1, ("k0", b"\x01" * 16)])


def test_an_empty_ring_is_refused():
    with pytest.raises(ValueError):
        Sealer([])
