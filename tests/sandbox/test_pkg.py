"""PKG (package manager detected from the rootfs) and AUTO-DEPS, with stand-in tools."""

from __future__ import annotations

import os

import pytest

from minibox.errors import BuildFailed
from tests.sandbox.conftest import PATH, make_busybox_rootfs

RECORDER = '#!/bin/sh\necho "$(id -u) ${DEBIAN_FRONTEND:-} $0 $*" >> /pkg.log\necho "fake $0 $*"\n'


def pkg_step(*packages, line=1, user="app") -> dict:
    return {"op": "pkg", "line": line, "packages": list(packages), "env": {"PATH": PATH},
            "workdir": "/", "user": user}


def autodeps_step(workdir="/app", line=1) -> dict:
    return {"op": "autodeps", "line": line, "env": {"PATH": PATH}, "workdir": workdir,
            "user": ""}


def with_tool(tmp_path, name: str, tools: dict[str, str], files: dict[str, str] = {}) -> str:
    root = make_busybox_rootfs(tmp_path / name)
    for path, text in {**tools, **files}.items():
        p = root / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        if path in tools:
            os.chmod(p, 0o755)
    return str(root)


def test_alpine_uses_apk_with_version_pins_as_root(make_box, tmp_path):
    b = make_box([with_tool(tmp_path, "alpine", {"/sbin/apk": RECORDER},
                            {"/etc/alpine-release": "3.19.0\n"})])
    r = b.run([pkg_step("curl", "git@2.40.1", line=4)])
    assert (b.upper / "pkg.log").read_text() == "0  /sbin/apk add --no-cache curl git=2.40.1*\n"
    assert b"fake /sbin/apk add --no-cache curl git=2.40.1*" in r.output
    assert r.events[0]["text"] == "PKG curl git@2.40.1"


def test_debian_updates_empty_lists_then_installs(make_box, tmp_path):
    lower = with_tool(tmp_path, "debian", {"/usr/bin/apt-get": RECORDER},
                      {"/etc/debian_version": "12.5\n"})
    b = make_box([lower])
    b.run([pkg_step("curl", "jq@1.6")])
    assert (b.upper / "pkg.log").read_text().splitlines() == [
        "0 noninteractive /usr/bin/apt-get update",
        "0 noninteractive /usr/bin/apt-get install -y --no-install-recommends curl jq=1.6*"]
    os.makedirs(f"{lower}/var/lib/apt/lists/partial")
    open(f"{lower}/var/lib/apt/lists/deb.debian.org_Packages", "w").close()
    b2 = make_box([lower])
    b2.run([pkg_step("curl")])
    assert (b2.upper / "pkg.log").read_text().splitlines() == [
        "0 noninteractive /usr/bin/apt-get install -y --no-install-recommends curl"]


def test_fedora_uses_dnf(make_box, tmp_path):
    b = make_box([with_tool(tmp_path, "fedora", {"/usr/bin/dnf": RECORDER})])
    b.run([pkg_step("gcc", "make@4.4")])
    assert (b.upper / "pkg.log").read_text() == "0  /usr/bin/dnf install -y gcc make-4.4*\n"


def test_no_package_manager_is_a_clear_error(box):
    with pytest.raises(BuildFailed, match=r"PKG at line 8 needs a package manager.*apk.*apt-get"):
        box.run([pkg_step("curl", line=8)])


def test_failing_package_install_reports_pkg(make_box, tmp_path):
    b = make_box([with_tool(tmp_path, "badapk", {"/sbin/apk": "#!/bin/sh\necho no such\nexit 2\n"})])
    with pytest.raises(BuildFailed, match="PKG at line 3 exited with code 2") as ei:
        b.run([pkg_step("nope", line=3)])
    assert ei.value.tail == ["no such"]


def test_autodeps_runs_every_manifest_found(make_box, tmp_path):
    npm = '#!/bin/sh\necho "npm $* in $(pwd)" >> /deps.log\n'
    pip3 = '#!/bin/sh\necho "pip3 $*" >> /deps.log\n'
    b = make_box([with_tool(tmp_path, "node", {"/usr/bin/npm": npm, "/usr/bin/pip3": pip3},
                            {"/app/package.json": "{}", "/app/requirements.txt": "x\n"})])
    r = b.run([autodeps_step(line=12)])
    assert (b.upper / "deps.log").read_text().splitlines() == [
        "npm install in /app", "pip3 install -r requirements.txt"]
    logs = [e["text"] for e in r.events if e["type"] == "log"]
    assert logs == ["auto-deps: found package.json, running npm install",
                    "auto-deps: found requirements.txt, running pip3 install -r requirements.txt"]


def test_autodeps_without_manifest_warns(box):
    r = box.run([autodeps_step(line=5)])
    warnings = [e for e in r.events if e["type"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["line"] == 5
    assert "nothing to install" in warnings[0]["text"]


def test_autodeps_failure_names_the_command(make_box, tmp_path):
    b = make_box([with_tool(tmp_path, "nodefail", {"/usr/bin/npm": "#!/bin/sh\nexit 1\n"},
                            {"/app/package.json": "{}"})])
    with pytest.raises(BuildFailed, match=r"AUTO-DEPS \(npm install\) at line 2 exited with code 1"):
        b.run([autodeps_step(line=2)])
