"""Liveness and progress shared by the main loop, the HTTP endpoint and the source monitor.

The main loop writes plain attributes (single writer); readers only read them, so no lock
is needed for these independent values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

HEALTHY_LOOP_AGE_S = 30.0


@dataclass
class RunState:
    last_loop: float = field(default_factory=time.monotonic)  # main loop heartbeat
    streaming: bool = False  # replication started and the loop is running
    source_connected: bool = False
    target_connected: bool = False
    checkpoint_lsn: int = 0  # durable target checkpoint
    oldest_pending_commit_us: int | None = None  # oldest received, not yet applied commit
    caught_up: bool = False  # drained, nothing pending: applied all the server sent
    caught_up_at: float = field(default_factory=time.time)  # wall time it last was

    def beat(self) -> None:
        self.last_loop = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self.last_loop < HEALTHY_LOOP_AGE_S

    def ready(self) -> bool:
        return self.streaming and self.source_connected and self.target_connected
