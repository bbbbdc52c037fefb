"""The Source seam.

A source pushes commit-bounded chunks of source rows into the driver's `BatchBuilder`
(`begin`, `row` for each row, `commit` with the chunk's resumable position), and is told
when a batch is durable. The driver does the rest, the same for every source: normalize,
batch, write through the sink, account, retry.

Positions: the slot stream's are LSNs that become the target checkpoint (`moves_lsn`);
poll, backfill and files keep a cursor text that the sink stores in the same target
transaction as the chunk's rows.
"""

from __future__ import annotations

from typing import Final, Protocol

from streamer.sink.base import Sink, WriteResult
from streamer.sources.batching import BatchBuilder

ZERO_UUID: Final = "00000000-0000-0000-0000-000000000000"  # keyset walks by uuid start here


class Source(Protocol):
    moves_lsn: bool  # commit positions are LSNs that become the checkpoint
    guarded: bool  # may deliver rows the target already holds

    def open(self, sink: Sink, builder: BatchBuilder) -> int:
        """Connect, claim the position through the sink, start reading into `builder`;
        returns the claimed position (an LSN, or 0 for cursor-kept sources)."""
        ...

    def read(self, now: float) -> bool:
        """Push whatever is available into the builder without waiting for more; True
        when drained (nothing more is available right now)."""
        ...

    def finished(self) -> bool:
        """Nothing more will come this run (`--once` reached its end, a copy is done)."""
        ...

    def idle_position(self, durable: int, now: float, ending: bool) -> int | None:
        """A position to record with no rows (the slot's idle WAL advance), or None."""
        ...

    def durable(self, result: WriteResult, now: float) -> None:
        """The sink committed `result.batch`."""
        ...

    def tick(self, now: float, waiting: bool) -> float:
        """Periodic duties (status updates, link timeouts); `waiting`: drained with
        nothing pending. Returns the longest the driver may sleep before the next turn."""
        ...

    def wait_fds(self) -> list[int]:
        """File descriptors that become readable when the source has news."""
        ...

    def close(self) -> None:
        """Close connections; the source may be opened again (a retry)."""
        ...


class CursorSource:
    """Defaults for the sources whose position is a cursor the sink stores with each
    chunk (poll, backfill, files): no LSN to confirm, nothing to advance while idle,
    duplicates possible (so writes are guarded), read by calling `read`, not by waiting
    on a socket. Subclasses override what they do differently."""

    moves_lsn = False
    guarded = True

    def idle_position(self, durable: int, now: float, ending: bool) -> int | None:
        return None

    def durable(self, result: WriteResult, now: float) -> None:
        return None

    def tick(self, now: float, waiting: bool) -> float:
        return 0.0

    def wait_fds(self) -> list[int]:
        return []
