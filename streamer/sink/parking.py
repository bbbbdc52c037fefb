"""Rows of in-progress streamed transactions (pgoutput protocol 2), parked on the target.

Parked rows are written with the batch they arrive in, so memory is bounded by the batch
however large the transaction. Inside each batch's target transaction, in stream order:
rows are parked under (slot, top-level xid, subtransaction xid); a Stream Commit moves the
transaction's rows into `transactions` / `transactions_rejected`, stamped with its commit
time and end LSN (the batch's checkpoint), and a Stream Abort deletes its rows (only the
subtransaction's when one rolled back). A new session forgets its slot's parked rows: the
server streams every transaction that has not committed before the checkpoint again, from
its start, so nothing is counted twice and nothing reaches the real tables uncommitted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql

from streamer.lsn import format_lsn
from streamer.normalize.records import Rejection
from streamer.pgtime import pg_us_to_iso
from streamer.sink.copy_text import rejected_fields
from streamer.sink.refusals import RowInserter, is_transient, refusal, refusal_detail
from streamer.sink.tables import (
    PARKED,
    PARKED_COLUMNS,
    PARKED_REJECTED,
    PARKED_REJECTED_COLUMNS,
    REJECTED,
    REJECTED_COLUMNS,
    TRANSACTION_COLUMNS,
    TRANSACTIONS,
)
from streamer.sources.batching import PARK, STREAM_ABORT, STREAM_COMMIT, Batch, TxnChunk


class Parking:
    """The SQL of parking, applying and discarding streamed rows for one slot."""

    def __init__(self, schema: str, slot: str) -> None:
        self.slot = slot
        ident = sql.Identifier

        def table(name: str) -> sql.Composed:
            return sql.SQL("{}.{}").format(ident(schema), ident(name))

        def cols(names: Iterable[str]) -> sql.Composed:
            return sql.SQL(", ").join(map(ident, names))

        self._pairs = []  # (parked table, real table, other real table, row columns)
        for parked, real, other, columns in (
            (PARKED, TRANSACTIONS, REJECTED, TRANSACTION_COLUMNS),
            (PARKED_REJECTED, REJECTED, TRANSACTIONS, REJECTED_COLUMNS),
        ):
            self._pairs.append((table(parked), table(real), table(other), columns))
        self._copy_tx = sql.SQL("COPY {} ({}) FROM STDIN").format(
            table(PARKED), cols(PARKED_COLUMNS)
        )
        self._copy_rej = sql.SQL("COPY {} ({}) FROM STDIN").format(
            table(PARKED_REJECTED), cols(PARKED_REJECTED_COLUMNS)
        )
        self._move = [
            (
                sql.SQL(
                    "INSERT INTO {real} ({all}) SELECT {rows}, %(at)s, %(lsn)s::pg_lsn"
                    " FROM {parked} p WHERE p.slot_name = %(slot)s AND p.xid = %(xid)s"
                ).format(
                    real=real,
                    all=cols(columns),
                    rows=cols(columns[:-2]),
                    parked=parked,
                ),
                sql.SQL(
                    " AND NOT EXISTS (SELECT 1 FROM {} o WHERE o.source_id = p.source_id)"
                    " ON CONFLICT (source_id) DO NOTHING"
                ).format(other),
            )
            for parked, real, other, columns in self._pairs
        ]
        self._delete = [
            sql.SQL("DELETE FROM {} WHERE slot_name = %(slot)s AND xid = %(xid)s").format(p)
            for p, *_ in self._pairs
        ]
        parked_tx = self._pairs[0][0]
        self._ids = sql.SQL(
            "SELECT source_id::text FROM {} WHERE slot_name = %(slot)s AND xid = %(xid)s"
        ).format(parked_tx)
        self._row = sql.SQL(
            "SELECT source_id::text, transactional_id::text, merchant_id, merchant_name,"
            " merchant_country, raw::text FROM {} WHERE slot_name = %(slot)s"
            " AND xid = %(xid)s AND source_id = %(id)s::uuid"
        ).format(parked_tx)
        self._forget = [
            sql.SQL("DELETE FROM {} WHERE slot_name = %s").format(p) for p, *_ in self._pairs
        ]

    def apply(
        self,
        cur: psycopg.Cursor[Any],
        batch: Batch,
        guarded: bool,
        one_by_one: RowInserter | None = None,
    ) -> list[Rejection]:
        """Park, commit and abort as the batch's stream chunks say, in stream order (all
        rows parked first: a transaction's commit or abort never precedes its rows).
        `one_by_one`: the target refused a row, so commits move row by row and refused
        rows become `target_refused` rejections (returned)."""
        refused: list[Rejection] = []
        if not batch.streamed:
            return refused
        parked = [c for c in batch.chunks if c.kind == PARK]
        self._park(cur, parked)
        for chunk in batch.chunks:
            if chunk.kind == STREAM_COMMIT and one_by_one is not None:
                refused += self._commit_one_by_one(cur, chunk, one_by_one)
            elif chunk.kind == STREAM_COMMIT:
                self._commit(cur, chunk, guarded)
            elif chunk.kind == STREAM_ABORT:
                self._abort(cur, chunk)
        return refused

    def _park(self, cur: psycopg.Cursor[Any], chunks: list[TxnChunk]) -> None:
        slot = self.slot
        canonical = [(slot, c.xid, c.subxid, *row) for c in chunks for row in c.canonical]
        rejected = [
            (slot, c.xid, c.subxid, *rejected_fields(row)) for c in chunks for row in c.rejected
        ]
        for query, rows in ((self._copy_tx, canonical), (self._copy_rej, rejected)):
            if rows:
                with cur.copy(query) as copy:
                    for row in rows:
                        copy.write_row(row)

    def _commit(self, cur: psycopg.Cursor[Any], chunk: TxnChunk, guarded: bool) -> None:
        params = self._params(chunk)
        for (move, guard), delete in zip(self._move, self._delete, strict=True):
            cur.execute(move + guard if guarded else move, params)
            cur.execute(delete, params)

    def _commit_one_by_one(
        self, cur: psycopg.Cursor[Any], chunk: TxnChunk, rows: RowInserter
    ) -> list[Rejection]:
        """Like `_commit`, with a savepoint per canonical row: a row the target refuses
        is stored as a `target_refused` rejection instead. Ids are read through a
        server-side cursor, so memory stays bounded however large the transaction."""
        params = self._params(chunk)
        (move, guard), (move_rej, guard_rej) = self._move
        one = move + sql.SQL(" AND p.source_id = %(id)s::uuid") + guard
        conn = cur.connection
        refused: list[Rejection] = []
        tail = (params["at"], params["lsn"])
        with conn.cursor(name="streamer_parked_ids") as ids:
            ids.execute(self._ids, params)
            for (source_id,) in ids:
                try:
                    with conn.transaction():
                        cur.execute(one, {**params, "id": source_id})
                except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                    if is_transient(exc):
                        raise
                    found = cur.execute(self._row, {**params, "id": source_id}).fetchone()
                    assert found is not None
                    rejection = refusal(found[:4], found[4], found[5], refusal_detail(exc))
                    rows.store_refusal(cur, rejection, tail)
                    refused.append(rejection)
        cur.execute(move_rej + guard_rej, params)
        for delete in self._delete:
            cur.execute(delete, params)
        return refused

    def _params(self, chunk: TxnChunk) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "xid": chunk.xid,
            "at": pg_us_to_iso(chunk.commit_time_us),
            "lsn": format_lsn(chunk.end_lsn or 0),
        }

    def _abort(self, cur: psycopg.Cursor[Any], chunk: TxnChunk) -> None:
        params = {"slot": self.slot, "xid": chunk.xid, "subxid": chunk.subxid}
        only_subxact = sql.SQL(" AND subxid = %(subxid)s" if chunk.subxid != chunk.xid else "")
        for delete in self._delete:
            cur.execute(delete + only_subxact, params)

    def forget(self, cur: psycopg.Cursor[Any]) -> None:
        """A new session: parked rows of earlier ones are streamed again by the server."""
        for query in self._forget:
            cur.execute(query, (self.slot,))
