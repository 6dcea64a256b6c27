"""The runtime's messages (minibox.wire.runtime): the validated run request survives the
queue unchanged, the start result keeps its shape, and the start plan is one frozen value
that pickles (to the zygote) and encodes for the compiled start."""

from __future__ import annotations

import dataclasses
import json
import pickle

import pytest

from minibox.errors import UserError
from minibox.runtime.start import rootfs, spawn
from minibox.runtime.spec import from_request
from minibox.wire import ContainerSpec, ProtocolError, StartPlan, StartResult
from minibox.wire.runtime import ProcessSpec


def through_json(d: dict) -> dict:
    return json.loads(json.dumps(d))


def test_a_validated_request_crosses_the_queue_unchanged():
    spec = from_request({"image": "busybox", "command": ["sh", "-c", "true"], "memory": "64m",
                         "volumes": ["/tmp:/data:ro", "/anon"], "tmpfs": ["/run:size=1m"],
                         "health": {"cmd": "true", "interval": "2s"}, "restart": "on-failure:3",
                         "security_opt": ["seccomp=unconfined"], "log_opts": ["max-size=1m"]})
    assert spec.memory == 64 << 20 and not spec.seccomp and spec.log_max_size == 1 << 20
    assert spec.restart == {"name": "on-failure", "max_retries": 3}
    assert ContainerSpec.from_wire(through_json(spec.to_wire())) == spec


def test_the_spec_is_frozen_and_a_malformed_one_is_a_protocol_error():
    spec = from_request({"image": "busybox"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.image = "other"                          # type: ignore[misc]
    with pytest.raises(ProtocolError, match="container spec"):
        ContainerSpec.from_wire({"command": ["true"]})
    # a newer daemon's extra key is ignored, not an error
    assert ContainerSpec.from_wire({"image": "x", "future": 1}) == ContainerSpec(image="x")


def test_a_bad_request_is_refused_before_a_spec_exists():
    with pytest.raises(UserError, match="--restart and --rm"):
        from_request({"image": "busybox", "autoremove": True, "restart": "always"})
    with pytest.raises(UserError, match="working directory"):
        from_request({"image": "busybox", "workdir": "rel"})


def test_the_start_result_round_trips():
    st = StartResult.of_state({"id": "c" * 64, "name": "n", "status": "running", "run": 2,
                               "pid": 42, "warnings": ["w"]}, "/x/.attach/c")
    assert StartResult.from_wire(through_json(st.to_wire())) == st
    with pytest.raises(ProtocolError, match="start result: missing status"):
        StartResult.from_wire({"id": "c", "name": "n"})


def plan(**kw) -> StartPlan:
    base = dict(id="c" * 64, name="web", run=1, dir="/d/containers/c", data_root="/d",
                rootfs="/d/containers/.rootfs", upper="/d/containers/c/upper",
                work="/d/containers/c/work", lowers=["/d/layers/a"], mounts=[],
                etc_files={"hostname": "h\n", "hosts": "", "resolv.conf": ""}, hostname="h",
                network="none", shm_size=1 << 20, sysctls={},
                process=ProcessSpec(argv=["sh", "-c", "echo hi"], env=["PATH=/bin", "A=b"],
                                    cwd="/", uid=0, gid=0, groups=[10]),
                caps_mask=5, cgroup_dirs=["/sys/fs/cgroup/x"], cgroup_version=2,
                rlimits={"RLIMIT_NOFILE": (1024, 1024)}, seccomp=b"\x01\x02")
    base.update(kw)
    return StartPlan(**base)


def test_the_plan_is_frozen_and_pickles_for_the_zygote():
    p = plan()
    assert pickle.loads(pickle.dumps(p)) == p
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.run = 2                                     # type: ignore[misc]
    assert p.with_netns("/run/netns/x").netns == "/run/netns/x" and p.netns is None


def test_the_encoding_is_the_token_list_the_compiled_start_parses():
    p = plan()
    steps = rootfs.steps(p, "/usr/bin/tini-static")
    tokens = p.encode(rootfs.clone_flags(p), steps, rootfs.INIT_PATH).split(b"\0")
    assert tokens[-1] == b"" and tokens[-2] == b"END" and tokens[0] == b"MB1"
    text = [t.decode() for t in tokens[:-1]]
    assert text[1:5] == [p.dir, p.data_root, p.id, "web"]
    i = text.index(str(len(steps)), 15)
    assert text[i + 1:i + 1 + len(rootfs.OP_FIELDS)] == [
        v if isinstance(v, str) else str(v) for v in steps[0]]
    assert "sh" in text and "A=b" in text and "0102" in text


def test_a_nul_in_the_plan_is_the_users_clear_error():
    p = plan(process=ProcessSpec(argv=["sh", "a\0b"], env=[], cwd="/", uid=0, gid=0))
    with pytest.raises(UserError, match="NUL"):
        spawn._encode(p, "/usr/bin/tini-static")
