"""The Sink seam: where batches of normalized rows become durable, with their position.

A sink prepares the target, claims the position it keeps (fencing any older writer),
formats what can be formatted outside the I/O thread, and writes a batch: rows, rejected
rows and the new position in one target transaction. What `write` returns is durable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from streamer.normalize.records import Rejection
from streamer.sources.batching import Batch

if TYPE_CHECKING:
    from streamer.sink.checkpoints import Checkpoints


class Written(NamedTuple):
    """What a committed batch left out of the target tables."""

    refused: list[Rejection]  # canonical rows the target refused, stored as rejections
    skipped: frozenset[str]  # source ids the target already held (guarded writes)


NOTHING_LEFT_OUT = Written([], frozenset())


@dataclass(frozen=True)
class WriteResult:
    """A committed batch, for accounting and for telling the source what is durable."""

    batch: Batch
    refused: list[Rejection]
    duration_s: float
    committed_at: float  # Unix time of the target commit
    skipped: frozenset[str] = field(default_factory=frozenset)


class Sink(Protocol):
    checkpoints: Checkpoints  # the stored position of the stream, poll or copy

    def prepare(self) -> list[str]:
        """Create what the target lacks; one line per thing done."""
        ...

    def claim(self, initial_lsn: int) -> int:
        """Own the position (fencing older writers); returns it, created if missing."""
        ...

    def encode(self, batch: Batch) -> None:
        """Format the batch for the write, outside the I/O thread (may do nothing)."""
        ...

    def forget_parked(self) -> None:
        """Start of a slot session: drop rows earlier sessions parked for in-progress
        streamed transactions (the server streams those again)."""
        ...

    def write(self, batch: Batch, flowing: Callable[[], None] = ...) -> Written:
        """Commit the batch and its position in one target transaction. `flowing` is
        called when its rows start to stream to the target (from then on the write
        mostly waits on the target); a write without rows may never call it."""
        ...

    def close(self) -> None: ...
