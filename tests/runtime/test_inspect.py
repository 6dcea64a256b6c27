"""inspect: containers first, then images; --type; errors for unknown names."""

from __future__ import annotations

import json

from tests.runtime.conftest import run_ok


def test_inspect_image(farm):
    img = json.loads(run_ok(farm, "inspect", "busybox"))
    assert len(img) == 1
    img = img[0]
    assert img["repo_tags"] == ["busybox:latest"]
    assert img["id"].startswith("sha256:") and img["digest"].startswith("sha256:")
    assert img["config"]["config"]["Cmd"] == ["/bin/sh"] and img["os"] == "linux"
    assert len(img["layers"]) == len(img["rootfs"]["diff_ids"]) == 1
    assert img["size"] > 0 and img["created"]
    by_id = json.loads(run_ok(farm, "inspect", "--type", "image", img["id"][7:19]))[0]
    assert by_id["digest"] == img["digest"]
    by_digest = json.loads(run_ok(farm, "inspect", f"busybox@{img['digest']}"))[0]
    assert by_digest["id"] == img["id"]


def test_inspect_container_first_and_type(farm):
    cid = run_ok(farm, "run", "-d", "--name", "bb-app", "busybox", "sleep", "30").strip()
    try:
        both = json.loads(run_ok(farm, "inspect", "bb-app", "busybox"))
        assert both[0]["id"] == cid and both[0]["state"]["status"] == "running"
        assert both[1]["repo_tags"] == ["busybox:latest"]
        img = json.loads(run_ok(farm, "inspect", "--type", "image", "bb-app"))[0]
        assert img["repo_tags"] == ["bb-app:latest"]
        ctr = json.loads(run_ok(farm, "inspect", "--type", "container", "bb-app"))[0]
        assert ctr["id"] == cid
    finally:
        run_ok(farm, "rm", "-f", cid)


def test_inspect_unknown(farm):
    for args, msg in ((["nosuch"], b"no such container or image: nosuch"),
                      (["--type", "image", "nosuch"], b"no such image: nosuch"),
                      (["--type", "container", "busybox"], b"no such container: busybox"),
                      (["Bad:Name!"], b"no such container or image: Bad:Name!")):
        r = farm.cli("inspect", *args)
        assert r.returncode == 1 and msg in r.stderr and b"Traceback" not in r.stderr, r.stderr
        assert json.loads(r.stdout) == []
    r = farm.cli("inspect", "busybox", "nosuch")       # the found ones still print
    assert r.returncode == 1 and len(json.loads(r.stdout)) == 1
    r = farm.cli("inspect", "--type", "volume", "busybox")
    assert r.returncode == 2 and b"Traceback" not in r.stderr
