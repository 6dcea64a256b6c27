"""No 5xx for bad input: every body, path and query parameter is checked at the API edge, and
a bad one is a 4xx that names the field (and never echoes the value)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

BIG = "9" * 400


def send(farm, method: str, path: str, **kw):
    with farm.http() as c:
        return c.request(method, path, **kw)


def field_error(r, status: int, *names: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert set(err) == {"kind", "message", "hint"} and err["kind"] == "user"
    for name in names:      # the field, or an item or key of it
        assert any(f"'{name}{end}" in err["message"] for end in "'.["), err["message"]
    return err["message"]


@pytest.mark.parametrize("body,names", [
    ({"image": 5}, ["image"]),
    ({"image": ""}, ["image"]),
    ({"image": "busybox", "memory": [1]}, ["memory"]),
    ({"image": "busybox", "bogus": 1}, ["bogus"]),
    ({"image": "busybox", "command": "echo hi"}, ["command"]),
    ({"image": "busybox", "command": ["a\x00b"]}, ["command[0]"]),
    ({"image": "busybox", "cpu_shares": -1}, ["cpu_shares"]),
    ({"image": "busybox", "oom_score_adj": 1001}, ["oom_score_adj"]),
    ({"image": "busybox", "env": ["A=1"] * 5000}, ["env"]),
    ({"image": "busybox", "volumes": ["/v"] * 300}, ["volumes"]),
    ({"image": "busybox", "health": {"cmd": "true", "retries": 0}}, ["health.retries"]),
    ({"image": "busybox", "labels": {"a": 1}}, ["labels"]),
    ({"image": "busybox", "tty": "maybe"}, ["tty"]),
    ({"image": "x" * 600}, ["image"]),
])
def test_run_body_fields(farm, body, names):
    field_error(send(farm, "POST", "/containers", json=body), 422, *names)


def test_a_400_digit_number(farm):
    raw = '{"image": "busybox", "cpu_shares": %s}' % BIG
    r = send(farm, "POST", "/containers", content=raw,
             headers={"content-type": "application/json"})
    msg = field_error(r, 422, "cpu_shares")
    assert BIG not in msg


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", "null", '{"image": "a"'])
def test_a_body_that_is_not_an_object(farm, raw):
    r = send(farm, "POST", "/containers", content=raw,
             headers={"content-type": "application/json"})
    assert r.status_code == 422 and "error" in r.json()


def test_bad_run_values_are_refused_before_anything_is_queued(farm):
    """The runtime worker is stopped: only the API edge can answer."""
    pids = farm.worker_pids("runtime")
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        for body, needle in [({"image": "busybox", "memory": "lots"}, "memory"),
                             # (whether a network NAME exists is the runtime worker's to
                             # say: user networks are its state)
                             ({"image": "busybox", "network": "no such net!"}, "network"),
                             ({"image": "busybox", "volumes": ["rel:/x:zz"]}, "volume"),
                             ({"image": "busybox", "cap_add": ["NOT_A_CAP"]}, "NOT_A_CAP"),
                             ({"image": "busybox", "sysctls": {"kernel.hostname": "x"}},
                              "sysctl")]:
            r = send(farm, "POST", "/containers", json=body)
            assert r.status_code == 400, (body, r.text)
            assert needle in r.json()["error"]["message"]
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    with farm.http() as c:
        assert c.get("/containers", params={"all": "true"}).json() == []


@pytest.mark.parametrize("path,names", [
    ("/containers/a%00b", ["ref"]),
    ("/containers/" + "a" * 300, ["ref"]),
    ("/containers/a%0Ab/logs", ["ref"]),
    ("/volumes/" + "v" * 100, ["name"]),
    ("/volumes/a%00", ["name"]),
    ("/builds/job%00", ["job_id"]),
    ("/images/%00bad/json", ["name"]),
    ("/blobs/sha256:xyz", ["digest"]),
    ("/containers/exec/%00/output", ["eid"]),
])
def test_path_parameters(farm, path, names):
    msg = field_error(send(farm, "GET", path), 422, *names)
    assert "\x00" not in msg


@pytest.mark.parametrize("method,path,params,names", [
    ("GET", "/builds", {"limit": "-1"}, ["limit"]),
    ("GET", "/builds", {"limit": "0"}, ["limit"]),
    ("GET", "/builds", {"limit": BIG}, ["limit"]),
    ("GET", "/builds", {"limit": "ten"}, ["limit"]),
    ("GET", "/builds/abc/events", {"since": "garbage"}, ["since"]),
    ("GET", "/containers/abc/logs", {"tail": "x"}, ["tail"]),
    ("GET", "/containers/abc/logs", {"since": "-5"}, ["since"]),
    ("POST", "/containers/abc/wait", {"timeout": "1e400"}, ["timeout"]),
    ("POST", "/containers/abc/stop", {"t": "nan"}, ["t"]),
    ("POST", "/containers/abc/resize", {"h": "70000", "w": "80"}, ["h"]),
    ("POST", "/containers/exec/abc/resize", {"h": "24", "w": "-1"}, ["w"]),
    ("POST", "/containers/abc/kill", {"signal": "S" * 100}, ["signal"]),
])
def test_query_parameters(farm, method, path, params, names):
    msg = field_error(send(farm, method, path, params=params), 422, *names)
    assert BIG not in msg


@pytest.mark.parametrize("method,path,body,names", [
    ("POST", "/containers/stop", {"ids": "abc"}, ["ids"]),
    ("POST", "/containers/stop", {"ids": []}, ["ids"]),
    ("POST", "/containers/stop", {"ids": ["a"], "t": -1}, ["t"]),
    ("POST", "/containers/abc/exec", {"cmd": []}, ["cmd"]),
    ("POST", "/containers/abc/exec", {"cmd": ["sh"], "tty": "x"}, ["tty"]),
    ("POST", "/volumes", {"name": "a/b"}, ["name"]),
    ("POST", "/volumes", {"name": "ok", "labels": {"k": 1}}, ["labels"]),
    ("POST", "/volumes", {}, ["name"]),
    ("POST", "/builds/path", {"tag": "x"}, ["context"]),
    ("POST", "/builds/path", {"tag": "x", "context": "/tmp/\x00"}, ["context"]),
])
def test_other_bodies(farm, method, path, body, names):
    field_error(send(farm, method, path, json=body), 422, *names)


def test_build_form_fields(farm):
    with farm.http() as c:
        r = c.post("/builds", data={"tag": "x"})
        field_error(r, 422, "context")
        r = c.post("/builds", files={"context": ("c.tar", b"not a tar at all")},
                   data={"tag": "x"})
        assert r.status_code == 400 and "not a valid tar" in r.json()["error"]["message"]
        r = c.post("/builds", files={"context": ("c.tar", b"")}, data={"tag": "a\x01b"})
        field_error(r, 422, "tag")
    assert not os.listdir(farm.root / "contexts")


def test_a_wrong_blob_body_is_refused_and_not_stored(farm):
    digest = "sha256:" + "0" * 64
    with farm.http() as c:
        r = c.put(f"/blobs/{digest}", content=b"these bytes do not hash to that")
        assert 400 <= r.status_code < 500, r.text
        assert c.head(f"/blobs/{digest}").status_code == 404
        r = c.put("/blobs/md5:abc", content=b"x")
        field_error(r, 422, "digest")


def test_unknown_routes_and_methods_answer_in_our_error_shape(farm):
    r = send(farm, "GET", "/no/such/route")
    assert r.status_code == 404 and r.json()["error"]["kind"] == "not_found"
    r = send(farm, "PATCH", "/containers")
    assert r.status_code == 405 and "error" in r.json()


def test_the_cli_reports_a_field_error_without_a_traceback(farm):
    r = farm.cli("run", "--cpu-shares", "99999999", "busybox", "true")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "cpu_shares" in r.stderr and "Traceback" not in r.stderr


def test_openapi_shows_the_request_models(farm):
    with farm.http() as c:
        spec = c.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("RunRequest", "ExecRequest", "StopRequest", "VolumeCreate", "PathBuild"):
        assert name in schemas, name
    run = spec["paths"]["/containers"]["post"]["requestBody"]["content"]["application/json"]
    assert run["schema"]["$ref"].endswith("/RunRequest")
    assert schemas["RunRequest"]["additionalProperties"] is False
    limit = next(p for p in spec["paths"]["/builds"]["get"]["parameters"]
                 if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 1000 and limit["schema"]["minimum"] == 1


def test_nothing_was_created(farm):
    """(last) None of the refused requests left a container, volume or build behind."""
    time.sleep(0.2)
    with farm.http() as c:
        assert c.get("/containers", params={"all": "true"}).json() == []
        assert c.get("/volumes").json() == []
    assert json.dumps(os.listdir(farm.root / "contexts")) == "[]"
