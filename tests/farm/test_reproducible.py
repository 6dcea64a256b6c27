"""Deterministic builds: the same inputs give the same image digest."""

from __future__ import annotations

import time

from tests.farm.test_build import block_events
from tests.farmkit import write_ctx


def test_a_block_with_an_empty_diff_gives_the_same_digest_fresh_and_cached(farm, ctx):
    write_ctx(ctx, {"MiniBox": "BASE busybox\nBLOCK noop\n    RUN true\n"
                               "BLOCK final\n    NEED noop\n    RUN echo hi > /hi\n"})
    farm.build(ctx, "emptydiff")
    fresh = farm.image("emptydiff")
    farm.build(ctx, "emptydiff")
    assert sorted(block_events(farm, farm.last_job()["id"], "block_cached")) == ["final",
                                                                                  "noop"]
    again = farm.image("emptydiff")
    assert again["config"]["rootfs"] == fresh["config"]["rootfs"]
    assert again["digest"] == fresh["digest"]


def chain(n: int) -> str:
    lines = ["BASE busybox"]
    for i in range(n):
        lines += [f"BLOCK b{i}"] + ([f"    NEED b{i - 1}   # the one before"] if i else [])
        lines += [f"    RUN echo {i} > /f{i}", "    ENV LAST=" + str(i)]
    return "\n".join(lines) + "\n"


def test_a_need_chain_past_the_overlay_limit_is_refused_naming_the_block(farm, ctx):
    write_ctx(ctx, {"MiniBox": chain(130)})        # too deep whatever the base: at submit
    r = farm.build(ctx, "deep", check=False)
    assert r.returncode == 2
    assert "MiniBox:513: block 'b128' would stack 129 layers (129 from it and the blocks it " \
           "NEEDs); at most 128 fit in one overlay mount" in r.stderr
    assert "BNEED" in r.stderr and "Traceback" not in r.stderr
    write_ctx(ctx, {"MiniBox": chain(128)})        # 128 blocks fit, not on busybox's layer
    r = farm.build(ctx, "deep", check=False)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "MiniBox:509: block 'b127' would stack 129 layers (1 from the base image, 128 " \
           "from it" in r.stderr
    assert block_events(farm, farm.last_job()["id"], "block_start") == []


def test_source_date_epoch_gives_the_same_digest_for_a_build_made_again(farm, ctx):
    epoch, stamp = 1_700_000_000, "2023-11-14T22:13:20Z"
    write_ctx(ctx, {"MiniBox": "BASE busybox\nBLOCK a\n    COPY f /app/f\n"
                               "    RUN mkdir /app/d && echo made > /app/d/x && rm /app/f\n"
                               "BLOCK b\n    NEED a\n    WORKDIR /srv\n    RUN touch b\n",
                    "f": "from the context\n"})
    farm.build(ctx, "repro1", "--timestamp", str(epoch))
    first = farm.image("repro1")
    time.sleep(1.1)                                # every new file gets a later mtime
    (ctx / "f").touch()
    r = farm.cli("build", "--progress", "plain", "--no-cache", "-t", "repro2", ctx,
                 env={"SOURCE_DATE_EPOCH": str(epoch)})
    assert r.returncode == 0, r.stderr
    second = farm.image("repro2")
    assert second["digest"] == first["digest"]
    assert second["config"]["created"] == stamp
    assert {h["created"] for h in second["config"]["history"]} == {stamp}
    farm.build(ctx, "repro3", "--no-cache")        # without one: this build's own time
    assert farm.image("repro3")["digest"] != first["digest"]


def test_a_bad_timestamp_is_refused(farm, ctx):
    write_ctx(ctx, {"MiniBox": "BASE busybox\nBLOCK a\n    RUN true\n"})
    r = farm.cli("build", "-t", "badts", ctx, env={"SOURCE_DATE_EPOCH": "yesterday"})
    assert r.returncode == 2 and "SOURCE_DATE_EPOCH" in r.stderr
    assert "Traceback" not in r.stderr
    r = farm.cli("build", "--timestamp", "99999999999999", "-t", "badts", ctx)
    assert r.returncode != 0 and "timestamp" in r.stderr and "Traceback" not in r.stderr
