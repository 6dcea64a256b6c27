"""Parse a MiniBox file into the model (``minibox.mbfile.model``).

``parse(text, path)`` returns a ``MiniBoxFile`` whose references all resolve, whose block
names are unique and whose graph has no cycle, or raises ``ParseError`` naming file:line,
showing the line and saying what was expected.  No other exception escapes, for any input.

Two formats, told apart like the reference engine: the first line whose keyword is ``BASE``
selects the DAG format, ``BOX``/``FROM``/``START-WITH`` the legacy linear format.  In the DAG
format ``BASE``/``BLOCK``/``START``/``HEALTHCHECK`` sit at column 1 and block instructions are
indented under a ``BLOCK``.  A legacy file ignores indentation and becomes one block ``main``.
Lexing lives in ``lines``, the arguments of each directive in ``directives``.
"""

from __future__ import annotations

import dataclasses
import difflib

from minibox import graph
from minibox.errors import ParseError
from minibox.mbfile import directives as d
from minibox.mbfile.directives import DirectiveError, q
from minibox.mbfile.lines import MAX_LINE, Line, check_text, read_lines, show, strip_comment
from minibox.mbfile.model import Block, Copy, MiniBoxFile, Run

TOP_LEVEL = ("BASE", "BLOCK", "START", "HEALTHCHECK")
BLOCK_KEYWORDS = ("NEED", "BNEED", "RUN", "COPY", "WORKDIR", "ENV", "PKG", "AUTO-DEPS", "PORT",
                  "USER", "VOLUME")
LEGACY_BASE = ("BOX", "FROM", "START-WITH")
# directives whose arguments are words (names, paths, ports): a '#' that starts a word begins
# a trailing comment, as in the specification's own "NEED runtime   # ..." examples.  RUN,
# START and HEALTHCHECK leave '#' to the shell; ENV values may contain it.
WORD_ARGS = ("BASE", "BLOCK", "NEED", "BNEED", "AUTO-DEPS", "PKG", "PORT", "USER", "WORKDIR",
             "VOLUME", "COPY", "INSTALL-DEPS", "GRAB-ALL")

# legacy spelling -> what it means (a keyword, or a special handled by _legacy_special)
LEGACY_ALIASES = {
    "BASE": "BASE", "BOX": "BASE", "FROM": "BASE", "START-WITH": "BASE",
    "ADD-PACKAGE": "PKG", "PKG": "PKG",
    "INSTALL-DEPS": "INSTALL-DEPS", "AUTO-DEPS": "AUTO-DEPS",
    "CLONE-REPO": "CLONE-REPO",
    "RUN-COMMAND": "RUN", "RUN": "RUN",
    "GOTO-FOLDER": "WORKDIR", "WORKDIR": "WORKDIR",
    "SET-ENVIRONMENT": "ENV", "ENV": "ENV",
    "IMPORT-FILE": "COPY", "COPY": "COPY",
    "GRAB-ALL": "GRAB-ALL", "SYNC-PACK": "GRAB-ALL",
    "LAUNCH": "START", "CMD": "START", "START": "START",
    "HEALTHCHECK": "HEALTHCHECK", "PORT": "PORT", "USER": "USER", "VOLUME": "VOLUME",
}

# words people bring from Dockerfiles or the legacy format into a DAG file
DAG_SUGGEST = {
    "FROM": "BASE", "BOX": "BASE", "START-WITH": "BASE", "CMD": "START", "LAUNCH": "START",
    "ENTRYPOINT": "START", "EXPOSE": "PORT", "ADD": "COPY", "IMPORT-FILE": "COPY",
    "ADD-PACKAGE": "PKG", "INSTALL-DEPS": "AUTO-DEPS", "RUN-COMMAND": "RUN",
    "GOTO-FOLDER": "WORKDIR", "SET-ENVIRONMENT": "ENV", "CLONE-REPO": "RUN git clone <url>",
    "GRAB-ALL": "COPY . /app", "SYNC-PACK": "COPY . /app", "STAGE": "BLOCK",
    "DEPENDS": "NEED", "REQUIRES": "NEED",
}


def parse(text: str | bytes, path: str = "MiniBox") -> MiniBoxFile:
    """Parse MiniBox file text.  Raises ParseError, and only ParseError, on bad input."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            line_no = bytes(text).count(b"\n", 0, exc.start) + 1
            raise ParseError("the file is not valid UTF-8 text", path=path, line_no=line_no,
                             hint="save the file as UTF-8 text") from None
    check_text(text, path)
    lines = read_lines(text)
    if not lines:
        raise ParseError("the file is empty" if not text.strip("\ufeff \t\r\n") else
                         "the file has only comments", path=path, line_no=1,
                         hint="a MiniBox file starts with BASE <image>, e.g. BASE alpine:3.20")
    for line in lines:
        if len(line.text) > MAX_LINE:
            raise _error(path, line, f"the instruction is {len(line.text)} characters long; "
                         f"at most {MAX_LINE} are allowed",
                         hint="split it into several instructions, or COPY a script and RUN it")
    p = _Parser(path, _detect_format(lines, path))
    for line in lines:
        try:
            p.line(_without_comment(line, p.legacy))
        except DirectiveError as exc:
            raise _error(path, line, exc.message, exc.hint) from None
    return p.finish()


def _without_comment(line: Line, legacy: bool) -> Line:
    kw = LEGACY_ALIASES.get(line.kw, line.kw) if legacy else line.kw
    if kw not in WORD_ARGS or line.rest.startswith("["):
        return line
    return dataclasses.replace(line, rest=strip_comment(line.rest))


def _error(path: str, line: Line, message: str, hint: str | None = None) -> ParseError:
    return ParseError(message, path=path, line_no=line.no, line_text=show(line.raw), hint=hint)


def _detect_format(lines: list[Line], path: str) -> Line:
    """The line that decides the format: the first BASE (DAG) or BOX/FROM/START-WITH (legacy)."""
    for line in lines:
        if line.kw == "BASE" or line.kw in LEGACY_BASE:
            return line
    raise _error(path, lines[0], "the file has no BASE line",
                 hint="a MiniBox file starts with BASE <image>, e.g. BASE alpine:3.20")


class _Parser:
    def __init__(self, path: str, origin: Line):
        self.path = path
        self.origin = origin
        self.legacy = origin.kw in LEGACY_BASE
        self.base: str | None = None
        self.base_line: Line | None = None
        self.blocks: list[Block] = []
        self.by_name: dict[str, Block] = {}
        self.current: Block | None = None
        self.closed_by: Line | None = None      # the top-level line that ended the last block
        self.start: tuple[str, ...] | None = None
        self.start_line: Line | None = None
        self.health = None
        self.health_line: Line | None = None
        self.refs: list[tuple[Block, str, Line, str]] = []   # (block, dependency, line, how)
        if self.legacy:
            self.current = self._new_block("main", 0)

    # ---- dispatch -------------------------------------------------------------------

    def line(self, line: Line) -> None:
        if self.legacy:
            self._legacy_line(line)
        elif line.kw in TOP_LEVEL:
            if line.indented:
                raise DirectiveError(f"{line.kw} is a top-level directive and must not be "
                                     "indented", hint=f"start the {line.kw} line at column 1")
            self._top_level(line.kw, line)
        elif line.kw in BLOCK_KEYWORDS:
            self._check_in_block(line)
            self._instruction(line.kw, line)
        else:
            raise self._unknown(line, TOP_LEVEL + BLOCK_KEYWORDS, DAG_SUGGEST)

    def _check_in_block(self, line: Line) -> None:
        if not line.indented:
            where = (f"indent it to put it in block '{self.current.name}'" if self.current else
                     "put it in a block: a BLOCK <name> line, then the instruction indented")
            raise DirectiveError(f"{line.kw} must be inside a BLOCK, indented", hint=where)
        if self.current is None:
            if self.closed_by is not None and self.blocks:
                hint = (f"the {self.closed_by.kw} on line {self.closed_by.no} ended block "
                        f"'{self.blocks[-1].name}'; move {self.closed_by.kw} below the block")
            else:
                hint = "add a BLOCK <name> line above it"
            raise DirectiveError(f"{line.kw} is outside any BLOCK", hint=hint)

    def _unknown(self, line: Line, vocabulary: tuple[str, ...],
                 suggest: dict[str, str]) -> DirectiveError:
        word = line.kw or line.keyword
        hint = f"did you mean {suggest[word]}?" if word in suggest else None
        close = difflib.get_close_matches(word.upper(), vocabulary, n=1, cutoff=0.6)
        hint = hint or (f"did you mean {close[0]}?" if close and len(word) < 64 else None)
        return DirectiveError(f"unknown directive {q(line.keyword)}",
                              hint=hint or "directives are " + ", ".join(vocabulary))

    # ---- top level ------------------------------------------------------------------

    def _top_level(self, kw: str, line: Line) -> None:
        if kw == "BLOCK":
            name = d.block_name(d.one_arg(line.rest, "BLOCK", "BLOCK <name>"), "BLOCK")
            if name in self.by_name:
                first = self.by_name[name].line
                raise DirectiveError(f"block '{name}' is defined twice (first on line {first})",
                                     hint="block names must be unique; rename one of them")
            self.current = self._new_block(name, line.no)
            return
        if not self.legacy:
            self.current = None
            self.closed_by = line
        if kw == "BASE":
            self._once("base", line, "BASE")
            self.base = d.one_arg(line.rest, line.kw, f"{line.kw} <image>")
            self.base_line = line
        elif kw == "START":
            self._once("start", line, "START")
            self.start = d.command(line.rest, line.kw)
            self.start_line = line
        elif kw == "HEALTHCHECK":
            self._once("health", line, "HEALTHCHECK")
            self.health = d.healthcheck(line.rest, line.no)
            self.health_line = line

    def _once(self, attr: str, line: Line, what: str) -> None:
        first: Line | None = getattr(self, attr + "_line")
        if first is not None:
            raise DirectiveError(f"a second {what} (the first is {first.keyword} on line "
                                 f"{first.no})", hint=f"a file has only one {what}; keep one")

    def _new_block(self, name: str, line_no: int) -> Block:
        block = Block(name=name, line=line_no)
        self.blocks.append(block)
        self.by_name[name] = block
        return block

    # ---- block instructions ---------------------------------------------------------

    def _instruction(self, kw: str, line: Line) -> None:
        block = self.current
        rest, no = line.rest, line.no
        if kw in ("NEED", "BNEED"):
            target = block.needs if kw == "NEED" else block.bneeds
            for name in d.block_names(rest, kw):
                self._ref(block, name, line, kw, target)
        elif kw == "AUTO-DEPS":
            if rest:
                raise DirectiveError("AUTO-DEPS takes no arguments", hint="write just AUTO-DEPS")
            if not block.auto_deps:
                block.auto_deps, block.auto_deps_line = True, no
        elif kw == "COPY":
            copy = d.copy(rest, no)
            if copy.from_block is not None:
                self._ref(block, copy.from_block, line, "COPY FROM=", block.bneeds)
            block.instructions.append(copy)
        else:
            made = _SIMPLE[kw](rest, no)
            block.instructions.extend(made if isinstance(made, list) else [made])

    def _ref(self, block: Block, name: str, line: Line, how: str, target: list[str]) -> None:
        if name not in target:
            target.append(name)
        self.refs.append((block, name, line, how))

    # ---- legacy ---------------------------------------------------------------------

    def _legacy_line(self, line: Line) -> None:
        kw = LEGACY_ALIASES.get(line.kw)
        if kw is None:
            if line.kw in ("BLOCK", "NEED", "BNEED"):
                raise DirectiveError(
                    f"{line.kw} is not part of the legacy format",
                    hint=f"this file is read as the legacy format because line "
                         f"{self.origin.no} starts with {self.origin.keyword}; "
                         "use BASE <image> instead to write blocks")
            raise self._unknown(line, tuple(LEGACY_ALIASES), {})
        if kw in ("BASE", "START", "HEALTHCHECK"):
            self._top_level(kw, line)
            return
        if not self.current.instructions and not self.current.auto_deps:
            self.current.line = line.no
        if kw in ("INSTALL-DEPS", "GRAB-ALL", "CLONE-REPO"):
            self._legacy_special(kw, line)
        else:
            self._instruction(kw, line)

    def _legacy_special(self, kw: str, line: Line) -> None:
        block = self.current
        if kw == "INSTALL-DEPS":
            if not block.auto_deps:
                block.auto_deps, block.auto_deps_line = True, line.no
        elif kw == "GRAB-ALL":
            block.instructions.append(Copy(sources=(".",), dest="/app", line=line.no))
        else:
            url = d.require(line.rest, line.kw, f"{line.kw} <url>")
            block.instructions.append(Run(command=f"git clone {url}", line=line.no))

    # ---- whole-file checks ----------------------------------------------------------

    def finish(self) -> MiniBoxFile:
        if self.base is None:
            raise ParseError("the file has no BASE line", path=self.path, line_no=0,
                             hint="add BASE <image> at the top, e.g. BASE alpine:3.20")
        if self.legacy and self.blocks[0].line == 0:
            self.blocks[0].line = self.base_line.no
        self._check_refs()
        self._check_cycles()
        return MiniBoxFile(
            path=self.path, base=self.base, base_line=self.base_line.no, blocks=self.blocks,
            start=self.start, start_line=self.start_line.no if self.start_line else 0,
            healthcheck=self.health, legacy=self.legacy)

    def _check_refs(self) -> None:
        for block, name, line, how in self.refs:
            if name == block.name:
                raise _error(self.path, line, f"block '{name}' cannot depend on itself "
                             f"({how} {name})", hint="remove this line")
            if name not in self.by_name:
                hint = graph.did_you_mean(name, self.by_name) or (
                    "blocks in this file: " + ", ".join(self.by_name))
                raise _error(self.path, line, f"{how} names an unknown block '{name}'", hint=hint)

    def _check_cycles(self) -> None:
        cycle = graph.find_cycle([b.name for b in self.blocks], lambda n: self.by_name[n].deps)
        if cycle is None:
            return
        src, dst = cycle[0], cycle[1]
        line = next(ln for b, n, ln, _ in self.refs if b.name == src and n == dst)
        raise _error(self.path, line, "dependency cycle: " + " -> ".join(cycle),
                     hint="blocks cannot depend on each other in a loop; remove one of the "
                          "NEED/BNEED/COPY FROM= edges")


_SIMPLE = {
    "RUN": d.run, "WORKDIR": d.workdir, "ENV": d.env, "PKG": d.pkg, "PORT": d.ports,
    "USER": d.user, "VOLUME": d.volumes,
}
