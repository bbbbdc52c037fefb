"""`processed_files` from the source's side: what is listed, what is due, who claims it.

The source's own connection (autocommit) does the bookkeeping that needs no rows: new
object versions become `pending`, a due file is claimed (`processing`, `attempts` + 1)
before its first record is read. Everything that moves with rows (resume position,
counters, `completed`, `failed`) is the sink's fence, in the rows' transaction.

A due file is `pending` (new, or reset by the seed's retry UPDATE: read from record 0)
or `processing` (left by a killed run: resumed from its committed `resume_position`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from streamer.runtime.dbconn import connect, translated
from streamer.sink.tables import PROCESSED_FILES
from streamer.sources.files.formats import FileFormat
from streamer.sources.files.rows import ObjectRef
from streamer.sources.files.s3 import ListedObject


@dataclass(frozen=True, slots=True)
class DueFile:
    """A `processed_files` row to process."""

    file_id: int
    ref: ObjectRef
    fmt: FileFormat
    last_modified: datetime | None


class Catalog:
    def __init__(self, target_url: str, schema: str, bucket: str, prefix: str) -> None:
        self._url = target_url
        self._bucket = bucket
        self._prefix = prefix
        self._conn: psycopg.Connection[Any] | None = None
        self._table = sql.SQL("{}.{}").format(
            sql.Identifier(schema), sql.Identifier(PROCESSED_FILES)
        )
        self._mine = sql.SQL("bucket = %(bucket)s AND left(object_key, %(n)s) = %(prefix)s")

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect("target", self._url, autocommit=True)
        return self._conn

    def _execute(self, doing: str, query: sql.Composed, params: Any) -> psycopg.Cursor[Any]:
        with translated("target", self._url, doing):
            return self._connection().execute(query, params)

    def _scope(self) -> dict[str, Any]:
        return {"bucket": self._bucket, "prefix": self._prefix, "n": len(self._prefix)}

    def newest_completed_key(self) -> str | None:
        """The greatest completed key under the prefix (dated keys sort by date)."""
        query = sql.SQL(
            "SELECT max(object_key) FROM {} WHERE {} AND processing_status = 'completed'"
        ).format(self._table, self._mine)
        row = self._execute("reading processed_files", query, self._scope()).fetchone()
        return row[0] if row else None

    def add(self, listed: Iterable[tuple[ListedObject, FileFormat]]) -> None:
        """New object versions (bucket, key, ETag) become `pending`; known ones stay."""
        query = sql.SQL(
            "INSERT INTO {} (bucket, object_key, file_path, etag, file_size, file_format,"
            " last_modified) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (bucket, object_key, etag) DO NOTHING"
        ).format(self._table)
        rows = [
            (
                o.ref.bucket,
                o.ref.key,
                f"s3://{o.ref.bucket}/{o.ref.key}",
                o.ref.etag,
                o.ref.size,
                fmt.value,
                o.last_modified,
            )
            for o, fmt in listed
        ]
        if not rows:
            return
        with (
            translated("target", self._url, "recording listed objects"),
            self._connection().cursor() as cur,
        ):
            cur.executemany(query, rows)

    def due(self) -> list[DueFile]:
        """Files to process, in key order (then version order)."""
        query = sql.SQL(
            "SELECT id, object_key, etag, file_size, file_format, last_modified FROM {}"
            " WHERE {} AND processing_status IN ('pending', 'processing')"
            " ORDER BY object_key, id"
        ).format(self._table, self._mine)
        rows = self._execute("reading processed_files", query, self._scope()).fetchall()
        return [
            DueFile(r[0], ObjectRef(self._bucket, r[1], r[2], r[3]), FileFormat(r[4]), r[5])
            for r in rows
        ]

    def claim(self, file_id: int) -> tuple[int, int] | None:
        """Mark a due file `processing` for one more attempt; returns (attempt, position
        to read from), or None when it is no longer due (reset or finished meanwhile)."""
        query = sql.SQL(
            "UPDATE {} SET processing_status = 'processing', attempts = attempts + 1,"
            " started_at = now(), completed_at = NULL, error_message = NULL,"
            " resume_position = CASE WHEN processing_status = 'pending' THEN 0"
            "   ELSE resume_position END,"
            " rows_normalized = CASE WHEN processing_status = 'pending' THEN 0"
            "   ELSE rows_normalized END,"
            " rows_rejected = CASE WHEN processing_status = 'pending' THEN 0"
            "   ELSE rows_rejected END,"
            " records_count = NULL"
            " WHERE id = %s AND processing_status IN ('pending', 'processing')"
            " RETURNING attempts, resume_position"
        ).format(self._table)
        row = self._execute("claiming a file", query, (file_id,)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
