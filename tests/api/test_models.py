"""The request models are the contract the CLI's bodies are built to: every body `minibox
run` (all its flags), `db run`, `exec` and `volume create` can send validates unchanged."""

from __future__ import annotations

from minibox.cli.run_flags import FLAGS, defaults, request_from_options
from minibox.wire.api import ExecRequest, RunRequest, StopRequest, VolumeCreate

VALUES = {"flag": True, "int": 7, "str": "512m", "multi": ("A=1",), "path_multi": ()}


def every_flag() -> dict:
    opts = defaults()
    for f in FLAGS:
        opts[f.dest] = VALUES[f.kind]
    opts.update(entrypoint="/bin/sh", volumes=("/host:/ctr:ro", "named:/data", "/anon"),
                tmpfs=("/tmp:size=1m",), health_cmd="true", health_interval="5s",
                log_opts=("max-size=1m",), sysctls=("net.ipv4.ip_forward=1",),
                labels=("a=b",), security_opt=("seccomp=unconfined",), cap_add=("NET_ADMIN",))
    return opts


def test_a_run_with_every_flag_validates_and_round_trips():
    body = request_from_options("busybox:latest", ["sh", "-c", "echo hi"], every_flag())
    assert set(body) <= set(RunRequest.model_fields), set(body) - set(RunRequest.model_fields)
    wire = RunRequest.model_validate(body).to_wire()
    for key, value in body.items():
        expected = {k: v for k, v in value.items() if v is not None} \
            if isinstance(value, dict) and key == "health" else value
        assert wire[key] == expected, key


def test_a_plain_run_and_a_db_run_validate():
    RunRequest.model_validate(request_from_options("busybox", [], defaults()))
    RunRequest.model_validate({"image": "redis", "command": None, "name": "redis",
                               "env": [], "memory": "256m", "volumes": ["redis-data:/data"],
                               "tmpfs": ["/tmp:mode=1777"], "shm_size": "64m",
                               "oom_score_adj": -900, "io_weight": 800, "db_mode": True,
                               "network": "none", "tty": False, "interactive": False})


def test_the_other_cli_bodies_validate():
    ExecRequest.model_validate({"cmd": ["ls"], "env": ["A=1"], "workdir": None, "user": None,
                                "tty": False, "interactive": True})
    StopRequest.model_validate({"ids": ["web", "0123abcd"], "t": 10})
    VolumeCreate.model_validate({"name": "data", "labels": {"k": "v"}})
