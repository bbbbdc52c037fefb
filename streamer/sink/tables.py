"""Target table and column names, without SQLAlchemy: the hot path and most commands
need only these, and importing SQLAlchemy costs a good part of a second at start-up."""

from __future__ import annotations

from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from streamer.runtime.dbconn import connect, translated

TRANSACTIONS = "transactions"
REJECTED = "transactions_rejected"
CHECKPOINTS = "streamer_checkpoints"
# In-progress streamed transactions (pgoutput protocol 2), parked until their commit.
PARKED = "streamer_parked_transactions"
PARKED_REJECTED = "streamer_parked_rejected"
PROCESSED_FILES = "processed_files"  # files mode: one row per object version
FILE_RECORDS = "processed_file_records"  # files mode: provenance of every target row

# COPY column order; equals the field order of Canonical / Rejection plus the commit info
# appended by the writer.
TRANSACTION_COLUMNS = (
    "source_id",
    "transactional_id",
    "merchant_id",
    "merchant_name",
    "merchant_country",
    "provider",
    "source_format",
    "amount",
    "currency",
    "status",
    "provider_status",
    "country",
    "processing_ms",
    "raw",
    "source_created_at",
    "source_committed_at",
    "source_lsn",
)
REJECTED_COLUMNS = (
    "source_id",
    "transactional_id",
    "merchant",
    "raw",
    "reason",
    "detail",
    "source_committed_at",
    "source_lsn",
)

# Parked rows have no commit yet: the table columns less the commit info, after the keys.
PARKED_KEYS = ("slot_name", "xid", "subxid")
PARKED_COLUMNS = PARKED_KEYS + TRANSACTION_COLUMNS[:-2]
PARKED_REJECTED_COLUMNS = PARKED_KEYS + REJECTED_COLUMNS[:-2]

# Columns a later version added to a table: `ensure_tables` adds them to tables an earlier
# version created. (table, column, type)
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    (CHECKPOINTS, "applied_commit_at", "timestamptz"),
)
ADD_COLUMN_LOCK_TIMEOUT = "10s"

ALL_TABLES = (TRANSACTIONS, REJECTED, CHECKPOINTS, PARKED, PARKED_REJECTED)
FILES_TABLES = (PROCESSED_FILES, FILE_RECORDS)


def wanted_tables(files: bool) -> tuple[str, ...]:
    """The tables a mode needs: files mode adds its bookkeeping to the common ones."""
    return ALL_TABLES + FILES_TABLES if files else ALL_TABLES


class Missing(NamedTuple):
    """What the target lacks: whole tables, and `ADDED_COLUMNS` of existing ones."""

    tables: list[str]
    columns: list[tuple[str, str, str]]


def missing(conn: psycopg.Connection[Any], schema: str, *, files: bool = False) -> Missing:
    """The target tables (of files mode too, with `files`) missing in `schema`, and the
    added columns their existing tables lack: one round trip, as it runs at every start."""
    added = [list(part) for part in zip(*ADDED_COLUMNS, strict=True)] or [[], [], []]
    rows = conn.execute(
        "SELECT 0 AS k, n, name, NULL FROM unnest(%(want)s::text[]) WITH ORDINALITY AS t(name, n)"
        " WHERE to_regclass(format('%%I.%%I', %(schema)s::text, name)) IS NULL"
        " UNION ALL SELECT 1, n, t, c"
        " FROM unnest(%(t)s::text[], %(c)s::text[]) WITH ORDINALITY AS a(t, c, n)"
        " WHERE to_regclass(format('%%I.%%I', %(schema)s::text, t)) IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attname = c AND NOT attisdropped"
        " AND attrelid = to_regclass(format('%%I.%%I', %(schema)s::text, t))) ORDER BY k, n",
        {"want": list(wanted_tables(files)), "schema": schema, "t": added[0], "c": added[1]},
    ).fetchall()
    return Missing(
        [row[2] for row in rows if row[0] == 0],
        [ADDED_COLUMNS[row[1] - 1] for row in rows if row[0] == 1],
    )


def column_types(conn: psycopg.Connection[Any], schema: str, table: str) -> dict[str, str]:
    """Each column's type (without its modifier, as `format_type` spells it)."""
    rows = conn.execute(
        "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute"
        " WHERE attrelid = to_regclass(format('%%I.%%I', %s::text, %s::text))"
        " AND attnum > 0 AND NOT attisdropped",
        (schema, table),
    ).fetchall()
    return {row[0]: row[1] for row in rows}


def ensure_tables(
    target_url: str,
    schema: str,
    conn: psycopg.Connection[Any] | None = None,
    *,
    files: bool = False,
) -> list[str]:
    """Create missing target tables, and add the columns a later version added to
    existing ones; one line per thing done, for the operator. SQLAlchemy is only
    imported when a table is missing. `conn` (else a connection of its own) is only used
    to look."""
    with translated("target", target_url, "creating the target tables"):
        if conn is None:
            with connect("target", target_url, autocommit=True) as own:
                gaps = missing(own, schema, files=files)
        else:
            gaps = missing(conn, schema, files=files)
            if not conn.autocommit:
                conn.rollback()
        done = add_columns(target_url, schema, gaps.columns) if gaps.columns else []
        if not gaps.tables:
            return done
        from streamer.sink.schema import create_tables  # noqa: PLC0415

        created = create_tables(target_url, schema, files=files)
        return done + [f"created target table {schema}.{name}" for name in created]


def add_columns(target_url: str, schema: str, columns: list[tuple[str, str, str]]) -> list[str]:
    """ALTER TABLE … ADD COLUMN IF NOT EXISTS (another streamer may be doing the same).
    The ALTER queues for an exclusive lock, and every fence of every streamer on this
    target queues behind it: give up after `ADD_COLUMN_LOCK_TIMEOUT` rather than wait on
    a session that holds the table."""
    with connect("target", target_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(ADD_COLUMN_LOCK_TIMEOUT)))
        for table, column, sql_type in columns:
            conn.execute(
                sql.SQL("ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS {} {}").format(
                    sql.Identifier(schema),
                    sql.Identifier(table),
                    sql.Identifier(column),
                    sql.SQL(sql_type),
                )
            )
    return [f"added column {schema}.{table}.{column}" for table, column, _ in columns]
