"""Composition: settings → source + driver + sink for the run commands, and the export of
final metrics. The CLI parses; this wires."""

from __future__ import annotations

import logging
from collections.abc import Callable

from streamer import __version__
from streamer.config import Settings, url_hosts
from streamer.errors import StreamerError
from streamer.runtime.health import RunState
from streamer.runtime.metrics import Metrics, NullMetrics
from streamer.runtime.stopping import StopFlag
from streamer.sink.base import Sink
from streamer.sink.writer import BatchWriter
from streamer.sources.accounting import RunSummary
from streamer.sources.base import Source
from streamer.sources.driver import Driver

log = logging.getLogger("streamer")


def run_slot(
    settings: Settings,
    once: bool,
    metrics: Metrics,
    stop: StopFlag,
    state: RunState | None = None,
    *,
    setup: bool = True,
) -> RunSummary:
    """The slot stream until stopped (with `once`: until the WAL position at start).
    `setup` (tables, publication, slot) runs once, with the first session's writer."""
    from streamer.ops.setup import ensure_all  # noqa: PLC0415
    from streamer.sources.slot.source import SlotSource  # noqa: PLC0415

    def prepare(writer: Sink) -> None:
        assert isinstance(writer, BatchWriter)
        for line in ensure_all(settings, writer=writer):
            log.info("%s", line)

    source_url, target_url = settings.require_urls()
    hosts = url_hosts(source_url)
    source = SlotSource(
        settings,
        once,
        setup=prepare if setup else None,
        on_host=lambda host: metrics.set_source_host(host, hosts),
    )

    def sink() -> BatchWriter:
        return BatchWriter(
            target_url, settings.target_schema, settings.slot, binary_copy=binary_copy(settings)
        )

    return _driver(settings, source, sink, metrics=metrics, stop=stop, state=state).run(once)


def binary_copy(settings: Settings) -> bool:
    """Whether the run's writers may use binary COPY (`STREAMER_COPY_FORMAT`)."""
    return settings.copy_format == "auto"


def run_poll(
    settings: Settings, once: bool, metrics: Metrics, stop: StopFlag, state: RunState
) -> tuple[RunSummary, str]:
    """Poll mode; returns the summary and its line."""
    from streamer.sources.poll import PollSource, marker_name  # noqa: PLC0415

    _, target_url = settings.require_urls()
    source = PollSource(settings, once)

    def sink() -> BatchWriter:
        return BatchWriter(
            target_url,
            settings.target_schema,
            marker_name(settings),
            binary_copy=binary_copy(settings),
        )

    summary = _driver(settings, source, sink, metrics=metrics, stop=stop, state=state).run(once)
    return summary, source.line(summary)


def run_files(
    settings: Settings, once: bool, metrics: Metrics, stop: StopFlag, state: RunState
) -> tuple[RunSummary, str]:
    """Files mode; returns the summary and its line."""
    from streamer.sink.files import FilesWriter  # noqa: PLC0415
    from streamer.sources.files.s3 import parse_files_url  # noqa: PLC0415
    from streamer.sources.files.source import FilesSource  # noqa: PLC0415

    files_url, target_url = settings.require_files()
    bucket, prefix = parse_files_url(files_url)
    source = FilesSource(settings, once, metrics)

    def sink() -> BatchWriter:
        return FilesWriter(
            target_url, settings.target_schema, bucket, prefix, binary_copy=binary_copy(settings)
        )

    summary = _driver(settings, source, sink, metrics=metrics, stop=stop, state=state).run(once)
    return summary, source.line(summary)


def init_files(settings: Settings) -> list[str]:
    """`init --mode files`: the target tables files mode needs (no source database)."""
    from streamer.sink.files import FilesWriter  # noqa: PLC0415
    from streamer.sources.files.s3 import parse_files_url  # noqa: PLC0415

    files_url, target_url = settings.require_files()
    writer = FilesWriter(target_url, settings.target_schema, *parse_files_url(files_url))
    try:
        done = writer.prepare()
    finally:
        writer.close()
    return done or ["nothing to do: the target tables of files mode exist"]


def _driver(
    settings: Settings,
    source: Source,
    sink: Callable[[], BatchWriter],
    *,
    metrics: Metrics,
    stop: StopFlag,
    state: RunState | None,
) -> Driver:
    return Driver(
        source,
        sink,
        batch_size=settings.batch_size,
        batch_timeout_s=settings.batch_timeout_ms / 1000,
        metrics=metrics,
        stop=stop,
        state=state,
    )


def run_command(settings: Settings, once: bool, stop: StopFlag) -> int:
    """`streamer run`: metrics endpoint and monitor (continuous mode), the run, the end
    report."""
    from streamer.runtime.monitor import SourceMonitor  # noqa: PLC0415

    files = settings.mode == "files"
    source_url = settings.require_files()[0] if files else settings.require_urls()[0]
    polling = settings.mode in ("poll", "files")
    exported = not once or settings.pushgateway_url or settings.metrics_textfile
    metrics = Metrics() if exported or polling else NullMetrics()  # nothing could read them
    if files:
        metrics.set_info(source_url, "")
    elif polling:
        from streamer.sources.poll import marker_name  # noqa: PLC0415

        metrics.set_info(marker_name(settings), "")
    else:
        metrics.set_info(settings.slot, settings.publication)
    state = RunState()
    server = None
    if not once:
        from streamer.runtime.metrics_server import start_metrics_server  # noqa: PLC0415

        server = start_metrics_server(metrics, settings, state)
    log.info("streamer %s %s: %r", __version__, "polling" if polling else "starting", settings)
    monitor = None if polling else SourceMonitor(source_url, settings.slot, metrics, state)
    try:
        if monitor is not None and not once:
            monitor.start()
        if files:
            _, line = run_files(settings, once, metrics, stop, state)
        elif polling:
            _, line = run_poll(settings, once, metrics, stop, state)
        else:
            line = run_slot(settings, once, metrics, stop, state).line()
    finally:
        if monitor is not None:
            monitor.stop()
        if server is not None:
            server.shutdown()
    if once:
        print(line)
        export_final_metrics(settings, metrics, state)
    else:
        log.info("stopped: %s", line)
    return 0


def export_final_metrics(settings: Settings, metrics: Metrics, state: RunState) -> None:
    """For cron: push to a Pushgateway and/or write a node_exporter textfile."""
    if not (settings.pushgateway_url or settings.metrics_textfile):
        return
    from prometheus_client import push_to_gateway, write_to_textfile  # noqa: PLC0415

    from streamer.runtime.dbconn import connect  # noqa: PLC0415
    from streamer.runtime.monitor import refresh  # noqa: PLC0415

    if settings.mode != "files":  # no source database, no replication lag
        try:
            with connect("source", settings.require_urls()[0], autocommit=True) as conn:
                refresh(conn, settings.slot, metrics, state)
        except StreamerError as exc:
            log.warning("final lag metrics unavailable: %s", exc)
    if settings.metrics_textfile:
        write_to_textfile(settings.metrics_textfile, metrics.registry)
    if settings.pushgateway_url:
        try:
            push_to_gateway(settings.pushgateway_url, job="streamer", registry=metrics.registry)
        except OSError as exc:
            raise StreamerError(
                f"could not push metrics to the Pushgateway: {exc}",
                hint="check STREAMER_PUSHGATEWAY_URL / --pushgateway",
            ) from None
