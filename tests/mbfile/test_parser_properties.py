"""Property tests: for any text, parse() returns a sound graph or raises ParseError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibox import graph
from minibox.errors import ParseError
from minibox.mbfile.model import Copy, MiniBoxFile
from minibox.mbfile.parser import parse

TOP = ["BASE", "BLOCK", "START", "HEALTHCHECK", "base", "Block"]
INSTR = ["NEED", "BNEED", "RUN", "COPY", "WORKDIR", "ENV", "PKG", "AUTO-DEPS", "PORT", "USER",
         "VOLUME", "need", "copy", "run", "env"]
LEGACY = ["BOX", "FROM", "START-WITH", "ADD-PACKAGE", "INSTALL-DEPS", "CLONE-REPO",
          "RUN-COMMAND", "GOTO-FOLDER", "SET-ENVIRONMENT", "IMPORT-FILE", "GRAB-ALL",
          "SYNC-PACK", "LAUNCH", "CMD"]
JUNK = ["#", "# comment", "BLCOK", "EXPOSE", "\\", "", "--interval=5", "[", "]"]
NAMES = ["a", "b", "c", "main", "builder", "x.y", "-bad", "A"]
ARGS = NAMES + [
    "/app", ".", "*.js", "FROM=a", "from=b", "FROM=", "--from=c", "K=V", 'K="a b"', "K='x",
    "1A=b", "80", "53/udp", "70000", "curl", "git@2.40", '["a", "b"]', '["x"', "[]", "[1]",
    "--interval=10s", "--retries=0", "--timeout=1m30s", "--start-period", "a:b", "\\",
    "\t", "é", "\x00", "\udcff", "\x1b", "\r", "\u2028", "\x85", "${X}", "&&", ";", "'", '"',
]

# every character, surrogates and control characters included
ANY_CHAR = st.characters(exclude_categories=())


def line_strategy() -> st.SearchStrategy[str]:
    keyword = st.sampled_from(TOP + INSTR + LEGACY + JUNK)
    indent = st.sampled_from(["", "", "    ", "\t", " ", "  \t"])
    args = st.lists(st.one_of(st.sampled_from(ARGS), st.text(ANY_CHAR, max_size=6)),
                    max_size=4)
    tail = st.sampled_from(["", "", " \\", "\\", "\r", "  "])
    return st.builds(lambda i, k, a, t: i + " ".join([k] + a) + t, indent, keyword, args, tail)


MINIBOX_LIKE = st.lists(line_strategy(), max_size=25).map("\n".join)

GOOD_INSTR = [
    "    RUN echo {n}", "    NEED {n}", "    BNEED {n}", "    COPY FROM={n} /a /b",
    "    COPY . /app", "    ENV A=1 B='x y'", "    PKG curl git@2", "    PORT 80/udp",
    "    USER app", "    VOLUME /data", "    WORKDIR /app", "    AUTO-DEPS", "# note",
    "    RUN a \\", "",
]
GOOD_INSTR_LINE = st.builds(lambda t, n: t.format(n=n), st.sampled_from(GOOD_INSTR),
                            st.sampled_from(NAMES[:5]))
INSTR_LINE = st.one_of(*[GOOD_INSTR_LINE] * 12, line_strategy())
BLOCK_TEXT = st.builds(lambda n, body: "\n".join([f"BLOCK {n}"] + body),
                       st.sampled_from(NAMES[:5]), st.lists(INSTR_LINE, max_size=6))
TAIL = st.sampled_from(["", "START node .", 'START ["a"]', "HEALTHCHECK --retries=2 true"])
# mostly well-formed files, so the success path and multi-block graphs get exercised
MOSTLY_GOOD = st.builds(lambda blocks, tail: "\n".join(["BASE alpine"] + blocks + [tail]),
                        st.lists(BLOCK_TEXT, max_size=6), TAIL)
ANY_TEXT = st.text(ANY_CHAR, max_size=400)


def assert_sound(mb: MiniBoxFile) -> None:
    assert isinstance(mb.base, str) and mb.base and mb.base_line >= 1
    names = [b.name for b in mb.blocks]
    assert len(names) == len(set(names)), "block names must be unique"
    known = set(names)
    for b in mb.blocks:
        for dep in b.needs + b.bneeds:
            assert dep in known and dep != b.name
        for ins in b.instructions:
            if isinstance(ins, Copy) and ins.from_block is not None:
                assert ins.from_block in b.bneeds
    assert graph.find_cycle(names, lambda n: mb.block(n).deps) is None
    scheduled = [b.name for wave in graph.waves(mb) for b in wave]
    assert sorted(scheduled) == sorted(names)
    for b in mb.blocks:
        graph.final_blocks(mb, b.name)
    if mb.start is not None:
        assert mb.start and all(isinstance(a, str) for a in mb.start)
    if mb.legacy:
        assert names == ["main"]


def check(text: str) -> None:
    try:
        mb = parse(text, "MiniBox")
    except ParseError as exc:
        assert exc.path == "MiniBox" and exc.message
        exc.render().encode("utf-8")        # always printable
        return
    assert_sound(mb)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_TEXT)
def test_arbitrary_text_parses_or_raises_parse_error(text):
    check(text)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MINIBOX_LIKE)
def test_minibox_like_text_parses_or_raises_parse_error(text):
    check(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["BASE alpine\n", "FROM alpine\n"]), MINIBOX_LIKE)
def test_text_after_a_valid_header(header, body):
    check(header + body)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MOSTLY_GOOD)
def test_mostly_well_formed_files(text):
    check(text)


BLOCK_GRAPH = st.lists(st.lists(st.tuples(st.sampled_from(["NEED", "BNEED", "COPY FROM="]),
                                          st.integers(0, 7)), max_size=4),
                       min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(BLOCK_GRAPH)
def test_random_graphs_are_accepted_iff_acyclic(edges):
    lines = ["BASE a"]
    for i, deps in enumerate(edges):
        lines.append(f"BLOCK b{i}")
        for how, j in deps:
            ref = f"b{j % len(edges)}"
            lines.append(f"    COPY FROM={ref} /x /y" if how == "COPY FROM=" else f"    {how} {ref}")
    text = "\n".join(lines)
    try:
        mb = parse(text)
    except ParseError as exc:
        assert "cycle" in exc.message or "itself" in exc.message
        return
    assert_sound(mb)
