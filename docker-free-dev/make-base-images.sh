#!/usr/bin/env bash
# Make the offline base images MiniBox's examples, tests and benchmarks build on, from
# Debian's packages only (no registry, no internet beyond Debian's mirror):
#   busybox.tar.gz         a 2 MB rootfs: busybox-static with its applets, /etc/passwd, /etc/group
#   debian-bookworm.tar.zst   Debian 12 minbase by debootstrap (about 200 MB unpacked)
# They are cached OUTSIDE the repository, in $MINIBOX_DEV_CACHE (default
# /var/cache/minibox-dev), and rebuilt only when missing.  Usage:
#   docker-free-dev/make-base-images.sh [busybox] [debian]     (default: both)
set -euo pipefail

CACHE=${MINIBOX_DEV_CACHE:-/var/cache/minibox-dev}
mkdir -p "$CACHE"
want=${*:-busybox debian}

make_busybox() {
  local out="$CACHE/busybox.tar.gz"
  [ -s "$out" ] && { echo "busybox base: $out (cached)"; return; }
  local work; work=$(mktemp -d /var/tmp/mbx-busybox.XXXXXX)
  trap 'rm -rf "$work"' RETURN
  local bb=/bin/busybox
  if ! "$bb" --help >/dev/null 2>&1 || ! file -b "$bb" 2>/dev/null | grep -q static; then
    (cd "$work" && apt-get download busybox-static >/dev/null && dpkg -x busybox-static_*.deb pkg)
    bb="$work/pkg/bin/busybox"
  fi
  local root="$work/rootfs"
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,var,home/app,proc,sys,dev}
  chmod 1777 "$root/tmp"
  cp "$bb" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list-full); do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -sf /bin/busybox "$root/$applet"
  done
  cat > "$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
  cat > "$root/etc/group" <<'G'
root:x:0:
daemon:x:1:
app:x:1000:
nogroup:x:65534:
G
  chown 1000:1000 "$root/home/app"
  echo "minibox-busybox" > "$root/etc/hostname"
  tar --numeric-owner -C "$root" -czf "$out.tmp" .
  mv "$out.tmp" "$out"
  echo "busybox base: $out"
}

make_debian() {
  local out="$CACHE/debian-bookworm.tar.zst"
  [ -s "$out" ] && { echo "debian base: $out (cached)"; return; }
  local mirror
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  local work; work=$(mktemp -d /var/tmp/mbx-debian.XXXXXX)
  trap 'rm -rf "$work"' RETURN
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/log" 2>&1 \
    || { tail -20 "$work/log"; echo "debootstrap failed" >&2; return 1; }
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar --numeric-owner --xattrs -C "$work/rootfs" -cf - . | zstd -q -T0 -3 -o "$out.tmp"
  mv "$out.tmp" "$out"
  echo "debian base: $out"
}

for w in $want; do
  case "$w" in
    busybox) make_busybox ;;
    debian) make_debian ;;
    *) echo "unknown base '$w' (expected busybox or debian)" >&2; exit 2 ;;
  esac
done
