"""``miniboxd``: the API daemon.  With no MINIBOX_BROKER_URL it brings up the whole farm on
this machine (a private redis-server, the build workers, the runtime worker) and stops it
again on shutdown."""

from __future__ import annotations

import logging
import os
import sys

import click

from minibox import __version__
from minibox.config import Settings
from minibox.errors import MiniBoxError

log = logging.getLogger("minibox.daemon")


def build_services(settings: Settings):
    from minibox.builder.jobs import BuildManager
    from minibox.daemon.services import Services
    from minibox.redisconn import connect
    from minibox.store import Store
    from minibox.workers.celery_app import make_celery

    services = Services(settings=settings)
    services.store = Store(settings.data_root)
    services.redis = connect(settings)
    services.celery = make_celery(settings)
    services.builds = BuildManager(services)
    return services


def _listen_config(addr: str) -> dict:
    """uvicorn's listening options for MINIBOX_HTTP_ADDR: HOST:PORT or unix:///path.sock."""
    if addr.startswith("unix://"):
        return {"uds": addr[len("unix://"):]}
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MiniBoxError(f"invalid MINIBOX_HTTP_ADDR '{addr}'",
                           hint="use HOST:PORT (127.0.0.1:8080) or unix:///run/minibox.sock")
    return {"host": host.strip("[]"), "port": int(port)}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-root", envvar="MINIBOX_DATA_ROOT", default=None,
              help="Data root (an OCI image layout). [env MINIBOX_DATA_ROOT]")
@click.option("--addr", envvar="MINIBOX_HTTP_ADDR", default=None,
              help="HOST:PORT to listen on. [env MINIBOX_HTTP_ADDR, default 127.0.0.1:8080]")
@click.option("--no-workers", is_flag=True,
              help="Start no workers here (they run on other machines on the same broker).")
@click.version_option(__version__, prog_name="miniboxd")
def cli(data_root, addr, no_workers) -> None:
    """Run the MiniBox daemon (as root)."""
    settings = Settings.from_env()
    if data_root:
        settings.data_root = os.path.abspath(data_root)
        from pathlib import Path
        settings.data_root = Path(settings.data_root)
    if addr:
        settings.http_addr = addr
    os.environ["MINIBOX_DATA_ROOT"] = str(settings.data_root)
    serve(settings, workers=not no_workers)


def serve(settings: Settings, workers: bool = True) -> None:
    import uvicorn

    from minibox.api.app import create_app
    from minibox.daemon.supervisor import Supervisor

    if os.geteuid() != 0:
        raise MiniBoxError("miniboxd must run as root (overlay mounts, namespaces, cgroups)",
                           hint="run it with sudo, or as a systemd service (deploy/)")
    listen = _listen_config(settings.http_addr)
    settings.data_root.mkdir(parents=True, exist_ok=True)
    sup = Supervisor(settings)
    sup.lock()
    try:
        if not settings.broker_url:
            sup.start_redis()
        if workers:
            sup.start_workers()
        sup.end_leftovers()
        services = build_services(settings)
        services.store.clean_tmp()
        services.builds.recover()
        sup.watch()
        app = create_app(settings, services=services)
        where = f"unix://{listen['uds']}" if "uds" in listen else \
            f"http://{listen['host']}:{listen['port']}"
        print(f"miniboxd {__version__} listening on {where} "
              f"(data root {settings.data_root}, broker {settings.effective_broker_url()})",
              flush=True)
        _exit_on_signals()
        uvicorn.Server(uvicorn.Config(app, **listen, log_level="warning",
                                      timeout_graceful_shutdown=5)).run()
    except SystemExit:
        pass
    finally:
        sup.stop()


def _exit_on_signals() -> None:
    """uvicorn shuts down on SIGTERM/SIGINT and then re-raises the signal to the handler
    that was there before it; make that handler unwind Python (so the supervisor stops the
    redis-server and workers) instead of killing the process on the spot."""
    import signal

    def unwind(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, unwind)
    signal.signal(signal.SIGINT, unwind)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        cli.main(standalone_mode=False)
        return 0
    except MiniBoxError as e:
        print(f"miniboxd: {e.render()}", file=sys.stderr)
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return 2
    except click.exceptions.Abort:
        return 130
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
