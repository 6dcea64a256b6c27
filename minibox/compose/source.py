"""Reading a compose file: YAML composed into nodes (yaml's node API), turned into plain
values while remembering the line of every field path (``services.web.ports[1]``), so each
later error can name the file, the line and the field."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from minibox.errors import ParseError


@dataclass
class Source:
    path: str                       # as the user named it (shown in errors)
    text: str
    lines: dict[str, int] = field(default_factory=dict)    # field path -> 1-based line

    def line_of(self, where: str) -> int:
        """The line of ``where``, or of its closest parent that has one."""
        while where:
            if where in self.lines:
                return self.lines[where]
            where = _parent(where)
        return 0

    def error(self, where: str, message: str, hint: str | None = None) -> ParseError:
        """``FILE:LINE: FIELD.PATH: message``, with the line shown."""
        line = self.line_of(where)
        text = self.text.splitlines()[line - 1] if 0 < line <= len(self.text.splitlines()) else ""
        return ParseError(f"{where}: {message}" if where else message, path=self.path,
                          line_no=line, line_text=text, hint=hint)


def _parent(where: str) -> str:
    if where.endswith("]"):
        return where[:where.rindex("[")]
    return where.rpartition(".")[0]


def child(where: str, key) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else str(key)


def load(path: str, text: str) -> tuple[object, Source]:
    """The document's value and its Source (lines by field path).  YAML errors name the
    line; duplicate keys are errors (YAML allows them, silently keeping the last)."""
    src = Source(path, text)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 0
        lines = text.splitlines()
        raise ParseError(f"invalid YAML: {e.problem or e.context}", path=path, line_no=line,
                         line_text=lines[line - 1] if 0 < line <= len(lines) else "") from None
    except yaml.YAMLError as e:
        raise ParseError(f"invalid YAML: {e}", path=path, line_no=0) from None
    if node is None:
        raise ParseError("the file is empty", path=path, line_no=0,
                         hint="a compose file needs a `services:` section")
    return _value(node, "", src, yaml.constructor.SafeConstructor()), src


def _value(node, where: str, src: Source, ctor):
    src.lines.setdefault(where, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        ctor.flatten_mapping(node)             # << merge keys
        out: dict = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise src.error(where, "a mapping key must be a plain value")
            key = ctor.construct_object(k)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise src.error(where, f"invalid key {k.value!r}")
            key = str(key) if not isinstance(key, bool) else k.value
            sub = child(where, key)
            if key in out:
                src.lines[sub] = k.start_mark.line + 1
                raise src.error(sub, "is given twice", hint="keep one of them")
            src.lines[sub] = k.start_mark.line + 1
            out[key] = _value(v, sub, src, ctor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_value(v, child(where, i), src, ctor) for i, v in enumerate(node.value)]
    try:
        return ctor.construct_object(node)
    except yaml.constructor.ConstructorError as e:
        raise src.error(where, f"invalid value: {e.problem}") from None
