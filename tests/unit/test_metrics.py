"""Metrics: closed label sets whatever the payloads say."""

from __future__ import annotations

from decimal import Decimal

import orjson
from prometheus_client import CollectorRegistry

from streamer.normalize import normalize
from streamer.normalize.records import Canonical, Rejection, SourceRow
from streamer.runtime.metrics import Metrics
from streamer.sink.base import WriteResult
from streamer.sources.accounting import RunSummary, record_batch
from streamer.sources.batching import Batch, TxnChunk


def series(metrics: Metrics) -> int:
    return sum(len(family.samples) for family in metrics.registry.collect())


def hostile_batch(n: int) -> Batch:
    chunk = TxnChunk(commit_time_us=0, end_lsn=100)
    for i in range(n):
        provider = f'evil{i}"}}\n# {{x="y"}} \u202e{i}'
        data = orjson.dumps(
            {"amt": "1.00", "p_id": provider, "status": f"weird-{i}", "card_country": "ES"}
        ).decode()
        result = normalize(SourceRow(f"id{i}", "t", data, '{"id": "m"}', None))
        if isinstance(result, Canonical):
            chunk.canonical.append(result)
        else:
            chunk.rejected.append(result)
    return Batch([chunk], 100, n, 0)


def test_hostile_provider_and_status_strings_never_become_labels() -> None:
    metrics = Metrics(CollectorRegistry())
    summary = RunSummary()
    record_batch(metrics, summary, WriteResult(hostile_batch(10), [], 0.01, 1.0))
    before = series(metrics)
    batch = hostile_batch(1000)
    providers = {row.provider for chunk in batch.chunks for row in chunk.canonical}
    assert len(providers) == 1000  # the hostile strings really are providers
    record_batch(metrics, summary, WriteResult(batch, [], 0.01, 1.0))
    assert series(metrics) == before
    labels = {
        sample.labels.get("provider")
        for family in metrics.registry.collect()
        for sample in family.samples
        if "provider" in sample.labels
    }
    assert labels <= {"stripe", "payu", "unknown", "other"}
    assert summary.rows_normalized + summary.rows_rejected == 1010


def test_target_refused_rows_move_from_normalized_to_rejected() -> None:
    row = Canonical(
        "a",
        "t",
        "m",
        None,
        None,
        "stripe",
        "json",
        Decimal(1),
        None,
        "approved",
        None,
        None,
        None,
        "{}",
        None,
    )
    chunk = TxnChunk(0, 10, canonical=[row, row._replace(source_id="b")])
    refused = [Rejection("a", "t", "{}", "{}", "target_refused", "SQLSTATE 23514: x")]
    metrics, summary = Metrics(CollectorRegistry()), RunSummary()
    record_batch(metrics, summary, WriteResult(Batch([chunk], 10, 2, 0), refused, 0.0, 0.0))
    assert (summary.rows_normalized, summary.rows_rejected) == (1, 1)
    value = metrics.registry.get_sample_value
    assert value("streamer_rows_total", {"outcome": "normalized", "provider": "stripe"}) == 1
    assert value("streamer_rejected_total", {"reason": "target_refused"}) == 1


def test_null_metrics_stand_in_for_every_metric_and_keep_the_summary() -> None:
    from prometheus_client.metrics import MetricWrapperBase  # noqa: PLC0415

    from streamer.runtime.metrics import NullMetrics  # noqa: PLC0415

    real = Metrics(CollectorRegistry())
    metric_names = {k for k, v in vars(real).items() if isinstance(v, MetricWrapperBase)}
    null = NullMetrics()
    assert not null.enabled and real.enabled
    for name in metric_names:  # every attribute the code may touch exists and discards
        metric = getattr(null, name)
        metric.labels("a", "b").inc()
        metric.set(1)
        metric.observe(1.0)
    summaries = []
    for metrics in (real, null):
        summary = RunSummary()
        batch = hostile_batch(50)
        refused = [Rejection(batch.chunks[0].canonical[0].source_id, "t", "{}", "{}", "x", "y")]
        record_batch(metrics, summary, WriteResult(batch, refused, 0.01, 1.0))
        summaries.append((summary.rows_normalized, summary.rows_rejected, summary.transactions))
    assert summaries[0] == summaries[1]
    assert summaries[0][0] + summaries[0][1] == 50 and summaries[0][2] == 1
