"""The MiniBox file: ``parse(text, path) -> MiniBoxFile`` (parser), the model it builds
(model), the line reader (lines) and one function per directive (directives)."""

from minibox.mbfile.model import Block, MiniBoxFile
from minibox.mbfile.parser import parse

__all__ = ["Block", "MiniBoxFile", "parse"]
