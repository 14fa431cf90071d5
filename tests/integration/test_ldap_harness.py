"""The LDAP test harness (tests/ldap_support.py) against a real OpenLDAP slapd (issue 13): seed
data, the size limit and paged searches, stop/start, TLS with the right and a wrong CA,
operational attributes for incremental sync, and what slapd does with invalid UTF-8."""

from __future__ import annotations

import ssl

import pytest
from ldap3 import BASE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException, LDAPSocketOpenError, LDAPStartTLSError
from ldap3.utils.conv import escape_filter_chars

from tests.ldap_support import (
    ESCAPED_UID,
    HOSTILE_CN,
    HOSTILE_DESCRIPTION,
    HOSTILE_DISPLAY_NAME,
    LEGACY_BYTES,
    SEED_GROUPS,
    SEED_UIDS,
    SIZE_LIMIT,
    SlapdError,
    generate_ldif,
    group_dn,
    parse_ldif,
    user_dn,
)


def connect(server, url: str | None = None, tls: Tls | None = None, timeout: int = 10) -> Connection:
    """Bound as the sync's service account (held to the size limit, unlike the rootdn)."""
    srv = Server(url or server.url, get_info=NONE, connect_timeout=5, tls=tls)
    return Connection(srv, server.bind_dn, server.password, auto_bind=True, receive_timeout=timeout)


def test_seed_is_there(slapd):
    with connect(slapd) as conn:
        conn.search(slapd.people, "(objectClass=inetOrgPerson)", attributes=["uid"])
        assert sorted(e["attributes"]["uid"][0] for e in conn.response) == sorted(SEED_UIDS)
        assert len(SEED_UIDS) >= 20

        conn.search(slapd.groups, "(objectClass=groupOfNames)", attributes=["cn", "member"])
        groups = {e["attributes"]["cn"][0]: e["attributes"]["member"] for e in conn.response}
        assert set(groups) == set(SEED_GROUPS)
        assert len(groups["sales"]) == len(SEED_GROUPS["sales"])
        # member DNs as slapd normalises them resolve to real entries
        for dn in groups["sales"]:
            assert conn.search(dn, "(objectClass=*)", BASE, attributes=["uid"]), dn
        assert conn.search(user_dn(ESCAPED_UID), "(objectClass=*)", BASE, attributes=["uid"])
        assert conn.response[0]["attributes"]["uid"] == [ESCAPED_UID]

        conn.search(slapd.people, "(uid=yamada.taro)",
                    attributes=["displayName", "mail", "employeeNumber", "departmentNumber"])
        attrs = conn.response[0]["attributes"]
        assert attrs["displayName"] == ["山田 太郎"]
        assert attrs["departmentNumber"] == ["C-2026-001"]
        assert attrs["mail"] == ["yamada.taro@boei-sangyo.example"]


def test_hostile_values(slapd):
    with connect(slapd) as conn:
        # the cn's metacharacters, escaped, match exactly that entry
        assert conn.search(slapd.people, f"(cn={escape_filter_chars(HOSTILE_CN)})",
                           attributes=["cn", "description", "displayName"])
        (entry,) = conn.response
        assert entry["attributes"]["cn"] == [HOSTILE_CN]
        assert entry["attributes"]["displayName"] == [HOSTILE_DISPLAY_NAME]
        assert entry["attributes"]["description"] == [HOSTILE_DESCRIPTION]
        assert len(HOSTILE_DESCRIPTION) == 20_000

        conn.search(slapd.people, "(uid=legacy)", attributes=["dsgLegacyName", "jpegPhoto"])
        raw = conn.response[0]["raw_attributes"]
        assert raw["dsgLegacyName"] == [LEGACY_BYTES] and raw["jpegPhoto"] == [LEGACY_BYTES]
        with pytest.raises(UnicodeDecodeError):
            LEGACY_BYTES.decode()

    # slapd itself refuses invalid UTF-8 in a directoryString attribute
    with pytest.raises(SlapdError, match=r"Invalid syntax \(21\)"):
        slapd.modify(f"dn: {user_dn('yamada.taro')}\nchangetype: modify\nreplace: description\n"
                     "description:: //6A\n")


def test_size_limit_caps_unpaged_searches_paged_ones_get_everything(slapd, tmp_path):
    ldif = generate_ldif(tmp_path / "many.ldif", users=600, groups=3)
    slapd.load(ldif)
    assert slapd.running
    total = 600 + len(SEED_UIDS)
    with connect(slapd) as conn:
        conn.search(slapd.people, "(objectClass=inetOrgPerson)", attributes=["uid"])
        assert conn.result["description"] == "sizeLimitExceeded"
        assert len(conn.response) == SIZE_LIMIT

        pages = conn.extend.standard.paged_search(slapd.people, "(objectClass=inetOrgPerson)",
                                                  SUBTREE, attributes=["uid"], paged_size=100,
                                                  generator=True)
        uids = {e["attributes"]["uid"][0] for e in pages if e["type"] == "searchResEntry"}
        assert len(uids) == total
        assert conn.result["description"] == "success"

        conn.search(slapd.groups, "(cn=bench-group-0001)", attributes=["member"])
        assert len(conn.response[0]["attributes"]["member"]) == 200
    # the rootdn is never limited (the helpers use it)
    assert slapd.search(slapd.people, "(objectClass=inetOrgPerson)", ["1.1"]).count("dn: ") == total


def test_stop_and_start_keep_port_and_data(slapd):
    url = slapd.url
    slapd.stop()
    assert not slapd.running
    with pytest.raises(LDAPSocketOpenError):
        connect(slapd)
    slapd.start()
    assert slapd.url == url
    with connect(slapd) as conn:
        assert conn.search(slapd.people, "(uid=sato.hanako)", attributes=["uid"])


def test_frozen_server_times_out_then_answers_again(slapd):
    with connect(slapd, timeout=1) as conn, slapd.frozen(), pytest.raises(LDAPException):
        conn.search(slapd.people, "(uid=sato.hanako)", attributes=["uid"])
    with connect(slapd) as conn:
        assert conn.search(slapd.people, "(uid=sato.hanako)", attributes=["uid"])


def test_operational_attributes_for_incremental_sync(slapd):
    dn = user_dn("suzuki.ichiro")
    ops = ["modifyTimestamp", "entryUUID", "entryCSN", "createTimestamp"]
    with connect(slapd) as conn:
        conn.search(slapd.base, "(objectClass=*)", attributes=["entryCSN"])
        high_water = max(e["raw_attributes"]["entryCSN"][0] for e in conn.response).decode()
        conn.search(dn, "(objectClass=*)", BASE, attributes=ops)
        before = conn.response[0]["raw_attributes"]
        assert all(before[a] for a in ops)
        slapd.modify(f"dn: {dn}\nchangetype: modify\nreplace: title\ntitle: 部長\n")
        conn.search(dn, "(objectClass=*)", BASE, attributes=ops)
        after = conn.response[0]["raw_attributes"]
        assert after["entryCSN"][0] > before["entryCSN"][0]
        assert after["modifyTimestamp"][0] >= before["modifyTimestamp"][0]
        assert after["entryUUID"] == before["entryUUID"]
        # entries changed after the last CSN seen: what an incremental sync asks for
        conn.search(slapd.base, f"(&(entryCSN>={high_water})(!(entryCSN={high_water})))",
                    attributes=["uid"])
        assert [e["dn"] for e in conn.response] == [dn]


def test_search_helper_returns_raw_ldif(slapd):
    out = slapd.search(slapd.groups, "(cn=engineering)", ["member"])
    entries = parse_ldif(out)
    assert list(entries) == [group_dn("engineering")]
    assert len(entries[group_dn("engineering")]["member"]) == len(SEED_GROUPS["engineering"])


def test_tls_right_ca_accepted_wrong_ca_refused(slapd_tls):
    server = slapd_tls
    right = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(server.ca_file))
    wrong = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(server.wrong_ca_file()))

    with connect(server, server.ldaps_url, right) as conn:  # LDAPS
        assert conn.search(server.people, "(uid=yamada.taro)", attributes=["uid"])
    conn = Connection(Server(server.url, get_info=NONE, tls=right), server.bind_dn, server.password)
    conn.open()
    assert conn.start_tls() and conn.bind()  # StartTLS
    assert conn.search(server.people, "(uid=yamada.taro)", attributes=["uid"])
    conn.unbind()

    with pytest.raises(LDAPSocketOpenError, match="CERTIFICATE_VERIFY_FAILED"):
        connect(server, server.ldaps_url, wrong)
    conn = Connection(Server(server.url, get_info=NONE, tls=wrong), server.bind_dn, server.password)
    conn.open()
    with pytest.raises(LDAPStartTLSError, match="CERTIFICATE_VERIFY_FAILED"):
        conn.start_tls()
    assert not conn.bound
