#!/usr/bin/env bash
# Import the offline base rootfs archives as images: `busybox` and `debian:bookworm`.
# (A MiniBox file can name a local archive in its context directly; importing once lets
# every project say `BASE busybox`.)
set -euo pipefail
CACHE=${MINIBOX_DEV_CACHE:-/var/cache/minibox-dev}
import() {  # import NAME ARCHIVE
  local ctx; ctx=$(mktemp -d /var/tmp/mbx-import.XXXXXX)
  trap 'rm -rf "$ctx"' RETURN
  ln "$2" "$ctx/$(basename "$2")" 2>/dev/null || cp "$2" "$ctx/"
  printf 'BASE %s\n' "$(basename "$2")" > "$ctx/MiniBox"
  minibox build -q -t "$1" "$ctx" >/dev/null
  echo "imported $1 from $2"
}
[ -s "$CACHE/busybox.tar.gz" ] && import busybox "$CACHE/busybox.tar.gz"
[ -s "$CACHE/debian-bookworm.tar.zst" ] && import debian:bookworm "$CACHE/debian-bookworm.tar.zst"
exit 0
