"""Deep layer stacks: the sandbox names its lower dirs by short links (minibox.overlay), so
at least 128 layers fit in one overlay mount, for the block's root and for COPY FROM views."""

from __future__ import annotations

from pathlib import Path

import pytest

from minibox import overlay
from minibox.errors import UserError
from tests.sandbox.conftest import run_step


def layer_dirs(base: Path, n: int) -> list[str]:
    """``n`` small layers with long paths (like DataRoot/layers/<64 hex>), top-most first;
    layer i holds /layers/i and its own version of /layers/top."""
    out = []
    for i in range(n):
        d = base / "layers" / (f"{i:03d}" + "0" * 61)
        (d / "layers").mkdir(parents=True)
        (d / "layers" / str(i)).write_text("")
        (d / "layers" / "top").write_text(f"{i}\n")
        out.append(str(d))
    return out[::-1]


def test_128_layers_and_more_stack_in_one_mount(make_box, busybox_lower, tmp_path):
    layers = layer_dirs(tmp_path, 130)
    assert len(":".join(layers)) > 3 * overlay.PAGE       # would never fit as plain paths
    b = make_box(layers + [busybox_lower])
    r = b.run([run_step("ls /layers | grep -c '^[0-9]'; cat /layers/top; echo new > /x")])
    assert r.text.split() == ["130", "129"]                # every layer; the top one wins
    assert b.upper_entries() == ["x"]


def test_copy_from_a_deep_block(make_box, busybox_lower, tmp_path):
    layers = layer_dirs(tmp_path, 128)
    b = make_box([busybox_lower])
    b.run([{"op": "copy", "line": 3, "sources": ["/layers"], "dest": "/from", "from": "deep",
            "workdir": "/"}], copy_from={"deep": layers})
    assert len(list((b.upper / "from").iterdir())) == 129


def test_too_many_layers_for_a_page_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match=r"^200 layers do not fit in one overlay mount"):
        overlay.options(str(tmp_path / "l"), [f"/layer/{i}" for i in range(200)])


def test_link_names_are_short_stable_and_repaired(tmp_path):
    links = str(tmp_path / "l")
    rel = overlay.link(links, "/some/layer")
    assert rel == overlay.link(links, "/some/layer") and len(rel) == 2 + 26
    path = tmp_path / rel
    path.unlink()
    path.symlink_to("/elsewhere")
    assert overlay.link(links, "/some/layer") == rel
    assert path.readlink() == Path("/some/layer")
