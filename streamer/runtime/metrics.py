"""Every Prometheus metric, defined once on a dedicated registry.

Labels only take values from closed sets (outcome, known provider families, rejection
reasons, stages, database roles), never from payloads.

`NullMetrics` stands in when nothing can ever read the metrics (`run --once` without
`--pushgateway` or `--metrics-textfile`): prometheus_client is then not even imported
(20 ms of start-up) and the per-batch accounting is skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from streamer import __version__
from streamer.normalize import KNOWN_PROVIDERS
from streamer.normalize.records import REJECTION_REASONS

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

STAGES: Final = ("replication", "decode", "normalize", "write")
DATABASES: Final = ("source", "target")
FILE_OUTCOMES: Final = ("completed", "failed", "skipped")
NOTIFICATION_OUTCOMES: Final = ("relevant", "ignored", "malformed")  # files mode's SQS
LATENCY_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


def provider_label(provider: str) -> str:
    return provider if provider in KNOWN_PROVIDERS else "other"


class Metrics:
    """One instance per process (tests may build their own with a fresh registry)."""

    enabled: bool = True  # False for NullMetrics: callers may skip work feeding metrics

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import (  # noqa: PLC0415  (see the module docstring)
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            disable_created_metrics,
        )

        # `_created` series double the exposition for no operational value.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rows = Counter(
            "streamer_rows", "Source rows applied", ["outcome", "provider"], registry=r
        )
        self.rejected = Counter(
            "streamer_rejected", "Rejected rows by reason", ["reason"], registry=r
        )
        self.transactions = Counter(
            "streamer_transactions", "Source transactions applied", registry=r
        )
        self.batch_rows = Histogram(
            "streamer_batch_rows",
            "Rows per committed target batch",
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 50000),
            registry=r,
        )
        self.batch_duration = Histogram(
            "streamer_batch_duration_seconds",
            "Time to write and commit a batch",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.end_to_end_latency = Histogram(
            "streamer_end_to_end_latency_seconds",
            "Target commit time minus source commit time, per transaction",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lag_bytes = Gauge(
            "streamer_replication_lag_bytes",
            "Source pg_current_wal_lsn() minus the checkpoint LSN",
            registry=r,
        )
        self.lag_seconds = Gauge(
            "streamer_replication_lag_seconds",
            "0 when caught up; else age of the oldest source commit not yet applied",
            registry=r,
        )
        self.retained_wal = Gauge(
            "streamer_slot_retained_wal_bytes",
            "Source current WAL LSN minus the slot's restart_lsn",
            registry=r,
        )
        self.checkpoint_lsn = Gauge(
            "streamer_checkpoint_lsn", "Checkpoint LSN as a number", registry=r
        )
        self.last_commit = Gauge(
            "streamer_last_applied_commit_timestamp_seconds",
            "Unix time of the last applied source commit",
            registry=r,
        )
        self.streamed_transactions = Counter(
            "streamer_streamed_transactions",
            "Source transactions received while in progress (pgoutput protocol 2), by outcome",
            ["outcome"],
            registry=r,
        )
        self.parked_bytes = Gauge(
            "streamer_parked_bytes",
            "Bytes of in-progress streamed transactions parked on the target",
            registry=r,
        )
        self.connected = Gauge("streamer_connected", "1 when connected", ["database"], registry=r)
        self.reconnects = Counter("streamer_reconnects", "Reconnections", ["database"], registry=r)
        self.errors = Counter("streamer_errors", "Errors by stage", ["stage"], registry=r)
        self.info = Gauge(
            "streamer_info",
            "Build and configuration",
            ["version", "slot", "publication"],
            registry=r,
        )
        # files mode
        self.files = Counter(
            "streamer_files", "Objects by outcome (skipped: unknown format)", ["status"], registry=r
        )
        self.file_bytes = Counter(
            "streamer_file_bytes", "Bytes of the objects completed", registry=r
        )
        self.oldest_pending_file_age = Gauge(
            "streamer_oldest_pending_file_age_seconds",
            "Age (since last modified) of the oldest object listed but not yet processed",
            registry=r,
        )
        self.notifications = Counter(
            "streamer_files_notifications",
            "SQS messages received, by outcome (relevant: names a new object under the prefix)",
            ["outcome"],
            registry=r,
        )
        for outcome in FILE_OUTCOMES:
            self.files.labels(outcome)
        self.source_host = Gauge(
            "streamer_source_host_info",
            "1 for the configured source host:port now streamed from, 0 for the others",
            ["host"],
            registry=r,
        )
        for outcome in NOTIFICATION_OUTCOMES:
            self.notifications.labels(outcome)
        # Pre-create closed-set series so dashboards and alerts see zeros, not gaps.
        for provider in sorted(KNOWN_PROVIDERS | {"other"}):
            self.rows.labels("normalized", provider)
        self.rows.labels("rejected", "other")
        for reason in sorted(REJECTION_REASONS):
            self.rejected.labels(reason)
        for stage in STAGES:
            self.errors.labels(stage)
        for database in DATABASES:
            self.connected.labels(database).set(0)
            self.reconnects.labels(database)

    def set_info(self, slot: str, publication: str) -> None:
        self.info.labels(__version__, slot, publication).set(1)

    def set_source_host(self, serving: str, configured: list[str]) -> None:
        """Which host serves; label values come from the source URL (a closed set),
        plus "other" for a server libpq reached under another name."""
        for host in [*configured, "other"]:
            self.source_host.labels(host).set(1 if host == serving else 0)


class _Discard:
    """A metric (labelled or not) that records nothing."""

    def labels(self, *_values: str) -> _Discard:
        return self

    def inc(self, _amount: float = 1) -> None:
        pass

    def set(self, _value: float) -> None:
        pass

    def observe(self, _value: float) -> None:
        pass


_DISCARD: Any = _Discard()


class NullMetrics(Metrics):
    """Every metric attribute of `Metrics`, all discarding (see the module docstring)."""

    enabled = False

    def __init__(self) -> None:  # no super().__init__: no prometheus_client, no registry
        self.registry = None  # type: ignore[assignment]

    def __getattr__(self, name: str) -> Any:  # only reached for the metric attributes
        return _DISCARD
