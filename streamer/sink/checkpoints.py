"""The `streamer_checkpoints` row of one position name: read, claim (fencing older
writers), and the fence that moves it inside each batch's target transaction.

A position name is a slot name (the slot stream and its backfill) or `poll:<table>` (poll
mode). The LSN only grows; `backfill_cursor` records how far a cursor-kept source got.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg import sql

from streamer.errors import Fenced
from streamer.lsn import format_lsn, parse_lsn
from streamer.pgtime import pg_us_to_iso
from streamer.sink.tables import CHECKPOINTS
from streamer.sources.batching import Batch

Guard = Callable[[str], AbstractContextManager[None]]


class Checkpoints:
    """One checkpoint row, through the writer's connection (`conn` gives it, connecting
    when needed) and its error translation (`guard`)."""

    def __init__(
        self, conn: Callable[[], psycopg.Connection[Any]], guard: Guard, schema: str, name: str
    ) -> None:
        self._conn = conn
        self._guard = guard
        self.name = name
        self.epoch = 0
        self._table = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(CHECKPOINTS))

    def _fetch(self, doing: str, query: sql.Composed, params: tuple[Any, ...]) -> Any:
        """One row of a query in a transaction of its own (None when there is none)."""
        with self._guard(doing):
            conn = self._conn()
            with conn.transaction():
                return conn.execute(query, params).fetchone()

    def read(self) -> int | None:
        row = self._fetch(
            "reading the checkpoint",
            sql.SQL("SELECT lsn::text FROM {} WHERE slot_name = %s").format(self._table),
            (self.name,),
        )
        return parse_lsn(row[0]) if row else None

    def backfill_state(self) -> tuple[str | None, str | None]:
        """(state, cursor) of the backfill; (None, None) when there is no row."""
        row = self._fetch(
            "reading the backfill state",
            sql.SQL("SELECT backfill, backfill_cursor FROM {} WHERE slot_name = %s").format(
                self._table
            ),
            (self.name,),
        )
        return (row[0], row[1]) if row else (None, None)

    def set_backfill(self, state: str | None, lsn: int | None = None) -> None:
        """Mark the backfill pending (optionally resetting the checkpoint to a new slot's
        consistent point, as resync does) or done; creates the row if missing."""
        self._fetch(
            "recording the backfill state",
            sql.SQL(
                "INSERT INTO {t} AS c (slot_name, lsn, backfill) VALUES (%s, %s::pg_lsn, %s)"
                " ON CONFLICT (slot_name) DO UPDATE SET backfill = EXCLUDED.backfill,"
                " lsn = CASE WHEN %s THEN EXCLUDED.lsn ELSE c.lsn END,"
                " backfill_cursor = CASE WHEN %s THEN NULL ELSE c.backfill_cursor END,"
                " updated_at = now() RETURNING 1"
            ).format(t=self._table),
            (self.name, format_lsn(lsn or 0), state, lsn is not None, lsn is not None),
        )

    def claim(self, initial_lsn: int) -> int:
        """Take ownership (bumping the epoch fences any older writer) and return the
        checkpoint LSN, created at `initial_lsn` if missing."""
        row = self._fetch(
            "claiming the checkpoint",
            sql.SQL(
                "INSERT INTO {t} AS c (slot_name, lsn, epoch) VALUES (%s, %s::pg_lsn, 1)"
                " ON CONFLICT (slot_name) DO UPDATE SET epoch = c.epoch + 1"
                " RETURNING lsn::text, epoch"
            ).format(t=self._table),
            (self.name, format_lsn(initial_lsn)),
        )
        assert row is not None
        self.epoch = int(row[1])
        return parse_lsn(row[0])

    def ensure(self, lsn: int) -> bool:
        """Create the row at `lsn` if it is missing; True when created. Unlike `claim`,
        this leaves a running streamer's epoch alone."""
        row = self._fetch(
            "creating the checkpoint",
            sql.SQL(
                "INSERT INTO {} (slot_name, lsn) VALUES (%s, %s::pg_lsn)"
                " ON CONFLICT (slot_name) DO NOTHING RETURNING 1"
            ).format(self._table),
            (self.name, format_lsn(lsn)),
        )
        return row is not None

    def fence(self, cur: psycopg.Cursor[Any], batch: Batch) -> None:
        """Inside the batch's transaction: move the checkpoint (never backwards), the
        cursor and the newest applied commit time, if this writer still owns the row;
        otherwise nothing may commit."""
        lsn, applied = batch.checkpoint_lsn, batch.newest_commit_us
        cur.execute(
            sql.SQL(
                "UPDATE {} SET lsn = GREATEST(lsn, coalesce(%s::pg_lsn, lsn)), updated_at = now(),"
                " backfill_cursor = coalesce(%s, backfill_cursor),"
                " applied_commit_at = GREATEST(applied_commit_at, %s::timestamptz)"
                " WHERE slot_name = %s AND epoch = %s"
            ).format(self._table),
            (
                format_lsn(lsn) if lsn is not None else None,
                batch.cursor,
                pg_us_to_iso(applied) if applied is not None else None,
                self.name,
                self.epoch,
            ),
        )
        if cur.rowcount != 1:
            raise Fenced(f"the checkpoint of slot {self.name!r} was claimed by another writer")
