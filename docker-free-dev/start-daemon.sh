#!/usr/bin/env bash
# Start miniboxd in the background (unless one already answers) and wait until it is up.
set -euo pipefail
export MINIBOX_DATA_ROOT=${MINIBOX_DATA_ROOT:-/var/lib/minibox}
if minibox ping >/dev/null 2>&1; then echo "miniboxd already running"; exit 0; fi
mkdir -p "$MINIBOX_DATA_ROOT/run"
nohup miniboxd >>"$MINIBOX_DATA_ROOT/run/miniboxd.log" 2>&1 &
echo $! > "$MINIBOX_DATA_ROOT/run/miniboxd.pid"
for _ in $(seq 1 150); do
  minibox ping >/dev/null 2>&1 && { echo "miniboxd up (pid $(cat "$MINIBOX_DATA_ROOT/run/miniboxd.pid"))"; exit 0; }
  sleep 0.1
done
echo "miniboxd did not come up; see $MINIBOX_DATA_ROOT/run/miniboxd.log" >&2
tail -20 "$MINIBOX_DATA_ROOT/run/miniboxd.log" >&2
exit 1
