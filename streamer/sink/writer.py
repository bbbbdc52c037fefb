"""The target sink: canonical rows, rejected rows and the position commit in ONE
transaction, so the position is exactly what is durable.

Fast path: COPY straight into the tables. A duplicate source id (re-delivery after a
backfill overlap or a manual replay) or a row the target refuses rolls the batch back and
retries it through staging tables with ON CONFLICT DO NOTHING, then, if the target still
refuses something, row by row with savepoints so only the refused row is rejected.
Sources that expect duplicates (poll, backfill, files) go to staging at once (`guarded`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import psycopg
from psycopg import sql

from streamer.errors import StreamerError, TargetUnavailable
from streamer.lsn import format_lsn
from streamer.runtime import failpoints
from streamer.runtime.dbconn import connect
from streamer.sink.base import NOTHING_LEFT_OUT, Written
from streamer.sink.binary_guard import BinaryGuard, TypesChanged
from streamer.sink.checkpoints import Checkpoints
from streamer.sink.copy_binary import encode_for_copy
from streamer.sink.copy_text import rows_with_commit
from streamer.sink.parking import Parking
from streamer.sink.refusals import RowInserter, is_transient
from streamer.sink.tables import (
    REJECTED,
    REJECTED_COLUMNS,
    TRANSACTION_COLUMNS,
    TRANSACTIONS,
    ensure_tables,
)
from streamer.sources.batching import TXN, Batch, TxnChunk

log = logging.getLogger(__name__)

SPILL_TX: Final = "streamer_spill_transactions"
SPILL_REJ: Final = "streamer_spill_rejected"
STAGE_TX: Final = "streamer_stage_transactions"
STAGE_REJ: Final = "streamer_stage_rejected"


def _nothing() -> None:
    return None


class BatchWriter:
    """Owns the target connection; used from one thread at a time (the writer thread
    while a run streams). Implements the `Sink` seam."""

    files_tables = False  # `prepare` also creates files mode's tables (sink/files.py)

    def __init__(self, url: str, schema: str, slot: str, *, binary_copy: bool = True) -> None:
        self._url = url
        self._schema = schema
        self._conn: psycopg.Connection[Any] | None = None
        self.binary = BinaryGuard(schema)  # may the canonical rows go as binary COPY
        self._binary_copy = binary_copy  # False: COPY text always (STREAMER_COPY_FORMAT)
        self.checkpoints = Checkpoints(lambda: self.conn, self._guard, schema, slot)
        ident = sql.Identifier
        self._tx = sql.SQL("{}.{}").format(ident(schema), ident(TRANSACTIONS))
        self._rej = sql.SQL("{}.{}").format(ident(schema), ident(REJECTED))
        self._tx_cols = sql.SQL(", ").join(map(ident, TRANSACTION_COLUMNS))
        self._rej_cols = sql.SQL(", ").join(map(ident, REJECTED_COLUMNS))
        self._tx_cols_no_lsn = sql.SQL(", ").join(map(ident, TRANSACTION_COLUMNS[:-1]))
        self._rej_cols_no_lsn = sql.SQL(", ").join(map(ident, REJECTED_COLUMNS[:-1]))
        self.rows = RowInserter(schema)
        self.parking = Parking(schema, slot)
        self._flowing: Callable[[], None] = _nothing  # the running write's (see `write`)

    # -- connection ------------------------------------------------------------------
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

    # -- the Sink seam ---------------------------------------------------------------
    def prepare(self) -> list[str]:
        with self._guard("connecting to the target"):
            conn = self.conn
        return ensure_tables(self._url, self._schema, conn, files=self.files_tables)

    def claim(self, initial_lsn: int) -> int:
        claimed = self.checkpoints.claim(initial_lsn)
        if self._binary_copy:
            with self._guard("reading the target column types"), self.conn.transaction():
                self.binary.check(self.conn)
        return claimed

    def encode(self, batch: Batch) -> None:
        batch.encoded = encode_for_copy(batch, self.binary.ok)

    def write(self, batch: Batch, flowing: Callable[[], None] = _nothing) -> Written:
        """Commit the batch and its position; says what it left out (refused rows are
        stored as rejections, rows already present are skipped). `flowing`: see `Sink`."""
        self._flowing = flowing
        try:
            return self._write(batch)
        finally:
            self._flowing = _nothing

    def _write(self, batch: Batch) -> Written:
        lsn = batch.checkpoint_lsn
        with self._guard("writing a batch"):
            if not batch.guarded:
                try:
                    with self.conn.transaction(), self.conn.cursor() as cur:
                        self.checkpoints.fence(cur, batch)
                        self._copy_batch(cur, batch)
                        if failpoints.ACTIVE:
                            failpoints.hit("before_commit")
                    return NOTHING_LEFT_OUT
                except TypesChanged:  # rolled back: an ALTER since the types were checked
                    batch.encoded = encode_for_copy(batch, binary_ok=False)
                    return self._write(batch)
                except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                    if is_transient(exc):
                        raise
                    self.binary.note_refusal(batch, exc)
                    log.info(
                        "batch up to %s hit %s; retrying it through staging",
                        format_lsn(lsn or 0),
                        exc.sqlstate,
                    )
            try:
                with self.conn.transaction(), self.conn.cursor() as cur:
                    self.checkpoints.fence(cur, batch)
                    return Written([], self._stage_batch(cur, batch))
            except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                if is_transient(exc):
                    raise
                log.warning("staging hit %s; writing the batch row by row", exc.sqlstate)
            if any(
                c.kind == TXN and (c.end_lsn is None or c.continues_spill) for c in batch.chunks
            ):
                raise StreamerError(
                    "the target refused a row inside a source transaction larger than one batch",
                    hint="fix the target constraint, or raise --batch-size above the "
                    "transaction's row count",
                )
            with self.conn.transaction(), self.conn.cursor() as cur:
                self.checkpoints.fence(cur, batch)
                written = self.rows.insert(cur, [c for c in batch.chunks if c.kind == TXN])
                streamed = self.parking.apply(cur, batch, guarded=True, one_by_one=self.rows)
                return Written(written.refused + streamed, written.skipped)

    # -- COPY ------------------------------------------------------------------------
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
            self._flowing()
            copy.write_row(first)
            for row in rows:
                copy.write_row(row)

    def _copy_encoded(
        self,
        cur: psycopg.Cursor[Any],
        table: sql.Composable,
        cols: sql.Composable,
        data: bytes,
        *,
        crash_midway: bool = False,
        binary: bool = False,
    ) -> None:
        """COPY rows already formatted (as COPY text, or binary COPY data): only I/O
        here. `crash_midway` (text only): the `rejected_write` failpoint, between two
        lines of this very COPY."""
        if not data:
            return
        query = "COPY {} ({}) FROM STDIN (FORMAT binary)" if binary else "COPY {} ({}) FROM STDIN"
        with cur.copy(sql.SQL(query).format(table, cols)) as copy:
            self._flowing()
            if crash_midway:
                cut = data.find(b"\n") + 1
                copy.write(data[:cut])
                failpoints.hit("rejected_write")
                data = data[cut:]
            copy.write(data)

    def forget_parked(self) -> None:
        """Start of a session: drop the parked rows of earlier sessions of this slot."""
        with (
            self._guard("forgetting parked rows"),
            self.conn.transaction(),
            self.conn.cursor() as cur,
        ):
            self.parking.forget(cur)

    def _copy_batch(self, cur: psycopg.Cursor[Any], batch: Batch) -> None:
        whole = [c for c in batch.chunks if c.end_lsn is not None and c.kind == TXN]
        partial = [c for c in batch.chunks if c.end_lsn is None and c.kind == TXN]
        if batch.encoded is not None:
            encoded = batch.encoded
            self._copy_encoded(
                cur, self._tx, self._tx_cols, encoded.transactions, binary=encoded.binary
            )
            self.binary.verify(cur, batch)
            self._copy_encoded(
                cur, self._rej, self._rej_cols, encoded.rejected, crash_midway=failpoints.ACTIVE
            )
        else:
            self._copy(cur, self._tx, self._tx_cols, rows_with_commit(whole, canonical=True))
            rejected = rows_with_commit(whole, canonical=False)
            if failpoints.ACTIVE and any(c.rejected for c in whole):
                rejected = failpoints.between(rejected, "rejected_write")
            self._copy(cur, self._rej, self._rej_cols, rejected)
        self._finish_spilled(cur, whole, guarded=False)
        self._spill(cur, partial)
        self.parking.apply(cur, batch, guarded=False)

    # -- transactions larger than a batch --------------------------------------------
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
        self._copy(cur, ident(SPILL_TX), self._tx_cols_no_lsn, rows_with_commit(partial, True))
        self._copy(cur, ident(SPILL_REJ), self._rej_cols_no_lsn, rows_with_commit(partial, False))

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

    # -- duplicates ------------------------------------------------------------------
    def _stage_batch(self, cur: psycopg.Cursor[Any], batch: Batch) -> frozenset[str]:
        """Like `_copy_batch`, but rows already in either table are skipped; returns
        their source ids."""
        whole = [c for c in batch.chunks if c.end_lsn is not None and c.kind == TXN]
        skipped: set[str] = set()
        for stage, table, cols, canonical in (
            (STAGE_TX, self._tx, self._tx_cols, True),
            (STAGE_REJ, self._rej, self._rej_cols, False),
        ):
            ids = [r.source_id for c in whole for r in (c.canonical if canonical else c.rejected)]
            if not ids:
                continue
            other = self._rej if canonical else self._tx
            cur.execute(
                sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS {s} AS SELECT {c} FROM {t} WITH NO DATA"
                ).format(s=sql.Identifier(stage), c=cols, t=table)
            )
            cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(stage)))
            self._copy(cur, sql.Identifier(stage), cols, rows_with_commit(whole, canonical))
            cur.execute(
                sql.SQL(
                    "INSERT INTO {t} ({c}) SELECT {c} FROM {s} s WHERE NOT EXISTS"
                    " (SELECT 1 FROM {o} o WHERE o.source_id = s.source_id)"
                    " ON CONFLICT (source_id) DO NOTHING RETURNING source_id::text"
                ).format(t=table, c=cols, s=sql.Identifier(stage), o=other)
            )
            inserted = {row[0] for row in cur.fetchall()}
            skipped.update(i for i in ids if i not in inserted)
        self._finish_spilled(cur, whole, guarded=True)
        self._spill(cur, [c for c in batch.chunks if c.end_lsn is None and c.kind == TXN])
        self.parking.apply(cur, batch, guarded=True)
        return frozenset(skipped)

    # -- errors ----------------------------------------------------------------------
    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Translate database errors into our tree (and drop the connection so the next
        use reconnects): transient ones into TargetUnavailable, the rest into one line."""
        try:
            yield
        except psycopg.Error as exc:
            self.close()
            first = (str(exc).strip().splitlines() or ["error"])[0]
            if is_transient(exc):
                raise TargetUnavailable(f"target error while {doing}: {first}") from None
            raise StreamerError(
                f"target refused {doing}: {first} (SQLSTATE {exc.sqlstate})"
            ) from None
