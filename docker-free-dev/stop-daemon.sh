#!/usr/bin/env bash
# Stop the miniboxd that start-daemon.sh started (by its recorded PID).
set -euo pipefail
pidfile=${MINIBOX_DATA_ROOT:-/var/lib/minibox}/run/miniboxd.pid
[ -s "$pidfile" ] || { echo "no miniboxd pid file"; exit 0; }
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
rm -f "$pidfile"
echo "miniboxd stopped"
