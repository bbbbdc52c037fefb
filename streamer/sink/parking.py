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
from streamer.pgtime import pg_us_to_iso
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
        self._forget = [
            sql.SQL("DELETE FROM {} WHERE slot_name = %s").format(p) for p, *_ in self._pairs
        ]

    def apply(self, cur: psycopg.Cursor[Any], batch: Batch, guarded: bool) -> None:
        """Park, commit and abort as the batch's stream chunks say, in stream order (all
        rows parked first: a transaction's commit or abort never precedes its rows)."""
        if not batch.streamed:
            return
        parked = [c for c in batch.chunks if c.kind == PARK]
        self._park(cur, parked)
        for chunk in batch.chunks:
            if chunk.kind == STREAM_COMMIT:
                self._commit(cur, chunk, guarded)
            elif chunk.kind == STREAM_ABORT:
                self._abort(cur, chunk)

    def _park(self, cur: psycopg.Cursor[Any], chunks: list[TxnChunk]) -> None:
        slot = self.slot
        for query, canonical in ((self._copy_tx, True), (self._copy_rej, False)):
            rows = [
                (slot, chunk.xid, chunk.subxid, *row)
                for chunk in chunks
                for row in (chunk.canonical if canonical else chunk.rejected)
            ]
            if rows:
                with cur.copy(query) as copy:
                    for row in rows:
                        copy.write_row(row)

    def _commit(self, cur: psycopg.Cursor[Any], chunk: TxnChunk, guarded: bool) -> None:
        params = {
            "slot": self.slot,
            "xid": chunk.xid,
            "at": pg_us_to_iso(chunk.commit_time_us),
            "lsn": format_lsn(chunk.end_lsn or 0),
        }
        for (move, guard), delete in zip(self._move, self._delete, strict=True):
            cur.execute(move + guard if guarded else move, params)
            cur.execute(delete, params)

    def _abort(self, cur: psycopg.Cursor[Any], chunk: TxnChunk) -> None:
        params = {"slot": self.slot, "xid": chunk.xid, "subxid": chunk.subxid}
        only_subxact = sql.SQL(" AND subxid = %(subxid)s" if chunk.subxid != chunk.xid else "")
        for delete in self._delete:
            cur.execute(delete + only_subxact, params)

    def forget(self, cur: psycopg.Cursor[Any]) -> None:
        """A new session: parked rows of earlier ones are streamed again by the server."""
        for query in self._forget:
            cur.execute(query, (self.slot,))
