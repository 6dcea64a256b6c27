"""Routers use only public names (issue 9.4): no private attribute or import of another
module, and the daemon's services, the stores and the Celery client come from
``api/deps.py`` (FastAPI dependencies), never from a fallback a router builds itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROUTERS = sorted((Path(__file__).resolve().parents[2] / "minibox" / "api" / "routers")
                 .glob("*.py"))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@pytest.mark.parametrize("path", ROUTERS, ids=lambda p: p.name)
def test_a_router_uses_only_public_names_of_other_modules(path):
    tree = ast.parse(path.read_text())
    local = {n.name for n in ast.walk(tree)
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            bad += [f"import {a.name} from {node.module}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Attribute) and _private(node.attr) and \
                node.attr not in local and not (isinstance(node.value, ast.Name)
                                                and node.value.id in ("self", "cls")):
            bad.append(f"line {node.lineno}: .{node.attr}")
    assert bad == []


@pytest.mark.parametrize("path", ROUTERS, ids=lambda p: p.name)
def test_no_router_builds_the_services_it_needs(path):
    text = path.read_text()
    assert "app.state.services" not in text
    assert "make_celery" not in text and "store_for(" not in text
