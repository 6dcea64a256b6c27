"""The README's MiniBox example and the shipped examples parse."""

from __future__ import annotations

import re
from pathlib import Path

from minibox import graph
from minibox.mbfile.parser import parse

REPO = Path(__file__).resolve().parent.parent


def test_readme_example_parses_into_three_waves():
    text = (REPO / "README.md").read_text()
    block = re.search(r"## A MiniBox file\n\n```\n(.*?)```", text, re.S).group(1)
    mb = parse(block, "README.md")
    assert [[b.name for b in w] for w in graph.waves(mb)] == \
        [["tools", "site"], ["app"], ["config"]]


def test_shipped_examples_parse():
    files = sorted((REPO / "docker-free-dev/examples").glob("*/MiniBox"))
    assert len(files) >= 3
    for f in files:
        parse(f.read_text(), str(f))
