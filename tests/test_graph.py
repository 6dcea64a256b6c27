"""Graph functions: waves, final image blocks, closures, targets."""

from __future__ import annotations

import textwrap

import pytest

from minibox import graph
from minibox.errors import ParseError, UserError
from minibox.mbfile.model import Block, MiniBoxFile
from minibox.mbfile.parser import parse


def p(text: str) -> MiniBoxFile:
    return parse(textwrap.dedent(text).lstrip("\n"))


def names(blocks) -> list[str]:
    return [b.name for b in blocks]


def wave_names(mb, target=None) -> list[list[str]]:
    return [names(w) for w in graph.waves(mb, target)]


NODE = p("""
    BASE alpine
    BLOCK runtime
        pkg nodejs
    BLOCK source
        copy . /app
    BLOCK deps
        NEED runtime
        NEED source
        auto-deps
    BLOCK config
        NEED deps
        env PORT=3000
""")

LEAN = p("""
    BASE node
    BLOCK tools
        run apk add git
    BLOCK builder
        NEED tools
        run make
    BLOCK assets
        run build-assets
    BLOCK base-libs
        run apk add libc
    BLOCK runtime
        NEED base-libs
        BNEED builder
        COPY FROM=assets /out /app/static
        copy FROM=builder /app/server /server
    BLOCK unrelated
        run true
""")


def test_waves_reference_example():
    assert wave_names(NODE) == [["runtime", "source"], ["deps"], ["config"]]


def test_waves_use_bneed_edges_and_file_order():
    assert wave_names(LEAN) == [["tools", "assets", "base-libs", "unrelated"], ["builder"],
                                ["runtime"]]


def test_waves_with_target_keep_only_its_closure():
    assert wave_names(LEAN, "runtime") == [["tools", "assets", "base-libs"], ["builder"],
                                           ["runtime"]]
    assert wave_names(LEAN, "builder") == [["tools"], ["builder"]]
    assert wave_names(LEAN, "unrelated") == [["unrelated"]]
    assert wave_names(NODE, "deps") == [["runtime", "source"], ["deps"]]


def test_waves_of_base_only_file():
    assert graph.waves(p("BASE a\n")) == []


def test_final_blocks_default_target_is_last_block_need_closure_only():
    assert names(graph.final_blocks(NODE)) == ["runtime", "source", "deps", "config"]
    # LEAN's last block is "unrelated": only itself
    assert names(graph.final_blocks(LEAN)) == ["unrelated"]
    # BNEED-only blocks (builder, tools, assets) stay out
    assert names(graph.final_blocks(LEAN, "runtime")) == ["base-libs", "runtime"]


def test_final_blocks_dependencies_first_even_against_file_order():
    mb = p("""
        BASE a
        BLOCK top
            NEED mid
        BLOCK other
        BLOCK mid
            NEED bottom
        BLOCK bottom
        BLOCK last
            NEED top
            NEED other
    """)
    # ready blocks are taken in file order: "other" is ready at once and comes first
    assert names(graph.final_blocks(mb)) == ["other", "bottom", "mid", "top", "last"]


def test_final_blocks_base_only_file_is_empty():
    assert graph.final_blocks(p("BASE a\n")) == []


def test_final_blocks_legacy_is_main():
    assert names(graph.final_blocks(p("FROM a\nRUN x\n"))) == ["main"]


def test_closures():
    assert graph.need_closure(NODE, "config") == ["runtime", "source", "deps"]
    assert graph.need_closure(NODE, "runtime") == []
    assert graph.need_closure(LEAN, "runtime") == ["base-libs"]
    assert graph.dep_closure(LEAN, "runtime") == ["tools", "builder", "assets", "base-libs"]
    assert graph.dep_closure(LEAN, "builder") == ["tools"]


def test_closure_through_bneed_then_need():
    mb = p("""
        BASE a
        BLOCK a
        BLOCK b
            NEED a
        BLOCK c
            BNEED b
    """)
    assert graph.need_closure(mb, "c") == []
    assert graph.dep_closure(mb, "c") == ["a", "b"]
    assert names(graph.final_blocks(mb)) == ["c"]


@pytest.mark.parametrize("fn", [graph.waves, graph.final_blocks])
def test_unknown_target(fn):
    with pytest.raises(UserError) as info:
        fn(LEAN, "runtim")
    assert "no block named 'runtim'" in info.value.message
    assert info.value.hint == "did you mean 'runtime'?"


def test_unknown_target_without_close_match_lists_blocks():
    with pytest.raises(UserError) as info:
        graph.final_blocks(NODE, "zzz")
    assert "runtime, source, deps, config" in info.value.hint


def test_unknown_target_in_empty_file():
    with pytest.raises(UserError) as info:
        graph.waves(p("BASE a\n"), "x")
    assert "no blocks" in info.value.hint


def test_closure_of_unknown_block():
    with pytest.raises(UserError):
        graph.need_closure(NODE, "nope")


def hand_made(*blocks: Block) -> MiniBoxFile:
    return MiniBoxFile(path="MiniBox", base="a", base_line=1, blocks=list(blocks))


def test_hand_made_cycle_is_a_user_error_not_a_hang():
    mb = hand_made(Block("x", 1, needs=["y"]), Block("y", 2, needs=["x"]))
    with pytest.raises(UserError):
        graph.waves(mb)
    with pytest.raises(UserError):
        graph.final_blocks(mb)


def test_hand_made_unknown_dependency():
    mb = hand_made(Block("x", 1, bneeds=["ghost"]))
    with pytest.raises(UserError):
        graph.waves(mb)


def test_find_cycle():
    edges = {"a": ["b"], "b": ["c"], "c": ["a"], "d": []}
    assert graph.find_cycle(["a", "b", "c", "d"], edges.__getitem__) == ["a", "b", "c", "a"]
    assert graph.find_cycle(["d"], edges.__getitem__) is None
    assert graph.find_cycle(["x"], {"x": ["x"]}.__getitem__) == ["x", "x"]
    assert graph.find_cycle(["x"], {"x": ["unknown"]}.__getitem__) is None


def test_deep_chain_no_recursion_limit():
    n = 5000
    text = "BASE a\n" + "".join(f"BLOCK b{i}\n    NEED b{i - 1}\n" if i else "BLOCK b0\n"
                                for i in range(n))
    mb = parse(text)
    assert len(graph.waves(mb)) == n
    assert len(graph.final_blocks(mb)) == n
    assert graph.need_closure(mb, f"b{n - 1}")[0] == "b0"


def test_deep_cycle_is_found():
    n = 3000
    text = "BASE a\n" + "".join(f"BLOCK b{i}\n    NEED b{(i + 1) % n}\n" for i in range(n))
    with pytest.raises(ParseError) as info:
        parse(text)
    assert "dependency cycle: b0 -> b1 -> " in info.value.message
