"""``minibox save`` and ``minibox load``."""

from __future__ import annotations

import os
import sys

import click

from minibox.errors import MiniBoxError, UserError


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", required=True, metavar="FILE",
              help="Where to write the archive ('-' for stdout).")
def save(images, output) -> None:
    """Write IMAGES to an OCI image layout archive that also carries Docker's
    manifest.json (podman load, docker load and skopeo read it)."""
    from minibox.cli.client import Client

    if output == "-" and sys.stdout.isatty():
        raise UserError("refusing to write an image archive to a terminal",
                        hint="use -o FILE, or redirect stdout")
    target = sys.stdout.buffer if output == "-" else None
    tmp = None
    if target is None:
        tmp = f"{output}.partial-{os.getpid()}"
        target = open(tmp, "wb")
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
        if tmp:
            os.fsync(target.fileno())
            target.close()
            os.rename(tmp, output)
            tmp = None
    finally:
        if tmp:
            target.close()
            os.unlink(tmp)


@click.command()
@click.option("-i", "--input", "input_", default="-", metavar="FILE",
              help="The archive (default: stdin); tar, tar.gz or tar.zst.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the loaded images.")
def load(input_, quiet) -> None:
    """Load images from an archive written by minibox, podman, skopeo or docker."""
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
    for image in result["images"]:
        for name in image["names"] or [image["digest"]]:
            click.echo(f"Loaded image: {name}")
