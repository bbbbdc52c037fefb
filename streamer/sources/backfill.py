"""Copying rows that are already in the source table through the same normalizer and
writer as the stream.

In a slot's exported snapshot the copy sees exactly the rows committed before the slot's
consistent point; everything later arrives through the stream, so the handoff has no gap
and no overlap. Without a snapshot (resuming a killed copy) the copy may also see rows the
stream delivers; the guarded write path skips those duplicates, so the set stays exact.
Rows are read in keyset chunks by id, so memory is bounded by the chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import sql

from streamer.config import Settings
from streamer.errors import ConfigError
from streamer.normalize import normalize
from streamer.normalize.records import Canonical, SourceRow
from streamer.pgtime import PG_EPOCH_OFFSET_US
from streamer.runtime.dbconn import connect, translated
from streamer.runtime.progress import Progress
from streamer.sink.writer import BatchWriter
from streamer.sources.batching import Batch, TxnChunk

MODES: Final = ("all", "unprocessed", "none")
CHUNK_ROWS: Final = 5000
ZERO_UUID: Final = "00000000-0000-0000-0000-000000000000"


def validate_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"--backfill must be one of {', '.join(MODES)}, got {mode[:40]!r}")
    return mode


@dataclass
class BackfillResult:
    rows: int = 0
    normalized: int = 0
    rejected: int = 0

    def line(self) -> str:
        return (
            f"backfilled {self.rows} rows ({self.normalized} normalized, {self.rejected} rejected)"
        )


def copy_rows(
    settings: Settings,
    writer: BatchWriter,
    lsn: int,
    mode: str,
    *,
    snapshot: str | None = None,
    after_id: str | None = None,
) -> BackfillResult:
    """Copy source rows (all, or the legacy poller's unprocessed ones) into the target.

    Rows get `source_lsn` = `lsn` (the slot's consistent point) and, as their commit time,
    the time of the copy's snapshot: the original commit time is not recorded by Postgres.
    """
    source_url, _ = settings.require_urls()
    table = sql.SQL("{}.{}").format(
        sql.Identifier(settings.source_schema), sql.Identifier(settings.source_table)
    )
    only_pending = sql.SQL(" AND NOT processed" if mode == "unprocessed" else "")
    only_pending_r = sql.SQL(" AND NOT r.processed" if mode == "unprocessed" else "")
    result = BackfillResult()
    with (
        translated("source", source_url, "copying existing rows"),
        connect("source", source_url) as conn,
    ):
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            if snapshot is not None:
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            commit_us = _snapshot_time_us(conn)
            cursor = after_id or ZERO_UUID
            total = _scalar(
                conn,
                sql.SQL("SELECT count(*) FROM {} WHERE id > %s::uuid{}").format(
                    table, only_pending
                ),
                (cursor,),
            )
            progress = Progress("backfill", int(total))
            query = sql.SQL(
                # ORDER BY r.id, not id: the bare name would mean the id::text output
                # column, which sorts instead of walking the primary key index.
                "SELECT r.id::text, r.transactional_id::text, r.data::text,"
                " r.merchant::text, r.created_at::text FROM {} AS r"
                " WHERE r.id > %s::uuid{} ORDER BY r.id LIMIT %s"
            ).format(table, only_pending_r)
            while True:
                rows = conn.execute(query, (cursor, CHUNK_ROWS)).fetchall()
                if not rows:
                    break
                chunk = TxnChunk(commit_us, lsn)
                for row in rows:
                    record = normalize(SourceRow(*row))
                    if type(record) is Canonical:
                        chunk.canonical.append(record)
                    else:
                        chunk.rejected.append(record)  # type: ignore[arg-type]
                cursor = rows[-1][0]
                refused = writer.write(
                    Batch([chunk], None, len(rows), 0), guarded=True, backfill_cursor=cursor
                )
                result.rows += len(rows)
                result.normalized += len(chunk.canonical) - len(refused)
                result.rejected += len(chunk.rejected) + len(refused)
                progress.update(len(rows))
            progress.finish()
    return result


def _scalar(conn: psycopg.Connection[Any], query: sql.Composed, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def _snapshot_time_us(conn: psycopg.Connection[Any]) -> int:
    unix_us = _scalar(
        conn, sql.Composed([sql.SQL("SELECT (extract(epoch FROM now()) * 1e6)::bigint")])
    )
    return int(unix_us) - PG_EPOCH_OFFSET_US
