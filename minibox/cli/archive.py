"""``minibox save`` and ``minibox load`` (their work is in cli/fastimages.py, which main.py
also calls without click for a plain command line)."""

from __future__ import annotations

import click


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", required=True, metavar="FILE",
              help="Where to write the archive ('-' for stdout).")
def save(images, output) -> None:
    """Write IMAGES to an OCI image layout archive that also carries Docker's
    manifest.json (podman load, docker load and skopeo read it)."""
    from minibox.cli import fastimages

    fastimages.save(images, output)


@click.command()
@click.option("-i", "--input", "input_", default="-", metavar="FILE",
              help="The archive (default: stdin); tar, tar.gz or tar.zst.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the loaded images.")
def load(input_, quiet) -> None:
    """Load images from an archive written by minibox, podman, skopeo or docker."""
    from minibox.cli import fastimages

    fastimages.load(input_, quiet)
