"""The fast path of ``minibox run`` in the foreground: parse the flags from the table in
``run_flags`` and stream the run, without importing click (~15-20 ms of a ~90 ms run).

Only what it parses exactly as click would is taken: long options (``--name x``,
``--name=x``), short ones (``-e x``, ``-ex``), bundled short flags (``--rm -it`` is not
bundled; ``-it`` is), ``--`` and the image ending the options.  Anything else (help, an
unknown or malformed flag, a bad number, a file flag, ``-d``, ``-t``) returns None and the
click command handles it, errors and all.  tests/test_fastrun.py checks both parsers agree.
"""

from __future__ import annotations

from minibox.cli.run_flags import FLAGS, Flag, defaults

_BY_NAME: dict[str, Flag] = {d: f for f in FLAGS for d in f.decls}
# left to click: what needs click's types or a terminal
_SLOW = {"env_file", "detach", "tty"}


def parse(args: list[str]) -> tuple[str, list[str], dict] | None:
    """(image, command, options) as the click command would get them, or None."""
    opts = defaults()
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        taken = _long(a, args, i, opts) if a.startswith("--") else _short(a, args, i, opts)
        if taken is None:
            return None
        i += taken
    if i >= len(args):
        return None                       # no image: click says so
    return args[i], list(args[i + 1:]), opts


def _long(a: str, args: list[str], i: int, opts: dict) -> int | None:
    name, eq, val = a.partition("=")
    f = _BY_NAME.get(name)
    if f is None or f.dest in _SLOW:
        return None
    if f.kind == "flag":
        if eq:
            return None
        opts[f.dest] = True
        return 1
    if not eq:
        if i + 1 >= len(args):
            return None
        return 2 if _set(opts, f, args[i + 1]) else None
    return 1 if _set(opts, f, val) else None


def _short(a: str, args: list[str], i: int, opts: dict) -> int | None:
    f = _BY_NAME.get(a[:2])
    if f is None or f.dest in _SLOW:
        return None
    if f.kind == "flag":
        for ch in a[1:]:                  # -it: bundled flags only
            g = _BY_NAME.get("-" + ch)
            if g is None or g.kind != "flag" or g.dest in _SLOW:
                return None
            opts[g.dest] = True
        return 1
    if len(a) > 2:
        return 1 if _set(opts, f, a[2:]) else None
    if i + 1 >= len(args):
        return None
    return 2 if _set(opts, f, args[i + 1]) else None


def _set(opts: dict, f: Flag, value: str) -> bool:
    if f.kind == "multi":
        opts[f.dest] = (*opts[f.dest], value)
    elif f.kind == "int":
        try:
            opts[f.dest] = int(value)
        except ValueError:
            return False
    elif f.kind == "str":
        opts[f.dest] = value
    else:
        return False
    return True


def try_run(args: list[str]) -> int | None:
    """Run ``minibox run ARGS`` in the foreground if the fast parser takes them; the exit
    code, or None for the click command to handle."""
    parsed = parse(args)
    if parsed is None:
        return None
    image, command, opts = parsed
    from minibox.cli.foreground import run_foreground
    from minibox.cli.run_flags import request_from_options
    from minibox.errors import MiniBoxError
    try:
        body = request_from_options(image, command, opts)
        return run_foreground(body, interactive=bool(opts.get("interactive")))
    except MiniBoxError as e:
        from minibox.cli.output import error
        error(e.render())
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:     # our stdout's reader went away (`| head`): quietly, as click
        import os               # does for every other command
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)          # (the exit's flush of what is left goes nowhere)
        os.close(fd)
        return 1
