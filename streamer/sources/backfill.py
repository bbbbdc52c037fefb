"""Copying rows that are already in the source table through the same normalizer and
writer as the stream.

In a slot's exported snapshot the copy sees exactly the rows committed before the slot's
consistent point; everything later arrives through the stream, so the handoff has no gap
and no overlap. Without a snapshot (resuming a killed copy) the copy may also see rows the
stream delivers; the guarded write path skips those duplicates, so the set stays exact.
Rows are read in keyset chunks by id, so memory is bounded by the chunk size; each
chunk goes through the one driver, its last id as the cursor committed with it.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg
from psycopg import sql

from streamer.config import Settings
from streamer.errors import ConfigError
from streamer.normalize.records import SourceRow
from streamer.pgtime import PG_EPOCH_OFFSET_US
from streamer.runtime.dbconn import connect, translated
from streamer.runtime.metrics import NullMetrics
from streamer.runtime.progress import Progress
from streamer.runtime.stopping import StopFlag
from streamer.sink.base import Sink
from streamer.sink.writer import BatchWriter
from streamer.sources.accounting import RunSummary
from streamer.sources.base import ZERO_UUID, CursorSource
from streamer.sources.batching import BatchBuilder
from streamer.sources.driver import Driver

MODES: Final = ("all", "unprocessed", "none")
CHUNK_ROWS: Final = 5000


def validate_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"--backfill must be one of {', '.join(MODES)}, got {mode[:40]!r}")
    return mode


def result_line(summary: RunSummary) -> str:
    rows = summary.rows_normalized + summary.rows_rejected + summary.already_present
    return (
        f"backfilled {rows} rows ({summary.rows_normalized} normalized, "
        f"{summary.rows_rejected} rejected)"
    )


def copy_rows(
    settings: Settings,
    writer: BatchWriter,
    lsn: int,
    mode: str,
    *,
    snapshot: str | None = None,
    after_id: str | None = None,
) -> RunSummary:
    """Copy source rows (all, or the legacy poller's unprocessed ones) into the target.

    Rows get `source_lsn` = `lsn` (the slot's consistent point) and, as their commit time,
    the time of the copy's snapshot: the original commit time is not recorded by Postgres.
    The caller has claimed the checkpoint; the copy moves only its cursor.
    """
    source = BackfillSource(settings, lsn, mode, snapshot, after_id or ZERO_UUID)
    driver = Driver(
        source,
        lambda: _Claimed(writer),
        batch_size=CHUNK_ROWS,
        batch_timeout_s=0.0,
        metrics=NullMetrics(),
        stop=StopFlag(),
    )
    driver.drive()
    return driver.summary


class _Claimed:
    """The writer as the copy's sink: already prepared and claimed by the caller, and
    left open for it."""

    def __init__(self, writer: BatchWriter) -> None:
        self.writer = writer
        self.checkpoints = writer.checkpoints
        self.encode = writer.encode
        self.write = writer.write
        self.forget_parked = writer.forget_parked

    def prepare(self) -> list[str]:
        return []

    def claim(self, initial_lsn: int) -> int:
        return initial_lsn

    def close(self) -> None:
        return None


class BackfillSource(CursorSource):
    """The source table in id order inside one snapshot (REPEATABLE READ, read only)."""

    # guarded (CursorSource): without a snapshot (a resumed copy) the stream may deliver
    # rows too

    def __init__(
        self, settings: Settings, lsn: int, mode: str, snapshot: str | None, after_id: str
    ) -> None:
        self.source_url, _ = settings.require_urls()
        self.lsn = lsn
        self.snapshot = snapshot
        self.cursor = after_id
        self.done = False
        table = sql.SQL("{}.{}").format(
            sql.Identifier(settings.source_schema), sql.Identifier(settings.source_table)
        )
        only_pending = " AND NOT r.processed" if mode == "unprocessed" else ""
        self.count = sql.SQL("SELECT count(*) FROM {} AS r WHERE r.id > %s::uuid{}").format(
            table, sql.SQL(only_pending)
        )
        self.query = sql.SQL(
            # ORDER BY r.id, not id: the bare name would mean the id::text output
            # column, which sorts instead of walking the primary key index.
            "SELECT r.id::text, r.transactional_id::text, r.data::text,"
            " r.merchant::text, r.created_at::text FROM {} AS r"
            " WHERE r.id > %s::uuid{} ORDER BY r.id LIMIT %s"
        ).format(table, sql.SQL(only_pending))
        self._conn: psycopg.Connection[Any] | None = None

    def open(self, sink: Sink, builder: BatchBuilder) -> int:
        self._builder = builder
        with translated("source", self.source_url, "copying existing rows"):
            conn = self._conn = connect("source", self.source_url)
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            if self.snapshot is not None:
                conn.execute(
                    sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self.snapshot))
                )
            unix_us = _scalar(conn, "SELECT (extract(epoch FROM now()) * 1e6)::bigint")
            self.commit_us = int(unix_us) - PG_EPOCH_OFFSET_US
            total = _scalar(conn, self.count, (self.cursor,))
        self.progress = Progress("backfill", int(total))
        return 0

    def read(self, now: float) -> bool:
        assert self._conn is not None
        with translated("source", self.source_url, "copying existing rows"):
            rows = self._conn.execute(self.query, (self.cursor, CHUNK_ROWS)).fetchall()
        if not rows:
            self.done = True
            self.progress.finish()
            return True
        builder = self._builder
        builder.begin(self.commit_us, now)
        for row in rows:
            builder.row(SourceRow(*row))
        self.cursor = rows[-1][0]
        builder.commit(self.lsn, self.cursor)
        self.progress.update(len(rows))
        return False

    def finished(self) -> bool:
        return self.done

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _scalar(conn: psycopg.Connection[Any], query: Any, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None
