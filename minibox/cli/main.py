"""``minibox``: the command line.

A plain foreground ``minibox run`` and ``minibox stats --no-stream`` take a fast path that
never imports click (cli/fastrun.py, cli/stats_view.py: Python start-up plus click was
half of a ``run --rm true`` and most of a ``stats``), and so do plain ``pull``, ``push``,
``save``, ``load`` and ``rmi`` (cli/fastimages.py); everything else, and any command
line the fast parsers do not take, goes to the click group in cli/commands.py, whose
subcommands load lazily."""

from __future__ import annotations

import importlib
import sys

# command -> "module:function" taking the arguments: an exit code, or None for click
FAST = {"run": "minibox.cli.fastrun:try_run", "stats": "minibox.cli.stats_view:try_fast",
        **{verb: f"minibox.cli.fastimages:try_{verb}"
           for verb in ("pull", "push", "save", "load", "rmi")}}


def main(argv: list[str] | None = None) -> int:
    argv = _take_host(sys.argv[1:] if argv is None else argv)
    fast = FAST.get(argv[0]) if argv else None
    if fast is not None:
        module, attr = fast.split(":")
        code = getattr(importlib.import_module(module), attr)(argv[1:])
        if code is not None:
            from minibox.cli.foreground import exit_now_if_program
            exit_now_if_program(code)
            return code
    from minibox.cli.commands import cli
    from minibox.cli.output import run_command
    return run_command(cli, argv)


def _take_host(argv: list[str]) -> list[str]:
    """``minibox [-H|--host ADDR] COMMAND ...``: the daemon's address for every command, the
    fast paths too (the click group only documents the option)."""
    if argv and argv[0].startswith("--host="):
        host, argv = argv[0][len("--host="):], argv[1:]
    elif len(argv) >= 2 and argv[0] in ("-H", "--host"):
        host, argv = argv[1], argv[2:]
    else:
        return argv
    from minibox.cli import endpoint
    endpoint.use_host(host)
    return argv


if __name__ == "__main__":
    sys.exit(main())
