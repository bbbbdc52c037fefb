"""The writer says when a batch's rows start to stream (`flowing`, which lets the loop
step aside for the writer's round trips before it): inside the batch's open transaction,
before anything is visible, on the fast path and the staged one; a batch without rows
may not say it at all."""

from __future__ import annotations

import dataclasses

import psycopg
from psycopg.pq import TransactionStatus

from streamer.sink.writer import BatchWriter
from streamer.sources.batching import Batch
from tests.support.binary_rows import batch_of

from .conftest import Lab
from .test_copy_binary import ROW


def test_rows_flow_inside_the_open_transaction_before_the_commit(lab: Lab) -> None:
    assert lab.cli("init").returncode == 0
    writer = BatchWriter(lab.target_url, "public", lab.name)
    seen: list[tuple[TransactionStatus, int]] = []

    def flowing() -> None:
        status = writer.conn.info.transaction_status
        visible = int(lab.scalar(lab.target_url, "SELECT count(*) FROM transactions"))
        seen.append((status, visible))

    try:
        writer.claim(0)
        first = batch_of([ROW], 0, 16)
        writer.encode(first)
        writer.write(first, flowing)
        assert seen and all(
            s in (TransactionStatus.INTRANS, TransactionStatus.ACTIVE) for s, _ in seen
        )
        assert all(visible == 0 for _, visible in seen)  # nothing committed yet
        seen.clear()
        # the staged path (a source that may re-deliver rows) streams too
        again = dataclasses.replace(batch_of([ROW], 0, 32), guarded=True)
        writer.encode(again)
        writer.write(again, flowing)
        assert seen and all(visible == 1 for _, visible in seen)
        seen.clear()
        writer.write(Batch([], 48, 0, 0), flowing)  # an idle advance: no rows
        assert seen == []
    finally:
        writer.close()
    with psycopg.connect(lab.target_url) as conn:
        assert conn.execute("SELECT count(*) FROM transactions").fetchone() == (1,)
