"""The CLI starts fast: `minibox --help` loads no heavy library, and every command loads."""

from __future__ import annotations

import subprocess
import sys

from minibox.cli.commands import COMMANDS

HEAVY = ("celery", "pyroute2", "httpx", "rich", "fastapi", "redis", "yaml")


def test_help_imports_nothing_heavy():
    code = ("import sys\nfrom minibox.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_build_path_does_not_import_httpx():
    code = ("import sys\nimport minibox.cli.build, minibox.cli.client, "
            "minibox.builder.context, minibox.cli.progress\nprint('httpx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_every_command_has_help():
    for name in COMMANDS:
        r = subprocess.run([sys.executable, "-m", "minibox.cli.main", name, "--help"],
                           capture_output=True, text=True)
        assert r.returncode == 0, (name, r.stderr)
        assert "Usage:" in r.stdout


def test_unreachable_daemon_is_a_clear_error():
    r = subprocess.run([sys.executable, "-m", "minibox.cli.main", "ping"],
                       capture_output=True, text=True,
                       env={"MINIBOX_API": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 1
    assert "cannot reach miniboxd" in r.stderr and "Traceback" not in r.stderr


def test_compose_help_loads_no_yaml():
    """pyyaml is loaded by compose's work only, not by its command line."""
    code = ("import sys\nfrom minibox.cli.main import main\n"
            "try:\n    main(['compose', 'up', '--help'])\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def _imports(path) -> set[str]:
    import ast
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_commands_talk_to_the_daemon_through_the_one_client():
    """cli/client.py is the CLI's one HTTP client (issue 9): no command, nor compose, opens
    its own transport (httpx, http.client, the raw socket one) or reads the endpoint's
    settings itself; the transport is client.py's alone."""
    from pathlib import Path
    import minibox
    root = Path(minibox.__file__).parent
    files = sorted((root / "cli").glob("*.py")) + sorted((root / "compose").glob("*.py"))
    assert len(files) > 20
    transports = ("httpx", "http.client", "urllib.request", "requests", "socket",
                  "minibox.cli.transport", "minibox.cli.fasthttp")
    for path in files:
        if path.name in ("client.py", "transport.py"):
            continue
        found = {m for m in _imports(path) for t in transports
                 if m == t or m.startswith(t + ".")}
        assert not found, f"{path.relative_to(root)} imports {sorted(found)}: use cli/client.py"
    assert "minibox.cli.transport" in _imports(root / "cli" / "client.py")


def test_one_place_reads_the_clients_settings_from_the_environment():
    """MINIBOX_API, the token and the TLS files: read in cli/endpoint.py, nowhere else."""
    from pathlib import Path
    import minibox
    root = Path(minibox.__file__).parent
    names = ("MINIBOX_API", "MINIBOX_TLS_", "MINIBOX_DATA_ROOT")
    for path in sorted((root / "cli").glob("*.py")) + sorted((root / "compose").glob("*.py")):
        if path.name == "endpoint.py":
            continue
        for line in path.read_text().splitlines():
            if "environ" in line or "getenv" in line:
                assert not any(n in line for n in names), f"{path.name}: {line.strip()}"
