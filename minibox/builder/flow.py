"""Which blocks of a build may start now: the block graph run as data flow.

A block is ready as soon as every block it NEEDs or BNEEDs is done, whatever wave it is in:
a slow block holds back only its own dependents, not the rest of the next wave.  Waves stay
what the progress shows (``graph.waves``: a block's level in the graph): a wave starts with
its first block to become ready and is done with its last block to finish, so two waves may
overlap.  Pure bookkeeping: no I/O; the scheduler emits the wave events it returns.
"""

from __future__ import annotations

from collections import deque

from minibox.mbfile.model import Block
from minibox.wire.events import Event, WaveDone, WaveStart


class Flow:
    def __init__(self, waves: list[list[Block]]):
        self.waves = waves
        self.wave_of = {b.name: i for i, wave in enumerate(waves, 1) for b in wave}
        self.left = {i: len(wave) for i, wave in enumerate(waves, 1)}
        self.counts = {i: {"cached": 0, "built": 0} for i in self.left}
        self.missing: dict[str, int] = {}
        self.users: dict[str, list[Block]] = {n: [] for n in self.wave_of}
        for wave in waves:
            for b in wave:
                deps = set(b.deps)
                self.missing[b.name] = len(deps)
                for d in deps:
                    self.users[d].append(b)
        self.ready: deque[Block] = deque(b for wave in waves for b in wave
                                         if not self.missing[b.name])
        self.started = 0          # waves whose WaveStart was given

    def next(self) -> tuple[Block | None, list[Event]]:
        """The next ready block (None when there is none) and the wave starts due before it."""
        if not self.ready:
            return None, []
        block = self.ready.popleft()
        events: list[Event] = []
        while self.started < self.wave_of[block.name]:
            self.started += 1
            events.append(WaveStart(wave=self.started,
                                    blocks=[b.name for b in self.waves[self.started - 1]]))
        return block, events

    def finished(self, block: Block, cached: bool) -> list[Event]:
        """Record ``block`` as done: its dependents whose last dependency it was are ready;
        the WaveDone of its wave when it was the wave's last block."""
        for user in self.users[block.name]:
            self.missing[user.name] -= 1
            if not self.missing[user.name]:
                self.ready.append(user)
        wave = self.wave_of[block.name]
        self.counts[wave]["cached" if cached else "built"] += 1
        self.left[wave] -= 1
        if self.left[wave]:
            return []
        return [WaveDone(wave=wave, **self.counts[wave])]
