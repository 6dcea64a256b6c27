"""A build's RUN steps on a real Debian base: confined like containers, yet setuid tools work
(no_new_privs stays off for builds, as under Docker)."""

from __future__ import annotations

from tests.farm.test_build import unpack_file
from tests.farmkit import write_ctx


def test_su_and_a_setuid_binary_work_in_a_debian_build(farm, debian, ctx):
    mb = ("BASE debian:bookworm\n"
          "BLOCK suid\n"
          "    RUN cp /usr/bin/id /usr/local/bin/suid-id && chmod 4755 /usr/local/bin/suid-id\n"
          "    RUN su -s /bin/sh nobody -c 'id -un; /usr/local/bin/suid-id -u' > /probe\n"
          "    RUN unshare -U true 2>/dev/null && echo userns >> /probe || echo no-userns >> /probe\n")
    write_ctx(ctx, {"MiniBox": mb})
    farm.build(ctx, "deb-suid")
    # su switched to nobody; the setuid copy of id ran with euid 0; no user namespace
    assert unpack_file(farm, "deb-suid", "probe") == "nobody\n0\nno-userns\n"
