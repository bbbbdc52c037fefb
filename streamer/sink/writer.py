"""Writes batches to the target: canonical rows, rejected rows and the checkpoint commit in
ONE transaction, so the checkpoint is exactly what is durable.

Fast path: COPY straight into the tables. A duplicate source id (re-delivery after a
backfill overlap or a manual replay) or a row the target refuses rolls the batch back and
retries it through staging tables with ON CONFLICT DO NOTHING, then, if the target still
refuses something, row by row with savepoints so only the refused row is rejected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Final

import psycopg
from psycopg import sql

from streamer.errors import Fenced, StreamerError, TargetUnavailable
from streamer.lsn import format_lsn, parse_lsn
from streamer.normalize.records import Rejection
from streamer.pgtime import pg_us_to_iso
from streamer.runtime import failpoints
from streamer.runtime.dbconn import connect
from streamer.sink.copy_text import encode_rows
from streamer.sink.tables import (
    CHECKPOINTS,
    REJECTED,
    REJECTED_COLUMNS,
    TRANSACTION_COLUMNS,
    TRANSACTIONS,
)
from streamer.sources.batching import Batch, TxnChunk

log = logging.getLogger(__name__)

TRANSIENT_SQLSTATE_PREFIXES: Final = ("08", "53", "57P", "40001", "40P01", "55P03", "58")
SPILL_TX: Final = "streamer_spill_transactions"
SPILL_REJ: Final = "streamer_spill_rejected"
STAGE_TX: Final = "streamer_stage_transactions"
STAGE_REJ: Final = "streamer_stage_rejected"


def is_transient(exc: BaseException) -> bool:
    """Errors that say nothing about the data: retry the batch, never reject rows."""
    if isinstance(exc, psycopg.OperationalError | psycopg.errors.SerializationFailure):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return sqlstate.startswith(TRANSIENT_SQLSTATE_PREFIXES)


def _commit_info(chunk: TxnChunk) -> tuple[str, str | None]:
    """(source_committed_at, source_lsn) as text, formatted once per transaction rather
    than dumped per row."""
    lsn = format_lsn(chunk.end_lsn) if chunk.end_lsn is not None else None
    return pg_us_to_iso(chunk.commit_time_us), lsn


class BatchWriter:
    """Owns the target connection; used from one thread (the pipeline's writer)."""

    def __init__(self, url: str, schema: str, slot: str) -> None:
        self._url = url
        self._slot = slot
        self._schema = schema
        self._conn: psycopg.Connection[Any] | None = None
        self._epoch = 0
        ident = sql.Identifier
        self._tx = sql.SQL("{}.{}").format(ident(schema), ident(TRANSACTIONS))
        self._rej = sql.SQL("{}.{}").format(ident(schema), ident(REJECTED))
        self._ckpt = sql.SQL("{}.{}").format(ident(schema), ident(CHECKPOINTS))
        self._tx_cols = sql.SQL(", ").join(map(ident, TRANSACTION_COLUMNS))
        self._rej_cols = sql.SQL(", ").join(map(ident, REJECTED_COLUMNS))
        self._tx_cols_no_lsn = sql.SQL(", ").join(map(ident, TRANSACTION_COLUMNS[:-1]))
        self._rej_cols_no_lsn = sql.SQL(", ").join(map(ident, REJECTED_COLUMNS[:-1]))

    # -- connection and checkpoint ---------------------------------------------------
    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect("target", self._url)
            # Our own commits must be durable before we confirm them upstream, whatever
            # the server default is.
            self._conn.execute("SET synchronous_commit = on")
            # COPY text is prepared as UTF-8 outside the connection (sink/copy_text.py)
            self._conn.execute("SET client_encoding = 'UTF8'")
            self._conn.commit()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def read_checkpoint(self) -> int | None:
        with self._guard("reading the checkpoint"):
            row = self.conn.execute(
                sql.SQL("SELECT lsn::text FROM {} WHERE slot_name = %s").format(self._ckpt),
                (self._slot,),
            ).fetchone()
            self.conn.commit()
        return parse_lsn(row[0]) if row else None

    def set_backfill(self, state: str | None, lsn: int | None = None) -> None:
        """Mark the backfill pending (optionally resetting the checkpoint to a new slot's
        consistent point, as resync does) or done; creates the row if missing."""
        with self._guard("recording the backfill state"), self.conn.transaction():
            self.conn.execute(
                sql.SQL(
                    "INSERT INTO {t} AS c (slot_name, lsn, backfill) VALUES (%s, %s::pg_lsn, %s)"
                    " ON CONFLICT (slot_name) DO UPDATE SET backfill = EXCLUDED.backfill,"
                    " lsn = CASE WHEN %s THEN EXCLUDED.lsn ELSE c.lsn END,"
                    " backfill_cursor = CASE WHEN %s THEN NULL ELSE c.backfill_cursor END,"
                    " updated_at = now()"
                ).format(t=self._ckpt),
                (self._slot, format_lsn(lsn or 0), state, lsn is not None, lsn is not None),
            )

    def backfill_state(self) -> tuple[str | None, str | None]:
        """(state, cursor) of the slot's backfill; (None, None) when there is no row."""
        with self._guard("reading the backfill state"):
            row = self.conn.execute(
                sql.SQL("SELECT backfill, backfill_cursor FROM {} WHERE slot_name = %s").format(
                    self._ckpt
                ),
                (self._slot,),
            ).fetchone()
            self.conn.commit()
        return (row[0], row[1]) if row else (None, None)

    def claim(self, initial_lsn: int) -> int:
        """Take ownership of the slot's checkpoint (bumping its epoch fences any older
        writer) and return the checkpoint LSN, created at `initial_lsn` if missing."""
        with self._guard("claiming the checkpoint"), self.conn.transaction():
            row = self.conn.execute(
                sql.SQL(
                    "INSERT INTO {t} AS c (slot_name, lsn, epoch) VALUES (%s, %s::pg_lsn, 1)"
                    " ON CONFLICT (slot_name) DO UPDATE SET epoch = c.epoch + 1"
                    " RETURNING lsn::text, epoch"
                ).format(t=self._ckpt),
                (self._slot, format_lsn(initial_lsn)),
            ).fetchone()
        assert row is not None
        self._epoch = int(row[1])
        return parse_lsn(row[0])

    def ensure_checkpoint(self, lsn: int) -> bool:
        """Create the slot's checkpoint row at `lsn` if it is missing; True when created.
        Unlike `claim`, this leaves a running streamer's epoch alone."""
        with self._guard("creating the checkpoint"), self.conn.transaction():
            cur = self.conn.execute(
                sql.SQL(
                    "INSERT INTO {} (slot_name, lsn) VALUES (%s, %s::pg_lsn)"
                    " ON CONFLICT (slot_name) DO NOTHING"
                ).format(self._ckpt),
                (self._slot, format_lsn(lsn)),
            )
            return cur.rowcount == 1

    def _fence(
        self, cur: psycopg.Cursor[Any], lsn: int | None, backfill_cursor: str | None = None
    ) -> None:
        """Move the checkpoint (never backwards) if this writer still owns it; a backfill
        chunk also records how far the copy got, in the same transaction."""
        cur.execute(
            sql.SQL(
                "UPDATE {} SET lsn = GREATEST(lsn, coalesce(%s::pg_lsn, lsn)), updated_at = now(),"
                " backfill_cursor = coalesce(%s, backfill_cursor)"
                " WHERE slot_name = %s AND epoch = %s"
            ).format(self._ckpt),
            (
                format_lsn(lsn) if lsn is not None else None,
                backfill_cursor,
                self._slot,
                self._epoch,
            ),
        )
        if cur.rowcount != 1:
            raise Fenced(f"the checkpoint of slot {self._slot!r} was claimed by another writer")

    # -- writing -----------------------------------------------------------------------
    def write(
        self, batch: Batch, guarded: bool = False, backfill_cursor: str | None = None
    ) -> list[Rejection]:
        """Commit the batch; returns rows the target refused (stored as rejections).

        `guarded` skips the fast path, for writers that expect duplicates (backfills)."""
        lsn = batch.checkpoint_lsn
        with self._guard("writing a batch"):
            if not guarded:
                try:
                    with self.conn.transaction(), self.conn.cursor() as cur:
                        self._fence(cur, lsn, backfill_cursor)
                        self._copy_batch(cur, batch)
                        if failpoints.ACTIVE:
                            failpoints.hit("before_commit")
                    return []
                except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                    if is_transient(exc):
                        raise
                    log.info(
                        "batch up to %s hit %s; retrying it through staging",
                        format_lsn(lsn or 0),
                        exc.sqlstate,
                    )
            try:
                with self.conn.transaction(), self.conn.cursor() as cur:
                    self._fence(cur, lsn, backfill_cursor)
                    self._stage_batch(cur, batch)
                return []
            except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                if is_transient(exc):
                    raise
                log.warning("staging hit %s; writing the batch row by row", exc.sqlstate)
            with self.conn.transaction(), self.conn.cursor() as cur:
                self._fence(cur, lsn, backfill_cursor)
                return self._rows_one_by_one(cur, batch)

    def _ensure_spill(self, cur: psycopg.Cursor[Any]) -> None:
        """Session temp tables for parked rows. Created on every use (IF NOT EXISTS): a
        remembered flag would go stale when the creating transaction rolls back."""
        for name, cols, table in (
            (SPILL_TX, self._tx_cols_no_lsn, self._tx),
            (SPILL_REJ, self._rej_cols_no_lsn, self._rej),
        ):
            cur.execute(
                sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS {} AS SELECT {} FROM {} WITH NO DATA"
                ).format(sql.Identifier(name), cols, table)
            )

    def _copy(
        self,
        cur: psycopg.Cursor[Any],
        table: sql.Composable,
        cols: sql.Composable,
        rows: Iterable[Sequence[Any]],
    ) -> None:
        rows = iter(rows)
        first = next(rows, None)
        if first is None:  # nothing to send: spare the round trips
            return
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(table, cols)) as copy:
            copy.write_row(first)
            for row in rows:
                copy.write_row(row)

    def _copy_encoded(
        self, cur: psycopg.Cursor[Any], table: sql.Composable, cols: sql.Composable, data: bytes
    ) -> None:
        """COPY rows already formatted as COPY text: only I/O here."""
        if data:
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(table, cols)) as copy:
                copy.write(data)

    def _copy_batch(self, cur: psycopg.Cursor[Any], batch: Batch) -> None:
        whole = [c for c in batch.chunks if c.end_lsn is not None]
        partial = [c for c in batch.chunks if c.end_lsn is None]
        if batch.encoded is not None and not failpoints.ACTIVE:
            self._copy_encoded(cur, self._tx, self._tx_cols, batch.encoded[0])
            self._copy_encoded(cur, self._rej, self._rej_cols, batch.encoded[1])
        else:
            self._copy(cur, self._tx, self._tx_cols, _with_commit(whole, canonical=True))
            rejected = _with_commit(whole, canonical=False)
            if failpoints.ACTIVE and any(c.rejected for c in whole):
                rejected = _crash_midway(rejected)
            self._copy(cur, self._rej, self._rej_cols, rejected)
        self._finish_spilled(cur, whole, guarded=False)
        self._spill(cur, partial)

    def _finish_spilled(
        self, cur: psycopg.Cursor[Any], whole: list[TxnChunk], guarded: bool
    ) -> None:
        """Move the parked rows of the large transaction that commits in this batch.

        Runs before this batch's own partial chunk is parked: the spill tables hold one
        transaction at a time, and the next one's rows must not be moved (and stamped)
        with this one's commit."""
        for chunk in whole:
            if chunk.continues_spill:
                self._unspill(cur, chunk, guarded)

    def _spill(self, cur: psycopg.Cursor[Any], partial: list[TxnChunk]) -> None:
        if not partial:
            return
        self._ensure_spill(cur)
        ident = sql.Identifier
        self._copy(cur, ident(SPILL_TX), self._tx_cols_no_lsn, _with_commit(partial, True))
        self._copy(cur, ident(SPILL_REJ), self._rej_cols_no_lsn, _with_commit(partial, False))

    def _unspill(self, cur: psycopg.Cursor[Any], chunk: TxnChunk, guarded: bool) -> None:
        """Move a large transaction's parked rows into the real tables at its commit."""
        self._ensure_spill(cur)
        lsn = format_lsn(chunk.end_lsn or 0)
        for table, other, cols, cols_no_lsn, spill in (
            (self._tx, self._rej, self._tx_cols, self._tx_cols_no_lsn, SPILL_TX),
            (self._rej, self._tx, self._rej_cols, self._rej_cols_no_lsn, SPILL_REJ),
        ):
            guard = sql.SQL(
                " WHERE NOT EXISTS (SELECT 1 FROM {} o WHERE o.source_id = s.source_id)"
                " ON CONFLICT (source_id) DO NOTHING"
            ).format(other)
            cur.execute(
                sql.SQL("INSERT INTO {} ({}) SELECT {}, %s::pg_lsn FROM {} s{}").format(
                    table,
                    cols,
                    cols_no_lsn,
                    sql.Identifier(spill),
                    guard if guarded else sql.SQL(""),
                ),
                (lsn,),
            )
            cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(spill)))

    def _stage_batch(self, cur: psycopg.Cursor[Any], batch: Batch) -> None:
        """Like `_copy_batch`, but duplicates (in either table) are skipped."""
        whole = [c for c in batch.chunks if c.end_lsn is not None]
        for stage, table, cols, canonical in (
            (STAGE_TX, self._tx, self._tx_cols, True),
            (STAGE_REJ, self._rej, self._rej_cols, False),
        ):
            other = self._rej if canonical else self._tx
            cur.execute(
                sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS {s} AS SELECT {c} FROM {t} WITH NO DATA"
                ).format(s=sql.Identifier(stage), c=cols, t=table)
            )
            cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(stage)))
            self._copy(cur, sql.Identifier(stage), cols, _with_commit(whole, canonical))
            cur.execute(
                sql.SQL(
                    "INSERT INTO {t} ({c}) SELECT {c} FROM {s} s WHERE NOT EXISTS"
                    " (SELECT 1 FROM {o} o WHERE o.source_id = s.source_id)"
                    " ON CONFLICT (source_id) DO NOTHING"
                ).format(t=table, c=cols, s=sql.Identifier(stage), o=other)
            )
        self._finish_spilled(cur, whole, guarded=True)
        self._spill(cur, [c for c in batch.chunks if c.end_lsn is None])

    def _rows_one_by_one(self, cur: psycopg.Cursor[Any], batch: Batch) -> list[Rejection]:
        """Last resort: each row in its own savepoint; refused rows become rejections."""
        if any(c.end_lsn is None or c.continues_spill for c in batch.chunks):
            raise StreamerError(
                "the target refused a row inside a source transaction larger than one batch",
                hint="fix the target constraint, or raise --batch-size above the "
                "transaction's row count",
            )
        refused: list[Rejection] = []
        insert_tx, insert_rej = (
            sql.SQL(
                "INSERT INTO {t} ({c}) SELECT {v} WHERE NOT EXISTS"
                " (SELECT 1 FROM {o} o WHERE o.source_id = %s::uuid)"
                " ON CONFLICT (source_id) DO NOTHING"
            ).format(t=table, c=cols, v=sql.SQL(", ").join([sql.Placeholder()] * n), o=other)
            for table, other, cols, n in (
                (self._tx, self._rej, self._tx_cols, 17),
                (self._rej, self._tx, self._rej_cols, 8),
            )
        )
        conn = self.conn
        for chunk in batch.chunks:
            tail = _commit_info(chunk)
            for row in chunk.canonical:
                try:
                    with conn.transaction():
                        cur.execute(insert_tx, (*row, *tail, row.source_id))
                except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                    if is_transient(exc):
                        raise
                    diag = (exc.diag.message_primary or "")[:200]
                    rejection = Rejection(
                        row.source_id,
                        row.transactional_id,
                        _merchant_json(row),
                        row.raw,
                        "target_refused",
                        f"SQLSTATE {exc.sqlstate}: {diag}",
                    )
                    refused.append(rejection)
                    cur.execute(insert_rej, (*rejection, *tail, rejection.source_id))
            for rejected in chunk.rejected:
                cur.execute(insert_rej, (*rejected, *tail, rejected.source_id))
        return refused

    # -- errors --------------------------------------------------------------------------
    def _guard(self, doing: str) -> _Guard:
        return _Guard(self, doing)


class _Guard:
    """Translate transient database errors into TargetUnavailable (and drop the
    connection so the next use reconnects)."""

    def __init__(self, writer: BatchWriter, doing: str) -> None:
        self._writer = writer
        self._doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, psycopg.Error):
            self._writer.close()
            first = (str(exc).strip().splitlines() or ["error"])[0]
            if is_transient(exc):
                raise TargetUnavailable(f"target error while {self._doing}: {first}") from None
            raise StreamerError(
                f"target refused {self._doing}: {first} (SQLSTATE {exc.sqlstate})"
            ) from None


def _with_commit(chunks: list[TxnChunk], canonical: bool) -> Iterable[tuple[Any, ...]]:
    """Rows of the chunks with (source_committed_at, source_lsn) appended; no LSN column
    for chunks of an unfinished transaction (they go to the spill tables)."""
    for chunk in chunks:
        committed, lsn = _commit_info(chunk)
        tail: tuple[Any, ...] = (committed, lsn) if lsn is not None else (committed,)
        for row in chunk.canonical if canonical else chunk.rejected:
            yield (*row, *tail)


def encode_batch(batch: Batch) -> tuple[bytes, bytes] | None:
    """COPY text for the batch's whole transactions (transactions, rejected rows).

    One pass, commit info formatted once per transaction: with single-row transactions
    the per-transaction work is most of the cost."""
    canonical: list[tuple[Any, ...]] = []
    rejected: list[tuple[Any, ...]] = []
    for chunk in batch.chunks:
        if chunk.end_lsn is None:
            continue
        tail = _commit_info(chunk)
        canonical.extend([row + tail for row in chunk.canonical])
        if chunk.rejected:
            rejected.extend([row + tail for row in chunk.rejected])
    canonical_text = encode_rows(canonical)
    rejected_text = encode_rows(rejected)
    if canonical_text is None or rejected_text is None:
        return None
    return canonical_text, rejected_text


def _crash_midway(rows: Iterable[tuple[Any, ...]]) -> Iterable[tuple[Any, ...]]:
    """Failpoint `rejected_write`: die while the rejected rows are being copied."""
    for row in rows:
        yield row
        failpoints.hit("rejected_write")


def _merchant_json(row: Any) -> str:
    """The merchant object as JSON for a target-refused canonical row."""
    import orjson  # noqa: PLC0415  (rare path)

    return orjson.dumps(
        {"id": row.merchant_id, "name": row.merchant_name, "country": row.merchant_country}
    ).decode()
