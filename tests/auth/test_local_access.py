"""The local API is not an open root shell: every route but /ping needs the daemon's token
(or the unix socket, whose file mode says who may connect); root's CLI and the members of
the group ``minibox`` find the token themselves, anyone else is told how to get access."""

from __future__ import annotations

import grp
import os
import re
import stat
import subprocess
import sys

import pytest

from tests.farmkit import Farm, REPO

NOBODY = 65534


@pytest.fixture(scope="module")
def farm():
    f = Farm()
    try:
        yield f.start()
    finally:
        f.destroy()


def _routes(farm) -> list[tuple[str, str]]:
    with farm.http() as c:
        spec = c.get("/openapi.json").json()
    return [(m.upper(), re.sub(r"\{[^}]+\}", "x", p))
            for p, ops in spec["paths"].items() for m in ops]


def test_every_route_but_ping_needs_the_token(farm):
    routes = _routes(farm)
    assert len(routes) > 20
    with farm.http(token="") as anon, farm.http(token="not-the-token") as wrong:
        for method, path in routes:
            for client in (anon, wrong):
                r = client.request(method, path)
                if path == "/ping":
                    assert r.status_code == 200 and r.text == "Daemon is running"
                    continue
                assert r.status_code == 401, (method, path, r.status_code, r.text)
                if method != "HEAD":
                    assert r.json()["error"]["kind"] == "unauthorized"
        # the documentation stays open
        assert anon.get("/openapi.json").status_code == 200
        assert anon.get("/docs").status_code == 200
        # and the token opens the rest
    with farm.http() as c:
        assert c.get("/images").status_code == 200


def test_failed_attempts_are_logged_without_the_token(farm):
    guess = "guessed-" + os.urandom(8).hex()
    with farm.http(token=guess) as c:
        assert c.get("/containers").status_code == 401
    with farm.http(token="") as c:
        assert c.get("/volumes").status_code == 401
    log = farm.log.read_text()
    assert re.search(r"refused GET /containers from 127\.0\.0\.1:\d+: a wrong API token", log)
    assert re.search(r"refused GET /volumes from 127\.0\.0\.1:\d+: no API token", log)
    assert guess not in log and farm.token() not in log


def test_token_file_is_root_and_group_only_and_kept_across_restarts(farm):
    st = farm.token_file.stat()
    gid = grp.getgrnam("minibox").gr_gid
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, gid, 0o640)
    sock = farm.root / "run" / "miniboxd.sock"
    st = sock.stat()
    assert stat.S_ISSOCK(st.st_mode)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, gid, 0o660)
    token = farm.token()
    assert len(token) >= 32
    farm.stop()
    assert not sock.exists()          # removed at shutdown
    farm.start()
    assert farm.token() == token
    assert farm.cli("images").returncode == 0


def test_root_cli_needs_no_setting(farm):
    assert "MINIBOX_API_TOKEN" not in farm.env
    r = farm.cli("images", "-q")
    assert r.returncode == 0, r.stderr
    r = farm.cli("volume", "ls")
    assert r.returncode == 0, r.stderr


def test_the_cli_over_the_unix_socket(farm):
    sock = farm.root / "run" / "miniboxd.sock"
    r = farm.cli("volume", "create", "over-socket",
                 env={"MINIBOX_API": f"unix://{sock}", "MINIBOX_DATA_ROOT": "/nonexistent"})
    assert r.returncode == 0, r.stderr
    r = farm.cli("--host", f"unix://{sock}", "volume", "ls")
    assert "over-socket" in r.stdout
    # --host reaches the fast path too (stats: no click), with no token to find
    r = farm.cli("--host", f"unix://{sock}", "stats", "--no-stream",
                 env={"MINIBOX_DATA_ROOT": "/nonexistent", "MINIBOX_API": farm.api + "0"})
    assert r.returncode == 0, r.stderr
    farm.cli("volume", "rm", "over-socket")


def _as_nobody(farm, groups: list[int], *args, env: dict | None = None):
    """The CLI as an unprivileged user (uid/gid 65534), with these supplementary groups."""
    opt = ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    e = dict(farm.env, PYTHONPATH=str(REPO), HOME="/nonexistent")
    e.update(env or {})
    return subprocess.run(["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), *opt,
                           "--inh-caps=-all", sys.executable, "-m", "minibox.cli.main", *args],
                          env=e, capture_output=True, text=True, timeout=120)


@pytest.fixture
def reachable_root(farm):
    """The farm's data root is mkdtemp's 0700; a group member needs to traverse it, as
    /var/lib/minibox (0755) allows."""
    mode = stat.S_IMODE(farm.root.stat().st_mode)
    farm.root.chmod(0o711)
    try:
        yield farm
    finally:
        farm.root.chmod(mode)


def test_a_member_of_the_group_uses_the_cli(reachable_root):
    farm = reachable_root
    gid = grp.getgrnam("minibox").gr_gid
    r = _as_nobody(farm, [gid], "images")
    assert r.returncode == 0, r.stderr
    assert "REPOSITORY" in r.stdout
    # the fast path (`stats --no-stream`, no click, no httpx) finds the token too
    r = _as_nobody(farm, [gid], "stats", "--no-stream")
    assert r.returncode == 0, r.stderr
    # and the unix socket lets a member in with no token at all
    r = _as_nobody(farm, [gid], "images",
                   env={"MINIBOX_API": f"unix://{farm.root}/run/miniboxd.sock",
                        "MINIBOX_DATA_ROOT": "/nonexistent"})
    assert r.returncode == 0, r.stderr


def test_a_user_outside_the_group_is_told_how_to_get_access(reachable_root):
    farm = reachable_root
    for args in (("images",), ("stats", "--no-stream")):
        r = _as_nobody(farm, [], *args)
        assert r.returncode == 1, r
        assert "needs its API token" in r.stderr and "permission denied" in r.stderr
        assert "usermod -aG minibox" in r.stderr and "Traceback" not in r.stderr
    r = _as_nobody(farm, [], "images",
                   env={"MINIBOX_API": f"unix://{farm.root}/run/miniboxd.sock"})
    assert r.returncode == 1 and "Permission denied" in r.stderr, r.stderr


def test_a_wrong_token_in_the_environment_is_named(farm):
    r = farm.cli("images", env={"MINIBOX_API_TOKEN": "wrong-Zq7"})
    assert r.returncode == 1
    assert "refused the API token from MINIBOX_API_TOKEN" in r.stderr
    assert "wrong-Zq7" not in r.stderr


def test_the_token_file_of_another_data_root_is_found(farm, tmp_path):
    """MINIBOX_DATA_ROOT says which daemon's token file to read."""
    r = farm.cli("images", env={"MINIBOX_DATA_ROOT": str(tmp_path)})
    assert r.returncode == 1
    assert f"there is no {tmp_path}/run/api-token" in r.stderr


def test_the_token_file_is_not_sent_to_another_machine(farm, tmp_path):
    """Only MINIBOX_API_TOKEN goes to a daemon that is not on loopback."""
    from minibox.cli.endpoint import Endpoint
    env = {"MINIBOX_DATA_ROOT": str(farm.root), "MINIBOX_API": "http://192.0.2.1:8080"}
    assert Endpoint(env).token is None
    assert Endpoint(dict(env, MINIBOX_API=farm.api)).token == farm.token()
    assert Endpoint(dict(env, MINIBOX_API_TOKEN="t")).token == "t"


def test_finding_the_token_keeps_the_fast_path_light(farm):
    """`run` and `stats` read the token file with os alone: no ssl, socket.py or httpx."""
    code = ("import sys\nfrom minibox.cli import client, endpoint\n"
            "ep = endpoint.current()\nassert ep.token, ep.token_problem\n"
            "print(sorted(m for m in ('ssl', 'socket', 'httpx', 'click', 'json')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env=farm.env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
