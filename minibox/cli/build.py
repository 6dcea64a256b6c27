"""``minibox build`` and ``minibox builds``: upload a context, follow the job, show progress."""

from __future__ import annotations

import os

import click

from minibox.cli import completion as comp
from minibox.cli.commands import Group

from minibox.errors import UserError


@click.command()
@click.option("-t", "--tag", required=True, help="Name the image NAME[:TAG].")
@click.option("-f", "--file", "file_", default=None,
              help="The MiniBox file (default: CONTEXT/MiniBox).")
@click.option("--target", default=None, help="Build only this block (and what it needs).")
@click.option("--no-cache", is_flag=True, help="Build every block again.")
@click.option("--pull", type=click.Choice(["missing", "always", "never"]), default="missing",
              show_default=True, help="When to pull the BASE image from its registry.")
@click.option("--timestamp", type=click.IntRange(min=0), default=None,
              help="Seconds since 1970 for the image's created times, and the latest mtime "
              "in its new layers: reproducible digests (default: $SOURCE_DATE_EPOCH).")
@click.option("--network", type=click.Choice(["build", "none", "host"]), default="build",
              show_default=True,
              help="The RUN steps' network: build (own namespace, outbound NAT, no access to "
                   "the host's loopback), none (loopback only) or host (the host's network; "
                   "opt-in, trusted MiniBox files only).")
@click.option("--platform", default=None, metavar="OS/ARCH[/VARIANT]",
              help="Run the blocks on build workers of this platform (default: the base "
                   "image's, else the daemon's).")
@click.option("--progress", type=click.Choice(["auto", "tty", "plain", "json"]),
              default="auto", show_default=True, help="How to show progress.")
@click.option("-d", "--detach", is_flag=True, help="Print the job id and return at once.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image digest.")
@click.argument("context", default=".", type=click.Path(file_okay=False))
def build(tag, file_, target, no_cache, pull, timestamp, network, platform, progress, detach,
          quiet, context) -> int:
    """Build an image from a MiniBox file in CONTEXT (default: the current directory)."""
    mb_path, display = _minibox_path(context, file_)
    try:
        text = open(mb_path, "rb").read().decode("utf-8", "replace")
    except FileNotFoundError:
        raise UserError(f"no MiniBox file at {display}",
                        hint="create one, or name it with -f FILE") from None
    except IsADirectoryError:
        raise UserError(f"{display} is a directory, not a MiniBox file") from None
    if timestamp is None:
        timestamp = _source_date_epoch()
    job = _submit(context, tag, display, text, target, no_cache, timestamp, pull,
                  network, platform)
    if detach:
        click.echo(job["id"])
        return 0
    rc = follow(job["id"], "quiet" if quiet else progress)
    if quiet and rc == 0:
        from minibox.cli.client import Client
        click.echo(Client().get(f"/builds/{job['id']}").json().get("digest", ""))
    return rc


def _source_date_epoch() -> int | None:
    """SOURCE_DATE_EPOCH (reproducible-builds.org): unset or empty means none."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 12):
        raise UserError(f"SOURCE_DATE_EPOCH={value[:40]!r} is not a number of seconds "
                        "since 1970", hint="set it to e.g. $(git log -1 --format=%ct), or "
                        "unset it")
    return int(value)


def _minibox_path(context: str, file_: str | None) -> tuple[str, str]:
    if not os.path.isdir(context):
        raise UserError(f"build context '{context}' is not a directory",
                        hint="give the directory that holds your MiniBox file")
    if file_:
        return file_, file_
    path = os.path.join(context, "MiniBox")
    return path, os.path.relpath(path) if not os.path.isabs(context) else path


# `minibox build` is on the hot path of every edit-build loop: the CLI's client (over a raw
# socket, no HTTP library imported) costs less than an unchanged rebuild takes on the daemon.

def _submit(context, tag, display, text, target, no_cache, timestamp=None, pull="missing",
            network="build", platform=None) -> dict:
    import tempfile

    from minibox.builder.context import pack_context
    from minibox.cli.client import Client

    with tempfile.SpooledTemporaryFile(max_size=16 << 20) as tar:
        pack_context(context, tar)
        tar.seek(0)
        fields = {"tag": tag, "file": display, "minibox": text,
                  "no_cache": "true" if no_cache else "false", "pull": pull,
                  "network": network}
        if target:
            fields["target"] = target
        if platform:
            fields["platform"] = platform
        if timestamp is not None:
            fields["timestamp"] = str(timestamp)
        files = {"context": ("context.tar", tar, "application/octet-stream")}
        return Client(timeout=None).post("/builds", data=fields, files=files).json()


def follow(job_id: str, progress: str = "auto") -> int:
    """Stream the job's events through a renderer; the exit code says how it ended."""
    import json

    from minibox.cli.client import Client
    from minibox.cli.progress import make_renderer

    client = Client(timeout=None)
    renderer = make_renderer(progress)
    status = None
    try:
        with client.stream("GET", f"/builds/{job_id}/events") as resp:
            for line in resp.iter_lines():
                if not line.strip():
                    continue
                ev = json.loads(line)
                if ev.get("type") == "stream_error":     # the daemon failed mid-stream
                    renderer.close()
                    from minibox.errors import MiniBoxError
                    raise MiniBoxError.from_dict(ev.get("error") or {})
                renderer.event(ev)
                if ev["type"] in ("job_done", "job_failed", "job_cancelled"):
                    status = ev["type"]
                    break
    except KeyboardInterrupt:
        renderer.close()
        click.echo("\ncancelling the build ...", err=True)
        client.post(f"/builds/{job_id}/cancel")
        return 130
    renderer.close()
    if status is None:
        status = "job_" + client.get(f"/builds/{job_id}").json().get("status", "failed")
    return {"job_done": 0, "job_cancelled": 130}.get(status, 1)


@click.group(cls=Group)
def builds() -> None:
    """List, follow and cancel build jobs; list the build workers."""


@builds.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def builds_ls(as_json) -> None:
    """List recent build jobs."""
    import time

    _list("/builds", as_json, ["JOB ID", "IMAGE", "STATUS", "BLOCKS", "HOSTS", "CREATED",
                               "ERROR"],
          lambda j: [j["id"], j["tag"], j["status"], j.get("blocks", ""),
                     ",".join(j.get("hosts") or []) or "-",
                     time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(j["created"]))),
                     (j.get("error") or "")[:60]])


@builds.command("workers")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def builds_workers(as_json) -> None:
    """List the farm's live build workers: host, platform, slots, queue."""
    _list("/workers", as_json, ["NAME", "HOST", "PLATFORM", "SLOTS", "QUEUE"],
          lambda a: [a["name"], a["host"], a["platform"], a["concurrency"], a["queue"]])


def _list(path: str, as_json: bool, headers: list[str], row) -> None:
    """GET a list and print it as JSON or as a table, one ``row(item)`` per item."""
    import json

    from minibox.cli.client import Client

    items = Client().get(path).json()
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    from minibox.cli.tables import print_table
    print_table(headers, [row(item) for item in items])


@builds.command("logs")
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep following until it ends.")
@click.option("--progress", type=click.Choice(["plain", "json"]), default="plain")
@click.argument("job_id", shell_complete=comp.build_jobs)
def builds_logs(follow_, progress, job_id) -> int:
    """Show a build job's events and output."""
    if follow_:
        return follow(job_id, progress)
    import json

    from minibox.cli.client import Client
    from minibox.cli.progress import make_renderer
    r = make_renderer(progress)
    with Client(timeout=None).stream("GET", f"/builds/{job_id}/events",
                                     params={"follow": False}) as resp:
        for line in resp.iter_lines():
            if line.strip():
                r.event(json.loads(line))
    r.close()
    return 0


@builds.command("cancel")
@click.argument("job_ids", nargs=-1, required=True, shell_complete=comp.build_jobs)
def builds_cancel(job_ids) -> None:
    """Cancel build jobs."""
    from minibox.cli.client import Client

    client = Client()
    for j in job_ids:
        rec = client.post(f"/builds/{j}/cancel").json()
        click.echo(f"{j}: {rec['status']}")
