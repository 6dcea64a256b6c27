"""An image MiniBox built, then run by MiniBox (not an imported one): the layers of every
NEED block, the ENV, WORKDIR, USER and START the build recorded reach the container.  And
`rmi`: a tag goes, nothing else does, and a bad or unknown name is a clear error."""

from __future__ import annotations

from tests.farmkit import write_ctx

APP = """BASE busybox
BLOCK tools
    COPY greet.sh /usr/local/bin/greet
    RUN chmod 0755 /usr/local/bin/greet
BLOCK app
    NEED tools
    ENV GREETING=hello-from-a-built-image
    WORKDIR /srv
    RUN greet > made-at-build.txt && chmod 0644 made-at-build.txt
    USER nobody
START ["/bin/sh", "-c", "cat made-at-build.txt; echo \\"$GREETING\\"; pwd; id -u"]
"""


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout


def test_an_image_built_by_minibox_runs_with_its_recorded_config(farm, ctx):
    write_ctx(ctx, {"MiniBox": APP, "greet.sh": "#!/bin/sh\necho greeted at build time\n"})
    farm.build(ctx, "built-then-run")
    out = ok(farm.cli("run", "--rm", "built-then-run", timeout=120))
    assert out.splitlines() == ["greeted at build time", "hello-from-a-built-image", "/srv",
                                "65534"]
    # a command of its own, in the same image: the NEED block's layer is there too
    out = ok(farm.cli("run", "--rm", "built-then-run", "sh", "-c",
                      "command -v greet && greet", timeout=120))
    assert out.splitlines() == ["/usr/local/bin/greet", "greeted at build time"]
    r = farm.cli("run", "--rm", "built-then-run", "sh", "-c", "exit 7", timeout=120)
    assert r.returncode == 7, (r.stdout, r.stderr)
    assert ok(farm.cli("ps", "-a", "-q")).split() == [], "--rm left a container"


def test_rmi_removes_the_tag_only(farm, ctx):
    write_ctx(ctx, {"MiniBox": "BASE busybox\nBLOCK a\n    RUN echo rmi > /rmi\n"})
    farm.build(ctx, "rmi-one")
    farm.build(ctx, "rmi-two")
    digest = farm.image("rmi-two")["digest"]
    # nothing ran the second time: the new tag names the same image (whatever the clock says)
    assert farm.image("rmi-one")["digest"] == digest
    layers = [d["digest"] for d in farm.image("rmi-two")["layers"]]
    assert ok(farm.cli("rmi", "rmi-one")).strip() == "Untagged: rmi-one:latest"
    listed = ok(farm.cli("images"))
    assert "rmi-one" not in listed and "rmi-two" in listed
    assert farm.image("rmi-two")["digest"] == digest
    assert ok(farm.cli("run", "--rm", "rmi-two", "cat", "/rmi", timeout=120)) == "rmi\n"
    # the blobs stayed: building the removed tag again executes nothing
    farm.build(ctx, "rmi-one")
    events = farm.events(farm.last_job()["id"])
    assert [e for e in events if e["type"] == "block_start"] == []
    assert [d["digest"] for d in farm.image("rmi-one")["layers"]] == layers


def test_rmi_of_an_unknown_or_malformed_name_is_a_clear_error(farm):
    r = farm.cli("rmi", "no-such-image-here")
    assert r.returncode != 0
    assert "no-such-image-here" in r.stderr and ("not found" in r.stderr or "no such image" in r.stderr)
    assert "Traceback" not in r.stderr
    r = farm.cli("rmi", "Bad Name!")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "Bad Name!" in r.stderr and ("invalid" in r.stderr or "no such image" in r.stderr), \
        r.stderr                                                        # what, and which
