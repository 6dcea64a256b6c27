"""A container's status: a small enum and the transitions allowed between its values.

    created --start--> running --exit--> exited --start--> running ...
       \\                  \\                 \\
        +------remove------+-----remove------+--> removing --> (gone; "removed" to readers)

``running -> removing`` only with force (the container is killed first).  Every transition
the runtime worker makes goes through ``check`` and is written to state.json by the verb
before it returns (create.py, start.py, remove.py); an illegal one is an ``IllegalTransition`` (a
Conflict: "container web is running", with what to do).  The exit is observed by the
container's monitor (exit.json, its only writer) and persisted as ``exited`` by the worker
as soon as that monitor exits (exits.py), or by reconcile after a restart; until
then readers fold exit.json in (``Record.effective``).  ``removing`` is persisted before a
removal starts, so a removal cut short by a crash is finished by ``reconcile``.
"""

from __future__ import annotations

from enum import Enum

from minibox.errors import Conflict

__all__ = ["FORCED", "IllegalTransition", "Status", "TRANSITIONS", "check", "of"]


class Status(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    REMOVING = "removing"
    REMOVED = "removed"       # only ever seen by readers: the record is gone (a tombstone)

    def __str__(self) -> str:
        return self.value


TRANSITIONS = {          # status -> the statuses it may become
    Status.CREATED: frozenset({Status.RUNNING, Status.REMOVING}),
    Status.RUNNING: frozenset({Status.EXITED, Status.REMOVING}),
    Status.EXITED: frozenset({Status.RUNNING, Status.REMOVING}),
    Status.REMOVING: frozenset({Status.REMOVED}),
    Status.REMOVED: frozenset(),
}
# allowed only when forced (rm -f kills the container first)
FORCED = frozenset({(Status.RUNNING, Status.REMOVING)})

# (current, wanted) -> (what is wrong, what to do)
_WORDING = {
    (Status.RUNNING, Status.RUNNING): ("is already running", None),
    (Status.RUNNING, Status.REMOVING): ("is running", "stop it first, or use rm -f"),
    (Status.REMOVING, Status.RUNNING): ("is being removed", None),
}


class IllegalTransition(Conflict):
    """A verb that the container's status does not allow now."""

    def __init__(self, name: str, current: Status, wanted: Status):
        what, hint = _WORDING.get((current, wanted),
                                  (f"is {current}: it cannot become {wanted}", None))
        super().__init__(f"container {name} {what}", hint=hint)
        self.current, self.wanted = current, wanted


def of(value) -> Status:
    """The Status of a stored value (an unknown one, from a newer version: exited)."""
    try:
        return Status(value)
    except ValueError:
        return Status.EXITED


def check(name: str, current, wanted: Status, force: bool = False) -> Status:
    """``wanted`` if the transition from ``current`` is allowed (some only with ``force``);
    IllegalTransition if not."""
    cur = of(current)
    if wanted not in TRANSITIONS[cur] or ((cur, wanted) in FORCED and not force):
        raise IllegalTransition(name, cur, wanted)
    return wanted
