"""Client address and remote marking (R17)."""

from authsvc.domain.network import client_address, is_remote, networks

INTERNAL = networks(["127.0.0.0/8", "10.0.0.0/8", "::1/128"])
PROXIES = networks(["10.0.0.5/32"])


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy():
    assert client_address("203.0.113.9", "10.1.1.1", PROXIES) == "203.0.113.9"
    assert client_address("10.0.0.5", "203.0.113.9", PROXIES) == "203.0.113.9"


def test_the_client_controlled_left_part_of_the_chain_is_not_believed():
    # the client claims to be internal; the proxy appended the real address on the right
    assert client_address("10.0.0.5", "10.1.1.1, 203.0.113.9", PROXIES) == "203.0.113.9"
    assert client_address("10.0.0.5", "203.0.113.9, 10.0.0.5", PROXIES) == "203.0.113.9"


def test_a_malformed_chain_gives_no_address():
    assert client_address("10.0.0.5", "not-an-ip", PROXIES) == ""
    assert client_address("garbage", None, PROXIES) == ""


def test_remote_is_outside_the_internal_networks_and_unknown_is_remote():
    assert not is_remote("10.2.3.4", INTERNAL)
    assert not is_remote("::1", INTERNAL)
    assert is_remote("203.0.113.9", INTERNAL)
    assert is_remote("", INTERNAL)  # fail closed


def test_remote_administration_needs_advance_approval():
    from authsvc.domain.network import may_administer

    assert may_administer(False, "ops1", ())
    assert not may_administer(True, "ops1", ())
    assert may_administer(True, "OPS1", ("ops1",))
    assert not may_administer(True, "ops2", ("ops1",))
