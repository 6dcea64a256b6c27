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
