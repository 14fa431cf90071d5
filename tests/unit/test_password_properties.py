"""R1/R2 properties, checked with hypothesis over arbitrary text."""

import string
import unicodedata
from functools import partial

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.blocklist import BadPasswordsBlocklist
from authsvc.domain import passwords
from authsvc.domain.passwords import Rule, classes

BREACHED = BadPasswordsBlocklist().is_breached  # the bundled list, as the service is built with
violations = partial(passwords.violations, is_breached=BREACHED)
check = partial(passwords.check, is_breached=BREACHED)
generate_initial = partial(passwords.generate_initial, is_breached=BREACHED)

RULE = Rule()

# A reference classification written from the rule's text, not from the code: after NFKC,
# Lu is upper, Ll is lower, Nd is digit, categories C* are not allowed, anything else is special.
_REFERENCE = {"Lu": "upper", "Ll": "lower", "Nd": "digit"}


def reference_classes(password):
    found = set()
    for ch in unicodedata.normalize("NFKC", password):
        category = unicodedata.category(ch)
        if category[0] == "C":
            continue
        found.add(_REFERENCE.get(category, "special"))
    return found


def nfkc(text):
    return unicodedata.normalize("NFKC", text)


# Arbitrary text, with extra weight on the characters that make NFKC interesting.
interesting = st.sampled_from("ＡＢｃｄ１２３４！　ﬁ①ⓐⅣ\ufdfa\u0301\u00ad\u200bé漢カｶ")
any_text = st.text(st.one_of(st.characters(), interesting), max_size=40)


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_class_counting_matches_the_reference(password):
    pw = nfkc(password)
    assert classes(pw) == reference_classes(password)
    if len(pw) <= RULE.max_length:
        fewer = len(reference_classes(password)) < RULE.min_classes
        assert ("pw_classes" in violations(password, RULE)) == fewer


@settings(max_examples=300, deadline=None)
@given(any_text, st.sampled_from([None, "tanaka77", "Ｔａｎａｋａ"]),
       st.sampled_from([(), ("Yamada Taro",), ("山田　太郎",)]))
def test_rule_gives_the_same_answer_for_the_normalised_form(password, user_id, names):
    assert violations(password, RULE, user_id, names) == violations(
        nfkc(password), RULE, user_id, names
    )


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_too_short_exactly_when_the_normalised_form_is_short(password):
    assert ("pw_too_short" in violations(password, RULE)) == (len(nfkc(password)) < RULE.min_length)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="ascii"), max_size=RULE.min_length - 1))
def test_any_ascii_password_shorter_than_min_length_is_too_short(password):
    assert "pw_too_short" in violations(password, RULE)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=64),
       st.sampled_from([None, "tanaka77", "abc", "k3x"]))
def test_generated_initial_passwords_pass_the_rule(length, user_id):
    password = generate_initial(RULE, user_id, length=length)
    assert len(password) == max(length, RULE.min_length)
    assert violations(password, RULE, user_id) == []
    assert check(password, RULE, user_id) == password  # already normalised
    assert classes(password) == {"upper", "lower", "digit", "special"}


def test_generated_initial_passwords_always_have_all_four_classes_and_differ():
    generated = [generate_initial(RULE) for _ in range(300)]
    assert len(set(generated)) == len(generated)
    for password in generated:
        assert len(password) == 16
        assert any(c in string.ascii_uppercase for c in password)
        assert any(c in string.ascii_lowercase for c in password)
        assert any(c in string.digits for c in password)
        assert any(c in string.punctuation for c in password)
        assert password.isascii() and password.isprintable() and " " not in password


def test_generated_initial_password_respects_a_longer_rule():
    rule = Rule(min_length=20, min_classes=4)
    password = generate_initial(rule, length=12)
    assert len(password) == 20
    assert violations(password, rule) == []


def test_generated_initial_password_omits_look_alikes():
    joined = "".join(generate_initial(RULE, length=64) for _ in range(50))
    assert not set(joined) & set("0O1lI")


def test_generator_retries_a_candidate_that_breaks_the_rule(monkeypatch):
    """A candidate failing the rule is thrown away; the generator does not just hope."""
    import secrets as real

    calls = {"n": 0}

    class Scripted:
        """First candidate is "Aa2!" + twelve "a" (repetitive), then real randomness."""

        SystemRandom = real.SystemRandom

        @staticmethod
        def choice(seq):
            calls["n"] += 1
            if calls["n"] <= 16:
                return seq[0]  # "A", "a", "2", "!", then "A" from the full alphabet ...
            return real.choice(seq)

    monkeypatch.setattr(passwords, "secrets", Scripted)
    monkeypatch.setattr(real.SystemRandom, "shuffle", lambda self, x: None)
    password = generate_initial(RULE)
    assert calls["n"] > 16  # a second candidate was drawn
    assert violations(password, RULE) == []
