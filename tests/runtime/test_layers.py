"""A container rootfs of 128 image layers (plus the init layer) in one overlay mount: the
lower dirs are named by short links in DataRoot/l, as Docker's overlay2 does."""

from __future__ import annotations

import os

from tests.runtime.test_compiled_start import _output
from tests.runtime.volume_image import import_layered_image


def test_an_image_of_128_layers_runs(direct_runtime):
    rt = direct_runtime
    layers = [[("layers", "dir", 0o755, 0, 0, None),
               (f"layers/{i}", "file", 0o644, 0, 0, b""),
               ("layers/top", "file", 0o644, 0, 0, f"{i}\n".encode())] for i in range(127)]
    import_layered_image(rt.data_root, "bb-deep", layers)      # busybox + 127 = 128 layers
    st = rt.run({"image": "bb-deep", "network": "none",
                 "command": ["sh", "-c", "ls /layers | grep -c '^[0-9]'; cat /layers/top"]})
    code, out = _output(rt, st)
    assert code == 0, out
    assert out.split() == ["127", "126"]
    links = os.listdir(rt.data_root / "l")
    assert len(links) >= 129 and all(len(n) == 26 for n in links)
