"""The click-free command lines of pull, push, save, load and rmi must be read exactly as
their click commands read them, and everything else left to click."""

from __future__ import annotations

import pytest

from minibox.cli import fastimages
from minibox.cli.archive import load, save
from minibox.cli.images import rmi
from minibox.cli.registry import pull, push

COMMANDS = {"pull": pull, "push": push, "save": save, "load": load, "rmi": rmi}

TAKEN = [
    ("pull", ["alpine"]),
    ("pull", ["-q", "127.0.0.1:5000/a/b:1"]),
    ("pull", ["--platform", "linux/arm64", "--quiet", "x@sha256:" + "a" * 64]),
    ("pull", ["--insecure-registry", "h:1", "--insecure-registry=h:2", "h:1/x", "-q"]),
    ("pull", ["--platform=linux/amd64", "--", "alpine"]),
    ("push", ["app:1"]),
    ("push", ["-q", "app:1", "127.0.0.1:5000/app:1"]),
    ("push", ["app:1", "--insecure-registry", "h:5000", "h:5000/app:1"]),
    ("save", ["app:1", "-o", "out.tar"]),
    ("save", ["-o", "-", "a", "b:2"]),
    ("save", ["--output=x.tar", "a"]),
    ("load", []),
    ("load", ["-i", "x.tar"]),
    ("load", ["-q", "--input", "-"]),
    ("rmi", ["a"]),
    ("rmi", ["-f", "a", "b"]),
    ("rmi", ["a", "--force", "--", "-weird"]),
]

LEFT_TO_CLICK = [
    ("pull", []), ("pull", ["--help"]), ("pull", ["-h"]), ("pull", ["a", "b"]),
    ("pull", ["--bogus", "a"]), ("pull", ["-qq", "a"]), ("pull", ["--quiet=1", "a"]),
    ("pull", ["--platform"]), ("pull", ["--platform", "x", "--platform", "y", "a"]),
    ("push", []), ("push", ["a", "b", "c"]),
    ("save", ["a"]), ("save", ["-o", "x"]), ("save", ["-ox", "a"]), ("save", ["--help"]),
    ("load", ["x.tar"]), ("load", ["-i"]), ("load", ["-qi", "x"]),
    ("rmi", []), ("rmi", ["-fa"]), ("rmi", ["--help"]),
]


def _click_params(verb: str, args: list[str]) -> dict:
    return dict(COMMANDS[verb].make_context(verb, list(args)).params)


@pytest.mark.parametrize("verb, args", TAKEN, ids=lambda a: " ".join(a) if isinstance(
    a, list) else a)
def test_fast_parser_agrees_with_click(verb, args):
    fast = fastimages.parse(verb, args)
    assert fast is not None, args
    assert fast == _click_params(verb, args)


@pytest.mark.parametrize("verb, args", LEFT_TO_CLICK, ids=lambda a: " ".join(a) if isinstance(
    a, list) else a)
def test_fast_parser_leaves_the_rest_to_click(verb, args):
    assert fastimages.parse(verb, args) is None
