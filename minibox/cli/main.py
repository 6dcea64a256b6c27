"""``minibox``: the command line.

A plain foreground ``minibox run`` takes a fast path that never imports click
(cli/fastrun.py: Python start-up plus click was half of a ``run --rm true``); everything
else, and any ``run`` the fast parser does not take, goes to the click group in
cli/commands.py, whose subcommands load lazily."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:
        from minibox.cli.fastrun import try_run
        code = try_run(argv[1:])
        if code is not None:
            from minibox.cli.foreground import exit_now_if_program
            exit_now_if_program(code)
            return code
    from minibox.cli.commands import cli
    from minibox.cli.output import run_command
    return run_command(cli, argv)


if __name__ == "__main__":
    sys.exit(main())
