"""The strict JSON reader of untrusted bodies: depth counted before parsing (strings and escapes
do not count), size and UTF-8 checked, duplicate keys and non-finite numbers refused."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authsvc.web.jsonbody import MAX_BYTES, MAX_DEPTH, InvalidJSON, depth, parse


def nested(levels: int, open_: str = "[", close: str = "]") -> str:
    return open_ * levels + close * levels


def objects(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def code_of(data: bytes | str, **kw: int) -> str:
    with pytest.raises(InvalidJSON) as caught:
        parse(data, **kw)
    assert isinstance(caught.value, ValueError)
    return caught.value.code


def test_plain_json_is_read():
    assert parse(b'{"user_id": "sato", "n": [1, 2.5, true, null]}') == {
        "user_id": "sato", "n": [1, 2.5, True, None]}
    assert parse('{"名前": "佐藤"}'.encode()) == {"名前": "佐藤"}
    assert parse('"text"') == "text"


@pytest.mark.parametrize("make", [nested, objects])
def test_depth_at_the_bound_is_accepted_one_more_is_refused(make):
    assert depth(make(MAX_DEPTH)) == MAX_DEPTH
    parse(make(MAX_DEPTH))
    assert code_of(make(MAX_DEPTH + 1)) == "too_deep"
    parse(make(5), max_depth=5)
    assert code_of(make(6), max_depth=5) == "too_deep"


@pytest.mark.parametrize("levels", [1_000, 5_000, 30_000])
def test_hostile_depth_is_refused_without_recursion(levels):
    assert code_of(nested(levels)) == "too_deep"
    assert code_of("[" * levels) == "too_deep"  # never closed
    assert code_of(objects(levels), max_bytes=10**6) == "too_deep"
    assert code_of('{"a":' * levels, max_bytes=10**6) == "too_deep"


def test_brackets_inside_strings_do_not_count():
    doc = json.dumps({"a": "[[[[{{{{" * 100, "b": ["]]]]}}}}" * 100]})
    assert depth(doc) == 2
    assert parse(doc)["a"].startswith("[[[[")


def test_escaped_quotes_and_backslashes_do_not_end_a_string():
    doc = r'{"a": "\"[[[[[[\\\"{{{{", "b": "\\", "c": ["\u005b"]}'
    assert depth(doc) == 2
    assert parse(doc) == {"a": '"[[[[[[\\"{{{{', "b": "\\", "c": ["["]}
    # a string that ends in an escaped backslash ends there: the brackets after it count
    assert depth(r'["\\", [[[]]]]') == 4
    deep = '["\\\\",' + nested(MAX_DEPTH) + "]"
    assert code_of(deep) == "too_deep"


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=20))
def test_depth_agrees_with_the_structure(value):
    def real(v: object) -> int:
        if isinstance(v, list | dict):
            children = v.values() if isinstance(v, dict) else v
            return 1 + max((real(c) for c in children), default=0)
        return 0

    doc = json.dumps(value)
    assert depth(doc) == real(value)
    assert parse(doc, max_bytes=10**6) == value


@pytest.mark.parametrize("doc", [
    '{"a": 1, "a": 2}',
    '{"a": {"b": 1, "b": 1}}',
    '[{"x": [{"k": 1, "k": 1}]}]',
    '{"a": 1, "\\u0061": 2}',  # the same key, spelt with an escape
])
def test_duplicate_keys_are_refused_at_any_depth(doc):
    assert code_of(doc) == "duplicate_key"


def test_the_same_key_in_different_objects_is_fine():
    assert parse('[{"a": 1}, {"a": 2}, {"b": {"a": 3}}]') == [{"a": 1}, {"a": 2}, {"b": {"a": 3}}]


@pytest.mark.parametrize("doc", ["[NaN]", '{"a": Infinity}', "[-Infinity]", "[1e999]", "-1e400"])
def test_non_finite_numbers_are_refused(doc):
    assert code_of(doc) == "non_finite"


@pytest.mark.parametrize("data", [b'{"a": "\xff"}', b"\xfe\xff", b'{"a": "\xed\xa0\x80"}',
                                  '{"a": "\\ud800"}', '["\\udc00x"]', '{"a": "\ud800"}'])
def test_invalid_utf8_and_lone_surrogates_are_refused(data):
    assert code_of(data) == "not_utf8"


def test_surrogate_pairs_are_text():
    assert parse('["\\ud83d\\ude00"]') == ["😀"]


@pytest.mark.parametrize("doc", ["", "   ", "{", '{"a" 1}', "{'a': 1}", '{"a": 1,}', "[1] [2]",
                                 '{"a": "\x01"}', "\ufeff{}", "0x10", "1" * 5000])
def test_what_is_not_json_is_refused(doc):
    assert code_of(doc) == "not_json"


def test_size_is_bounded_before_anything_else():
    assert code_of(b" " * (MAX_BYTES + 1)) == "too_large"
    assert code_of("[" * (MAX_BYTES + 1)) == "too_large"
    assert code_of("é" * (MAX_BYTES // 2 + 1)) == "too_large"  # counted in bytes, not characters
    assert code_of(b'{"a": 1}', max_bytes=7) == "too_large"
    assert parse(b'{"a": 1}', max_bytes=8) == {"a": 1}
    assert parse(json.dumps({"pad": "x" * (MAX_BYTES - 20)})) is not None


def test_an_object_hook_still_sees_every_object():
    assert parse('{"a": {"b": 1}}', object_hook=lambda d: sorted(d)) == ["a"]
    with pytest.raises(InvalidJSON):
        parse('{"a": 1, "a": 1}', object_hook=dict)


@pytest.mark.parametrize("doc", [
    '"' + '\\"' * 32_000,           # one string never closed, full of escaped quotes
    '"' * 65_000, '"' + "\\" * 65_000, '["' * 21_000, '"a",' * 16_000, "[" * 65_000,
])
def test_the_scan_stays_linear_on_pathological_text(doc):
    started = time.perf_counter()
    with pytest.raises(InvalidJSON):
        parse(doc)
    assert time.perf_counter() - started < 1.0  # a backtracking scan took ~20 s on the first
