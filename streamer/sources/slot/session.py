"""Orchestration only: stream → decode → normalize → batch → write → confirm.

Frames are turned into batches of normalized rows by the pure `TransactionAssembler`;
this module owns the connections, the writer thread, confirmation and retries.

Invariants kept here (see DESIGN.md):
- the flush position sent upstream is the durable target checkpoint, never more, never
  moving backwards;
- transactions whose commit record starts before the claimed checkpoint are skipped
  (they were applied: their end LSN ≤ checkpoint; the assembler does the skipping);
- a transaction is applied whole or not at all; a stop abandons the open one.
"""

from __future__ import annotations

import gc
import logging
import random
import select
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from streamer.config import Settings
from streamer.errors import (
    SlotProblem,
    SourceUnavailable,
    StreamerError,
)
from streamer.lsn import format_lsn
from streamer.normalize.records import REJECTION_REASONS
from streamer.pgoutput.frames import build_status_update
from streamer.pgoutput.relations import RelationCache
from streamer.pgtime import now_pg_us, pg_us_to_unix
from streamer.runtime import failpoints
from streamer.runtime.dbconn import connect, translated
from streamer.runtime.health import RunState
from streamer.runtime.metrics import Metrics, provider_label
from streamer.runtime.stopping import StopFlag
from streamer.runtime.writer_thread import WriteResult, WriterThread
from streamer.sink.writer import BatchWriter, encode_batch
from streamer.sources.batching import Batch, BatchBuilder
from streamer.sources.slot import admin
from streamer.sources.slot.assembler import TransactionAssembler
from streamer.sources.slot.stream import MAX_FRAMES_PER_READ, ReplicationStream

log = logging.getLogger(__name__)

MAX_BATCH_BYTES: Final = 64 * 1024 * 1024
STATUS_INTERVAL_S: Final = 10.0
IDLE_ADVANCE_INTERVAL_S: Final = 1.0
PROGRESS_LOG_INTERVAL_S: Final = 10.0
ONCE_MAX_ATTEMPTS: Final = 5
BACKOFF_BASE_S: Final = 0.5
BACKOFF_CAP_S: Final = 30.0
RECEIVE_TIMEOUT_MIN_S: Final = 5.0
GIL_SWITCH_INTERVAL_S: Final = 0.0005
GC_GEN0_THRESHOLD: Final = 50_000


@dataclass
class RunSummary:
    rows_normalized: int = 0
    rows_rejected: int = 0
    transactions: int = 0
    checkpoint_lsn: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        return (
            f"rows normalized {self.rows_normalized}, rows rejected {self.rows_rejected}, "
            f"LSN reached {format_lsn(self.checkpoint_lsn)}, seconds {self.seconds:.2f}"
        )


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter."""
    return rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))


def run(
    settings: Settings,
    once: bool,
    metrics: Metrics,
    stop: StopFlag,
    *,
    state: RunState | None = None,
    prepare: Callable[[BatchWriter], object] | None = None,
) -> RunSummary:
    """Stream until stopped (or, with once, until the WAL position noted at start).

    `prepare` (setup: tables, publication, slot) runs once, at the start of the first
    session, given that session's target writer.
    Retryable failures (a database down or restarting, a cut connection) restart the
    session from the durable checkpoint after a backoff: forever in streaming mode, a few
    times with once. Everything else (bad setup, a lost slot) ends the run.
    """
    summary = RunSummary()
    state = state or RunState()
    rng = random.Random()
    attempt = 0
    stop_lsn: int | None = None
    while True:
        session = Session(settings, metrics, stop, summary, state)
        try:
            session.run(once, stop_lsn, prepare)
            return summary
        except StreamerError as exc:
            if not exc.retryable:  # the error tree decides: only link failures retry
                raise
            database = getattr(exc, "database", "source")
            metrics.errors.labels("replication" if database == "source" else "write").inc()
            attempt = 0 if session.made_progress else attempt + 1
            if once and attempt >= ONCE_MAX_ATTEMPTS:
                raise
            delay = backoff_delay(attempt, rng)
            log.warning("%s; reconnecting in %.1fs (attempt %d)", exc, delay, attempt + 1)
            metrics.reconnects.labels(database).inc()
            if stop.wait(delay):
                return summary
        finally:
            stop_lsn = stop_lsn if stop_lsn is not None else session.stop_lsn
            prepare = None if session.prepared else prepare
            session.close()


class Session:
    """One replication session: connections, stream, writer thread."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        stop: StopFlag,
        summary: RunSummary,
        state: RunState,
    ) -> None:
        self.settings = settings
        self.state = state
        self.metrics = metrics
        self.stop = stop
        self.summary = summary
        self.source_url, self.target_url = settings.require_urls()
        self.made_progress = False
        self.stop_lsn: int | None = None  # with once: the source WAL position at start
        self.prepared = False  # the setup step ran (in this session)
        self.wal_sender_timeout = 60.0
        self._stream: ReplicationStream | None = None
        self._writer: BatchWriter | None = None
        self._thread: WriterThread | None = None

    def close(self) -> None:
        if self._thread is not None:
            self._thread.stop()
        if self._stream is not None:
            self._stream.close()
        if self._writer is not None:
            self._writer.close()
        for database in ("source", "target"):
            self.metrics.connected.labels(database).set(0)
        self.state.streaming = self.state.source_connected = False
        self.state.target_connected = False

    # -- setup ---------------------------------------------------------------------------
    def _prepare(
        self, note_stop: bool, setup: Callable[[BatchWriter], object] | None
    ) -> tuple[ReplicationStream, int]:
        """Setup (first session only), slot checks, START_REPLICATION, claim the
        checkpoint; with `note_stop`, also note the source's WAL position (where `--once`
        ends)."""
        settings = self.settings
        self._writer = writer = BatchWriter(self.target_url, settings.target_schema, settings.slot)
        if setup is not None:
            setup(writer)
            self.prepared = True
        checkpoint = writer.read_checkpoint()
        self.metrics.connected.labels("target").set(1)
        self.state.target_connected = True
        with (
            translated("source", self.source_url, "checking the slot"),
            connect("source", self.source_url, autocommit=True) as conn,
        ):
            admin.check_source(conn, settings)
            info = admin.slot_info(conn, settings.slot)
            if info is None:
                raise SlotProblem(
                    f"replication slot {settings.slot!r} does not exist on the source"
                    + (f" (target checkpoint {format_lsn(checkpoint)})" if checkpoint else "")
                )
            admin.validate_slot(conn, info, settings.slot)
            if note_stop:
                self.stop_lsn = admin.current_wal_lsn(conn)
            confirmed = info.confirmed_flush_lsn or 0
            if checkpoint is not None and confirmed > checkpoint:
                raise SlotProblem(
                    f"replication slot {settings.slot!r} was confirmed up to "
                    f"{format_lsn(confirmed)}, ahead of the target checkpoint "
                    f"{format_lsn(checkpoint)}: the changes in between are not in the target"
                )
        stream = ReplicationStream(self.source_url)
        self._stream = stream
        self.wal_sender_timeout = _parse_duration(stream.server_setting("wal_sender_timeout"))
        stream.start(settings.slot, settings.publication, checkpoint or 0)
        self.metrics.connected.labels("source").set(1)
        self.state.source_connected = True
        claimed = writer.claim(checkpoint if checkpoint is not None else confirmed)
        self.metrics.checkpoint_lsn.set(claimed)
        self.summary.checkpoint_lsn = max(self.summary.checkpoint_lsn, claimed)
        self.state.checkpoint_lsn = claimed
        log.info(
            "streaming slot=%s publication=%s from checkpoint %s",
            settings.slot,
            settings.publication,
            format_lsn(claimed),
        )
        return stream, claimed

    # -- main loop -----------------------------------------------------------------------
    def run(
        self,
        once: bool,
        stop_lsn: int | None,
        setup: Callable[[BatchWriter], object] | None = None,
    ) -> None:
        """Stream until stopped; with once, until `stop_lsn` (noted now when None)."""
        stream, checkpoint = self._prepare(once and stop_lsn is None, setup)
        if once and stop_lsn is None:
            stop_lsn = self.stop_lsn
        assert self._writer is not None
        tune_interpreter()
        self._thread = writer = WriterThread(self._writer)
        settings = self.settings
        relations = RelationCache(settings.source_schema, settings.source_table)
        builder = BatchBuilder(
            settings.batch_size, MAX_BATCH_BYTES, settings.batch_timeout_ms / 1000
        )
        assembler = TransactionAssembler(relations, builder, checkpoint, stop_lsn)
        durable = checkpoint  # last LSN committed in the target checkpoint
        confirmed = checkpoint  # last flush position sent upstream
        last_status = last_idle_advance = last_reply_request = 0.0
        status_interval = min(STATUS_INTERVAL_S, max(0.5, self.wal_sender_timeout / 3))
        # Every periodic status update asks for a reply, so a healthy link always brings
        # something within a few intervals; silence beyond that means a dead or half-open
        # connection, which TCP alone may take minutes to notice.
        receive_timeout = max(3 * status_interval, RECEIVE_TIMEOUT_MIN_S)
        last_frame_at = time.monotonic()
        progress = _Progress(self.summary)

        def send_status(reply: bool = False) -> None:
            nonlocal last_status
            stream.send(
                build_status_update(assembler.received, confirmed, confirmed, now_pg_us(), reply)
            )
            last_status = time.monotonic()

        state = self.state
        state.streaming = True
        inflight_oldest: int | None = None  # oldest commit in the batch being written
        send_status()
        while True:
            state.beat()
            # 1. finished writes: account, then confirm what is durable
            for result in writer.results():
                self.made_progress = True
                record_batch(self.metrics, self.summary, result)
                inflight_oldest = None
                if result.batch.checkpoint_lsn is not None:
                    durable = max(durable, result.batch.checkpoint_lsn)
            if durable > confirmed:
                if failpoints.ACTIVE:
                    failpoints.hit("after_commit")
                confirmed = durable
                self.metrics.checkpoint_lsn.set(durable)
                self.summary.checkpoint_lsn = state.checkpoint_lsn = durable
                send_status()
            now = time.monotonic()
            finished = stop_lsn is not None and (
                assembler.reached_end
                or (
                    assembler.keepalive_end >= stop_lsn
                    and not builder.in_transaction
                    and not assembler.skipping
                )
            )
            ending = finished or self.stop.is_set()
            backpressure = writer.busy and builder.full()
            # 2. read whatever the server has sent
            frames = [] if ending or backpressure else stream.read_frames()
            if frames or backpressure or ending:
                last_frame_at = now
            elif now - last_frame_at > receive_timeout:
                raise SourceUnavailable(
                    f"no data from the source for {now - last_frame_at:.0f}s "
                    "(connection dead or half-open)"
                )
            if frames and assembler.feed(frames, now):
                last_idle_advance = 0.0  # the server waits on us: advance now
                send_status()
            now = time.monotonic()
            drained = len(frames) < MAX_FRAMES_PER_READ and not backpressure
            # 3. hand a batch (or an idle checkpoint advance) to the writer
            if not writer.busy:
                if ending:
                    builder.abandon_open()
                if builder.ready(now, idle=drained or ending):
                    batch = builder.take(now)
                    batch.encoded = encode_batch(batch)
                    if failpoints.ACTIVE and batch.rows:
                        failpoints.hit("after_decode")
                    inflight_oldest = batch.chunks[0].commit_time_us if batch.chunks else None
                    writer.submit(batch)
                elif (
                    builder.empty
                    and not assembler.skipping
                    and assembler.keepalive_end > durable
                    and (ending or now - last_idle_advance >= IDLE_ADVANCE_INTERVAL_S)
                ):
                    # Nothing in flight: record the server's WAL end so the slot releases
                    # WAL written by other tables and databases meanwhile.
                    writer.submit(Batch([], assembler.keepalive_end, 0, 0))
                    last_idle_advance = now
                elif ending and builder.empty:
                    send_status()
                    return
            # 4. keep the connection alive; in once mode ask where the server is
            if now - last_status >= status_interval:
                send_status(reply=True)
            asking = stop_lsn is not None and drained and builder.empty and not ending
            if asking and now - last_reply_request >= 0.2:
                send_status(reply=True)
                last_reply_request = now
            progress.maybe_log(now, durable, assembler.received)
            pending = builder.oldest_commit_us
            state.oldest_pending_commit_us = (
                inflight_oldest
                if pending is None
                else (pending if inflight_oldest is None else min(pending, inflight_oldest))
            )
            state.caught_up = (
                drained and builder.empty and not writer.busy and not assembler.skipping
            )
            if state.caught_up:
                state.caught_up_at = time.time()
            # 5. sleep until the socket or the writer has news (under backpressure only the
            # writer's news matters: we are not reading)
            if drained or ending or backpressure:
                waits = [writer.fileno]
                if not ending:
                    waits.append(self.stop.fileno())
                    if not backpressure:
                        waits.append(stream.fileno)
                timeout = status_interval - (now - last_status)
                if not builder.empty:
                    timeout = min(timeout, builder.timeout_s / 4)
                if stop_lsn is not None:
                    timeout = min(timeout, 0.2)
                select.select(waits, [], [], max(0.001, timeout))


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


def record_batch(metrics: Metrics, summary: RunSummary, result: WriteResult) -> None:
    """Run summary and metrics for a committed batch (metrics skipped when nothing can
    read them, see `NullMetrics`)."""
    batch = result.batch
    refused = len(result.refused)
    transactions = batch.transactions
    summary.rows_normalized += sum(len(chunk.canonical) for chunk in batch.chunks) - refused
    summary.rows_rejected += sum(len(chunk.rejected) for chunk in batch.chunks) + refused
    summary.transactions += transactions
    if metrics.enabled:
        _record_metrics(metrics, result, transactions)


def _record_metrics(metrics: Metrics, result: WriteResult, transactions: int) -> None:
    """Label values come from closed sets only: payload-derived providers outside the
    known families count as `other`."""
    batch = result.batch
    rejected = 0
    providers: Counter[str] = Counter()  # raw provider names; labels are mapped once below
    reasons: Counter[str] = Counter()
    observe_latency = metrics.end_to_end_latency.observe
    committed_at = result.committed_at
    last_commit: float | None = None
    for chunk in batch.chunks:
        for row in chunk.canonical:
            providers[row.provider] += 1
        if chunk.rejected:
            rejected += len(chunk.rejected)
            for rejection in chunk.rejected:
                reasons[rejection.reason] += 1
        if chunk.end_lsn is not None:
            last_commit = pg_us_to_unix(chunk.commit_time_us)
            observe_latency(max(0.0, committed_at - last_commit))
    if result.refused:  # rare: refused rows were counted as normalized above
        refused_ids = {r.source_id for r in result.refused}
        for chunk in batch.chunks:
            for row in chunk.canonical:
                if row.source_id in refused_ids:
                    providers[row.provider] -= 1
        for refusal in result.refused:
            reasons[refusal.reason] += 1
        rejected += len(result.refused)
    if last_commit is not None:
        metrics.last_commit.set(last_commit)
    labelled: Counter[str] = Counter()
    for provider, count in providers.items():
        labelled[provider_label(provider)] += count
    for label, count in labelled.items():
        if count:
            metrics.rows.labels("normalized", label).inc(count)
    if rejected:
        metrics.rows.labels("rejected", "other").inc(rejected)
    for reason, count in reasons.items():
        metrics.rejected.labels(reason if reason in REJECTION_REASONS else "other").inc(count)
    metrics.transactions.inc(transactions)
    if batch.rows:
        metrics.batch_rows.observe(batch.rows)
    metrics.batch_duration.observe(result.duration_s)


def _parse_duration(text: str | None) -> float:
    """`60s`, `2000ms`, `1min` → seconds (wal_sender_timeout); 60 when unknown or 0."""
    if not text:
        return 60.0
    units = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number) :] or "ms"
    try:
        value = float(number) * units.get(unit, 1.0)
    except ValueError:
        return 60.0
    return value if value > 0 else 60.0


class _Progress:
    """One log line every PROGRESS_LOG_INTERVAL_S while rows flow."""

    def __init__(self, summary: RunSummary) -> None:
        self._summary = summary
        self._last = time.monotonic()
        self._rows = 0

    def maybe_log(self, now: float, checkpoint: int, received: int) -> None:
        """`received` is the newest server position seen; its distance to the checkpoint
        is the lag this process knows of (the monitor's gauge is the exact one)."""
        if now - self._last < PROGRESS_LOG_INTERVAL_S:
            return
        rows = self._summary.rows_normalized + self._summary.rows_rejected
        if rows != self._rows:
            log.info(
                "progress: %d rows (%.0f rows/s), checkpoint %s, lag %d bytes",
                rows,
                (rows - self._rows) / (now - self._last),
                format_lsn(checkpoint),
                max(0, received - checkpoint),
            )
        self._last, self._rows = now, rows


__all__ = ["RunSummary", "StreamerError", "run"]
