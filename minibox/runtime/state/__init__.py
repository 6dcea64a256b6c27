"""A container's record: ``records`` (state.json, config.json, exit.json, health.json under
DataRoot/containers/<id>/, each with one writer, and the name links), ``status`` (the
status enum and its allowed transitions) and ``ids`` (ids and random names).

The records' names are re-exported here: ``from minibox.runtime.state import StateStore``.
"""

from minibox.runtime.state.records import (HEX, Record, StateStore, alive, proc_start_time,
                                           read_json, sync_later)

__all__ = ["HEX", "Record", "StateStore", "alive", "ids", "proc_start_time", "read_json",
           "records", "status", "sync_later"]
