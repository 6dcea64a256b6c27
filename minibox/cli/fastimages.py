"""``minibox pull``, ``push``, ``save``, ``load`` and ``rmi``: the work, and a click-free path
to it.

Python's start plus click and the store's modules (which parsing the reference imported)
cost a pull of 50 MB a third of its time and a save + rmi + load round trip ~0.4 s, so
``main.py`` sends these commands here first: ``try_<command>(args)`` takes a plain command
line (long options with a space or ``=``, single short options, ``--``) and does the work
over cli/client.py; anything else (help, an unknown, bundled or repeated-when-single
option, a missing argument) returns None and the click command in cli/registry.py,
cli/archive.py or cli/images.py handles it, calling the same functions below.
"""

from __future__ import annotations

import os
import sys

from minibox.errors import MiniBoxError, UserError

# -- the work ---------------------------------------------------------------------------------


def _auth_for(reference: str) -> dict | None:
    """The saved login for the registry ``reference`` names.  Without a credentials file
    there is none, and the reference is left for the daemon to check (parsing it here
    imports the store)."""
    from minibox.registry.authfile import auth_file_path

    path = auth_file_path()
    if not os.path.exists(path):
        return None
    from pathlib import Path

    from minibox.registry import credentials
    from minibox.registry.reference import parse

    creds = credentials.lookup(Path(path), parse(reference).registry)
    return {"username": creds.username, "password": creds.password} if creds else None


def _transfer(path: str, body: dict, quiet: bool) -> dict:
    """POST a pull or push and follow its progress."""
    from minibox.cli.client import Client
    from minibox.cli.transfer_view import follow

    with Client(timeout=None).stream("POST", path, json=body) as resp:
        return follow(resp, quiet)


def pull(reference: str, platform: str | None, insecure, quiet: bool) -> None:
    body = {"reference": reference, "platform": platform, "insecure_registries": list(insecure),
            "auth": _auth_for(reference)}
    result = _transfer("/images/pull", body, quiet)
    _say(result["digest"] if quiet else
         f"Digest: {result['digest']}\nPulled {result['name'] or result['reference']}")


def push(name: str, destination: str | None, insecure, quiet: bool) -> None:
    body = {"name": name, "destination": destination, "insecure_registries": list(insecure),
            "auth": _auth_for(destination or name)}
    result = _transfer("/images/push", body, quiet)
    _say(result["digest"] if quiet else
         f"Pushed {result['reference']}\nDigest: {result['digest']}")


def save(images, output: str) -> None:
    """Write the archive to ``output`` ('-': stdout), complete or not at all."""
    from minibox.cli.client import Client

    if output == "-" and sys.stdout.isatty():
        raise UserError("refusing to write an image archive to a terminal",
                        hint="use -o FILE, or redirect stdout")
    target = sys.stdout.buffer if output == "-" else None
    tmp = None
    if target is None:
        tmp = f"{output}.partial-{os.getpid()}"
        try:
            target = open(tmp, "wb")
        except OSError as e:
            raise UserError(f"cannot write {output}: {e.strerror}") from None
    try:
        resp = Client(timeout=None).stream("GET", "/images/save",
                                           params=[("name", n) for n in images])
        try:
            while chunk := resp.read1():
                target.write(chunk)
        finally:
            resp.close()
        if not resp.complete:
            raise MiniBoxError("the archive was not written completely (the daemon stopped "
                               "sending it)", hint="see the daemon's log; nothing was left at "
                                                   "the output path")
        target.flush()
        if tmp:                  # whole or not at all at the path; not fsynced, as neither
            target.close()       # docker save nor podman save does
            os.rename(tmp, output)
            tmp = None
    finally:
        if tmp:
            target.close()
            os.unlink(tmp)


def load(input_: str, quiet: bool) -> None:
    from minibox.cli.client import Client
    from minibox.cli.transfer_view import follow

    if input_ == "-":
        if sys.stdin.isatty():
            raise UserError("no archive on stdin", hint="use -i FILE, or pipe one in")
        source = sys.stdin.buffer           # a pipe: sent chunked, as it comes
    else:
        try:
            source = open(input_, "rb")     # a file: sent as it is
        except OSError as e:
            raise UserError(f"cannot read {input_}: {e.strerror}") from None
    with Client(timeout=None).stream("POST", "/images/load", content=source,
                                     headers={"Content-Type": "application/x-tar"}) as resp:
        result = follow(resp, quiet)
    _say("\n".join(f"Loaded image: {name}" for image in result["images"]
                   for name in image["names"] or [image["digest"]]))


def rmi(names, force: bool) -> None:
    from minibox.cli.client import Client, quote

    client = Client(timeout=300)
    for n in names:
        out = client.delete(f"/images/{quote(n)}",
                            params={"force": "true" if force else "false"}).json()
        _say("\n".join([*("Untagged: " + name for name in out.get("untagged") or
                          [out["removed"]]),
                        *("Deleted: " + item for item in out.get("deleted") or [])]))


def _say(text: str) -> None:
    if text:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


# -- the click-free command lines -------------------------------------------------------------
_QUIET = {"-q": ("quiet", "flag"), "--quiet": ("quiet", "flag")}
_INSECURE = {"--insecure-registry": ("insecure", "many")}
# verb -> (the work, its options {option: (parameter, "flag" | "one" | "many")}, its
# positional parameters ("name", "name?" optional, "name+" one or more), the defaults);
# the parameters are the click command's, by name
_VERBS = {
    "pull": (pull, {**_QUIET, **_INSECURE, "--platform": ("platform", "one")}, ("reference",),
             {"platform": None, "insecure": (), "quiet": False}),
    "push": (push, {**_QUIET, **_INSECURE}, ("name", "destination?"),
             {"destination": None, "insecure": (), "quiet": False}),
    "save": (save, {"-o": ("output", "one"), "--output": ("output", "one")}, ("images+",),
             {}),
    "load": (load, {**_QUIET, "-i": ("input_", "one"), "--input": ("input_", "one")}, (),
             {"input_": "-", "quiet": False}),
    "rmi": (rmi, {"-f": ("force", "flag"), "--force": ("force", "flag")}, ("names+",),
            {"force": False}),
}


def parse(verb: str, args: list[str]) -> dict | None:
    """The parameters of ``verb ARGS`` as its click command gets them, or None."""
    _, options, wanted, defaults = _VERBS[verb]
    params: dict = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            positional += args[i:]
            break
        if not a.startswith("-") or a == "-":
            positional.append(a)
            continue
        name, eq, value = a.partition("=") if a.startswith("--") else (a, "", "")
        if name not in options:
            return None
        key, kind = options[name]
        if kind == "flag":
            if eq or key in params:
                return None
            params[key] = True
            continue
        if not eq:
            if i >= len(args):
                return None
            value = args[i]
            i += 1
        if kind == "many":
            params[key] = (*params.get(key, ()), value)
        elif key in params:
            return None
        else:
            params[key] = value
    for name in wanted:
        if name.endswith("+"):
            if not positional:
                return None
            params[name[:-1]], positional = tuple(positional), []
        elif positional:
            params[name.rstrip("?")] = positional.pop(0)
        elif not name.endswith("?"):
            return None
    if positional or any(name not in params and name not in defaults
                         for name, _ in options.values()):
        return None                      # too many arguments, or a required option missing
    return {**defaults, **params}


def _try(verb: str, args: list[str]) -> int | None:
    params = parse(verb, args)
    if params is None:
        return None
    try:
        _VERBS[verb][0](**params)
    except MiniBoxError as e:
        from minibox.cli.output import error
        error(e.render())
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return 0


def try_pull(args: list[str]) -> int | None:
    return _try("pull", args)


def try_push(args: list[str]) -> int | None:
    return _try("push", args)


def try_save(args: list[str]) -> int | None:
    return _try("save", args)


def try_load(args: list[str]) -> int | None:
    return _try("load", args)


def try_rmi(args: list[str]) -> int | None:
    return _try("rmi", args)
