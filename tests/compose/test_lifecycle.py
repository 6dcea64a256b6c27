"""`minibox compose` against a real farm: up in dependency order (started, healthy,
completed), idempotent up, recreation of only what changed, logs, ps, exec, stop/start,
named volumes across down/up, down -v leaving nothing behind; and the failures: an
unhealthy dependency, a failed dependency, a failed build."""

from __future__ import annotations

import json
import os
from pathlib import Path

PROJECT = """\
services:
  db:
    image: busybox
    command: ["sh", "-c", "echo db up; [ -e /data/seed ] || date > /data/seed; sleep 2; touch /tmp/ready; exec sleep 600"]
    db_mode: true
    data: /data
    healthcheck:
      test: ["CMD-SHELL", "test -e /tmp/ready"]
      interval: 0.2s
      retries: 30
  migrate:
    image: busybox
    command: sh -c "echo migrated"
    depends_on:
      db: {condition: service_healthy}
  web:
    image: busybox
    command: ["sh", "-c", "echo web $$GREETING; exec sleep 600"]
    environment:
      GREETING: hello
    volumes:
      - cache:/cache
    depends_on:
      migrate: {condition: service_completed_successfully}
      db: {condition: service_healthy}
  tool:
    image: busybox
    command: ["sleep", "600"]
volumes:
  cache:
"""


def _started(c: dict) -> float:
    return c["state"]["started_at"]


def test_up_order_idempotence_and_down(project):
    p = project.write(PROJECT.replace("$$GREETING", "$GREETING"))
    out = p.run("up", "-d")
    assert out.returncode == 0, out.stderr
    cs = p.containers()
    name = p.name
    assert set(cs) == {f"{name}-{s}-1" for s in ("db", "migrate", "web", "tool")}
    db, mig, web = cs[f"{name}-db-1"], cs[f"{name}-migrate-1"], cs[f"{name}-web-1"]
    # start order: migrate after db was healthy (it cannot be before its 2 s sleep ended),
    # web after migrate had exited 0
    assert db["state"]["health"]["status"] == "healthy"
    assert _started(mig) >= _started(db) + 2
    assert mig["state"]["status"] == "exited" and mig["state"]["exit_code"] == 0
    assert _started(web) >= mig["state"]["finished_at"]
    assert web["state"]["status"] == "running"
    ids = {n: c["id"] for n, c in cs.items()}

    # idempotent: nothing new, nothing restarted
    again = p.run("up", "-d")
    assert again.returncode == 0, again.stderr
    assert "Running" in again.stderr
    cs2 = p.containers()
    assert {n: c["id"] for n, c in cs2.items()} == ids
    assert cs2[f"{name}-web-1"]["state"]["run"] == 1

    # change one service: only it is recreated
    p.write(PROJECT.replace("GREETING: hello", "GREETING: bye").replace("$$GREETING", "$GREETING"))
    r = p.run("up", "-d")
    assert r.returncode == 0, r.stderr
    cs3 = p.containers()
    assert cs3[f"{name}-web-1"]["id"] != ids[f"{name}-web-1"]
    for s in ("db", "tool"):
        assert cs3[f"{name}-{s}-1"]["id"] == ids[f"{name}-{s}-1"]

    # logs: every service's lines, prefixed; ps; exec
    logs = p.ok("logs")
    assert f"{name}-web-1" in logs and "| web bye" in logs
    assert "| db up" in logs and "| migrated" in logs
    assert "web hello" not in logs                   # the old container is gone
    only = p.ok("logs", "migrate")
    assert only.strip().endswith("| migrated") and "db up" not in only
    ps = p.ok("ps")
    assert f"{name}-db-1" in ps and "(healthy)" in ps and f"{name}-migrate-1" not in ps
    assert f"{name}-migrate-1" in p.ok("ps", "-a")
    assert p.ok("exec", "-T", "web", "sh", "-c", "echo $GREETING").strip() == "bye"
    r = p.run("exec", "-T", "web", "sh", "-c", "exit 7")
    assert r.returncode == 7

    # stop / start keep the containers
    p.ok("stop", "-t", "1")
    assert all(c["state"]["status"] == "exited" for c in p.containers().values())
    p.ok("start")
    cs4 = p.containers()
    assert cs4[f"{name}-web-1"]["state"]["status"] == "running"
    assert cs4[f"{name}-web-1"]["id"] == cs3[f"{name}-web-1"]["id"]

    # named volumes survive down + up; down -v removes them, and nothing is left
    seed = p.ok("exec", "-T", "db", "cat", "/data/seed")
    p.ok("down", "-t", "1")
    assert p.containers() == {}
    vols = {v["name"] for v in json.loads(p.farm.cli("volume", "ls", "--json", check=True).stdout)}
    assert {f"{name}_cache", f"{name}_db-data"} <= vols
    p.ok("up", "-d")
    assert p.ok("exec", "-T", "db", "cat", "/data/seed") == seed
    cgroups = [c["state"] for c in p.containers().values()]
    p.ok("down", "-v", "-t", "1")
    assert p.containers() == {}
    vols = {v["name"] for v in json.loads(p.farm.cli("volume", "ls", "--json", check=True).stdout)}
    assert not {v for v in vols if v.startswith(name)}, vols
    _assert_nothing_left(p, cgroups)


def _assert_nothing_left(p, states) -> None:
    root = str(p.farm.root)
    mounts = [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines()
              if root in ln and "/containers/" in ln]
    assert not mounts, mounts
    assert not [d for d in os.listdir(p.farm.root / "containers") if len(d) == 64
                and (p.farm.root / "containers" / d / "state.json").exists()
                and json.loads((p.farm.root / "containers" / d / "state.json").read_text())
                .get("name", "").startswith(p.name + "-")]
    parent = p.farm.env["MINIBOX_CGROUP_PARENT"]
    left = [str(d) for d in Path("/sys/fs/cgroup").glob(f"*/{parent}/*") if d.is_dir()
            and any(s.get("id", "") and s["id"] in d.name for s in states)]
    assert not left, left


def test_unhealthy_dependency_stops_up_and_leaves_nothing_running(project):
    p = project.write("""\
services:
  db:
    image: busybox
    command: ["sleep", "600"]
    healthcheck:
      test: ["CMD-SHELL", "echo not ready yet; exit 1"]
      interval: 0.2s
      retries: 2
  web:
    image: busybox
    command: ["sleep", "600"]
    depends_on:
      db:
        condition: service_healthy
  other:
    image: busybox
    command: ["sleep", "600"]
""")
    r = p.run("up", "-d")
    assert r.returncode != 0
    assert "service 'web' was not started" in r.stderr, r.stderr
    assert "minibox-compose.yaml:13" in r.stderr          # its depends_on entry
    assert "'db' is unhealthy" in r.stderr and "not ready yet" in r.stderr
    assert "Traceback" not in r.stderr
    assert p.containers() == {}                           # nothing half-started is left


def test_failed_completion_and_missing_image(project):
    p = project.write("""\
services:
  init:
    image: busybox
    command: ["sh", "-c", "exit 3"]
  app:
    image: busybox
    depends_on:
      init: {condition: service_completed_successfully}
""")
    r = p.run("up", "-d")
    assert r.returncode != 0
    assert "'init' did not complete successfully (exit 3)" in r.stderr, r.stderr
    assert p.containers() == {}
    p.write("""\
services:
  app:
    image: no-such-image
""")
    r = p.run("up", "-d")
    assert r.returncode != 0 and "no image 'no-such-image'" in r.stderr, r.stderr
    assert "minibox-compose.yaml:3" in r.stderr and p.containers() == {}


def test_build_in_parallel_then_up_and_rebuild_only_on_request(project):
    p = project.write("""\
services:
  a:
    build: ./a
    command: ["cat", "/msg"]
  b:
    build:
      context: ./b
      minibox_file: Other.minibox
    command: ["cat", "/msg"]
""", a__MiniBox="BASE busybox\nBLOCK x\n    RUN echo from-a > /msg\n",
        **{"b__Other.minibox": "BASE busybox\nBLOCK x\n    RUN echo from-b > /msg\n"})
    r = p.run("up", "-d")
    assert r.returncode == 0, r.stderr
    assert "Building" in r.stderr
    logs = p.ok("logs")
    assert "| from-a" in logs and "| from-b" in logs
    r = p.run("up", "-d")
    assert "Building" not in r.stderr                     # images exist: no build
    p.write(p.dir.joinpath("minibox-compose.yaml").read_text(),
            a__MiniBox="BASE busybox\nBLOCK x\n    RUN echo from-a2 > /msg\n")
    r = p.run("up", "-d", "--build")
    assert r.returncode == 0, r.stderr
    cs = p.containers()
    # a's image changed: recreated; b's did not: kept
    assert cs[f"{p.name}-a-1"]["state"]["run"] == 1
    assert "| from-a2" in p.ok("logs", "a")
    bad = p.write(p.dir.joinpath("minibox-compose.yaml").read_text(),
                  a__MiniBox="BASE busybox\nBLOCK x\n    RUN exit 9\n")
    r = bad.run("build")
    assert r.returncode != 0 and "service 'a': the build of" in r.stderr, r.stderr


def test_logs_follow_until_exit_and_colours_on_a_terminal(project):
    import pty
    import subprocess
    import sys
    p = project.write("""\
services:
  one:
    image: busybox
    command: ["sh", "-c", "sleep 1; echo one-late"]
  two:
    image: busybox
    command: ["sh", "-c", "echo two-early; sleep 2; echo two-late; echo err >&2"]
""")
    p.ok("up", "-d")
    out = p.ok("logs", "-f", timeout=120)        # returns once both have exited
    assert f"{p.name}-one-1 | one-late" in out
    assert out.index("two-early") < out.index("two-late")
    main, sub = pty.openpty()
    env = dict(p.farm.env)
    env.pop("NO_COLOR")
    r = subprocess.run([sys.executable, "-m", "minibox.cli.main", "compose", "logs"],
                       cwd=p.dir, env=env, stdout=sub, stderr=subprocess.PIPE, timeout=120)
    os.close(sub)
    data = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    os.close(main)
    assert r.returncode == 0, r.stderr
    assert b"\x1b[36m" + f"{p.name}-one-1 | ".encode() + b"\x1b[0mone-late" in data, data
    assert b"\x1b[33m" in data                    # the second container's colour
    assert b"err" in r.stderr                     # stderr lines stay on stderr
