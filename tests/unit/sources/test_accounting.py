"""Rows of streamed transactions count when their commit is durable, never before, and
an abort (of the transaction or of one subtransaction) forgets its part."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streamer.normalize import normalize
from streamer.normalize.records import SourceRow
from streamer.runtime.metrics import Metrics
from streamer.sink.base import WriteResult
from streamer.sources.accounting import RunSummary, StreamLedger, record_batch
from streamer.sources.batching import BatchBuilder

STRIPE = '{"amt": "1.50", "p_id": "Stripe", "currency": "USD"}'
MERCHANT = '{"id": "m1", "name": "Shop", "country": "CL"}'


def row(i: int) -> SourceRow:
    uid = f"00000000-0000-0000-0000-{i:012d}"
    return SourceRow(uid, uid, STRIPE, MERCHANT, None)


def write(builder: BatchBuilder, metrics: Metrics, summary: RunSummary, ledger: StreamLedger):  # type: ignore[no-untyped-def]
    record_batch(metrics, summary, WriteResult(builder.take(0.0), [], 0.01, 1.0), ledger)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_parked_rows_count_at_commit_and_aborted_ones_never() -> None:
    metrics, summary, ledger = Metrics(CollectorRegistry()), RunSummary(), StreamLedger()
    builder = BatchBuilder(1000, 10**9, 1.0, normalizer=normalize)
    for i in range(3):
        builder.park(700, 700, row(i), 0.0)
    builder.park(700, 701, row(10), 0.0)  # a savepoint later rolled back
    builder.park(800, 800, row(20), 0.0)  # a transaction later rolled back
    write(builder, metrics, summary, ledger)
    assert summary.rows_normalized == 0 and ledger.nbytes > 0
    assert value(metrics, "streamer_parked_bytes") == ledger.nbytes

    builder.stream_abort(700, 701)
    builder.stream_commit(700, 5000, 1_000_000, 0.0)
    builder.stream_abort(800, 800)
    write(builder, metrics, summary, ledger)
    assert (summary.rows_normalized, summary.transactions) == (3, 1)
    assert ledger.nbytes == 0 and value(metrics, "streamer_parked_bytes") == 0
    assert value(metrics, "streamer_rows_total", outcome="normalized", provider="stripe") == 3
    assert value(metrics, "streamer_streamed_transactions_total", outcome="committed") == 1
    assert value(metrics, "streamer_streamed_transactions_total", outcome="aborted") == 1
