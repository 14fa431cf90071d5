"""Every code the domain can raise or return has a Japanese and an English message."""

import ast
import re
import string
from pathlib import Path

import pytest

import authsvc.domain
from authsvc.domain import errors
from authsvc.domain.messages import LANGS, MESSAGES, text

DOMAIN_DIR = Path(authsvc.domain.__file__).parent
ERROR_CLASSES = {name for name, obj in vars(errors).items()
                 if isinstance(obj, type) and issubclass(obj, errors.DomainError)}


def domain_codes():
    """Codes found in the domain source: error codes raised, `code = ...` class attributes,
    and the "pw_*" codes the password rule appends."""
    codes = set()
    for path in DOMAIN_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ERROR_CLASSES and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                codes.add(node.args[0].value)
            elif (isinstance(node, ast.Assign) and len(node.targets) == 1
                  and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "code"
                  and isinstance(node.value, ast.Constant)
                  and isinstance(node.value.value, str) and node.value.value != "error"):
                codes.add(node.value.value)
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and re.fullmatch(r"pw_[a-z_]+", node.value)):
                codes.add(node.value)
    return codes


CODES = sorted(domain_codes())


def test_the_scan_finds_the_codes_we_know_of():
    expected = {"pw_too_short", "pw_too_long", "pw_classes", "pw_blocklisted",
                "pw_contains_user_id", "pw_contains_name", "pw_repetitive", "pw_sequential",
                "pw_control_chars", "identifier_invalid", "identifier_in_use",
                "identifier_reserved", "bad_transition", "role_unknown", "forbidden",
                "not_found", "conflict", "invalid_input", "password_rejected"}
    assert expected <= set(CODES)


@pytest.mark.parametrize("code", CODES)
def test_every_domain_code_has_both_languages(code):
    assert code in MESSAGES, code
    ja, en = MESSAGES[code]
    assert ja.strip() and en.strip()
    assert ja != en
    assert en.isascii()
    assert not ja.isascii()  # really Japanese, not a copy of the English


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_both_languages_take_the_same_placeholders(code):
    ja, en = MESSAGES[code]

    def names(template):
        return {f for _, f, _, _ in string.Formatter().parse(template) if f}

    assert names(ja) == names(en)


def test_parameters_are_filled_in():
    assert "12" in text("pw_too_short", "en", min_length=12)
    assert "12" in text("pw_too_short", "ja", min_length=12)


def test_japanese_is_the_default_and_english_on_request():
    assert text("forbidden") == MESSAGES["forbidden"][0]
    assert text("forbidden", "en") == MESSAGES["forbidden"][1]
    assert LANGS == ("ja", "en")


def test_unknown_code_falls_back_to_a_generic_message():
    assert text("no_such_code", "en") == MESSAGES["invalid_input"][1]


def test_domain_error_messages_render_in_both_languages():
    err = errors.DomainError("identifier_reserved", user_id="tanaka", until="2027-04-01")
    for lang in LANGS:
        rendered = err.message(lang)
        assert "tanaka" in rendered and "2027-04-01" in rendered and "{" not in rendered
    assert errors.Forbidden().message("en") == MESSAGES["forbidden"][1]


TEMPLATES = Path(authsvc.domain.__file__).parent.parent / "web" / "templates"


def template_codes() -> set[str]:
    """Every literal code the pages translate with t("...")."""
    found: set[str] = set()
    for path in TEMPLATES.rglob("*.html"):
        found |= set(re.findall(r"""\bt\(["']([a-z0-9_.]+)["']""", path.read_text(encoding="utf-8")))
    return found


def test_every_code_the_pages_show_has_both_languages():
    codes = template_codes()
    assert {"ui_title", "ui_register_title", "ui_reg_confirm", "ui_station"} <= codes  # the scan works
    missing = sorted(c for c in codes if c not in MESSAGES and not c.endswith("_"))  # prefixes: below
    assert missing == []


def test_every_registration_state_and_document_has_a_label():
    from authsvc.domain.registration import State
    from authsvc.domain.roles import Role
    from authsvc.web.console import ID_DOCUMENTS

    wanted = ([f"reg_{who}_{s.value}" for who in ("registrant", "admin") for s in State]
              + [f"doc_{d}" for d in ID_DOCUMENTS] + [f"role_{r.value}" for r in Role]
              + ["consent_recorded_yes", "consent_recorded_no"])
    assert [c for c in wanted if c not in MESSAGES] == []
    for code in wanted:
        ja, en = MESSAGES[code]
        assert en.isascii() and not ja.isascii()
