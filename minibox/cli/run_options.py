"""The flags of ``minibox run`` (shared by ``db run``) as click options, made from the
click-free table in ``run_flags`` (which the fast path of ``run`` parses with too)."""

from __future__ import annotations

import click

from minibox.cli import completion as comp
from minibox.cli.run_flags import FLAGS, Flag, request_from_options  # noqa: F401 (re-export)

COMPLETE = {"network": comp.networks, "volumes": comp.volumes}


def _option(f: Flag):
    kw = {"help": f.help}
    if f.kind == "flag":
        kw["is_flag"] = True
    elif f.kind == "int":
        kw.update(type=int, default=f.default)
    elif f.kind == "multi":
        kw["multiple"] = True
    elif f.kind == "path_multi":
        kw.update(multiple=True, type=click.Path(dir_okay=False))
    else:
        kw["default"] = f.default
    if f.show_default:
        kw["show_default"] = True
    if f.dest in COMPLETE:
        kw["shell_complete"] = COMPLETE[f.dest]
    return click.option(*f.decls, f.dest, **kw)


OPTIONS = [_option(f) for f in FLAGS]


def run_options(fn):
    for opt in reversed(OPTIONS):
        fn = opt(fn)
    return fn
