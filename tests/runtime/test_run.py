"""run: output, exit codes, image config and overrides, detached runs."""

from __future__ import annotations

import time

from tests.runtime.conftest import run_ok


def test_foreground_streams_and_exit_code(farm):
    r = farm.cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == b"out\n" and r.stderr == b"err\n"


def test_exit_codes(farm):
    assert farm.cli("run", "--rm", "busybox", "true").returncode == 0
    assert farm.cli("run", "--rm", "busybox", "false").returncode == 1
    assert farm.cli("run", "--rm", "busybox", "sh", "-c", "kill -9 $$").returncode == 137
    r = farm.cli("run", "--rm", "busybox", "no-such-command")
    assert r.returncode == 127 and b"not found" in r.stderr


def test_stop_gives_143(farm):
    cid = run_ok(farm, "run", "-d", "busybox", "sleep", "60").strip()
    assert len(cid) == 64
    t = time.monotonic()
    run_ok(farm, "stop", cid[:12])
    assert time.monotonic() - t < 5
    info = farm.cli("inspect", cid).stdout.decode()
    assert '"exit_code": 143' in info
    run_ok(farm, "rm", cid)


def test_image_config_and_overrides(farm):
    out = run_ok(farm, "run", "--rm", "bb-app", "sh", "-c", "id -u; pwd; echo $GREETING $HOME")
    assert out.split("\n")[:3] == ["1000", "/home/app", "hello /home/app"]
    out = run_ok(farm, "run", "--rm", "-u", "0", "-w", "/tmp", "-e", "GREETING=hi",
                 "bb-app", "sh", "-c", "id -u; pwd; echo $GREETING")
    assert out.split("\n")[:3] == ["0", "/tmp", "hi"]


def test_env_file_and_hostname(farm, tmp_path):
    envf = tmp_path / "env"
    envf.write_text("# comment\nA=1\nB=two words\n")
    out = run_ok(farm, "run", "--rm", "--env-file", str(envf), "--hostname", "box1",
                 "busybox", "sh", "-c", "echo $A-$B; hostname; cat /etc/hostname")
    assert out == "1-two words\nbox1\nbox1\n"


def test_detached_prints_only_the_id_and_logs_are_kept(farm):
    cid = run_ok(farm, "run", "-d", "busybox", "sh", "-c", "echo one; echo two >&2").strip()
    assert len(cid) == 64 and all(c in "0123456789abcdef" for c in cid)
    run_ok(farm, "inspect", cid)
    time.sleep(0.5)
    r = farm.cli("logs", cid)
    assert r.stdout == b"one\n" and r.stderr == b"two\n"
    run_ok(farm, "rm", cid)
