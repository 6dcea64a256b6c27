"""Reading a MiniBox file into logical lines.

This is the lexer half of the parser: it turns the text into ``Line`` records and knows
nothing about directives.  It rejects text that is not clean UTF-8 (a NUL byte, a lone
surrogate), drops a leading BOM, accepts CRLF, skips blank lines and ``#`` comments (a ``#``
that starts a line, at any indentation), and joins ``\\``-continued lines with a single
space.  A ``#`` later in a line is left to the parser (``strip_comment``: a trailing comment
after the word arguments of BASE, BLOCK, NEED ...; ordinary text in RUN and ENV).  A
continued instruction keeps the number and the text of its first physical line, so errors
point there.  Comment lines inside a continuation are skipped (like a Dockerfile); a blank
line or the end of the file ends it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from minibox.errors import ParseError

_SPLIT = re.compile(r"(\S+)(?:\s+(.*))?\Z", re.S)
_TRAILING_COMMENT = re.compile(r"(?:\A|\s+)#.*\Z", re.S)
MAX_LINE = 65536        # characters in one instruction, continuations joined


@dataclass(frozen=True)
class Line:
    no: int            # first physical line, 1-based
    text: str          # the instruction: no indentation, no trailing blanks, continuations joined
    indented: bool     # the first physical line starts with whitespace
    raw: str           # the first physical line as written (for error display)
    keyword: str       # first token as written
    rest: str          # everything after the keyword and the whitespace after it, verbatim

    @property
    def kw(self) -> str:
        """The keyword, upper-cased; non-ASCII words never match a keyword."""
        return self.keyword.upper() if self.keyword.isascii() else ""


def strip_comment(rest: str) -> str:
    """``rest`` without a trailing comment: from the first ``#`` that starts a word."""
    return _TRAILING_COMMENT.sub("", rest, count=1)


def show(text: str, limit: int = 200) -> str:
    """``text`` made safe to print: control characters escaped, long text cut."""
    out = "".join(c if c.isprintable() or c == "\t" else _escape(c) for c in text)
    return out if len(out) <= limit else out[:limit] + "..."


def _escape(c: str) -> str:
    return c.encode("unicode_escape", "backslashreplace").decode("ascii")


def check_text(text: str, path: str) -> None:
    """Refuse NUL bytes and text that cannot be UTF-8 (lone surrogates from a bad decode)."""
    nul = text.find("\x00")
    if nul >= 0:
        _bad_char(text, nul, path, "the file contains a NUL byte; a MiniBox file must be text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        _bad_char(text, exc.start, path, "the file is not valid UTF-8 text")


def _bad_char(text: str, index: int, path: str, message: str) -> None:
    line_no = text.count("\n", 0, index) + 1
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", index)
    line = text[start:end if end >= 0 else len(text)]
    raise ParseError(message, path=path, line_no=line_no, line_text=show(line),
                     hint="save the file as UTF-8 text")


def read_lines(text: str) -> list[Line]:
    """Split checked text into logical lines (comments and blank lines dropped)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    physical = text.split("\n")
    out: list[Line] = []
    i = 0
    while i < len(physical):
        raw = physical[i].rstrip("\r")
        stripped = raw.strip()
        i += 1
        if not stripped or stripped.startswith("#"):
            continue
        first_no = i
        parts = [stripped]
        while parts[-1].endswith("\\"):
            parts[-1] = parts[-1][:-1].rstrip()
            i = _next_part(physical, i, parts)
        joined = " ".join(p for p in parts if p)
        if not joined:
            continue
        m = _SPLIT.match(joined)
        keyword, rest = m.group(1), m.group(2) or ""
        out.append(Line(no=first_no, text=joined, indented=raw[0].isspace(), raw=raw,
                        keyword=keyword, rest=rest))
    return out


def _next_part(physical: list[str], i: int, parts: list[str]) -> int:
    """Append the next continuation line to ``parts``; return the index after it."""
    while i < len(physical):
        nxt = physical[i].strip()
        if nxt.startswith("#"):
            i += 1
            continue
        if nxt:
            parts.append(nxt)
            return i + 1
        return i          # a blank line ends the continuation (left for the main loop)
    return i
