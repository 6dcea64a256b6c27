#!/usr/bin/env bash
# Install everything MiniBox needs on a Debian 12 machine, as root:
#  - Debian packages: redis-server, tini, busybox-static, iproute2, iptables, debootstrap,
#    zstd, and the peers used by tests and benchmarks (podman, buildah, skopeo, umoci,
#    runc, docker-registry);
#  - a virtualenv with the minibox package and its pinned dependencies ($MINIBOX_VENV,
#    default: .venv in the checkout), with minibox, miniboxd and minibox-worker linked
#    into /usr/local/bin;
#  - the offline base images (docker-free-dev/make-base-images.sh, cached outside the repo).
# Safe to run again: each step is skipped when already done.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${MINIBOX_VENV:-$here/.venv}
[ "$(id -u)" = 0 ] || { echo "install.sh must run as root" >&2; exit 1; }

# gcc + libc6-dev build the runtime's small C container monitor (a Python one is the
# fallback); redis-tools gives redis-cli for the tests.
pkgs="redis-server redis-tools tini busybox-static iproute2 iptables debootstrap zstd file
      gcc libc6-dev python3 python3-venv podman buildah skopeo umoci runc crun
      docker-registry apache2-utils"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
# The packaged services are not ours: MiniBox starts its own redis and registry.
for svc in redis-server docker-registry; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q "$svc" 2>/dev/null; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done

PY=${MINIBOX_PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.11 python3; do command -v "$c" >/dev/null && { PY=$(command -v "$c"); break; }; done
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# compat mode puts the checkout on sys.path instead of an import hook: faster CLI start.
"$VENV/bin/python" -m pip install -q -e "$here[test]" --config-settings editable_mode=compat
# an editable install compiles nothing: without this, each CLI run under
# PYTHONDONTWRITEBYTECODE (set in many CI and container environments) recompiles the modules
# it imports (~20-50 ms for `minibox build`); stale files are recompiled by mtime as usual
"$VENV/bin/python" -m compileall -q -j 0 "$here/minibox" >/dev/null
for exe in minibox miniboxd minibox-worker; do
  ln -sf "$VENV/bin/$exe" "/usr/local/bin/$exe"
done

"$here/docker-free-dev/make-base-images.sh" busybox debian
echo "MiniBox installed: $(command -v minibox) ($("$VENV/bin/python" -c 'import minibox; print(minibox.__version__)'))"
