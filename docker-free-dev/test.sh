#!/usr/bin/env bash
# The README's second command: run the whole test suite (as root, after install.sh).
# Extra arguments go to pytest, e.g. `docker-free-dev/test.sh tests/farm -k cache`.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${MINIBOX_VENV:-$here/.venv}
cd "$here"
"$here/docker-free-dev/make-base-images.sh" busybox debian >/dev/null
"$VENV/bin/python" -m pytest -p no:cacheprovider -q -rs "${@:-tests}"
rc=$?
[ $rc -eq 5 ] && { echo "no tests were collected" >&2; exit 1; }
exit $rc
