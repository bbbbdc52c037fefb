"""One run summary and one metrics accounting for every source's committed batches."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from streamer.lsn import format_lsn
from streamer.normalize.records import REJECTION_REASONS
from streamer.pgtime import pg_us_to_unix
from streamer.runtime.metrics import Metrics, provider_label
from streamer.sink.base import WriteResult


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


def record_batch(metrics: Metrics, summary: RunSummary, result: WriteResult) -> None:
    """Run summary and metrics for a committed batch (metrics skipped when nothing can
    read them, see `NullMetrics`). Rows the target already held count as present, not
    as normalized or rejected."""
    batch = result.batch
    refused = len(result.refused)
    skipped = result.skipped
    canonical = sum(len(chunk.canonical) for chunk in batch.chunks)
    rejected = sum(len(chunk.rejected) for chunk in batch.chunks)
    skipped_canonical = 0
    if skipped:
        skipped_canonical = sum(
            1 for chunk in batch.chunks for row in chunk.canonical if row.source_id in skipped
        )
    summary.rows_normalized += canonical - skipped_canonical - refused
    summary.rows_rejected += rejected - (len(skipped) - skipped_canonical) + refused
    summary.already_present += len(skipped)
    summary.transactions += batch.transactions
    if metrics.enabled:
        _record_metrics(metrics, result)


def _record_metrics(metrics: Metrics, result: WriteResult) -> None:
    """Label values come from closed sets only: payload-derived providers outside the
    known families count as `other`."""
    batch = result.batch
    rejected = 0
    providers: Counter[str] = Counter()  # raw provider names; labels are mapped once below
    reasons: Counter[str] = Counter()
    observe_latency = metrics.end_to_end_latency.observe
    committed_at = result.committed_at
    last_commit: float | None = None
    left_out = result.skipped | {r.source_id for r in result.refused}
    for chunk in batch.chunks:
        for row in chunk.canonical:
            providers[row.provider] += 1
        if chunk.rejected:
            for rejection in chunk.rejected:
                if rejection.source_id not in result.skipped:
                    rejected += 1
                    reasons[rejection.reason] += 1
        if chunk.end_lsn is not None:
            last_commit = pg_us_to_unix(chunk.commit_time_us)
            observe_latency(max(0.0, committed_at - last_commit))
    if left_out:  # rare: refused or already present rows were counted as normalized above
        for chunk in batch.chunks:
            for row in chunk.canonical:
                if row.source_id in left_out:
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
    metrics.transactions.inc(batch.transactions)
    if batch.rows:
        metrics.batch_rows.observe(batch.rows)
    metrics.batch_duration.observe(result.duration_s)
