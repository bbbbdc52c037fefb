"""Files mode's sink: the batch writer, whose fence also moves each file's progress.

Every chunk a `FilesSource` pushes carries a `FileCursor` as its cursor text: which file
(and which claimed attempt of it), the record positions it covers, whether it is the
file's last chunk, and the kind of each record in position order. Inside the batch's
target transaction the fence (1) checks this run still owns the `files:<bucket>/<prefix>`
checkpoint (a newer run's claim fences an older one), (2) records the provenance of
every record (`processed_file_records`: file, position, source id; also for rows the
target already held), and (3) moves the file's `resume_position` and counters, setting
`completed` with the last chunk or `failed` with a failure chunk. So a file's rows, its
rejected rows, its provenance and its status are exactly as durable as each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import psycopg
from psycopg import sql

from streamer.errors import Fenced
from streamer.normalize.records import Canonical, Rejection
from streamer.sink.checkpoints import Checkpoints
from streamer.sink.tables import FILE_RECORDS, PROCESSED_FILES
from streamer.sink.writer import BatchWriter
from streamer.sources.batching import Batch, TxnChunk

MORE: Final = "more"
DONE: Final = "done"
FAILED: Final = "failed"
CANONICAL: Final = "c"
REJECTED: Final = "r"

Row = TypeVar("Row", Canonical, Rejection)


@dataclass(frozen=True, slots=True)
class FileCursor:
    """One chunk's file progress. `kinds`: one letter per record of [start, end), "c"
    normalized or "r" rejected (the builder keeps the two apart; this restores the
    order, hence each row's position). A FAILED chunk has no records and holds the
    one-line error message instead."""

    file_id: int
    attempt: int
    start: int
    end: int
    state: str
    kinds: str = ""
    message: str = ""

    def encode(self) -> str:
        tail = self.message if self.state == FAILED else self.kinds
        return f"{self.file_id}:{self.attempt}:{self.start}:{self.end}:{self.state}:{tail}"

    @classmethod
    def decode(cls, text: str) -> FileCursor:
        file_id, attempt, start, end, state, tail = text.split(":", 5)
        if state == FAILED:
            return cls(int(file_id), int(attempt), int(start), int(end), state, message=tail)
        return cls(int(file_id), int(attempt), int(start), int(end), state, kinds=tail)


def chunk_source_ids(chunk: TxnChunk, kinds: str) -> list[str]:
    """The chunk's source ids in position order."""
    canonical = iter([row.source_id for row in chunk.canonical])
    rejected = iter([row.source_id for row in chunk.rejected])
    return [next(canonical if k == CANONICAL else rejected) for k in kinds]


def marker_name(bucket: str, prefix: str) -> str:
    """The checkpoint row of a files run (claimed by each run; fences older ones)."""
    return f"files:{bucket}/{prefix}"


def _first_of_each(rows: list[Row], seen: set[str]) -> list[Row]:
    kept = []
    for row in rows:
        if row.source_id not in seen:
            seen.add(row.source_id)
            kept.append(row)
    return kept


def drop_repeats(batch: Batch) -> None:
    """Keep the first row of each source id in the batch (a record with an explicit id
    in several files of one batch): the guarded write would store it once but count it
    as written each time. Canonical rows first, as the writer inserts them."""
    seen: set[str] = set()
    whole = [chunk for chunk in batch.chunks if chunk.end_lsn is not None]
    before = sum(chunk.rows for chunk in whole)
    for chunk in whole:
        chunk.canonical = _first_of_each(chunk.canonical, seen)
    for chunk in whole:
        chunk.rejected = _first_of_each(chunk.rejected, seen)
    batch.rows -= before - sum(chunk.rows for chunk in whole)


class FileCheckpoints(Checkpoints):
    """The run's checkpoint row plus every file's progress (module docstring).

    `provenance`: each chunk's source ids in position order (by `id(chunk)`), taken
    before `drop_repeats` thins the batch out."""

    def __init__(self, *args: Any, schema: str) -> None:
        super().__init__(*args)
        self.provenance: dict[int, list[str]] = {}
        ident = sql.Identifier
        files = sql.SQL("{}.{}").format(ident(schema), ident(PROCESSED_FILES))
        records = sql.SQL("{}.{}").format(ident(schema), ident(FILE_RECORDS))
        owned = sql.SQL(
            " WHERE id = %(id)s AND attempts = %(attempt)s AND processing_status = 'processing'"
        )
        self._provenance = sql.SQL(
            "INSERT INTO {} (file_id, position, source_id)"
            " SELECT %s, p, s FROM unnest(%s::bigint[], %s::uuid[]) AS t(p, s)"
            " ON CONFLICT DO NOTHING"
        ).format(records)
        self._advance = sql.SQL(
            "UPDATE {} SET resume_position = %(end)s,"
            " rows_normalized = rows_normalized + %(normalized)s,"
            " rows_rejected = rows_rejected + %(rejected)s,"
            " processing_status = CASE WHEN %(done)s THEN 'completed' ELSE processing_status END,"
            " completed_at = CASE WHEN %(done)s THEN now() END,"
            " records_count = CASE WHEN %(done)s THEN %(end)s ELSE records_count END"
            "{} AND resume_position = %(start)s"
        ).format(files, owned)
        self._fail = sql.SQL(
            "UPDATE {} SET processing_status = 'failed', error_message = %(message)s,"
            " completed_at = NULL{}"
        ).format(files, owned)

    def fence(self, cur: psycopg.Cursor[Any], batch: Batch) -> None:
        super().fence(cur, dataclasses.replace(batch, cursor=None))
        for chunk in batch.chunks:
            if chunk.end_lsn is not None and chunk.cursor is not None:
                self._file_fence(cur, chunk, FileCursor.decode(chunk.cursor))

    def _file_fence(self, cur: psycopg.Cursor[Any], chunk: TxnChunk, fc: FileCursor) -> None:
        params: dict[str, Any] = {"id": fc.file_id, "attempt": fc.attempt}
        if fc.state == FAILED:
            cur.execute(self._fail, {**params, "message": fc.message})
        else:
            ids = self.provenance.get(id(chunk)) or chunk_source_ids(chunk, fc.kinds)
            assert len(fc.kinds) == fc.end - fc.start == len(ids), "chunk/cursor mismatch"
            if ids:
                cur.execute(self._provenance, (fc.file_id, list(range(fc.start, fc.end)), ids))
            rejected = fc.kinds.count(REJECTED)
            params |= {
                "start": fc.start,
                "end": fc.end,
                "done": fc.state == DONE,
                "normalized": len(fc.kinds) - rejected,
                "rejected": rejected,
            }
            cur.execute(self._advance, params)
        if cur.rowcount != 1:
            raise Fenced(
                f"file {fc.file_id} (attempt {fc.attempt}) was claimed by another run "
                "or changed under this one"
            )


class FilesWriter(BatchWriter):
    """The batch writer with files mode's tables and fence."""

    files_tables = True

    def __init__(
        self, url: str, schema: str, bucket: str, prefix: str, *, binary_copy: bool = True
    ) -> None:
        name = marker_name(bucket, prefix)
        super().__init__(url, schema, name, binary_copy=binary_copy)
        self.checkpoints: FileCheckpoints = FileCheckpoints(
            lambda: self.conn, self._guard, schema, name, schema=schema
        )

    def encode(self, batch: Batch) -> None:
        self.checkpoints.provenance = {
            id(chunk): chunk_source_ids(chunk, FileCursor.decode(chunk.cursor).kinds)
            for chunk in batch.chunks
            if chunk.end_lsn is not None and chunk.cursor is not None
        }
        drop_repeats(batch)
        super().encode(batch)
