"""Who may import whom across the process boundaries (issue 9): the core packages talk to
the workers only through minibox.wire, and the daemon's scheduler does not import the
workers' executor.  Read from the sources' import statements, so a lazy import inside a
function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "minibox"


def imports_of(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def modules_under(*parts: str) -> list[Path]:
    base = PKG.joinpath(*parts)
    return sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]


def offenders(files: list[Path], forbidden: str) -> list[str]:
    return [f"{p.relative_to(PKG.parent)} imports {m}" for p in files
            for m in sorted(imports_of(p))
            if m == forbidden or m.startswith(forbidden + ".")]


@pytest.mark.parametrize("package", ["builder", "runtime", "sandbox", "store", "mbfile"])
def test_core_packages_do_not_import_the_workers(package):
    assert offenders(modules_under(package), "minibox.workers") == []


def test_the_scheduler_does_not_import_the_executor():
    assert offenders(modules_under("builder", "scheduler"), "minibox.builder.executor") == []
    assert offenders(modules_under("builder", "jobs"), "minibox.builder.executor") == []


def test_the_worker_messages_import_nothing_else_of_minibox():
    """Both sides can load them without the other's dependencies.  (wire/api.py, the HTTP
    request models, is only loaded by the daemon and may use its validators.)"""
    mine = [m for p in modules_under("wire") if p.name != "api.py" for m in imports_of(p)
            if m.startswith("minibox.") and not m.startswith("minibox.wire")]
    assert mine == []
