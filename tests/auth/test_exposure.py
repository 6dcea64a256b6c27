"""Remote submission that is safe to expose: a listener that is not loopback only starts when
every request there must carry a credential.  The refused start runs in a network namespace
of its own (only a down loopback), so even a broken check could expose nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from minibox.config import Settings
from minibox.daemon.credentials import check_exposure, is_loopback
from minibox.errors import MiniBoxError
from tests.farmkit import Farm, free_port


def _daemon_in_own_netns(farm: Farm, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(["unshare", "--net", sys.executable, "-m", "minibox.daemon.main"],
                            env=farm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("addr", ["0.0.0.0", "[::]"])
def test_no_credential_on_a_non_loopback_address_refuses_to_start(addr):
    farm = Farm({"MINIBOX_HTTP_ADDR": f"{addr}:{free_port()}", "MINIBOX_API_AUTH": "none"})
    try:
        r = _daemon_in_own_netns(farm)
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "refusing to listen on" in r.stderr and "not a loopback address" in r.stderr
        assert "MINIBOX_API_AUTH=none" in r.stderr and "--tls-client-ca" in r.stderr
        assert "Traceback" not in r.stderr and "listening" not in r.stdout
        assert not (farm.root / "run" / "redis.sock").exists()     # nothing was started
    finally:
        farm.destroy()


def test_an_unknown_auth_mode_is_refused():
    farm = Farm({"MINIBOX_API_AUTH": "open"})
    try:
        r = _daemon_in_own_netns(farm)
        assert r.returncode == 1
        assert "invalid MINIBOX_API_AUTH 'open'" in r.stderr and "Traceback" not in r.stderr
    finally:
        farm.destroy()


def test_which_listeners_need_what():
    s = Settings(http_addr="0.0.0.0:8080")
    check_exposure(s, "0.0.0.0")                  # the token (the default): allowed
    s.api_auth = "none"
    with pytest.raises(MiniBoxError, match="refusing to listen on 0.0.0.0:8080"):
        check_exposure(s, "0.0.0.0")
    s.tls_client_ca = "/etc/minibox/clients-ca.pem"
    check_exposure(s, "0.0.0.0")                  # client certificates: allowed
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::")
    assert not is_loopback("192.0.2.7")


def test_no_token_on_loopback_starts_with_a_warning():
    """MINIBOX_API_AUTH=none (the reference engine's default) is allowed on loopback only,
    and says what it means."""
    farm = Farm({"MINIBOX_API_AUTH": "none"})
    try:
        farm.start()
        assert "every local process" in farm.log.read_text()
        assert "needs no credential (MINIBOX_API_AUTH=none)" in farm.log.read_text()
        with farm.http(token="") as c:
            assert c.get("/images").status_code == 200
    finally:
        farm.destroy()
