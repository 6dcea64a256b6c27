"""The click-free parser of a foreground `minibox run` must read every command line it takes
exactly as the click command does, and leave the rest to click."""

from __future__ import annotations

import subprocess
import sys

import pytest

from minibox.cli import fastrun
from minibox.cli.containers import run as run_command
from minibox.cli.run_flags import request_from_options

TAKEN = [
    ["busybox"],
    ["busybox", "true"],
    ["--rm", "--network", "none", "busybox", "true"],
    ["--rm", "--network=host", "busybox", "sh", "-c", "echo $X"],
    ["-e", "A=1", "-eB=2", "--env", "C=3", "--env=D", "busybox", "env"],
    ["--name", "x", "-w", "/tmp", "-u", "1:1", "-m", "64m", "--cpus", "0.5", "busybox"],
    ["-c", "512", "--pids-limit", "-1", "--oom-score-adj=100", "busybox", "ls", "-l"],
    ["-v", "/tmp:/t:ro", "-v", "./rel:/r", "--tmpfs", "/x", "busybox"],
    ["--sysctl", "net.ipv4.ip_forward=1", "-l", "k=v", "--label=a=b", "busybox"],
    ["--entrypoint", "", "busybox", "--", "ls"],
    ["--entrypoint=/bin/sh", "busybox", "-c", "true"],
    ["--health-cmd", "true", "--health-interval", "1s", "--health-retries", "2", "busybox"],
    ["--privileged", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "busybox"],
    ["--security-opt", "seccomp=unconfined", "--no-healthcheck", "busybox"],
    ["-i", "--rm", "busybox", "cat"],
    ["--", "busybox", "echo", "--rm"],
    ["--log-opt", "max-size=1m", "--hostname", "h", "--shm-size", "1m", "busybox"],
    ["--rm", "busybox", "-d", "--name", "not-a-flag-of-run"],
]

LEFT_TO_CLICK = [
    [], ["--help"], ["-h"], ["--rm"], ["--bogus", "busybox"], ["-d", "busybox"],
    ["-it", "busybox"], ["-t", "busybox"], ["--rm=1", "busybox"], ["-c", "x", "busybox"],
    ["--env-file", "f", "busybox"], ["-ie", "A=1", "busybox"], ["--name"], ["-e"],
]


def _click_parse(args):
    ctx = run_command.make_context("run", list(args))
    p = dict(ctx.params)
    return p.pop("image"), list(p.pop("command")), p


@pytest.mark.parametrize("args", TAKEN, ids=" ".join)
def test_fast_parser_agrees_with_click(args):
    fast = fastrun.parse(args)
    assert fast is not None, args
    image, command, opts = _click_parse(args)
    assert fast[0] == image and fast[1] == command
    assert request_from_options(*fast) == request_from_options(image, command, opts)


@pytest.mark.parametrize("args", LEFT_TO_CLICK, ids=lambda a: " ".join(a) or "(none)")
def test_fast_parser_leaves_the_rest_to_click(args):
    assert fastrun.parse(args) is None


def test_fast_path_imports_no_click_nor_json():
    # json (re, enum) and threading cost ~15 ms of a ~35 ms command: see cli/fastjson.py
    code = ("import sys; from minibox.cli import fastrun; fastrun.parse(['--rm', 'busybox']);"
            "from minibox.cli import client, foreground, stats_view, streams, main;"
            "print(sorted(m for m in ('click', 'httpx', 'celery', 'rich', 'json', 're', 'enum',"
            " 'threading') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


STATS_TAKEN = [["--no-stream"], ["--no-stream", "abc"], ["abc", "--no-stream", "--json"],
               ["-a", "--no-stream"], ["--all", "--no-stream", "x", "y"], ["--no-stream", "--", "-x"]]
STATS_LEFT = [[], ["abc"], ["--json"], ["--no-stream", "--bogus"], ["--no-stream", "-aj"],
              ["--help", "--no-stream"]]


@pytest.mark.parametrize("args", STATS_TAKEN, ids=" ".join)
def test_fast_stats_parser_agrees_with_click(args):
    from minibox.cli import stats_view
    from minibox.cli.containers import stats as stats_command
    fast = stats_view.parse_fast(args)
    params = dict(stats_command.make_context("stats", list(args)).params)
    params["containers"] = list(params["containers"])
    assert fast == params


@pytest.mark.parametrize("args", STATS_LEFT, ids=lambda a: " ".join(a) or "(none)")
def test_fast_stats_parser_leaves_the_rest_to_click(args):
    from minibox.cli import stats_view
    assert stats_view.parse_fast(args) is None
