"""Turning results and errors into terminal output and exit codes, in one place."""

from __future__ import annotations

import os
import sys

from minibox.errors import MiniBoxError


def colour_enabled(stream=None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("MINIBOX_PLAIN"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def error_line(msg: str) -> str:
    prefix = "\x1b[31merror:\x1b[0m " if colour_enabled(sys.stderr) else "error: "
    return prefix + msg + "\n"


def error(msg: str) -> None:
    sys.stderr.write(error_line(msg))
    sys.stderr.flush()


def run_command(cli, argv: list[str]) -> int:
    """Run the click group; map MiniBoxError to a message and its exit code."""
    import click
    try:
        rv = cli.main(args=argv, prog_name="minibox", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except MiniBoxError as e:
        error(e.render())
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return 2 if isinstance(e, click.UsageError) else e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
