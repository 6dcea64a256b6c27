"""Deterministic builds: the same inputs give the same image digest."""

from __future__ import annotations

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
