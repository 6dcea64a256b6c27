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
    code = ("import sys\nimport minibox.cli.build, minibox.cli.fasthttp, "
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
