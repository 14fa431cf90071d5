"""The password rule (R1) and initial-password generation (R2).

A password is NFKC-normalised first, so a full-width `Ａ` counts (and is hashed) as `A`.
Character classes, by Unicode category after normalisation:
upper = Lu, lower = Ll, digit = Nd, special = any other printable character
(punctuation, symbols, spaces, letters without case such as kana or kanji).

Which passwords are common or breached is data, not a rule: it is passed in as `is_breached`
(the `Blocklist` port, authsvc/ports.py; the bundled list in adapters/blocklist.py). The rule
asks it about the normalised candidate and its lower-case form.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from authsvc.domain.errors import PasswordRejected

IsBreached = Callable[[str], bool]  # whether a password is on a common/breached list

KEYBOARD_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")
RUN = 4  # a run of this many repeated or consecutive characters is "trivial"
MIN_NEEDLE = 3  # shorter user IDs or name parts are not searched for ...
MIN_NEEDLE_CJK = 2  # ... except non-Latin name parts: 山田 or 太郎 alone is a whole name part


@dataclass(frozen=True)
class Rule:
    min_length: int = 10
    max_length: int = 256
    min_classes: int = 3


def normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def char_class(ch: str) -> str | None:
    cat = unicodedata.category(ch)
    if cat == "Lu":
        return "upper"
    if cat == "Ll":
        return "lower"
    if cat == "Nd":
        return "digit"
    if cat.startswith("C"):
        return None  # control, format, unassigned: not allowed
    return "special"


def classes(password: str) -> set[str]:
    """The character classes used by an already normalised password."""
    return {c for c in map(char_class, password) if c}


def _fold(text: str) -> str:
    return "".join(normalize(text).casefold().split())


def _is_repetitive(pw: str) -> bool:
    folded = pw.casefold()
    run = 1
    for a, b in pairwise(folded):
        run = run + 1 if a == b else 1
        if run >= RUN:
            return True
    n = len(folded)
    # the whole password is one short unit repeated ("abcabcabcabc", "Pa55Pa55Pa55")
    return any(n % size == 0 and folded == folded[:size] * (n // size) for size in range(1, n // 2 + 1))


def _is_sequential(pw: str) -> bool:
    folded = pw.casefold()
    for i in range(len(folded) - RUN + 1):
        window = folded[i : i + RUN]
        if not window.isalnum() or not window.isascii():
            continue
        steps = {ord(b) - ord(a) for a, b in pairwise(window)}
        if steps in ({1}, {-1}):
            return True
        if any(window in row or window in row[::-1] for row in KEYBOARD_ROWS):
            return True
    return False


def violations(
    password: str,
    rule: Rule,
    user_id: str | None = None,
    names: tuple[str, ...] = (),
    *,
    is_breached: IsBreached,
) -> list[str]:
    """Every rule code the candidate fails, in a fixed order; empty means accepted."""
    pw = normalize(password)
    found: list[str] = []
    if any(char_class(c) is None for c in pw):
        found.append("pw_control_chars")
    if len(pw) < rule.min_length:
        found.append("pw_too_short")
    if len(pw) > rule.max_length:
        found.append("pw_too_long")
        return found  # do not spend work on an oversize candidate
    if len(classes(pw)) < rule.min_classes:
        found.append("pw_classes")
    # A candidate with control characters (incl. lone surrogates, which cannot even be
    # encoded for the blocklist look-up) is refused already; skip the look-up for it.
    if (
        len(pw) >= 10
        and "pw_control_chars" not in found
        and (is_breached(pw) or is_breached(pw.lower()))
    ):
        found.append("pw_blocklisted")
    folded = _fold(pw)
    if user_id and len(_fold(user_id)) >= MIN_NEEDLE and _fold(user_id) in folded:
        found.append("pw_contains_user_id")
    parts = {_fold(p) for name in names for p in [name, *normalize(name).split()]}
    if any(p in folded and len(p) >= (MIN_NEEDLE if p.isascii() else MIN_NEEDLE_CJK) for p in parts):
        found.append("pw_contains_name")
    if _is_repetitive(pw):
        found.append("pw_repetitive")
    if _is_sequential(pw):
        found.append("pw_sequential")
    return found


def check(
    password: str,
    rule: Rule,
    user_id: str | None = None,
    names: tuple[str, ...] = (),
    *,
    is_breached: IsBreached,
) -> str:
    """Return the normalised password, or raise PasswordRejected naming every failed rule."""
    found = violations(password, rule, user_id, names, is_breached=is_breached)
    if found:
        raise PasswordRejected(
            found, min_length=rule.min_length, max_length=rule.max_length,
            min_classes=rule.min_classes,
        )
    return normalize(password)


# No look-alikes (0/O, 1/l/I) so an initial password can be read out or typed from paper.
_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_LOWER = "abcdefghijkmnopqrstuvwxyz"
_DIGIT = "23456789"
_SPECIAL = "!#$%&*+-=?@^_"


def generate_initial(
    rule: Rule, user_id: str | None = None, length: int = 16, *, is_breached: IsBreached
) -> str:
    """A fresh random initial password (about 95 bits) that itself passes the rule."""
    length = max(length, rule.min_length)
    alphabet = _UPPER + _LOWER + _DIGIT + _SPECIAL
    while True:
        chars = [secrets.choice(s) for s in (_UPPER, _LOWER, _DIGIT, _SPECIAL)]
        chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
        secrets.SystemRandom().shuffle(chars)
        candidate = "".join(chars)
        if not violations(candidate, rule, user_id, is_breached=is_breached):
            return candidate
