"""Row-by-row inserts with a savepoint per row: the one place where a row the target
refuses (a constraint an operator added, a value it cannot store) becomes a
`target_refused` rejection instead of failing its whole batch.

Used by the writer's last resort and by `replay-rejected`, so both refuse alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson
import psycopg
from psycopg import sql

from streamer.normalize.records import Canonical, Rejection
from streamer.sink.base import Written
from streamer.sink.copy_text import commit_info, rejected_fields
from streamer.sink.tables import REJECTED, REJECTED_COLUMNS, TRANSACTION_COLUMNS, TRANSACTIONS
from streamer.sources.batching import TxnChunk

TRANSIENT_SQLSTATE_PREFIXES: Final = ("08", "53", "57P", "40001", "40P01", "55P03", "58")


def is_transient(exc: BaseException) -> bool:
    """Errors that say nothing about the data: retry the batch, never reject rows."""
    if isinstance(exc, psycopg.OperationalError | psycopg.errors.SerializationFailure):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return sqlstate.startswith(TRANSIENT_SQLSTATE_PREFIXES)


def refusal_detail(exc: psycopg.Error) -> str:
    return f"SQLSTATE {exc.sqlstate}: {(exc.diag.message_primary or '')[:200]}"


class RowInserter:
    """The SQL of guarded single-row inserts into both target tables."""

    def __init__(self, schema: str) -> None:
        ident = sql.Identifier
        tx = sql.SQL("{}.{}").format(ident(schema), ident(TRANSACTIONS))
        rej = sql.SQL("{}.{}").format(ident(schema), ident(REJECTED))

        def insert(table: sql.Composable, columns: Sequence[str], guard: sql.Composable) -> Any:
            return sql.SQL(
                "INSERT INTO {t} ({c}) SELECT {v}{g} ON CONFLICT (source_id) DO NOTHING"
            ).format(
                t=table,
                c=sql.SQL(", ").join(map(ident, columns)),
                v=sql.SQL(", ").join([sql.Placeholder()] * len(columns)),
                g=guard,
            )

        def not_in(other: sql.Composable) -> sql.Composable:
            return sql.SQL(
                " WHERE NOT EXISTS (SELECT 1 FROM {} o WHERE o.source_id = %s::uuid)"
            ).format(other)

        self._tx = insert(tx, TRANSACTION_COLUMNS, not_in(rej))
        self._rej = insert(rej, REJECTED_COLUMNS, not_in(tx))
        self._tx_unguarded = insert(tx, TRANSACTION_COLUMNS, sql.SQL(""))

    def insert(self, cur: psycopg.Cursor[Any], chunks: Sequence[TxnChunk]) -> Written:
        """Every row of the chunks (skipping source ids already in either table); refused
        canonical rows are stored as `target_refused` rejections."""
        refused: list[Rejection] = []
        skipped: set[str] = set()
        conn = cur.connection
        for chunk in chunks:
            tail = commit_info(chunk)
            for row in chunk.canonical:
                try:
                    with conn.transaction():
                        cur.execute(self._tx, (*row, *tail, row.source_id))
                        if cur.rowcount == 0:
                            skipped.add(row.source_id)
                except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                    if is_transient(exc):
                        raise
                    rejection = refused_row(row, refusal_detail(exc))
                    refused.append(rejection)
                    self.store_refusal(cur, rejection, tail)
            for rejected in chunk.rejected:
                cur.execute(self._rej, (*rejected_fields(rejected), *tail, rejected.source_id))
                if cur.rowcount == 0:
                    skipped.add(rejected.source_id)
        return Written(refused, frozenset(skipped))

    def store_refusal(
        self, cur: psycopg.Cursor[Any], rejection: Rejection, tail: tuple[str, str | None]
    ) -> None:
        """Store a refused row as its rejection, with its commit info."""
        cur.execute(self._rej, (*rejection, *tail, rejection.source_id))

    def insert_replayed(
        self, cur: psycopg.Cursor[Any], rows: Sequence[tuple[Any, ...]]
    ) -> dict[str, str]:
        """Replayed canonical rows (fields plus their original commit info), which are
        still in the rejected table while this runs, hence no cross-table guard.
        Returns {source_id: detail} of the rows the target refused."""
        refused: dict[str, str] = {}
        conn = cur.connection
        for row in rows:
            try:
                with conn.transaction():
                    cur.execute(self._tx_unguarded, row)
            except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                if is_transient(exc):
                    raise
                refused[row[0]] = refusal_detail(exc)
        return refused


def refused_row(row: Canonical, detail: str) -> Rejection:
    """A canonical row the target refused, as the rejection that is stored instead."""
    return refusal(
        (row.source_id, row.transactional_id, row.merchant_id, row.merchant_name),
        row.merchant_country,
        row.raw,
        detail,
    )


def refusal(
    ids: tuple[str, str, str, str | None], country: str | None, raw: str, detail: str
) -> Rejection:
    """The `target_refused` rejection of a row: (source_id, transactional_id,
    merchant_id, merchant_name), merchant country, raw payload text, and why."""
    source_id, transactional_id, merchant_id, merchant_name = ids
    merchant = orjson.dumps({"id": merchant_id, "name": merchant_name, "country": country})
    return Rejection(source_id, transactional_id, merchant.decode(), raw, "target_refused", detail)
