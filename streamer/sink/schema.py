"""Target tables, defined once with SQLAlchemy Core and created idempotently."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.types import UserDefinedType

from streamer.runtime.dbconn import connect
from streamer.sink.tables import (
    CHECKPOINTS,
    FILE_RECORDS,
    PARKED,
    PARKED_REJECTED,
    PROCESSED_FILES,
    REJECTED,
    TRANSACTIONS,
)

FILE_STATUSES = ("pending", "processing", "completed", "failed")


class PgLsn(UserDefinedType[str]):
    """PostgreSQL's pg_lsn type (SQLAlchemy has none)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "pg_lsn"


def build_metadata(schema: str, *, files: bool = False) -> sa.MetaData:
    """The target tables; `files` adds files mode's bookkeeping (`add_files_tables`)."""
    metadata = sa.MetaData(schema=schema)
    now = sa.text("now()")
    sa.Table(
        TRANSACTIONS,
        metadata,
        sa.Column("source_id", pg.UUID(as_uuid=False), primary_key=True),
        sa.Column("transactional_id", pg.UUID(as_uuid=False), nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("merchant_name", sa.Text),
        sa.Column("merchant_country", sa.CHAR(2)),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("source_format", sa.Text, nullable=False),
        sa.Column("amount", sa.Numeric, nullable=False),
        sa.Column("currency", sa.CHAR(3)),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("provider_status", sa.Text),
        sa.Column("country", sa.CHAR(2)),
        sa.Column("processing_ms", sa.Integer),
        sa.Column("raw", pg.JSONB, nullable=False),
        sa.Column("source_created_at", sa.TIMESTAMP(timezone=False)),
        sa.Column("source_committed_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("source_lsn", PgLsn(), nullable=False),
        sa.Column("ingested_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=now),
        sa.Index("transactions_source_committed_at_idx", "source_committed_at"),
    )
    sa.Table(
        REJECTED,
        metadata,
        sa.Column("source_id", pg.UUID(as_uuid=False), primary_key=True),
        sa.Column("transactional_id", pg.UUID(as_uuid=False)),
        sa.Column("merchant", pg.JSONB),
        sa.Column("raw", pg.JSONB),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("source_committed_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("source_lsn", PgLsn()),
        sa.Column("rejected_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=now),
        sa.Index("transactions_rejected_reason_idx", "reason"),
    )
    sa.Table(
        CHECKPOINTS,
        metadata,
        sa.Column("slot_name", sa.Text, primary_key=True),
        sa.Column("lsn", PgLsn(), nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        # Backfill bookkeeping: "pending" until the initial copy finished; the cursor is
        # the last source id copied, committed with each chunk so a killed copy resumes.
        sa.Column("backfill", sa.Text),
        sa.Column("backfill_cursor", sa.Text),
        # Commit time of the newest source transaction applied (slot mode): `verify`'s
        # "due" cutoff, kept here because the rows that showed it may have been deleted.
        sa.Column("applied_commit_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=now),
    )
    _parked_tables(metadata)
    if files:
        add_files_tables(metadata)
    return metadata


def _parked_tables(metadata: sa.MetaData) -> None:
    """Rows of in-progress streamed transactions, keyed by slot, top-level xid and
    subtransaction xid. UNLOGGED: nothing here survives a session anyway (a new session
    forgets its slot's rows and the server streams those transactions again), so their
    writes need no WAL on the target."""
    for name, source in ((PARKED, TRANSACTIONS), (PARKED_REJECTED, REJECTED)):
        columns = [
            sa.Column(c.name, c.type)
            for c in metadata.tables[f"{metadata.schema}.{source}"].columns
            if c.name not in ("source_committed_at", "source_lsn", "ingested_at", "rejected_at")
        ]
        sa.Table(
            name,
            metadata,
            sa.Column("slot_name", sa.Text, nullable=False),
            sa.Column("xid", sa.BigInteger, nullable=False),
            sa.Column("subxid", sa.BigInteger, nullable=False),
            *columns,
            sa.Index(f"{name}_xid_idx", "slot_name", "xid"),
            prefixes=["UNLOGGED"],
        )


def add_files_tables(metadata: sa.MetaData) -> None:
    """`processed_files` (the seed's columns, so its monitoring SQL runs verbatim, plus
    the resume position committed with each chunk) and `processed_file_records`, which
    maps every target row to the object version and record position it came from."""
    statuses = ", ".join(f"'{s}'" for s in FILE_STATUSES)
    sa.Table(
        PROCESSED_FILES,
        metadata,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("bucket", sa.Text, nullable=False),
        sa.Column("object_key", sa.Text, nullable=False),
        sa.Column("file_path", sa.Text, nullable=False),
        sa.Column("etag", sa.Text, nullable=False),
        sa.Column("file_size", sa.BigInteger, nullable=False),
        sa.Column("file_format", sa.Text, nullable=False),
        sa.Column("last_modified", sa.TIMESTAMP(timezone=True)),
        sa.Column("records_count", sa.BigInteger),
        sa.Column("rows_normalized", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("rows_rejected", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("processing_status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("error_message", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("resume_position", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("started_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("completed_at", sa.TIMESTAMP(timezone=True)),
        sa.Column(
            "discovered_at",
            sa.TIMESTAMP(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.UniqueConstraint("bucket", "object_key", "etag", name="processed_files_version_key"),
        sa.CheckConstraint(
            f"processing_status IN ({statuses})", name="processed_files_status_check"
        ),
        sa.Index("processed_files_status_idx", "processing_status", "bucket", "object_key"),
    )
    sa.Table(
        FILE_RECORDS,
        metadata,
        sa.Column(
            "file_id",
            sa.BigInteger,
            sa.ForeignKey(f"{metadata.schema}.{PROCESSED_FILES}.id"),
            primary_key=True,
        ),
        sa.Column("position", sa.BigInteger, primary_key=True),
        sa.Column("source_id", pg.UUID(as_uuid=False), nullable=False),
        sa.Index("processed_file_records_source_id_idx", "source_id"),
    )


def create_tables(libpq_url: str, schema: str, *, files: bool = False) -> list[str]:
    """Create the schema and target tables that are missing; returns the names created.

    Connections come from `dbconn.connect`, so errors read like everywhere else.
    """
    engine = sa.create_engine(
        "postgresql+psycopg://",
        creator=lambda: connect("target", libpq_url),
        poolclass=sa.pool.NullPool,
    )
    try:
        with engine.begin() as conn:
            inspector = sa.inspect(conn)
            if schema not in inspector.get_schema_names():
                conn.execute(sa.schema.CreateSchema(schema))
            existing = set(inspector.get_table_names(schema=schema))
            metadata = build_metadata(schema, files=files)
            metadata.create_all(conn, checkfirst=True)
    finally:
        engine.dispose()
    return [table.name for table in metadata.tables.values() if table.name not in existing]
