"""Binary COPY means what COPY text means, to a real server: the same rows, written both
ways into two copies of the `transactions` table, read back identically (every column's
text, the numeric display scale included). The writer sends binary only where
`copy_binary` accepts every value, so this is the proof that the switch changes nothing
stored."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.normalize.records import Canonical
from streamer.ops.synthetic import SEED_ROWS
from streamer.sink.copy_binary import encode_transactions
from streamer.sink.copy_text import encode_batch
from streamer.sink.schema import create_tables
from streamer.sink.tables import TRANSACTION_COLUMNS
from streamer.sink.writer import BatchWriter
from tests.support.binary_rows import batch_of, canonical_rows, commit_times, lsns

from .conftest import Lab

COLUMNS = ", ".join(TRANSACTION_COLUMNS)
ROW = Canonical(
    "6f1a2b3c-9d8e-4f70-8a1b-2c3d4e5f6a7b", "8d3b7d5e-1c2f-4a6b-9e0d-1f2a3b4c5d01",
    "m", None, "US", "stripe", "json", Decimal("1.50"), "USD", "approved", None, "US",
    7, "{}", None,
)  # fmt: skip
STORED = "SELECT {} FROM {{}}.transactions ORDER BY source_id".format(
    ", ".join(f"{column}::text" for column in TRANSACTION_COLUMNS)
)


def test_binary_and_text_copy_store_the_same_rows(lab: Lab) -> None:
    create_tables(lab.target_url, "public")
    create_tables(lab.target_url, "as_text")
    with psycopg.connect(lab.target_url, autocommit=True) as conn:

        @settings(
            max_examples=60,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(
            rows=st.lists(
                canonical_rows(), min_size=1, max_size=25, unique_by=lambda r: r.source_id.lower()
            ),
            commit_us=commit_times,
            end_lsn=st.integers(0, 2**63 - 1) | lsns,
        )
        def same_rows(rows: list[Canonical], commit_us: int, end_lsn: int) -> None:
            batch = batch_of(rows, commit_us, end_lsn)
            binary = encode_transactions(batch)
            text = encode_batch(batch)
            assert binary is not None and text is not None
            conn.execute("TRUNCATE public.transactions, as_text.transactions")
            with conn.cursor() as cur:
                with cur.copy(
                    f"COPY public.transactions ({COLUMNS}) FROM STDIN (FORMAT binary)"
                ) as copy:  # type: ignore[arg-type]
                    copy.write(binary)
                with cur.copy(f"COPY as_text.transactions ({COLUMNS}) FROM STDIN") as copy:  # type: ignore[arg-type]
                    copy.write(text[0])
            stored: list[Any] = conn.execute(STORED.format("public")).fetchall()  # type: ignore[arg-type]
            assert stored == conn.execute(STORED.format("as_text")).fetchall()  # type: ignore[arg-type]
            assert len(stored) == len(rows)

        same_rows()


def test_altered_column_types_get_copy_text_and_the_same_rows(lab: Lab) -> None:
    """Binary data is written for streamer's own column types: after an operator widened
    `processing_ms` to bigint and made `amount` float8, rows still land, as COPY text."""
    assert lab.cli("init").returncode == 0
    lab.sql(
        lab.target_url,
        "ALTER TABLE transactions ALTER COLUMN processing_ms TYPE bigint,"
        " ALTER COLUMN amount TYPE double precision",
    )
    lab.insert(list(SEED_ROWS) * 5, per_txn=10)
    result = lab.cli("run", "--once")
    assert result.returncode == 0, result.stderr
    assert "does not have streamer's own column types: writing it with COPY text" in result.stderr
    lab.assert_exact_set()
    assert lab.scalar(lab.target_url, "SELECT count(*) FROM transactions WHERE amount > 0")
    first = lab.cli("run", "--once")  # nothing new: the warning is about the table, once a run
    assert first.stderr.count("own column types") == 1


def test_the_writer_sends_binary_only_into_its_own_column_types(lab: Lab) -> None:
    assert lab.cli("init").returncode == 0
    row = ROW
    writer = BatchWriter(lab.target_url, "public", lab.name)
    try:
        writer.claim(0)
        batch = batch_of([row], 0, 16)
        writer.encode(batch)
        assert batch.encoded is not None and batch.encoded.binary
        writer.write(batch)
        assert lab.scalar(lab.target_url, "SELECT amount::text FROM transactions") == "1.50"
        # An ALTER during the session: the batch was encoded as binary before it, and
        # would store 7 as 1e-44 and 0.00 as 1e-323; it must go as text instead.
        lab.sql(
            lab.target_url,
            "ALTER TABLE transactions ALTER COLUMN processing_ms TYPE real,"
            " ALTER COLUMN amount TYPE double precision",
        )
        later = row._replace(source_id=row.transactional_id, amount=Decimal("0.00"))
        batch = batch_of([later], 0, 32)
        writer.encode(batch)
        assert batch.encoded is not None and batch.encoded.binary  # types read at claim
        writer.write(batch)
        stored = lab.sql(
            lab.target_url,
            "SELECT amount, processing_ms FROM transactions WHERE source_id = %s",
            (later.source_id,),
        )
        assert stored == [(0.0, 7.0)]
        assert not writer.binary.ok
        writer.encode(batch)
        assert batch.encoded is not None and not batch.encoded.binary
        writer.claim(0)  # a new session reads the altered types too
        assert not writer.binary.ok
    finally:
        writer.close()


def test_copy_format_text_never_sends_binary(lab: Lab) -> None:
    """STREAMER_COPY_FORMAT=text: the escape hatch for a target that cannot take binary
    COPY. The writer then does not even look at the column types."""
    assert lab.cli("init").returncode == 0
    writer = BatchWriter(lab.target_url, "public", lab.name, binary_copy=False)
    try:
        writer.claim(0)
        batch = batch_of([ROW], 0, 16)
        writer.encode(batch)
        assert batch.encoded is not None and not batch.encoded.binary
        writer.write(batch)
        assert lab.scalar(lab.target_url, "SELECT amount::text FROM transactions") == "1.50"
    finally:
        writer.close()
    lab.insert(list(SEED_ROWS) * 2, per_txn=5)
    result = lab.cli("run", "--once", env=lab.env(STREAMER_COPY_FORMAT="text"))
    assert result.returncode == 0, result.stderr
    assert lab.scalar(lab.target_url, "SELECT count(*) FROM transactions") > 1
