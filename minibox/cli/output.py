"""Turning results and errors into terminal output and exit codes, in one place."""

from __future__ import annotations

import os
import sys

from minibox.errors import MiniBoxError, UserError


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
    except click.UsageError as e:       # a bad flag or argument: one line and where to look
        if isinstance(e, click.exceptions.NoArgsIsHelpError):     # a bare group: its help
            e.show()
            return 2
        where = e.ctx.command_path if e.ctx is not None else "minibox"
        hint = getattr(e, "hint", None) or f"`{where} --help` shows the usage"
        error(UserError(_sentence(e.format_message()), hint=hint).render())
        return 2
    except click.ClickException as e:
        error(_sentence(e.format_message()))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _sentence(text: str) -> str:
    """click's 'No such option ...'. as our errors read: lower case, no full stop."""
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:] if text[1:2].islower() else text
