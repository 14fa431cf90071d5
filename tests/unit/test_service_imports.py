"""One storage boundary: a service reads like a use case and leaves every query to store/. The
services import nothing from SQLAlchemy and never reach for the unit of work's
session (`uow.session`); they call its repositories (`uow.registrations`, `uow.credentials`, ...)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The services held to the boundary: every one (paths from the repository root).
CHECKED = tuple(sorted(str(p.relative_to(ROOT)) for p in (ROOT / "authsvc" / "services").glob("*.py")))


def _tree(module: str) -> ast.Module:
    path = ROOT / module
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_sqlalchemy(name: str | None) -> bool:
    return name is not None and (name == "sqlalchemy" or name.startswith("sqlalchemy."))


def sqlalchemy_imports(tree: ast.AST) -> list[str]:
    """Every import of SQLAlchemy, anywhere in the module (also inside functions), as
    "line N: what"."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if _is_sqlalchemy(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_sqlalchemy(node.module):
            found.append(f"line {node.lineno}: from {node.module} import ...")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("__import__", "import_module") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and _is_sqlalchemy(node.args[0].value)):
            found.append(f"line {node.lineno}: {node.func.id}({node.args[0].value!r})")
    return found


def session_uses(tree: ast.AST) -> list[str]:
    """Every use of a `.session` attribute (in services only the unit of work has one), also
    through getattr/setattr, as "line N: what"."""
    def by_name(node: ast.AST) -> bool:
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant) and node.args[1].value == "session")

    return [f"line {getattr(node, 'lineno', 0)}: {ast.unparse(node)}" for node in ast.walk(tree)
            if (isinstance(node, ast.Attribute) and node.attr == "session") or by_name(node)]


@pytest.mark.parametrize("module", CHECKED)
def test_service_imports_nothing_from_sqlalchemy(module: str) -> None:
    assert sqlalchemy_imports(_tree(module)) == [], f"{module} imports SQLAlchemy; move the query to store/"


@pytest.mark.parametrize("module", CHECKED)
def test_service_never_uses_the_session_of_a_unit_of_work(module: str) -> None:
    assert session_uses(_tree(module)) == [], f"{module} uses uow.session; use a repository method"


def test_the_checks_find_what_they_look_for() -> None:
    """The checks themselves: each form they must catch is caught, and nothing else."""
    bad = ast.parse(
        "import sqlalchemy\n"
        "import sqlalchemy.orm as orm\n"
        "from sqlalchemy import select\n"
        "from sqlalchemy.exc import IntegrityError\n"
        "def f(uow):\n"
        "    from sqlalchemy import update\n"
        "    uow.session.execute(update(T))\n"
        "    getattr(uow, 'session')\n"
        "    __import__('sqlalchemy')\n"
    )
    assert len(sqlalchemy_imports(bad)) == 6
    assert len(session_uses(bad)) == 2
    fine = ast.parse(
        "import sqlalchemy_utils\n"
        "from authsvc.store.models import Account\n"
        "from . import sqlalchemy\n"
        "def f(uow, deps):\n"
        "    uow.registrations.get('x', lock=True)\n"
        "    deps.sessions.get('t')\n"
        "    open_session = 1\n"
    )
    assert sqlalchemy_imports(fine) == []
    assert session_uses(fine) == []


@pytest.mark.parametrize("module", CHECKED)
def test_a_service_imports_no_redis_and_no_flask(module: str):
    """Services take their ports from Deps: the store's technology and the web's stay outside."""
    found = [f"line {n.lineno}: {name}" for n in ast.walk(_tree(module))
             for name in ([a.name for a in n.names] if isinstance(n, ast.Import)
                          else [n.module or ""] if isinstance(n, ast.ImportFrom) else [])
             if name.split(".")[0] in ("redis", "flask", "flask_login", "werkzeug")]
    assert found == [], found
