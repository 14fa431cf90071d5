"""The web layer's imports, read from its source: it knows no storage technology
(authsvc/faults.py names what a backend outage looks like), and no module of it reaches into
another one's private helpers (what two blueprints share is public, in a module of its own)."""

from __future__ import annotations

import ast
from pathlib import Path

import authsvc.web

WEB = Path(authsvc.web.__file__).parent
MODULES = sorted(WEB.glob("*.py"))
FORBIDDEN = ("sqlalchemy", "redis")


def imports(path: Path) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None for `import module`, line) of every import in `path`."""
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "authsvc.web" if node.level == 1 else ""  # from . import x / from .x import y
            module = ".".join(p for p in (base, node.module or "") if p)
            found += [(module, alias.name, node.lineno) for alias in node.names]
    return found


def test_the_scan_sees_the_web_modules():
    names = {p.stem for p in MODULES}
    assert {"__init__", "login", "register", "console", "api", "common", "errors", "auth"} <= names
    assert any(m == "flask" for m, _, _ in imports(WEB / "__init__.py"))


def test_no_web_module_imports_a_storage_technology():
    bad = [(p.name, line, module) for p in MODULES for module, _name, line in imports(p)
           if module.split(".")[0] in FORBIDDEN]
    assert bad == []


def test_no_web_module_imports_a_private_name_of_another():
    bad = []
    for path in MODULES:
        own = "authsvc.web" if path.stem == "__init__" else f"authsvc.web.{path.stem}"
        for module, name, line in imports(path):
            if not module.startswith("authsvc.web") or module == own:
                continue
            if name is not None and name.startswith("_") and name != "__version__":
                bad.append((path.name, line, f"{module}.{name}"))
            elif name is None and any(part.startswith("_") for part in module.split(".")[2:]):
                bad.append((path.name, line, module))
    assert bad == []


def test_the_checks_catch_what_they_look_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import redis.exceptions\nfrom sqlalchemy.exc import OperationalError\n"
                      "from authsvc.web.login import _go, Page\nfrom .common import _hidden\n")
    found = imports(sample)
    assert ("redis.exceptions", None, 1) in found and ("sqlalchemy.exc", "OperationalError", 2) in found
    assert ("authsvc.web.login", "_go", 3) in found and ("authsvc.web.common", "_hidden", 4) in found
