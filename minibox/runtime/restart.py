"""Restart policies (``--restart no|on-failure[:N]|always|unless-stopped``): when to
restart a container that exited, and after how long.

The runtime worker's periodic loop (health_scheduler) asks ``due`` for every exited
container that has a policy, and restarts it (``Runtime.restart_exited``) when it is.
Everything the decision needs is on disk -- the policy in config.json, the exit in
exit.json, the counters and the user's stop in state.json -- so a restart that was pending
when the daemon or the runtime worker went down happens when it comes back, and the
back-off goes on where it was.

Back-off as Docker's: 0.1 s before the first restart, doubling to at most 1 min; a run
that lasted 10 s or more starts the doubling again.  A container the user stopped (stop,
kill) is not restarted until the user starts it; an ``always`` one is also restarted after
a restart of the runtime worker (Docker: "unless manually stopped, or the daemon
restarts"), an ``unless-stopped`` one is not.
"""

from __future__ import annotations

import time

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
RESET_AFTER = 10.0
NONE = {"name": "no", "max_retries": 0}


def policy_of(config: dict | None) -> dict:
    return ((config or {}).get("spec") or {}).get("restart") or NONE


def wants(policy: dict, st: dict) -> bool:
    """Whether the policy restarts this exited container at all (ignoring the back-off)."""
    name = policy.get("name", "no")
    if name == "no" or st.get("status") != "exited" or st.get("stopped_by_user"):
        return False
    if name == "on-failure":
        if st.get("exit_code") == 0:
            return False
        limit = int(policy.get("max_retries") or 0)
        return not limit or int(st.get("restart_count") or 0) < limit
    return True


def streak(st: dict) -> int:
    """Restarts in a row without a run of RESET_AFTER seconds between them."""
    ran = (st.get("finished_at") or 0) - (st.get("started_at") or 0)
    return 0 if ran >= RESET_AFTER else int(st.get("restart_streak") or 0)


def delay(n: int) -> float:
    return min(BACKOFF_START * (2 ** min(n, 20)), BACKOFF_MAX)


def due_at(st: dict) -> float:
    since = st.get("finished_at") or st.get("started_at") or 0
    return since + delay(streak(st))


def due(policy: dict, st: dict, now: float | None = None) -> bool:
    return wants(policy, st) and (time.time() if now is None else now) >= due_at(st)


def next_counters(st: dict) -> dict:
    """The state fields a restart sets."""
    return {"restart_count": int(st.get("restart_count") or 0) + 1,
            "restart_streak": streak(st) + 1}


# what a start by the user resets: the stop is over, on-failure counts from zero again
USER_START = {"stopped_by_user": False, "restart_count": 0, "restart_streak": 0}
