"""The driver loop's decisions, as pure functions of what the loop sees (no I/O, no
clock): when a run is finished, when reading must pause, what to hand the writer, and
when to record the server's WAL end as an idle checkpoint advance."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

IDLE_ADVANCE_INTERVAL_S: Final = 1.0


class Action(Enum):
    WAIT = "wait"  # nothing to hand the writer this turn
    WRITE_BATCH = "write_batch"  # a batch is due
    ADVANCE = "advance"  # nothing in flight: record the idle position
    FINISH = "finish"  # ending and nothing left: the run is over


@dataclass(frozen=True, slots=True)
class Turn:
    """What the loop knows at the end of one turn."""

    ending: bool  # finished or asked to stop
    writer_busy: bool
    batch_ready: bool
    builder_empty: bool
    idle_position: int | None  # position the source could record without rows


def once_finished(
    stop_lsn: int | None,
    reached_end: bool,
    keepalive_end: int,
    in_transaction: bool,
    skipping: bool,
) -> bool:
    """`--once` is done when a transaction at or past the stop position began, or when
    the server's WAL end, seen outside any transaction, reached it."""
    if stop_lsn is None:
        return False
    return reached_end or (keepalive_end >= stop_lsn and not in_transaction and not skipping)


def should_read(ending: bool, batch_waiting: bool) -> bool:
    """Read unless ending, or unless a batch's worth already waits: it goes to the writer
    first. While the writer is busy this is the backpressure, so memory stays bounded by
    one batch in flight plus one waiting."""
    return not ending and not batch_waiting


def should_prepare(writer_busy: bool, builder_full: bool, prepared: bool) -> bool:
    """Take and encode a full batch while the writer is still busy with the previous one,
    so the writer gets it the moment it is free (encoding it only then left the target
    idle between batches)."""
    return writer_busy and builder_full and not prepared


def idle_position(
    keepalive_end: int,
    durable: int,
    *,
    skipping: bool,
    ending: bool,
    now: float,
    last_advance: float,
) -> int | None:
    """The server's WAL end, when recording it as the checkpoint is safe and due: seen
    outside a transaction, ahead of what is durable, and not inside a skipped one."""
    if skipping or keepalive_end <= durable:
        return None
    if not ending and now - last_advance < IDLE_ADVANCE_INTERVAL_S:
        return None
    return keepalive_end


def next_action(turn: Turn) -> Action:
    """What to hand the writer (only when it is idle: one batch in flight)."""
    if turn.writer_busy:
        return Action.WAIT
    if turn.batch_ready:
        return Action.WRITE_BATCH
    if turn.builder_empty and turn.idle_position is not None:
        return Action.ADVANCE
    if turn.ending and turn.builder_empty:
        return Action.FINISH
    return Action.WAIT
