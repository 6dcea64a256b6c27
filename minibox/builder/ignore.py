""".miniboxignore: which files of a build context are not sent to the daemon.

The semantics are those of ``.dockerignore``:

* one pattern per line; blank lines and lines starting with ``#`` are skipped, and
  surrounding whitespace is trimmed;
* every pattern is relative to the context root (a leading ``/`` changes nothing) and is
  matched against the whole relative path: ``*.log`` matches ``a.log`` but not ``d/a.log``
  (write ``**/*.log`` for that);
* ``*`` and ``?`` never match ``/``; ``**`` matches any number of directories, zero
  included; ``[a-z]``/``[!a-z]``/``[^a-z]`` are character classes; ``\\`` escapes;
* a pattern that matches a directory also matches everything below it;
* a trailing ``/`` makes a pattern match directories only;
* ``!pattern`` re-includes what it matches; the last matching line wins.

The MiniBox file and ``.miniboxignore`` are not excluded by default (Docker sends them too).
Stdlib only: the CLI imports this for every build.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass

from minibox.builder.contextfile import read_context_file
from minibox.errors import ParseError, UserError

IGNORE_FILE = ".miniboxignore"
MAX_IGNORE_BYTES = 16 << 20


@dataclass(frozen=True)
class Pattern:
    text: str            # as written (for messages)
    line: int
    negate: bool
    dir_only: bool
    segments: tuple[str, ...]
    exact: re.Pattern    # the path itself
    below: re.Pattern    # a path below a match

    def matches(self, rel: str, is_dir: bool) -> bool:
        if self.below.match(rel):
            return True
        return (is_dir or not self.dir_only) and self.exact.match(rel) is not None


def translate(pattern: str) -> str:
    """A cleaned pattern as a regular expression (without anchors).  Raises ValueError."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            cls, i = _char_class(pattern, i)
            out.append(cls)
        elif c == "\\":
            if i >= n:
                raise ValueError("a pattern cannot end with a backslash")
            out.append(re.escape(pattern[i]))
            i += 1
        else:
            out.append(re.escape(c))
    return "".join(out)


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """Translate the class starting after ``[`` at ``i``; return it and the index after ``]``."""
    negate = i < len(pattern) and pattern[i] in "!^"
    j = i + 1 if negate else i
    chars: list[str] = []           # a char, or an escaped char already as regex
    while j < len(pattern) and (pattern[j] != "]" or not chars):
        if pattern[j] == "\\" and j + 1 < len(pattern):
            j += 1
            chars.append(re.escape(pattern[j]))
        else:
            chars.append(pattern[j])
        j += 1
    if j >= len(pattern):
        raise ValueError("unterminated character class '['")
    last = len(chars) - 1
    body = "".join("-" if c == "-" and 0 < k < last else c if len(c) > 1 else re.escape(c)
                   for k, c in enumerate(chars))
    return "(?!/)[" + ("^" if negate else "") + body + "]", j + 1


def compile_pattern(text: str, line: int = 0) -> Pattern | None:
    """One .miniboxignore line as a Pattern, or None for a blank line or comment.
    Raises ValueError for a bad pattern."""
    text = text.strip()
    if not text or text.startswith("#"):
        return None
    negate = text.startswith("!")
    body = text[1:].strip() if negate else text
    if not body:
        raise ValueError("'!' needs a pattern after it")
    dir_only = body.endswith("/")
    body = posixpath.normpath(body).lstrip("/")
    if body in ("", "."):
        return None
    rx = translate(body)
    return Pattern(text=text, line=line, negate=negate, dir_only=dir_only,
                   segments=tuple(body.split("/")), exact=re.compile(rx + r"\Z", re.S),
                   below=re.compile(rx + "/", re.S))


class IgnoreMatcher:
    """Decides which context paths (relative, ``/``-separated) are left out."""

    def __init__(self, patterns: list[Pattern] | None = None):
        self.patterns = list(patterns or [])
        self._negations = [p for p in self.patterns if p.negate]

    @classmethod
    def from_lines(cls, lines: list[str], source: str = IGNORE_FILE) -> "IgnoreMatcher":
        patterns = []
        for no, text in enumerate(lines, 1):
            try:
                pat = compile_pattern(text, no)
            except (ValueError, re.error) as exc:
                shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
                raise ParseError(f"bad pattern: {exc}", path=source, line_no=no, line_text=shown,
                                 hint=".miniboxignore uses .dockerignore patterns") from None
            if pat is not None:
                patterns.append(pat)
        return cls(patterns)

    @classmethod
    def from_file(cls, context_dir: str) -> "IgnoreMatcher":
        """The matcher for ``context_dir``'s .miniboxignore (matches nothing if there is none)."""
        path = os.path.join(context_dir, IGNORE_FILE)
        try:
            data = read_context_file(context_dir, IGNORE_FILE, IGNORE_FILE, MAX_IGNORE_BYTES)
        except (FileNotFoundError, NotADirectoryError):
            return cls()
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
        text = data.decode("utf-8", "surrogateescape")
        return cls.from_lines(text.splitlines(), source=path)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def deciding(self, rel: str, is_dir: bool) -> Pattern | None:
        """The last pattern that matches ``rel`` (or a parent of it), or None."""
        rel = rel.strip("/")
        for pat in reversed(self.patterns):
            if pat.matches(rel, is_dir):
                return pat
        return None

    def ignored(self, rel: str, is_dir: bool = False) -> bool:
        pat = self.deciding(rel, is_dir) if self.patterns else None
        return pat is not None and not pat.negate

    def can_skip_dir(self, rel: str) -> bool:
        """True when directory ``rel`` is ignored and nothing below it can be re-included, so
        a walk need not enter it."""
        if not self.ignored(rel, True):
            return False
        parts = rel.strip("/").split("/")
        return not any(_may_match_below(p.segments, parts) for p in self._negations)


def _may_match_below(segments: tuple[str, ...], parts: list[str]) -> bool:
    """Could a pattern with these segments match ``parts`` itself or a path below it?"""
    for i, part in enumerate(parts):
        if i >= len(segments):
            return True           # it matches an ancestor: everything below follows it
        seg = segments[i]
        if "**" in seg:
            return True
        if not re.match(translate(seg) + r"\Z", part, re.S):
            return False
    return True
