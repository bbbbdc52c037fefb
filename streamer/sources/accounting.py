"""One run summary and one metrics accounting for every source's committed batches.

Rows of a streamed transaction (pgoutput protocol 2) are parked on the target until its
Stream Commit, so they are counted then, from a ledger of what each open (sub)transaction
parked; an abort forgets its part. The ledger belongs to one session: parked rows of an
earlier session are forgotten, and the server streams those transactions again.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from streamer.lsn import format_lsn
from streamer.normalize.records import REJECTION_REASONS
from streamer.pgtime import pg_us_to_unix
from streamer.runtime.metrics import Metrics, provider_label
from streamer.sink.base import WriteResult
from streamer.sources.batching import PARK, STREAM_ABORT, STREAM_COMMIT, TXN, Batch, TxnChunk


@dataclass
class RunSummary:
    rows_normalized: int = 0
    rows_rejected: int = 0
    already_present: int = 0  # rows a guarded write found in the target already
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


@dataclass
class Tally:
    """Rows of some chunks as they count in the summary and the metrics."""

    normalized: int = 0
    rejected: int = 0
    present: int = 0
    providers: Counter[str] = field(default_factory=Counter)  # metric labels
    reasons: Counter[str] = field(default_factory=Counter)
    nbytes: int = 0

    def add(self, other: Tally) -> None:
        self.normalized += other.normalized
        self.rejected += other.rejected
        self.present += other.present
        self.providers.update(other.providers)
        self.reasons.update(other.reasons)
        self.nbytes += other.nbytes


def tally(chunks: list[TxnChunk], result: WriteResult, *, labels: bool) -> Tally:
    """Rows the target already held count as present, refused rows as rejected.
    Label values come from closed sets only: payload-derived providers outside the known
    families count as `other` (mapped once per provider, not per row)."""
    out = Tally()
    skipped = result.skipped
    refused = {r.source_id for r in result.refused}
    raw: Counter[str] = Counter()
    for chunk in chunks:
        for row in chunk.canonical:
            if row.source_id in skipped:
                out.present += 1
            elif row.source_id not in refused:
                out.normalized += 1
                if labels:
                    raw[row.provider] += 1
            if chunk.kind == PARK:
                out.nbytes += len(row.raw)
        for rejection in chunk.rejected:
            if rejection.source_id in skipped:
                out.present += 1
            else:
                out.rejected += 1
                if labels:
                    out.reasons[rejection.reason] += 1
            if chunk.kind == PARK:
                out.nbytes += len(rejection.raw)
    if refused:
        out.rejected += len(result.refused)
        for refusal in result.refused:
            out.reasons[refusal.reason] += 1
    for provider, count in raw.items():
        out.providers[provider_label(provider)] += count
    return out


class StreamLedger:
    """What each open streamed (sub)transaction parked durably, until its commit or
    abort decides whether it counts."""

    def __init__(self) -> None:
        self._parked: dict[tuple[int, int], Tally] = {}
        self.nbytes = 0

    def park(self, chunk: TxnChunk, counted: Tally) -> None:
        self._parked.setdefault((chunk.xid, chunk.subxid), Tally()).add(counted)
        self.nbytes += counted.nbytes

    def settle(self, xid: int, subxid: int | None) -> Tally:
        """Remove and return what `xid` parked (only `subxid`'s part when given)."""
        out = Tally()
        for key in [k for k in self._parked if k[0] == xid and subxid in (None, k[1])]:
            out.add(self._parked.pop(key))
        self.nbytes -= out.nbytes
        return out


_PARKED = WriteResult(Batch([], None, 0, 0), [], 0.0, 0.0)  # parking neither skips nor refuses


def record_batch(
    metrics: Metrics, summary: RunSummary, result: WriteResult, ledger: StreamLedger | None = None
) -> None:
    """Run summary and metrics for a committed batch (metrics skipped when nothing can
    read them, see `NullMetrics`)."""
    batch = result.batch
    labels = metrics.enabled
    counted = tally([c for c in batch.chunks if c.kind == TXN], result, labels=labels)
    streamed: Counter[str] = Counter()
    if batch.streamed:
        ledger = ledger if ledger is not None else StreamLedger()
        for chunk in batch.chunks:
            if chunk.kind == PARK:
                ledger.park(chunk, tally([chunk], _PARKED, labels=labels))
            elif chunk.kind == STREAM_COMMIT:
                counted.add(ledger.settle(chunk.xid, None))
                streamed["committed"] += 1
            elif chunk.kind == STREAM_ABORT:
                whole = chunk.subxid == chunk.xid
                ledger.settle(chunk.xid, None if whole else chunk.subxid)
                if whole:
                    streamed["aborted"] += 1
    if batch.streamed and result.refused:  # refused at a stream commit: parked as normalized
        in_txns = {r.source_id for c in batch.chunks if c.kind == TXN for r in c.canonical}
        counted.normalized -= sum(1 for r in result.refused if r.source_id not in in_txns)
    summary.rows_normalized += counted.normalized
    summary.rows_rejected += counted.rejected
    summary.already_present += counted.present
    summary.transactions += batch.transactions
    if labels:
        _record_metrics(metrics, result, counted)
        for outcome, count in streamed.items():
            metrics.streamed_transactions.labels(outcome).inc(count)
        if ledger is not None:
            metrics.parked_bytes.set(ledger.nbytes)


def _record_metrics(metrics: Metrics, result: WriteResult, counted: Tally) -> None:
    batch = result.batch
    observe_latency = metrics.end_to_end_latency.observe
    committed_at = result.committed_at
    last_commit: float | None = None
    for chunk in batch.chunks:
        if chunk.end_lsn is not None and chunk.kind in (TXN, STREAM_COMMIT):
            last_commit = pg_us_to_unix(chunk.commit_time_us)
            observe_latency(max(0.0, committed_at - last_commit))
    if last_commit is not None:
        metrics.last_commit.set(last_commit)
    for label, count in counted.providers.items():
        if count:
            metrics.rows.labels("normalized", label).inc(count)
    if counted.rejected:
        metrics.rows.labels("rejected", "other").inc(counted.rejected)
    for reason, count in counted.reasons.items():
        metrics.rejected.labels(reason if reason in REJECTION_REASONS else "other").inc(count)
    metrics.transactions.inc(batch.transactions)
    if batch.rows:
        metrics.batch_rows.observe(batch.rows)
    metrics.batch_duration.observe(result.duration_s)
