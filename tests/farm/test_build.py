"""End-to-end builds through the real CLI, daemon, Redis and Celery build workers."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.farmkit import REPO, write_ctx


def block_events(farm, job_id: str, kind: str) -> list[str]:
    return [e["block"] for e in farm.events(job_id) if e["type"] == kind]


def config_of(farm, name: str) -> dict:
    return farm.image(name)["config"]["config"]


def test_example_webapp_builds_in_waves_and_records_the_config(farm):
    r = farm.build(REPO / "docker-free-dev/examples/webapp", "webapp")
    job = farm.last_job()
    assert job["status"] == "done"
    waves = [e["blocks"] for e in farm.events(job["id"]) if e["type"] == "wave_start"]
    assert waves == [["tools", "site"], ["app"], ["config"]]
    cfg = config_of(farm, "webapp")
    assert "PORT=8080" in cfg["Env"] and "GREETING=hello from minibox" in cfg["Env"]
    assert cfg["Cmd"] == ["httpd", "-f", "-p", "8080", "-h", "/www"]
    assert cfg["User"] == "app" and cfg["WorkingDir"] == "/www"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}}
    assert json.loads(cfg["Labels"]["mini.healthcheck.cmd"])[-1].startswith("wget")
    assert cfg["Labels"]["mini.healthcheck.interval"] == "10"
    assert "Successfully built webapp:latest" in r.stderr


def test_unchanged_rebuild_executes_nothing(farm, ctx):
    write_ctx(ctx, {"MiniBox": "BASE busybox\nBLOCK a\n    COPY f /f\n    RUN cat /f > /g\n"
                               "BLOCK b\n    NEED a\n    RUN cp /g /h\n", "f": "one\n"})
    farm.build(ctx, "rebuild")
    first = farm.image("rebuild")["digest"]
    farm.build(ctx, "rebuild")
    job = farm.last_job()
    assert block_events(farm, job["id"], "block_start") == []
    assert sorted(block_events(farm, job["id"], "block_cached")) == ["a", "b"]
    assert farm.image("rebuild")["digest"] == first, "an unchanged rebuild made a new image"


def test_a_changed_copy_source_rebuilds_that_block_and_its_dependents_only(farm, ctx):
    mb = ("BASE busybox\nBLOCK stable\n    RUN echo s > /s\nBLOCK src\n    COPY app.txt /app/\n"
          "BLOCK final\n    NEED stable\n    NEED src\n    RUN cat /app/app.txt /s > /out\n")
    write_ctx(ctx, {"MiniBox": mb, "app.txt": "v1\n"})
    farm.build(ctx, "partial")
    (ctx / "app.txt").write_text("v2\n")
    r = farm.build(ctx, "partial")
    job = farm.last_job()
    assert block_events(farm, job["id"], "block_cached") == ["stable"]
    assert sorted(block_events(farm, job["id"], "block_start")) == ["final", "src"]
    assert "COPY sources at line 5 changed" in r.stderr
    assert "parent block 'src' changed" in r.stderr


def test_mtime_alone_does_not_invalidate(farm, ctx):
    write_ctx(ctx, {"MiniBox": "BASE busybox\nBLOCK a\n    COPY f /f\n", "f": "x\n"})
    farm.build(ctx, "mtime")
    subprocess.run(["touch", "-d", "2001-01-01", str(ctx / "f")], check=True)
    farm.build(ctx, "mtime")
    assert block_events(farm, farm.last_job()["id"], "block_start") == []


def test_independent_blocks_run_at_the_same_time(farm, ctx):
    blocks = "".join(f"BLOCK s{i}\n    RUN sleep 2 && echo {i} > /s{i}\n" for i in range(4))
    final = "BLOCK final\n" + "".join(f"    NEED s{i}\n" for i in range(4)) + \
        "    RUN cat /s0 /s1 /s2 /s3 > /all\n"
    write_ctx(ctx, {"MiniBox": "BASE busybox\n" + blocks + final})
    farm.build(ctx, "parallel")
    events = farm.events(farm.last_job()["id"])
    wave1 = [e for e in events if e["type"] == "block_start" and e["block"] != "final"]
    starts = [e["time"] for e in wave1]
    dones = [e["time"] for e in events if e["type"] == "block_done" and e["block"] != "final"]
    assert len(starts) == 4
    assert max(starts) < min(dones), "the four blocks of wave 1 did not overlap"
    # each on its own worker process (HOST:PID), all of them this farm's build workers
    workers = {e["worker"] for e in wave1}
    assert len(workers) == 4, f"wave 1 ran on {sorted(workers)}"
    pids = {int(w.rsplit(":", 1)[1]) for w in workers}
    assert pids <= set(farm.worker_pids("build")), "a block ran outside the build workers"


def test_a_dependency_layer_shadows_the_base(farm, ctx):
    mb = ("BASE busybox\nBLOCK edit\n    RUN echo edited > /etc/hostname\n"
          "BLOCK read\n    NEED edit\n    RUN cp /etc/hostname /seen\n")
    write_ctx(ctx, {"MiniBox": mb})
    farm.build(ctx, "shadow")
    out = unpack_file(farm, "shadow", "seen")
    assert out == "edited\n"


def unpack_file(farm, name: str, rel: str, tmp=None) -> str | None:
    """Read a file of a built image by unpacking it with the real umoci."""
    import tempfile
    if not shutil.which("umoci"):
        pytest.skip("umoci is not installed")
    d = tempfile.mkdtemp(dir="/var/tmp", prefix="umoci-")
    try:
        subprocess.run(["umoci", "unpack", "--image", f"{farm.root}:{name}:latest",
                        f"{d}/bundle"], check=True, capture_output=True)
        p = f"{d}/bundle/rootfs/{rel}"
        try:
            return open(p).read()
        except FileNotFoundError:
            return None
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_multi_stage_bneed_and_copy_from_keep_builder_out_of_the_image(farm, ctx):
    mb = ("BASE busybox\n"
          "BLOCK builder\n    WORKDIR /build\n    RUN echo artifact > out && echo junk > /junk\n"
          "BLOCK runtime\n    COPY FROM=builder /build/out /app/out\n"
          "    COPY FROM=builder /etc/passwd /app/passwd-from-builder-base\n")
    write_ctx(ctx, {"MiniBox": mb})
    farm.build(ctx, "multistage")
    assert unpack_file(farm, "multistage", "app/out") == "artifact\n"
    assert "root:x:0:0" in unpack_file(farm, "multistage", "app/passwd-from-builder-base")
    assert unpack_file(farm, "multistage", "junk") is None
    assert unpack_file(farm, "multistage", "build/out") is None


def test_base_scratch_with_a_static_binary(farm, ctx):
    shutil.copy("/bin/busybox", ctx / "busybox")
    write_ctx(ctx, {"MiniBox": "BASE scratch\nBLOCK bin\n    COPY busybox /bin/busybox\n"
                               "START [\"/bin/busybox\", \"echo\", \"hi\"]\n"})
    farm.build(ctx, "static")
    img = farm.image("static")
    assert len(img["manifest"]["layers"]) == 1
    assert img["config"]["config"]["Cmd"] == ["/bin/busybox", "echo", "hi"]
    r = subprocess.run(["skopeo", "inspect", f"oci:{farm.root}:static:latest"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["Layers"]) == 1


def test_target_builds_only_that_block_and_what_it_needs(farm, ctx):
    mb = ("BASE busybox\nBLOCK a\n    RUN echo a > /a\nBLOCK b\n    NEED a\n    RUN echo b > /b\n"
          "BLOCK c\n    RUN echo c > /c\n")
    write_ctx(ctx, {"MiniBox": mb})
    farm.build(ctx, "targeted", "--target", "b")
    events = farm.events(farm.last_job()["id"])
    built = {e["block"] for e in events if e["type"] in ("block_start", "block_cached")}
    assert built == {"a", "b"}
    assert unpack_file(farm, "targeted", "b") == "b\n"
    assert unpack_file(farm, "targeted", "c") is None


def test_the_data_root_is_an_oci_layout_umoci_and_skopeo_read(farm):
    r = subprocess.run(["umoci", "ls", "--layout", str(farm.root)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "busybox:latest" in r.stdout.split()
    idx = json.loads((farm.root / "index.json").read_text())
    names = [m["annotations"]["org.opencontainers.image.ref.name"] for m in idx["manifests"]]
    assert "busybox:latest" in names
    assert json.loads((farm.root / "oci-layout").read_text())["imageLayoutVersion"]


def test_images_lists_what_was_built(farm):
    r = farm.cli("images", "--json")
    assert r.returncode == 0
    assert "busybox:latest" in {i["name"] for i in json.loads(r.stdout)}


def test_legacy_linear_file_builds(farm, ctx):
    write_ctx(ctx, {"MiniBox": "FROM busybox\nGOTO-FOLDER /app\nIMPORT-FILE app.sh /app/app.sh\n"
                               "RUN-COMMAND chmod +x /app/app.sh\nSET-ENVIRONMENT MODE legacy\n"
                               "LAUNCH /app/app.sh\n",
                    "app.sh": "#!/bin/sh\necho $MODE\n"})
    farm.build(ctx, "legacy")
    cfg = config_of(farm, "legacy")
    assert cfg["Cmd"] == ["/bin/sh", "-c", "/app/app.sh"]
    assert "MODE=legacy" in cfg["Env"] and cfg["WorkingDir"] == "/app"
    assert unpack_file(farm, "legacy", "app/app.sh").endswith("echo $MODE\n")


def test_minibox_file_named_with_f(farm, ctx, tmp_path):
    other = tmp_path / "Other.minibox"
    other.write_text("BASE busybox\nBLOCK x\n    COPY data /data\n")
    write_ctx(ctx, {"data": "d"})
    r = farm.build(ctx, "named-file", "-f", other)
    assert r.returncode == 0
    assert unpack_file(farm, "named-file", "data") == "d"
    bad = tmp_path / "Broken"
    bad.write_text("BASE busybox\nBLOCK x\n    NEED nowhere\n")
    r = farm.build(ctx, "named-file", "-f", bad, check=False)
    assert r.returncode == 2 and f"{bad}:3" in r.stderr


def test_volume_port_env_and_start_reach_the_config(farm, ctx):
    mb = ("BASE busybox\nBLOCK data\n    VOLUME /data /cache\n    PORT 53/udp\n"
          "    ENV PATH=/opt/bin:$PATH\n    WORKDIR relative\n"
          "HEALTHCHECK --interval=5s --timeout=2s --retries=4 [\"/bin/true\"]\n"
          "START echo started\n")
    write_ctx(ctx, {"MiniBox": mb})
    farm.build(ctx, "metadata")
    cfg = config_of(farm, "metadata")
    assert cfg["Volumes"] == {"/data": {}, "/cache": {}}
    assert cfg["ExposedPorts"] == {"53/udp": {}}
    path = next(e for e in cfg["Env"] if e.startswith("PATH="))
    assert path.startswith("PATH=/opt/bin:/usr/local/sbin")
    assert cfg["WorkingDir"] == "/relative"
    assert cfg["Cmd"] == ["/bin/sh", "-c", "echo started"]
    assert cfg["Healthcheck"]["Test"] == ["CMD", "/bin/true"]
    assert cfg["Healthcheck"]["Retries"] == 4 and cfg["Healthcheck"]["Timeout"] == 2 * 10**9
    assert cfg["Labels"]["mini.healthcheck.interval"] == "5"
