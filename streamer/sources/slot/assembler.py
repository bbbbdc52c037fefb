"""Replication frames in, normalized rows grouped by source transaction out (pure: no I/O).

The main loop reads frames and hands them here; this applies them in order:

- XLogData carrying Begin / Insert / Commit / Relation: inserts of the streamed table are
  decoded straight from the frame and pushed, as commit-bounded chunks, into the driver's
  `BatchBuilder` (which normalizes them); Relation messages update the `RelationCache`;
- transactions whose commit record starts before the checkpoint claimed at start are
  skipped (they were applied: their end LSN <= checkpoint);
- with a stop position (`run --once`), the first transaction committing at or past it is
  not read: `reached_end` is set and the rest of the frames are left alone;
- keepalives move `received` (the server's WAL end) and, while no transaction is open,
  `keepalive_end`, which the loop may record as the checkpoint when nothing is in flight.

It is the hot path: one call per read (up to a few thousand frames), state kept in
locals for the duration of the call.
"""

from __future__ import annotations

from collections.abc import Sequence

from streamer._speedups import hot
from streamer.errors import ProtocolError
from streamer.pgoutput.frames import (
    KEEPALIVE,
    XLOG_DATA,
    XLOG_HEADER_SIZE,
    parse_keepalive,
    parse_xlog_data,
)
from streamer.pgoutput.messages import (
    BEGIN,
    COMMIT,
    INSERT,
    STREAM_ABORT,
    STREAM_COMMIT,
    STREAM_START,
    STREAM_STOP,
    STREAM_XID_SIZE,
    Relation,
    begin_fields,
    commit_end_lsn,
    decode_message,
    insert_rel_id,
    stream_abort_fields,
    stream_commit_fields,
    stream_start_fields,
    stream_xid,
)
from streamer.pgoutput.relations import RelationCache, RowBuilder
from streamer.sources.batching import ROW_OVERHEAD_BYTES, BatchBuilder

STREAM_MESSAGES = frozenset({STREAM_START, STREAM_STOP, STREAM_COMMIT, STREAM_ABORT})


class TransactionAssembler:
    """Feeds frames through decode into a `BatchBuilder` (which normalizes)."""

    def __init__(
        self,
        relations: RelationCache,
        builder: BatchBuilder,
        checkpoint: int,
        stop_lsn: int | None = None,
    ) -> None:
        self.relations = relations
        self.builder = builder
        self.skip_before = checkpoint
        self.stop_lsn = stop_lsn
        self.received = checkpoint  # newest server WAL position seen (commit end or keepalive)
        # Server WAL end seen while nothing was open: no transaction, no stream block and
        # no streamed transaction waiting for its commit. Only then is it safe to record
        # as the checkpoint: an open one may commit at or before that position.
        self.keepalive_end = 0
        # Server WAL end seen outside any transaction or stream block, streamed
        # transactions possibly open: enough to know `--once` has seen everything that
        # committed before its stop position (an open one commits after it).
        self.idle_end = 0
        self.skipping = False  # inside a transaction that is already applied
        self.reached_end = False  # a transaction at or past stop_lsn began
        self.stream_xid: int | None = None  # top-level xid of the open stream block
        self.open_streams: set[int] = set()  # streamed transactions not yet committed
        self._last_rel_id = -1  # relation of the previous insert, and its row builder
        self._row_builder: RowBuilder | None = None

    def feed(self, frames: Sequence[memoryview | bytes], now: float) -> bool:
        """Apply `frames` in order (`now`: monotonic time, for batch timeouts). Returns
        True when a keepalive asked for an immediate reply. Once the stop position is
        reached, frames are ignored."""
        if self.reached_end:
            return False
        builder, relations = self.builder, self.relations
        add_row = builder.row
        skip_before, stop_lsn = self.skip_before, self.stop_lsn
        skipping, received, keepalive_end = self.skipping, self.received, self.keepalive_end
        last_rel_id, row_builder = self._last_rel_id, self._row_builder
        reply_requested = False
        # The compiled twin of the Insert branch below (with BatchBuilder.row) consumes
        # the run of inserts that follows one; the branch itself stays the specification.
        fast = hot is not None and type(builder) is BatchBuilder and type(frames) is list
        count, i = len(frames), 0
        frame: memoryview | bytes = b""
        try:
            while i < count:
                frame = frames[i]
                i += 1
                kind = frame[0]
                if kind == XLOG_DATA:
                    tag = frame[XLOG_HEADER_SIZE]
                    if self.stream_xid is not None or tag in STREAM_MESSAGES:
                        self._last_rel_id, self._row_builder = last_rel_id, row_builder
                        received = max(received, self._streamed(frame, tag, now))
                        last_rel_id, row_builder = self._last_rel_id, self._row_builder
                        keepalive_end = 0
                        if self.reached_end:
                            break
                    elif tag == INSERT:  # hot path: straight to a SourceRow
                        if not skipping:
                            rel_id = insert_rel_id(frame, XLOG_HEADER_SIZE)
                            if rel_id != last_rel_id:
                                row_builder = relations.builder(rel_id)
                                last_rel_id = rel_id
                            if row_builder is not None:
                                # bytes: column values are decoded from slices of it
                                add_row(row_builder(bytes(frame), XLOG_HEADER_SIZE))
                                if fast and type(row_builder) is hot.RowBuilder:  # type: ignore[union-attr]
                                    i, received, began = hot.feed_plain(  # type: ignore[union-attr]
                                        frames,
                                        i,
                                        rel_id,
                                        row_builder,
                                        builder,
                                        ROW_OVERHEAD_BYTES,
                                        skip_before,
                                        stop_lsn,
                                        now,
                                        received,
                                    )
                                    if began:
                                        keepalive_end = self.idle_end = 0
                    elif tag == BEGIN:
                        final_lsn, commit_time_us = begin_fields(frame, XLOG_HEADER_SIZE)
                        keepalive_end = self.idle_end = 0
                        if final_lsn < skip_before:
                            skipping = True
                        elif stop_lsn is not None and final_lsn >= stop_lsn:
                            self.reached_end = True
                            break
                        else:
                            builder.begin(commit_time_us, now)
                    elif tag == COMMIT:
                        end_lsn = commit_end_lsn(frame, XLOG_HEADER_SIZE)
                        received = max(received, end_lsn)
                        if skipping:
                            skipping = False
                        else:
                            builder.commit(end_lsn)
                    else:
                        message = decode_message(bytes(frame), XLOG_HEADER_SIZE)
                        if type(message) is Relation:
                            relations.add(message)
                            last_rel_id = -1  # the layout may have changed
                elif kind == KEEPALIVE:
                    keepalive = parse_keepalive(frame)
                    received = max(received, keepalive.wal_end)
                    if not builder.in_transaction and not skipping and self.stream_xid is None:
                        self.idle_end = keepalive.wal_end
                        if not self.open_streams:
                            keepalive_end = keepalive.wal_end
                    reply_requested = reply_requested or keepalive.reply_requested
                else:
                    raise ProtocolError(f"unexpected replication frame type {kind:#x}")
        except ProtocolError as exc:
            if exc.lsn is None:  # say where: the retry policy counts failures per LSN
                exc.lsn, exc.message_type = _frame_position(frame)
            raise
        finally:
            self.skipping, self.received, self.keepalive_end = skipping, received, keepalive_end
            self._last_rel_id, self._row_builder = last_rel_id, row_builder
        return reply_requested

    def _streamed(self, frame: memoryview | bytes, tag: int, now: float) -> int:
        """A protocol 2 stream message, or a change inside a stream block; returns the
        server position it proves received (a stream commit's end), else 0.

        Changes are parked per (top-level xid, subtransaction xid) until the Stream
        Commit, which applies them with that commit's end LSN; a Stream Abort discards
        the subtransaction's (or the whole transaction's) rows. A streamed transaction
        that committed before the checkpoint (seen again after a restart) is discarded
        at its commit like an abort: it was applied."""
        base = XLOG_HEADER_SIZE
        builder = self.builder
        if tag == INSERT:
            assert self.stream_xid is not None
            change_xid = stream_xid(frame, base)
            shifted = base + STREAM_XID_SIZE  # the protocol 1 layout, one xid further on
            rel_id = insert_rel_id(frame, shifted)
            if rel_id != self._last_rel_id:
                self._row_builder = self.relations.builder(rel_id)
                self._last_rel_id = rel_id
            if self._row_builder is not None:
                row = self._row_builder(bytes(frame), shifted)
                builder.park(self.stream_xid, change_xid, row, now)
        elif tag == STREAM_START:
            xid, _first = stream_start_fields(frame, base)
            self.stream_xid = xid
            self.open_streams.add(xid)
        elif tag == STREAM_STOP:
            self.stream_xid = None
        elif tag == STREAM_COMMIT:
            xid, commit_lsn, end_lsn, commit_time_us = stream_commit_fields(frame, base)
            self.open_streams.discard(xid)
            self.idle_end = 0
            if commit_lsn < self.skip_before:
                builder.stream_abort(xid, xid)  # applied before the checkpoint
            elif self.stop_lsn is not None and commit_lsn >= self.stop_lsn:
                self.reached_end = True  # --once: this one is for the next run
            else:
                builder.stream_commit(xid, end_lsn, commit_time_us, now)
            return end_lsn
        elif tag == STREAM_ABORT:
            xid, subxid = stream_abort_fields(frame, base)
            if subxid == xid:
                self.open_streams.discard(xid)
            builder.stream_abort(xid, subxid)
        else:
            message = decode_message(bytes(frame), base, streamed=True)
            if type(message) is Relation:
                self.relations.add(message)
                self._last_rel_id = -1  # the layout may have changed
        return 0


def _frame_position(frame: memoryview | bytes) -> tuple[int | None, str]:
    """(WAL position, message type) of a frame, as far as it can be read."""
    if len(frame) > XLOG_HEADER_SIZE and frame[0] == XLOG_DATA:
        return parse_xlog_data(memoryview(frame)).data_start, chr(frame[XLOG_HEADER_SIZE])
    return None, f"frame {chr(frame[0]) if frame else '?'}"
