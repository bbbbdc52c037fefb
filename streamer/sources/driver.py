"""One driver for every source: read → normalize and batch → write → acknowledge.

The source pushes commit-bounded chunks into a `BatchBuilder` (which normalizes); whole
transactions go to the sink through the writer thread, one batch in flight, so a slow
target never starves the source (the slot must keep answering keepalives); what the sink
committed is handed back to the source. Decisions are the pure functions of
`decisions.py`; retries follow `retry.RetryPolicy`, for every source alike.
"""

from __future__ import annotations

import gc
import logging
import select
import sys
import time
from collections.abc import Callable
from typing import Final

from streamer.errors import StreamerError
from streamer.lsn import format_lsn
from streamer.runtime import failpoints
from streamer.runtime.health import RunState
from streamer.runtime.metrics import Metrics
from streamer.runtime.stopping import StopFlag
from streamer.runtime.writer_thread import WriterThread
from streamer.sink.base import Sink
from streamer.sources.accounting import RunSummary, StreamLedger, record_batch
from streamer.sources.base import Source
from streamer.sources.batching import Batch, BatchBuilder
from streamer.sources.decisions import Action, Turn, next_action, should_prepare, should_read
from streamer.sources.retry import RetryPolicy

log = logging.getLogger(__name__)

MAX_BATCH_BYTES: Final = 64 * 1024 * 1024
PROGRESS_LOG_INTERVAL_S: Final = 10.0
GIL_SWITCH_INTERVAL_S: Final = 0.0005
GC_GEN0_THRESHOLD: Final = 50_000


class Driver:
    """Runs one source into one sink; `run` retries, `drive` is one attempt."""

    def __init__(
        self,
        source: Source,
        sink: Callable[[], Sink],
        *,
        batch_size: int,
        batch_timeout_s: float,
        metrics: Metrics,
        stop: StopFlag,
        state: RunState | None = None,
        summary: RunSummary | None = None,
    ) -> None:
        self.source = source
        # A new sink (connection, claimed epoch) for every attempt: a writer thread that
        # outlived a failed session keeps its own, so it can neither close nor write on
        # the next session's connection (its stale epoch fails the fence).
        self.new_sink = sink
        self.sink: Sink | None = None
        self.batch_size = batch_size
        self.batch_timeout_s = batch_timeout_s
        self.metrics = metrics
        self.stop = stop
        self.state = state or RunState()
        self.summary = summary or RunSummary()
        self.made_progress = False

    def run(self, once: bool) -> RunSummary:
        """Attempts until the source finishes, a stop is asked for, or a failure is
        final (re-raised)."""
        policy = RetryPolicy(once)
        while True:
            self.made_progress = False
            try:
                self.drive()
                return self.summary
            except StreamerError as exc:
                delay = policy.delay_after(exc, self.made_progress)
                database = getattr(exc, "database", "source")
                self.metrics.errors.labels("replication" if database == "source" else "write").inc()
                log.warning(
                    "%s; reconnecting in %.1fs (attempt %d)", exc, delay, policy.attempt + 1
                )
                self.metrics.reconnects.labels(database).inc()
                if self.stop.wait(delay):
                    return self.summary

    def drive(self) -> None:
        """One attempt: open the source, stream until finished or stopped."""
        source, state = self.source, self.state
        builder = BatchBuilder(
            self.batch_size,
            MAX_BATCH_BYTES,
            self.batch_timeout_s,
            moves_lsn=source.moves_lsn,
            guarded=source.guarded,
        )
        try:
            self.sink = sink = self.new_sink()
            durable = source.open(sink, builder)
            self._note_durable(durable)
            writer = WriterThread(sink)
            try:
                self._loop(writer, builder, durable)
            finally:
                writer.stop()
        finally:
            source.close()
            if self.sink is not None:
                self.sink.close()
            state.streaming = state.source_connected = state.target_connected = False
            for database in ("source", "target"):
                self.metrics.connected.labels(database).set(0)

    def _note_durable(self, position: int) -> None:
        if self.source.moves_lsn:
            self.metrics.checkpoint_lsn.set(position)
            self.summary.checkpoint_lsn = max(self.summary.checkpoint_lsn, position)
            self.state.checkpoint_lsn = position

    def _loop(self, writer: WriterThread, builder: BatchBuilder, durable: int) -> None:
        source, state, stop, sink = self.source, self.state, self.stop, self.sink
        assert sink is not None
        state.streaming = state.source_connected = state.target_connected = True
        self.metrics.connected.labels("source").set(1)
        self.metrics.parked_bytes.set(0)
        self.metrics.connected.labels("target").set(1)
        tune_interpreter()
        progress = _Progress(self.summary)
        ledger = StreamLedger()  # parked rows of this session's streamed transactions
        inflight_oldest: int | None = None  # oldest commit in the batch being written
        prepared: Batch | None = None  # taken and encoded while the writer was busy
        while True:
            state.beat()
            # 1. finished writes: account, then tell the source what is durable
            for result in writer.results():
                self.made_progress = True
                record_batch(self.metrics, self.summary, result, ledger)
                inflight_oldest = None
                lsn = result.batch.checkpoint_lsn
                if lsn is not None and lsn > durable:
                    if failpoints.ACTIVE:
                        failpoints.hit("after_commit")
                    durable = lsn
                    self._note_durable(lsn)
                source.durable(result, time.monotonic())
            now = time.monotonic()
            ending = source.finished() or stop.is_set()
            # 2. read what the source has
            drained = True
            if should_read(ending, prepared is not None or builder.full()):
                drained = source.read(now)
            now = time.monotonic()
            # 3. hand a batch (or an idle position advance) to the writer
            if not writer.busy and ending:
                builder.abandon_open()
            turn = Turn(
                ending=ending,
                writer_busy=writer.busy,
                batch_ready=prepared is not None or builder.ready(now, idle=drained or ending),
                builder_empty=builder.empty and prepared is None,
                idle_position=None if writer.busy else source.idle_position(durable, now, ending),
            )
            action = next_action(turn)
            if action is Action.WRITE_BATCH:
                batch, prepared = prepared or _take_encoded(builder, sink, now), None
                inflight_oldest = batch.oldest_commit_us
                writer.submit(batch)
            elif action is Action.ADVANCE:
                assert turn.idle_position is not None
                writer.submit(Batch([], turn.idle_position, 0, 0))
            elif action is Action.FINISH:
                source.tick(now, waiting=True)
                return
            elif should_prepare(writer.busy, builder.full(), prepared is not None):
                prepared = _take_encoded(builder, sink, now)
            # 4. the source's periodic duties; progress, health
            waiting = drained and builder.empty and prepared is None and not ending
            timeout = source.tick(now, waiting)
            progress.maybe_log(now, durable)
            unwritten = (
                builder.oldest_commit_us,
                None if prepared is None else prepared.oldest_commit_us,
                inflight_oldest,
            )
            state.oldest_pending_commit_us = min(
                (us for us in unwritten if us is not None), default=None
            )
            # an idle advance in flight carries no rows: still caught up
            state.caught_up = (
                drained and builder.empty and prepared is None and inflight_oldest is None
            )
            if state.caught_up:
                state.caught_up_at = time.time()
            # 5. sleep until the source, the writer or a stop has news (under backpressure
            # only the writer's news matters: we are not reading)
            backpressure = writer.busy and (prepared is not None or builder.full())
            if drained or ending or backpressure:
                waits = [writer.fileno]
                if not ending:
                    waits.append(stop.fileno())
                    if not backpressure:
                        waits += source.wait_fds()
                if not builder.empty:
                    timeout = min(timeout, builder.timeout_s / 4)
                select.select(waits, [], [], max(0.001, timeout))


def _take_encoded(builder: BatchBuilder, sink: Sink, now: float) -> Batch:
    batch = builder.take(now)
    sink.encode(batch)
    if failpoints.ACTIVE and batch.rows:
        failpoints.hit("after_decode")
    return batch


def tune_interpreter() -> None:
    """Interpreter settings for the hot loop (process-wide; this loop is the process).

    - The writer thread only does I/O (its COPY text is formatted here), but it must win
      the GIL back from this CPU-bound loop after every wait on the target; with the
      default 5 ms switch interval that wait dominated (catch-up 36k -> 44k rows/s with
      0.5 ms).
    - Every row allocates a few dozen short-lived objects (parsed JSON, tuples), so the
      default cyclic-GC threshold (700 allocations) ran a collection every few rows: 10%
      of the loop's CPU (replayed 200k-row backlog: 13.4 -> 12.0 us a row). Nothing on
      the hot path makes reference cycles; collections still run, 70x less often.
    """
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


class _Progress:
    """One log line every PROGRESS_LOG_INTERVAL_S while rows flow."""

    def __init__(self, summary: RunSummary) -> None:
        self._summary = summary
        self._last = time.monotonic()
        self._rows = 0

    def maybe_log(self, now: float, checkpoint: int) -> None:
        if now - self._last < PROGRESS_LOG_INTERVAL_S:
            return
        rows = self._summary.rows_normalized + self._summary.rows_rejected
        if rows != self._rows:
            log.info(
                "progress: %d rows (%.0f rows/s), checkpoint %s",
                rows,
                (rows - self._rows) / (now - self._last),
                format_lsn(checkpoint),
            )
        self._last, self._rows = now, rows
