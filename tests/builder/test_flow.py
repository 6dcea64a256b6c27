"""builder/flow.py: a block is ready as soon as its own dependencies are done, not when its
whole wave is; wave events still come in order and count what each wave cached or built."""

from __future__ import annotations

import textwrap

from minibox import graph
from minibox.builder.flow import Flow
from minibox.mbfile.parser import parse

TWO_CHAINS = parse(textwrap.dedent("""
    BASE busybox
    BLOCK a1
        RUN echo a1
    BLOCK b1
        RUN echo b1
    BLOCK a2
        NEED a1
        RUN echo a2
    BLOCK b2
        NEED b1
        RUN echo b2
    BLOCK all
        BNEED a2
        BNEED b2
        RUN true
""").lstrip("\n"))


def take_all(flow: Flow) -> tuple[list[str], list[dict]]:
    out, events = [], []
    while True:
        block, evs = flow.next()
        events += [e.to_wire() for e in evs]
        if block is None:
            return out, events
        out.append(block.name)


def test_a_block_is_ready_when_its_own_dependencies_are_done():
    flow = Flow(graph.waves(TWO_CHAINS))
    ready, events = take_all(flow)
    assert ready == ["a1", "b1"]
    assert events == [{"type": "wave_start", "wave": 1, "blocks": ["a1", "b1"]}]
    blocks = {b.name: b for b in TWO_CHAINS.blocks}
    assert flow.finished(blocks["a1"], cached=False) == []      # b1 still runs: wave 1 is on
    ready, events = take_all(flow)
    assert ready == ["a2"]                                      # without waiting for b1
    assert events == [{"type": "wave_start", "wave": 2, "blocks": ["a2", "b2"]}]
    done = [e.to_wire() for e in flow.finished(blocks["b1"], cached=True)]
    assert done == [{"type": "wave_done", "wave": 1, "cached": 1, "built": 1}]
    assert take_all(flow) == (["b2"], [])
    flow.finished(blocks["a2"], cached=False)
    assert take_all(flow)[0] == []                              # `all` needs b2 too
    flow.finished(blocks["b2"], cached=False)
    assert take_all(flow) == (["all"], [{"type": "wave_start", "wave": 3, "blocks": ["all"]}])
    assert [e.to_wire() for e in flow.finished(blocks["all"], cached=False)] == \
        [{"type": "wave_done", "wave": 3, "cached": 0, "built": 1}]
    assert not flow.ready


def test_a_block_needed_twice_through_need_and_bneed_counts_once():
    mb = parse("BASE busybox\nBLOCK a\n    RUN true\nBLOCK b\n    NEED a\n    BNEED a\n"
               "    RUN true\n")
    flow = Flow(graph.waves(mb))
    a = flow.next()[0]
    assert flow.next()[0] is None
    flow.finished(a, cached=True)
    assert flow.next()[0].name == "b"
