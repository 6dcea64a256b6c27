"""The cache-key rules, unit by unit: what must miss (base, instruction, ENV, a COPY
source's bytes, mode or owner, a parent) and what must hit (a comment, a blank line, a
shifted line number, a source's mtime), each with the reason the next build would print.

Keys are computed as the daemon's scheduler computes them: the real parser, planner and
context hashing over real files in a temporary context."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minibox import graph
from minibox.builder import cachekey
from minibox.builder.context import hash_sources, resolve_sources
from minibox.builder.plan import BuildState, inherit, plan_block
from minibox.mbfile import parse

BASE = "sha256:" + "1" * 64


def keyed(ctx: Path, text: str, base: str = BASE, base_env: dict | None = None) -> dict:
    """name -> (key, components, instruction texts) for every block of a MiniBox file."""
    mb = parse(text, "MiniBox")
    base_state = BuildState(env=dict(base_env or {}))
    done: dict[str, tuple] = {}
    for wave in graph.waves(mb):
        for block in wave:
            inherited = inherit(base_state, [done[n][3] for n in block.needs])
            plan = plan_block(block, inherited)
            copies = {str(i): hash_sources(resolve_sources(str(ctx), srcs, line, "MiniBox"))
                      for i, line, srcs in plan.local_copies}
            inputs = cachekey.KeyInputs(
                base=base, parents={n: done[n][0] for n in block.deps},
                inherited=inherited.to_dict(), instructions=plan.key_material,
                copy_hashes=copies, lines=plan.lines)
            done[block.name] = (inputs.key(), inputs.components(), plan.texts, plan.state)
    return {n: v[:3] for n, v in done.items()}


def why(before: dict, after: dict, name: str) -> str:
    return cachekey.explain_miss(before[name][1], after[name][1], after[name][2])


APP = ("BASE busybox\n"
       "BLOCK deps\n    ENV MODE=prod\n    RUN echo deps > /deps\n"
       "BLOCK app\n    NEED deps\n    COPY app.sh /app/\n    RUN sh /app/app.sh\n")


@pytest.fixture
def ctx(tmp_path) -> Path:
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "app.sh").write_text("echo app\n")
    (d / "app.sh").chmod(0o644)
    return d


def test_the_same_inputs_give_the_same_keys(ctx):
    a, b = keyed(ctx, APP), keyed(ctx, APP)
    assert {n: v[0] for n, v in a.items()} == {n: v[0] for n, v in b.items()}
    assert a["deps"][0] != a["app"][0]


# --- what must miss -----------------------------------------------------------------
def test_another_base_image_misses_every_block(ctx):
    before, after = keyed(ctx, APP), keyed(ctx, APP, base="sha256:" + "2" * 64)
    assert all(before[n][0] != after[n][0] for n in before)
    assert why(before, after, "deps") == "the base image changed"


def test_a_changed_instruction_misses_it_and_its_dependents(ctx):
    before = keyed(ctx, APP)
    after = keyed(ctx, APP.replace("echo deps", "echo deps2"))
    assert before["deps"][0] != after["deps"][0]
    assert before["app"][0] != after["app"][0]
    assert why(before, after, "deps") == "instruction at line 4 changed: RUN echo deps2 > /deps"
    assert why(before, after, "app") == "parent block 'deps' changed"


def test_a_changed_env_value_misses(ctx):
    before = keyed(ctx, APP)
    after = keyed(ctx, APP.replace("MODE=prod", "MODE=dev"))
    assert before["deps"][0] != after["deps"][0]
    assert why(before, after, "deps") == "instruction at line 3 changed: ENV MODE=dev"


def test_a_changed_inherited_env_misses(ctx):
    before = keyed(ctx, APP, base_env={"PATH": "/bin"})
    after = keyed(ctx, APP, base_env={"PATH": "/usr/bin:/bin"})
    assert before["deps"][0] != after["deps"][0]
    assert why(before, after, "deps") == "the inherited ENV/WORKDIR/USER changed"


def test_a_copy_sources_bytes_mode_or_owner_misses(ctx):
    src = ctx / "app.sh"
    seen = {keyed(ctx, APP)["app"][0]}
    before = keyed(ctx, APP)
    src.write_text("echo app v2\n")                      # the bytes
    after = keyed(ctx, APP)
    assert why(before, after, "app") == "COPY sources at line 7 changed"
    seen.add(after["app"][0])
    src.chmod(0o755)                                     # the mode
    seen.add(keyed(ctx, APP)["app"][0])
    os.chown(src, 1234, 1234)                            # the owner
    seen.add(keyed(ctx, APP)["app"][0])
    assert len(seen) == 4, "bytes, mode and owner must each change the key"
    assert keyed(ctx, APP)["deps"][0] == before["deps"][0], "an unrelated block missed"


def test_an_added_instruction_and_a_new_dependency_miss_with_their_reason(ctx):
    before = keyed(ctx, APP)
    more = keyed(ctx, APP + "    RUN true\n")
    assert why(before, more, "app") == "instruction added at line 9: RUN true"
    text = APP.replace("BLOCK app\n", "BLOCK extra\n    RUN true\nBLOCK app\n    NEED extra\n")
    assert why(before, keyed(ctx, text), "app") == "new dependency on block 'extra'"


# --- what must hit ------------------------------------------------------------------
def test_comments_blank_lines_and_shifted_lines_hit(ctx):
    before = keyed(ctx, APP)
    shifted = APP.replace("BASE busybox\n", "BASE busybox\n# a comment\n\n# another\n")
    shifted = shifted.replace("    RUN sh /app/app.sh\n", "    # why\n    RUN sh /app/app.sh\n")
    after = keyed(ctx, shifted)
    assert after["deps"][2] == before["deps"][2]
    assert after["deps"][1]["lines"] != before["deps"][1]["lines"]   # the lines did move
    assert {n: v[0] for n, v in after.items()} == {n: v[0] for n, v in before.items()}


def test_a_sources_mtime_alone_hits(ctx):
    before = keyed(ctx, APP)["app"][0]
    os.utime(ctx / "app.sh", (1_000_000_000, 1_000_000_000))
    assert keyed(ctx, APP)["app"][0] == before
