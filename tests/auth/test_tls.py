"""TLS through uvicorn: --tls-cert/--tls-key (the CLI trusts MINIBOX_TLS_CA), and with
--tls-client-ca a client certificate instead of the token.  The CA and certificates are
made by openssl for each test module; the daemon listens on loopback only."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.farmkit import Farm, free_port

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")


def _openssl(*args, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """ca.pem, server.pem/key (for 127.0.0.1), client.pem/key, and other-ca's client."""
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", f"/CN=minibox test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                 cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, ca, ext in (("server", "ca", "server.ext"), ("client", "ca", "client.ext"),
                          ("stranger", "other-ca", "client.ext")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
                 f"{ca}.key", "-CAcreateserial", "-days", "2", "-extfile", ext,
                 "-out", f"{name}.pem", cwd=d)
    return d


def _tls_farm(pki: Path, **extra) -> Farm:
    port = free_port()
    env = {"MINIBOX_HTTP_ADDR": f"127.0.0.1:{port}", "MINIBOX_API": f"https://127.0.0.1:{port}",
           "MINIBOX_TLS_CERT": str(pki / "server.pem"), "MINIBOX_TLS_KEY": str(pki / "server.key"),
           "MINIBOX_TLS_CA": str(pki / "ca.pem")}
    env.update(extra)
    return Farm(env)


@pytest.fixture(scope="module")
def https_farm(pki):
    farm = _tls_farm(pki)
    try:
        yield farm.start()
    finally:
        farm.destroy()


def test_the_cli_over_https_with_the_token(https_farm):
    farm = https_farm
    assert "listening on https://127.0.0.1:" in farm.log.read_text()
    r = farm.cli("images")
    assert r.returncode == 0, r.stderr
    # the fast client (logs, foreground run, stats) speaks TLS too
    r = farm.cli("stats", "--no-stream")
    assert r.returncode == 0, r.stderr
    r = farm.cli("logs", "no-such-container")
    assert r.returncode == 1 and "no-such-container" in r.stderr, r.stderr
    # still the token: TLS alone is not a credential
    with farm.http(token="") as c:
        assert c.get("/images").status_code == 401


def test_a_cli_that_does_not_trust_the_ca_is_refused_clearly(https_farm, pki):
    farm = https_farm
    for args in (("images",), ("stats", "--no-stream")):
        r = farm.cli(*args, env={"MINIBOX_TLS_CA": str(pki / "other-ca.pem")})
        assert r.returncode == 1
        assert "cannot reach miniboxd at https://127.0.0.1" in r.stderr
        assert "CERTIFICATE_VERIFY_FAILED" in r.stderr and "Traceback" not in r.stderr
    r = farm.cli("images", env={"MINIBOX_TLS_CA": str(pki / "missing.pem")})
    assert r.returncode == 2 and "cannot load the TLS files" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def mtls_farm(pki):
    farm = _tls_farm(pki, MINIBOX_TLS_CLIENT_CA=str(pki / "ca.pem"),
                     MINIBOX_TLS_CLIENT_CERT=str(pki / "client.pem"),
                     MINIBOX_TLS_CLIENT_KEY=str(pki / "client.key"))
    try:
        yield farm.start()
    finally:
        farm.destroy()


def test_client_certificates_replace_the_token(mtls_farm, pki):
    farm = mtls_farm
    assert "needs a client certificate signed by" in farm.log.read_text()
    # no token anywhere (another data root, nothing in the environment): the cert suffices
    elsewhere = {"MINIBOX_DATA_ROOT": "/nonexistent"}
    r = farm.cli("images", env=elsewhere)
    assert r.returncode == 0, r.stderr
    r = farm.cli("stats", "--no-stream", env=elsewhere)
    assert r.returncode == 0, r.stderr
    with farm.http(token="") as c:
        assert c.get("/images").status_code == 200


def test_without_a_trusted_client_certificate_the_handshake_fails(mtls_farm, pki):
    farm = mtls_farm
    for cert in (None, "stranger"):
        env = {"MINIBOX_TLS_CLIENT_CERT": str(pki / f"{cert}.pem") if cert else "",
               "MINIBOX_TLS_CLIENT_KEY": str(pki / f"{cert}.key") if cert else ""}
        r = farm.cli("images", env=env)
        assert r.returncode == 1, r.stdout
        assert "cannot reach miniboxd at https://" in r.stderr and "Traceback" not in r.stderr


def test_a_bad_certificate_is_a_clear_start_up_error(pki):
    farm = _tls_farm(pki, MINIBOX_TLS_KEY=str(pki / "client.key"))    # not server.pem's key
    try:
        r = subprocess.run([sys.executable, "-m", "minibox.daemon.main"], env=farm.env, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 1
        assert "cannot load the TLS certificate" in r.stderr and "Traceback" not in r.stderr
        assert not (farm.root / "run" / "redis.sock").exists()       # nothing was started
    finally:
        farm.destroy()
