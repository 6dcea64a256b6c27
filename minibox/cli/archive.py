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
    from minibox.cli import fasthttp

    if output == "-" and sys.stdout.isatty():
        raise UserError("refusing to write an image archive to a terminal",
                        hint="use -o FILE, or redirect stdout")
    target = sys.stdout.buffer if output == "-" else None
    tmp = None
    if target is None:
        tmp = f"{output}.partial-{os.getpid()}"
        target = open(tmp, "wb")
    query = "&".join(f"name={fasthttp.quote(n)}" for n in images)
    try:
        resp = fasthttp.request("GET", f"/images/save?{query}")
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
    from minibox.cli import fasthttp
    from minibox.cli.transfer_view import follow

    if input_ == "-":
        if sys.stdin.isatty():
            raise UserError("no archive on stdin", hint="use -i FILE, or pipe one in")
        source, size = sys.stdin.buffer, None
    else:
        try:
            source = open(input_, "rb")
            size = os.fstat(source.fileno()).st_size
        except OSError as e:
            raise UserError(f"cannot read {input_}: {e.strerror}") from None

    def chunks():
        while chunk := source.read(1 << 20):
            yield chunk

    parts = [source] if size is not None else chunks()      # a file: sent as it is
    resp = fasthttp.request("POST", "/images/load", None, parts, size, "application/x-tar")
    try:
        result = follow(resp, quiet)
    finally:
        resp.close()
    for image in result["images"]:
        for name in image["names"] or [image["digest"]]:
            click.echo(f"Loaded image: {name}")
