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
    from minibox.workers import result_backend
    from minibox.workers.celery_app import make_celery

    services = Services(settings=settings)
    services.store = Store(settings.data_root)
    services.redis = connect(settings)
    services.celery = make_celery(settings)
    result_backend.use_for_daemon(services.celery)     # no result subscription per block
    services.builds = BuildManager(services)
    return services


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-root", envvar="MINIBOX_DATA_ROOT", default=None,
              help="Data root (an OCI image layout). [env MINIBOX_DATA_ROOT]")
@click.option("--addr", envvar="MINIBOX_HTTP_ADDR", default=None,
              help="HOST:PORT or unix:///path.sock to listen on. "
                   "[env MINIBOX_HTTP_ADDR, default 127.0.0.1:8080]")
@click.option("--tls-cert", envvar="MINIBOX_TLS_CERT", default=None,
              help="Serve https with this PEM certificate. [env MINIBOX_TLS_CERT]")
@click.option("--tls-key", envvar="MINIBOX_TLS_KEY", default=None,
              help="The certificate's private key. [env MINIBOX_TLS_KEY]")
@click.option("--tls-client-ca", envvar="MINIBOX_TLS_CLIENT_CA", default=None,
              help="Require client certificates signed by this CA. [env MINIBOX_TLS_CLIENT_CA]")
@click.option("--no-workers", is_flag=True,
              help="Start no workers here (they run on other machines on the same broker).")
@click.version_option(__version__, prog_name="miniboxd")
def cli(data_root, addr, tls_cert, tls_key, tls_client_ca, no_workers) -> None:
    """Run the MiniBox daemon (as root).

    Every request but /ping needs a credential: the API token (MINIBOX_API_TOKEN, else one
    generated into DATA_ROOT/run/api-token, readable by the group minibox), a TLS client
    certificate (--tls-client-ca), or a connection to the unix socket
    DATA_ROOT/run/miniboxd.sock (mode 0660, group minibox)."""
    from pathlib import Path

    settings = Settings.from_env()
    if data_root:
        settings.data_root = Path(os.path.abspath(data_root))
    if addr:
        settings.http_addr = addr
    settings.tls_cert, settings.tls_key, settings.tls_client_ca = tls_cert, tls_key, tls_client_ca
    os.environ["MINIBOX_DATA_ROOT"] = str(settings.data_root)
    serve(settings, workers=not no_workers)


def serve(settings: Settings, workers: bool = True) -> None:
    from minibox.api.app import create_app
    from minibox.daemon import credentials, listen
    from minibox.daemon.supervisor import Supervisor

    if os.geteuid() != 0:
        raise MiniBoxError("miniboxd must run as root (overlay mounts, namespaces, cgroups)",
                           hint="run it with sudo, or as a systemd service (deploy/)")
    listen.parse_addr(settings.http_addr)
    settings.data_root.mkdir(parents=True, exist_ok=True)
    sup = Supervisor(settings)
    sup.lock()                  # before anything is bound: the socket may be a live daemon's
    gid = credentials.api_group()
    settings.api_token = credentials.load_token(settings, gid)
    listeners = listen.open_listeners(settings, gid)
    services = None
    try:
        if not settings.broker_url:
            sup.start_redis()
        services = build_services(settings)
        services.store.clean_tmp()
        announce(services)      # before the workers start: a remote-rooted one checks it
        if workers:
            sup.start_workers()
        sup.end_leftovers()
        services.builds.recover()
        sup.watch()
        app = create_app(settings, services=services)
        print(f"miniboxd {__version__} listening on {' and '.join(listeners.where)} "
              f"(data root {settings.data_root}, broker {settings.effective_broker_url()})",
              flush=True)
        _exit_on_signals()
        listen.serve(app, listeners)
    except SystemExit:
        pass
    finally:
        listeners.close()
        if services is not None:
            withdraw(services)
        sup.stop()


def announce(services) -> None:
    """Tell the farm where this daemon is (build workers check it at their start)."""
    from minibox.wire.keys import DAEMON_RECORD

    s = services.settings
    services.redis.hset(DAEMON_RECORD, mapping={"url": s.daemon_url(), "pid": os.getpid(),
                                             "data_root": str(s.data_root)})


def withdraw(services) -> None:
    from minibox.wire.keys import DAEMON_RECORD

    try:
        if services.redis.hget(DAEMON_RECORD, "pid") == str(os.getpid()).encode():
            services.redis.delete(DAEMON_RECORD)
    except Exception:        # the broker is gone already: nothing to withdraw from
        pass


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
