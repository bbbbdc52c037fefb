"""Exactly once under SIGKILL at random moments while rows keep arriving."""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest

from streamer.lsn import parse_lsn
from streamer.normalize import normalize
from streamer.normalize.records import Canonical, SourceRow
from streamer.ops.synthetic import PayloadFactory
from tests.integration.conftest import Lab

pytestmark = pytest.mark.slow

CYCLES = 8
ROWS_PER_CYCLE = 2500


def test_sigkill_at_random_points_loses_and_duplicates_nothing(lab18: Lab) -> None:
    lab = lab18
    rng = random.Random(20261128)
    env = lab.env(STREAMER_BATCH_SIZE="150", STREAMER_BATCH_TIMEOUT_MS="20")
    assert lab.cli("init", env=env).returncode == 0
    factory = PayloadFactory(seed=5, bad_ratio=0.05)
    inserted: list[str] = []

    def burst() -> None:
        """Single-row and multi-row transactions, as fast as the source takes them."""
        target = len(inserted) + ROWS_PER_CYCLE
        while len(inserted) < target:
            size = rng.choice([1, 1, 1, 7, 50, 300])
            inserted.extend(lab.insert(factory.many(size), per_txn=size))

    mid_stream_kills = 0
    for _ in range(CYCLES):
        burst()  # a backlog, so the kill lands while the streamer is busy
        feeder = threading.Thread(target=burst)  # and rows keep arriving meanwhile
        before = lab.checkpoint()
        proc = lab.start("run", env=env)
        feeder.start()
        assert lab.wait_for(lambda before=before: lab.checkpoint() != before, 30), lab.output
        time.sleep(rng.uniform(0, 0.05))
        lab.stop(proc, signal.SIGKILL)
        applied = len(lab.target_ids()) + len(lab.target_ids("transactions_rejected"))
        feeder.join()
        mid_stream_kills += applied < len(inserted)
        # invariant: the slot was never confirmed beyond the durable checkpoint
        slot, checkpoint = lab.slot(), lab.checkpoint()
        assert slot is not None and checkpoint is not None
        assert parse_lsn(str(slot["confirmed_flush_lsn"])) <= parse_lsn(checkpoint)
    assert mid_stream_kills >= 5, "the kills must hit a streamer with work in flight"
    final = lab.cli("run", "--once", env=env, timeout=300)
    assert final.returncode == 0, final.stderr

    accepted = lab.target_ids()
    rejected = lab.target_ids("transactions_rejected")
    assert len(accepted) == len(set(accepted))
    assert not set(accepted) & set(rejected)
    assert set(accepted) | set(rejected) == set(inserted)
    assert len(accepted) + len(rejected) == len(inserted) >= 2 * CYCLES * ROWS_PER_CYCLE
    assert rejected, "the workload includes bad rows"

    # amounts equal what the normalizer computes from the source rows
    source = lab.sql(
        lab.source_url,
        "SELECT id::text, transactional_id::text, data::text,"
        " merchant::text, created_at::text FROM raw_transactions",
    )
    expected = {}
    for row in source:
        result = normalize(SourceRow(*row))
        if isinstance(result, Canonical):
            expected[result.source_id] = result.amount
    got = dict(lab.sql(lab.target_url, "SELECT source_id::text, amount FROM transactions"))
    assert got == expected
