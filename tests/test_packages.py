"""Packages with a face (issue 9.4): each package's __init__ declares __all__, and every
name in it imports (an attribute of the package, or a submodule of that name)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "minibox"
PACKAGES = sorted(".".join(("minibox",) + p.parent.relative_to(PKG).parts).rstrip(".")
                  for p in PKG.rglob("__init__.py"))


def test_every_package_is_found():
    assert {"minibox", "minibox.wire", "minibox.runtime", "minibox.api.routers"} <= \
        set(PACKAGES)


@pytest.mark.parametrize("name", PACKAGES)
def test_the_package_declares_all_and_every_name_in_it_imports(name):
    # in a fresh interpreter: a name that imports only because another test imported it
    # first would pass here and fail for a newcomer
    code = f"""
import importlib
pkg = importlib.import_module({name!r})
names = getattr(pkg, "__all__", None)
assert isinstance(names, (list, tuple)) and names, "no __all__ in {name}"
assert len(set(names)) == len(names), "a name twice in __all__"
for n in names:
    if not hasattr(pkg, n):
        importlib.import_module({name!r} + "." + n)
    assert hasattr(pkg, n), n
print("ok", len(names))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr[-2000:]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_module_of_the_package_is_listed(name):
    pkg = importlib.util.find_spec(name)
    here = Path(pkg.origin).parent
    subs = {p.stem for p in here.glob("*.py") if not p.stem.startswith("_")} | \
        {p.parent.name for p in here.glob("*/__init__.py")}
    names = set(_all_of(here / "__init__.py"))
    # a package that re-exports names (a face of classes and functions) lists those;
    # one whose face is its modules lists every one of them
    if names & subs:
        assert subs - names == set(), f"{name}: modules missing from __all__"


def _all_of(init: Path) -> list[str]:
    import ast
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__"
                                                for t in node.targets):
            return list(ast.literal_eval(node.value))
    return []
