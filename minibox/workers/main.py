"""``minibox-worker build|runtime|flower``: run a worker of the farm (or Flower) on the
broker in MINIBOX_BROKER_URL (default: the embedded redis of the local data root)."""

from __future__ import annotations

import os
import socket
import sys

import click

from minibox.config import Settings
from minibox.wire.queues import RUNTIME_QUEUE


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Run a MiniBox worker."""


@cli.command()
@click.option("-c", "--concurrency", type=int, default=None,
              help="Worker processes (default: max(4, 2 x cores)). [env MINIBOX_BUILD_CONCURRENCY]")
@click.option("-n", "--name", default=None, help="Worker name (default build@HOSTNAME).")
@click.option("--platform", default=None, metavar="OS/ARCH[/VARIANT]",
              help="The platform whose blocks this worker runs (default: this machine's). "
                   "[env MINIBOX_BUILD_PLATFORM]")
def build(concurrency, name, platform) -> None:
    """Run build workers: execute blocks from the build queue of this worker's platform
    (`build.linux-amd64`), and advertise platform, capacity and host in Redis.

    A worker on another data root than the daemon's calls the daemon's API (blobs, build
    contexts) with MINIBOX_API_TOKEN; it checks that it can before taking any block."""
    from minibox.errors import UserError
    from minibox.store.manifests import parse_platform
    from minibox.wire.queues import build_queue
    from minibox.workers.heartbeat import Heartbeat

    settings = Settings.from_env()
    try:
        plat = str(parse_platform(platform or os.environ.get("MINIBOX_BUILD_PLATFORM")))
    except UserError as e:
        raise click.UsageError(f"{e.message} ({e.hint})") from None
    _check_daemon(settings)
    from minibox.workers.celery_app import app

    name = name or f"build@{socket.gethostname()}"
    concurrency = concurrency or settings.build_concurrency
    Heartbeat(settings, name, plat, concurrency).attach()
    if not os.environ.get("MINIBOX_BUILD_TASK_LOG"):
        _quiet_task_log(app, events=True)
    app.worker_main(["worker", "-Q", build_queue(plat), "-P", "prefork",
                     "-c", str(concurrency), "--prefetch-multiplier", "1", "-E",
                     "--without-gossip", "--without-mingle", "-n", name,
                     "--loglevel", "INFO"])


def _check_daemon(settings: Settings) -> None:
    """A wrong token, an unreachable daemon or broker: a clear error and exit 1, now."""
    import redis

    from minibox.builder.remote import check_daemon
    from minibox.errors import MiniBoxError
    from minibox.redisconn import connect

    try:
        url = check_daemon(settings, connect(settings))
    except redis.RedisError as e:
        err = MiniBoxError(f"cannot reach the broker at {settings.effective_broker_url()}: {e}",
                           hint="check MINIBOX_BROKER_URL")
    except MiniBoxError as e:
        err = e
    else:
        if url:
            click.echo(f"minibox-worker: miniboxd at {url} accepts this worker", err=True)
        return
    click.echo(f"minibox-worker: {err.render()}", err=True)
    sys.exit(err.exit_code)


@cli.command()
@click.option("-n", "--name", default=None, help="Worker name (default runtime@HOSTNAME).")
def runtime(name) -> None:
    """Run the runtime worker: owns containers, cgroups and networking (one per machine)."""
    from minibox.workers.celery_app import app

    # Runtime tasks are acked on receipt (a container start is not safely repeatable), so
    # the Redis transport's ack emulation (an "unacked" hash and index per message, to
    # restore messages of a lost worker) is pure overhead here: off for this worker only.
    app.conf.broker_transport_options = {**app.conf.broker_transport_options,
                                         "ack_emulation": False}
    # ...and for the same reason (nothing is ever delivered twice) the backend's GET of
    # the stored state before each result's SET is a wasted round trip: see result_backend
    from minibox.workers import result_backend
    result_backend.use_for(app)
    if not os.environ.get("MINIBOX_RUNTIME_TASK_LOG"):
        _quiet_task_log(app)
    # threads: starts overlap (most of a start waits on the container's own set-up in the
    # monitor); Runtime serialises what must not overlap (reconcile, see service.py)
    app.worker_main(["worker", "-Q", RUNTIME_QUEUE, "-P", "threads", "-c", "4",
                     "--prefetch-multiplier", "1", "--without-gossip", "--without-mingle",
                     "-n", name or f"runtime@{socket.gethostname()}", "--loglevel", "INFO"])


def _quiet_task_log(app, events: bool = False) -> None:
    """No INFO line per task ("received", "succeeded in ...: <result>"): a container start
    is a task, and those two lines (with the saferepr of the result, computed whether
    logged or not) cost ~0.9 ms of the worker's ~6 ms of CPU (user) per start; a build
    block is a task too (the master logs one line, the pool process the other).  Warnings
    and errors (a task that raised, a lost connection) are still logged, and so is the
    worker's own INFO (connected, ready).  MINIBOX_RUNTIME_TASK_LOG=1 (MINIBOX_BUILD_TASK_LOG=1)
    keeps the per-task lines.  ``events``: the worker sends task events (Flower shows each
    task's result from them), so the result's repr is kept."""
    import logging

    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if not events:
        # the result's repr is only for that line (and for task events, off on this worker)
        app.Task.resultrepr_maxsize = 0


@cli.command()
@click.option("--port", default=5555, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--basic-auth-file", default=None, metavar="FILE",
              help="user:password lines [env MINIBOX_FLOWER_AUTH_FILE; default: "
                   "$MINIBOX_DATA_ROOT/run/flower-credentials, made on first start]")
@click.option("--unauthenticated", is_flag=True,
              help="No authentication at all (refused unless --address is loopback).")
def flower(port, address, basic_auth_file, unauthenticated) -> None:
    """Run Flower on the farm's broker to watch the build workers (basic auth by default).

    Credentials: MINIBOX_FLOWER_BASIC_AUTH=user:pass[,user2:pass2], else the file."""
    from minibox.workers import flower_auth

    settings = Settings.from_env()
    try:
        env = flower_auth.environment(settings, address, basic_auth_file, unauthenticated)
    except flower_auth.FlowerAuthError as e:
        raise click.UsageError(str(e)) from None
    os.environ.update(env)
    from minibox.workers.celery_app import app

    app.start(["--broker", settings.effective_broker_url(), "flower", f"--port={port}",
               f"--address={address}"])


def main() -> int:
    return cli.main(standalone_mode=True) or 0


if __name__ == "__main__":
    sys.exit(main())
