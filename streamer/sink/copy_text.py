"""COPY text for a batch, formatted before it reaches the writer thread.

Why here and not inside the COPY: formatting needs the GIL. Done row by row inside the
writer thread it competed with the CPU-bound replication loop, and every wait on the
target made the writer queue for the GIL again; writes ran about 2.5x slower than alone.
Formatting the whole batch in one go (psycopg's C row formatter, ~2 µs a row) leaves the
writer with nothing but I/O, during which it does not hold the GIL.

`format_row_text` is psycopg's internal formatter (the one `Copy.write_row` uses); if a
psycopg release moves it, `encode_rows` returns None and the writer falls back to
`write_row`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any

from psycopg.adapt import Transformer

from streamer._speedups import hot
from streamer.lsn import format_lsn
from streamer.normalize.records import Rejection
from streamer.pgtime import _second_iso, pg_us_to_iso
from streamer.sources.batching import TXN, Batch, TxnChunk

try:  # internal API: see the module docstring
    from psycopg._copy_base import format_row_text
except ImportError:  # pragma: no cover - depends on the psycopg release
    format_row_text = None


def encode_rows(rows: Iterable[Sequence[Any]]) -> bytes | None:
    """The rows as COPY text (tab-separated, escaped, one line each), or None when the
    formatter is unavailable."""
    if format_row_text is None:
        return None
    transformer = Transformer()
    out = bytearray()
    for row in rows:
        format_row_text(row, transformer, out)
    return bytes(out)


def rejected_fields(row: Rejection) -> tuple[Any, ...]:
    """The rejected row as stored: a rejection whose transactional id is unknown (a file
    record that could not be parsed) carries "" and is stored as NULL (the column is a
    nullable uuid; "" is no uuid). The one place every write path maps it."""
    return row if row.transactional_id else row._replace(transactional_id=None)  # type: ignore[arg-type]


def commit_info(chunk: TxnChunk) -> tuple[str, str | None]:
    """(source_committed_at, source_lsn) as text, formatted once per transaction rather
    than dumped per row; no LSN for a chunk of an unfinished transaction."""
    lsn = format_lsn(chunk.end_lsn) if chunk.end_lsn is not None else None
    return pg_us_to_iso(chunk.commit_time_us), lsn


def encode_batch(
    batch: Batch, speedups: ModuleType | None = hot, *, canonical: bool = True
) -> tuple[bytes, bytes] | None:
    """COPY text for the batch's whole transactions (transactions, rejected rows; without
    `canonical`, b"" for the transactions: they go as binary COPY, copy_binary.py).

    One pass, commit info formatted once per transaction: with single-row transactions
    the per-transaction work is most of the cost. The lists built below are the
    specification; `speedups.format_rows` writes the same bytes without building them."""
    if speedups is not None and format_row_text is not None:
        canonical_out, rejected_out = bytearray(), bytearray()
        speedups.encode_chunks(
            batch.chunks,
            TXN,
            rejected_fields,
            format_row_text,
            Transformer(),
            canonical_out,
            rejected_out,
            _second_iso,
            commit_info,
            canonical,
        )
        return bytes(canonical_out), bytes(rejected_out)
    rows: list[tuple[Any, ...]] = []
    rejected: list[tuple[Any, ...]] = []
    for chunk in batch.chunks:
        if chunk.end_lsn is None or chunk.kind != TXN:  # parked rows: sink/parking.py
            continue
        if not canonical and not chunk.rejected:
            continue  # nothing of this transaction goes as text
        tail = commit_info(chunk)
        if canonical:
            rows.extend([row + tail for row in chunk.canonical])
        if chunk.rejected:
            rejected.extend([rejected_fields(row) + tail for row in chunk.rejected])
    canonical_text = encode_rows(rows)
    rejected_text = encode_rows(rejected)
    if canonical_text is None or rejected_text is None:
        return None
    return canonical_text, rejected_text


def rows_with_commit(chunks: list[TxnChunk], canonical: bool) -> Iterable[tuple[Any, ...]]:
    """Rows of the chunks with (source_committed_at, source_lsn) appended; no LSN column
    for chunks of an unfinished transaction (they go to the spill tables)."""
    for chunk in chunks:
        committed, lsn = commit_info(chunk)
        tail: tuple[Any, ...] = (committed, lsn) if lsn is not None else (committed,)
        if canonical:
            for row in chunk.canonical:
                yield (*row, *tail)
        else:
            for rejected in chunk.rejected:
                yield (*rejected_fields(rejected), *tail)
