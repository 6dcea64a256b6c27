#!/usr/bin/env bash
# The README's first command: install everything, start miniboxd on its embedded default
# (private redis, build workers, runtime worker), import the offline base images as
# `busybox` and `debian:bookworm`, and build the example project.
# The daemon keeps running afterwards; its log is $MINIBOX_DATA_ROOT/run/miniboxd.log.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/docker-free-dev/install.sh"
export MINIBOX_DATA_ROOT=${MINIBOX_DATA_ROOT:-/var/lib/minibox}
"$here/docker-free-dev/start-daemon.sh"
"$here/docker-free-dev/import-bases.sh"
cd "$here/docker-free-dev/examples/webapp"
minibox build -t webapp .
minibox images
echo
echo "Built. Try:  minibox run --rm webapp cat /www/index.html"
