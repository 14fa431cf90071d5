"""R22: the audit hash chain finds modified, deleted, reordered and truncated entries."""

import copy
import itertools

import pytest

from authsvc.domain.audit import GENESIS, Problem, chain_hash, sign_head, sign_row, verify

KEY = b"k" * 32
WRONG_KEY = b"w" * 32


def event(seq):
    return {
        "seq": seq,
        "ts": f"2026-04-01T09:{seq:02d}:00.000000+09:00",
        "actor": "ops1",
        "action": "logon.password",
        "subject": f"user{seq}",
        "result": "ok" if seq % 3 else "refused",
        "terminal": "term-1",
        "source": "10.0.0.1",
        "detail": {"factor": "password", "n": seq},
    }


def link(events):
    """Store events as the database does: each row carries its predecessor's hash."""
    rows, prev = [], GENESIS
    for e in events:
        digest = chain_hash(prev, e)
        rows.append({**e, "prev_hash": prev, "hash": digest})
        prev = digest
    return rows


def head_of(rows, key=KEY):
    seq, digest = (rows[-1]["seq"], rows[-1]["hash"]) if rows else (0, GENESIS)
    return seq, digest, sign_head(key, seq, digest)


@pytest.fixture
def rows():
    return link([event(i) for i in range(1, 11)])


def check(rows, head, key=KEY):
    return verify(rows, *head, key)


def test_an_intact_chain_verifies(rows):
    assert check(rows, head_of(rows)) == (10, None)


def test_an_empty_log_verifies():
    assert check([], head_of([])) == (0, None)


def test_hashes_really_chain(rows):
    assert len({r["hash"] for r in rows}) == 10
    for before, after in itertools.pairwise(rows):
        assert after["prev_hash"] == before["hash"]


@pytest.mark.parametrize("field", ["ts", "actor", "action", "subject", "result", "terminal",
                                   "source", "detail"])
def test_a_modified_field_is_found_at_its_row(rows, field):
    head = head_of(rows)
    tampered = copy.deepcopy(rows)
    tampered[3][field] = {"changed": True} if field == "detail" else "changed"
    checked, problem = check(tampered, head)
    assert problem == Problem(4, "modified")
    assert checked == 3
    assert "seq 4" in str(problem)


def test_a_modified_detail_value_inside_the_json_is_found(rows):
    head = head_of(rows)
    rows[6]["detail"]["n"] = 999
    assert check(rows, head)[1] == Problem(7, "modified")


def test_a_deleted_middle_row_is_found(rows):
    head = head_of(rows)
    del rows[4]  # seq 5
    checked, problem = check(rows, head)
    assert problem == Problem(5, "deleted")
    assert checked == 4


def test_a_deleted_first_row_is_found(rows):
    head = head_of(rows)
    assert check(rows[1:], head)[1] == Problem(1, "deleted")


def test_rows_read_in_swapped_order_are_found_at_the_first_swapped_seq(rows):
    head = head_of(rows)
    rows[3], rows[4] = rows[4], rows[3]  # seq 1, 2, 3, 5, 4, 6 ...
    checked, problem = check(rows, head)
    assert problem is not None
    assert problem.seq == 4
    assert checked == 3


def test_swapped_contents_renumbered_to_look_in_order_are_found(rows):
    """An attacker swaps two events and renumbers them so the seq column stays 1..10."""
    head = head_of(rows)
    a, b = rows[3], rows[4]
    rows[3] = {**b, "seq": 4}
    rows[4] = {**a, "seq": 5}
    checked, problem = check(rows, head)
    assert problem == Problem(4, "reordered")
    assert checked == 3


def test_a_truncated_tail_is_found_when_the_head_says_more(rows):
    head = head_of(rows)
    checked, problem = check(rows[:7], head)
    assert problem == Problem(8, "truncated")
    assert checked == 7


def test_an_extra_row_beyond_the_head_is_found(rows):
    head = head_of(rows[:9])
    checked, problem = check(rows, head)
    assert problem == Problem(10, "head")  # the first row the signed head does not cover
    assert checked == 10


def test_a_chain_rebuilt_without_the_key_is_found():
    """Modify one event, recompute every later hash and the head, sign with a guessed key."""
    original = link([event(i) for i in range(1, 11)])
    forged_events = [event(i) for i in range(1, 11)]
    forged_events[4]["result"] = "ok (forged)"
    forged = link(forged_events)
    assert forged[9]["hash"] != original[9]["hash"]
    # the rows are self-consistent; only the head's MAC can give them away
    seq, digest, _ = head_of(forged)
    checked, problem = check(forged, (seq, digest, sign_head(WRONG_KEY, seq, digest)))
    assert problem == Problem(10, "head")
    assert checked == 10
    # ... and keeping the old signature does not help either
    _, _, old_mac = head_of(original)
    assert check(forged, (seq, digest, old_mac))[1] == Problem(10, "head")


def test_a_rebuilt_chain_with_the_old_head_is_found():
    original = link([event(i) for i in range(1, 11)])
    forged_events = [event(i) for i in range(1, 11)]
    forged_events[2]["actor"] = "someone-else"
    forged = link(forged_events)
    problem = check(forged, head_of(original))[1]
    assert problem is not None and problem.reason == "head"


def test_truncation_with_a_forged_head_is_found(rows):
    """Delete the tail and move the head back, without the key."""
    seq, digest = rows[6]["seq"], rows[6]["hash"]
    problem = check(rows[:7], (seq, digest, sign_head(WRONG_KEY, seq, digest)))[1]
    assert problem == Problem(7, "head")


def test_verifying_with_the_wrong_key_fails(rows):
    assert check(rows, head_of(rows), key=WRONG_KEY)[1] == Problem(10, "head")


def test_a_tampered_head_mac_fails(rows):
    seq, digest, mac = head_of(rows)
    bad_mac = ("0" if mac[0] != "0" else "1") + mac[1:]
    assert check(rows, (seq, digest, bad_mac))[1] == Problem(10, "head")


def test_the_head_signature_binds_the_sequence_number(rows):
    seq, digest, mac = head_of(rows)
    assert sign_head(KEY, seq, digest) == mac
    assert sign_head(KEY, seq + 1, digest) != mac
    assert sign_head(WRONG_KEY, seq, digest) != mac


def test_chain_hash_depends_on_the_predecessor_and_ignores_key_order():
    e = event(1)
    assert chain_hash(GENESIS, e) != chain_hash("f" * 64, e)
    reordered_keys = dict(reversed(list(e.items())))
    assert chain_hash(GENESIS, reordered_keys) == chain_hash(GENESIS, e)
    # fields outside the chained set (the stored hashes themselves) do not change it
    assert chain_hash(GENESIS, {**e, "prev_hash": "x", "hash": "y"}) == chain_hash(GENESIS, e)


def test_non_ascii_fields_hash_stably():
    e = {**event(1), "subject": "山田太郎"}
    assert chain_hash(GENESIS, e) == chain_hash(GENESIS, dict(e))
    assert chain_hash(GENESIS, e) != chain_hash(GENESIS, {**e, "subject": "山田次郎"})


# Rows read from the store also carry a signed checkpoint of their own (`mac`).


def signed(rows, key=KEY, start=1):
    return [{**r, "mac": sign_row(key, r["seq"], r["hash"])} if r["seq"] >= start else r
            for r in rows]


def test_signed_rows_verify(rows):
    rows = signed(rows)
    assert check(rows, head_of(rows)) == (10, None)


def test_a_chain_rebuilt_from_a_row_onward_is_found_at_that_row():
    """Tamper with seq 5, recompute every hash and sign rows and head with a guessed key."""
    original = signed(link([event(i) for i in range(1, 11)]))
    forged_events = [event(i) for i in range(1, 11)]
    forged_events[4]["subject"] = "nobody"
    rebuilt = link(forged_events)
    forged = original[:4] + signed(rebuilt, key=WRONG_KEY, start=5)[4:]
    seq, digest = forged[-1]["seq"], forged[-1]["hash"]
    checked, problem = check(forged, (seq, digest, sign_head(WRONG_KEY, seq, digest)))
    assert problem == Problem(5, "forged")
    assert checked == 4


@pytest.mark.parametrize("bad_mac", [None, "", "0" * 64, "ｍａｃ", "\ud800"])
def test_a_missing_or_bogus_row_mac_is_found_without_crashing(rows, bad_mac):
    rows = signed(rows)
    rows[2]["mac"] = bad_mac
    assert check(rows, head_of(rows))[1] == Problem(3, "forged")


def test_a_row_mac_cannot_stand_in_for_the_head_mac(rows):
    """Signatures are domain-separated: the last row's MAC does not sign a truncated head."""
    rows = signed(rows)
    kept = rows[:7]
    seq, digest = kept[-1]["seq"], kept[-1]["hash"]
    assert check(kept, (seq, digest, kept[-1]["mac"]))[1] == Problem(7, "head")


@pytest.mark.parametrize("bad_mac", ["", "ｍａｃ", "\ud800"])
def test_a_bogus_head_mac_is_a_problem_not_a_crash(rows, bad_mac):
    seq, digest, _ = head_of(rows)
    assert check(rows, (seq, digest, bad_mac))[1] == Problem(10, "head")


# ---- checkpoints outside the database ([5 of 12] items 1-2) -------------------------------

from authsvc.domain.audit import (  # noqa: E402
    ROLLBACK,
    VERIFIED,
    Checkpoint,
    check_anchors,
    in_force,
    parse_checkpoint,
)

CP_KEY = bytes(range(32))


def cp(seq: int, at: int, kind: str = "head", digest: str | None = None) -> Checkpoint:
    return Checkpoint(seq, digest or f"h{seq}", f"2026-11-30T00:00:{at:02d}.000000+00:00", kind)


def test_a_checkpoint_line_is_ours_only_with_our_key():
    line = cp(3, 1).signed(CP_KEY).to_line()
    assert parse_checkpoint(line, CP_KEY) == cp(3, 1).signed(CP_KEY)
    assert parse_checkpoint(line, bytes(32)) is None  # another deployment's key
    for tampered in (line.replace('"seq":3', '"seq":2'), line.replace("h3", "h4"),
                     line.replace('"head"', '"rollback"'), line[:-5], "", "[]", "{}"):
        assert parse_checkpoint(tampered, CP_KEY) is None


def test_every_checkpoint_in_force_binds_and_a_rollback_voids_the_earlier():
    hashes = {1: "h1", 5: "h5", 9: "h9"}
    cps = [cp(1, 1), cp(5, 2), cp(9, 3)]
    assert check_anchors(in_force(cps), 9, hashes) is None
    assert check_anchors(in_force(cps), 8, hashes).reason == "rolled_back"
    # a newer checkpoint of another branch does not hide the older one it contradicts
    fork = [*cps, cp(12, 4, digest="x12")]
    assert check_anchors(in_force(fork), 12, {**hashes, 5: "other", 12: "x12"}).reason == "diverged"
    assert check_anchors(in_force(fork), 12, {**hashes, 5: "other", 12: "x12"}).seq == 5
    # an accepted rollback at seq 4: what was written before it no longer binds
    accepted = [*fork, cp(4, 5, ROLLBACK, digest="h4"), cp(6, 6, digest="y6")]
    assert [c.seq for c in in_force(accepted)] == [4, 6]
    assert check_anchors(in_force(accepted), 6, {4: "h4", 6: "y6"}) is None


def test_a_verified_checkpoint_covers_what_was_written_before_its_verification_began():
    cps = [cp(1, 1), cp(5, 2), cp(20, 3), cp(9, 4, VERIFIED), cp(10, 5), cp(11, 6)]
    kept = in_force(cps)
    # 1 and 5 are fixed by the verified head 9; 20 (a process ahead of the verification's
    # head) and everything written after the verification began still bind
    assert sorted(c.seq for c in kept) == [9, 10, 11, 20]
    assert in_force([*cps, cp(3, 7, ROLLBACK)]) == [cp(3, 7, ROLLBACK)]


# ---- the sequencer's placement of unsealed events (docs/decisions/0013) --------------------

def _unsealed(key: bytes, writer: str = "w1", wseq: int = 1, changes: dict | None = None) -> dict:
    from authsvc.domain.audit import sign_event

    event = {"ts": "2026-12-07T10:00:00.000000+09:00", "actor": "ops1", "action": "test.x",
             "subject": "alice", "result": "ok", "terminal": "T-1", "source": "10.0.0.1",
             "detail": '{"n": 1}', "writer": writer, "wseq": wseq}
    event["emac"] = sign_event(key, writer, wseq, event)
    return {**event, **(changes or {})}


def test_the_next_event_of_a_writer_is_placed():
    from authsvc.domain.audit import place

    assert place(KEY, _unsealed(KEY, wseq=1), 0).verdict == "ok"
    assert place(KEY, _unsealed(KEY, wseq=8), 7).verdict == "ok"


def test_numbers_a_writer_skipped_are_reported_as_missing():
    from authsvc.domain.audit import place

    placed = place(KEY, _unsealed(KEY, wseq=5), 2)
    assert (placed.verdict, placed.missing) == ("gap", (3, 4))
    assert place(KEY, _unsealed(KEY, wseq=2), 0).missing == (1, 1)  # its first never came


def test_a_position_already_sealed_is_a_replay():
    from authsvc.domain.audit import place

    assert place(KEY, _unsealed(KEY, wseq=3), 3).verdict == "replayed"
    assert place(KEY, _unsealed(KEY, wseq=1), 3).verdict == "replayed"


@pytest.mark.parametrize("change", [
    {"subject": "bob"}, {"detail": '{"n": 2}'}, {"ts": "2026-12-07T10:00:01.000000+09:00"},
    {"writer": "w2"}, {"wseq": 2}, {"emac": "0" * 64}, {"emac": None}, {"writer": ""}, {"wseq": 0},
])
def test_an_unsealed_event_not_as_written_is_forged(change):
    from authsvc.domain.audit import event_ok, place

    assert event_ok(KEY, _unsealed(KEY))
    assert not event_ok(KEY, _unsealed(KEY, changes=change))
    assert place(KEY, _unsealed(KEY, changes=change), 0).verdict == "forged"


def test_an_event_mac_is_not_a_row_mac_nor_another_keys():
    from authsvc.domain.audit import event_ok, sign_writer, writer_ok

    assert not event_ok(b"x" * 32, _unsealed(KEY))
    assert writer_ok(KEY, "w1", 4, sign_writer(KEY, "w1", 4))
    assert not writer_ok(KEY, "w1", 5, sign_writer(KEY, "w1", 4))
