from decimal import Decimal

from streamer.normalize.records import Canonical, Rejection
from streamer.sources.batching import PARK, STREAM_COMMIT, Batch, BatchBuilder, TxnChunk


def canonical(i: int) -> Canonical:
    return Canonical(
        f"id{i}",
        "t",
        "m",
        None,
        None,
        "stripe",
        "json",
        Decimal(1),
        None,
        "approved",
        None,
        None,
        None,
        "{}",
        None,
    )


def rejection(i: int) -> Rejection:
    return Rejection(f"r{i}", "t", "{}", "{}", "invalid_amount", "x")


def txn(b: BatchBuilder, end_lsn: int, rows: int, now: float = 0.0) -> None:
    b.begin(1000, now)
    for i in range(rows):
        b.add(canonical(i) if i % 2 == 0 else rejection(i), 10)
    b.commit(end_lsn)


def test_batches_hold_whole_transactions_and_checkpoint_is_last_end_lsn() -> None:
    b = BatchBuilder(max_rows=10, max_bytes=10**9, timeout_s=60)
    txn(b, 100, 4)
    txn(b, 200, 4)
    assert not b.ready(0.0, idle=False)
    txn(b, 300, 4)  # 12 rows ≥ 10
    assert b.ready(0.0, idle=False)
    batch = b.take(0.0)
    assert batch.checkpoint_lsn == 300
    assert batch.rows == 12 and batch.transactions == 3
    assert [c.end_lsn for c in batch.chunks] == [100, 200, 300]
    assert sum(len(c.canonical) for c in batch.chunks) == 6
    assert b.empty


def test_open_transaction_stays_out_of_a_regular_batch() -> None:
    b = BatchBuilder(max_rows=5, max_bytes=10**9, timeout_s=60)
    txn(b, 100, 5)
    b.begin(2000, 0.0)
    b.add(canonical(9), 10)
    batch = b.take(0.0)
    assert batch.checkpoint_lsn == 100 and batch.rows == 5
    assert b.in_transaction and not b.empty


def test_idle_or_timeout_flushes_only_whole_transactions() -> None:
    b = BatchBuilder(max_rows=1000, max_bytes=10**9, timeout_s=0.1)
    b.begin(1, 0.0)
    b.add(canonical(1), 10)
    assert not b.ready(5.0, idle=True)  # open transaction only
    b.commit(50)
    assert b.ready(0.0, idle=True)
    assert not b.ready(0.05, idle=False)
    assert b.ready(0.2, idle=False)


def test_empty_transactions_still_move_the_checkpoint() -> None:
    b = BatchBuilder(max_rows=1000, max_bytes=10**9, timeout_s=0.1)
    txn(b, 70, 0)
    assert b.ready(0.0, idle=True)
    batch = b.take(0.0)
    assert (batch.checkpoint_lsn, batch.rows) == (70, 0)


def test_huge_transaction_is_cut_into_chunks_without_moving_the_checkpoint() -> None:
    b = BatchBuilder(max_rows=3, max_bytes=10**9, timeout_s=60)
    b.begin(1, 0.0)
    taken = []
    for i in range(7):
        b.add(canonical(i), 10)
        if b.ready(0.0, idle=False):
            taken.append(b.take(0.0))
    b.commit(999)
    taken.append(b.take(0.0))
    assert [t.checkpoint_lsn for t in taken] == [None, None, 999]
    assert [t.rows for t in taken] == [3, 3, 1]
    assert [c.continues_spill for t in taken for c in t.chunks] == [False, True, True]
    assert taken[-1].chunks[0].end_lsn == 999


def test_byte_limit_bounds_memory() -> None:
    b = BatchBuilder(max_rows=10**6, max_bytes=5000, timeout_s=60)
    b.begin(1, 0.0)
    b.add(canonical(1), 10_000)
    assert b.ready(0.0, idle=False)


def test_abandon_open_forgets_the_partial_transaction() -> None:
    b = BatchBuilder(max_rows=10, max_bytes=10**9, timeout_s=60)
    b.begin(1, 0.0)
    b.add(canonical(1), 10)
    b.abandon_open()
    assert b.empty and not b.in_transaction


def test_full_means_a_batch_is_waiting_not_merely_old() -> None:
    b = BatchBuilder(max_rows=10, max_bytes=10**9, timeout_s=0.1)
    txn(b, 100, 4)
    assert b.ready(1.0, idle=False) and not b.full()  # old enough to write, keep reading
    txn(b, 200, 6)
    assert b.full()


def test_newest_commit_counts_only_transactions_the_batch_completes() -> None:
    """What the fence records as the newest applied commit (`verify`'s cutoff)."""
    b = BatchBuilder(max_rows=3, max_bytes=10**9, timeout_s=60)
    b.begin(5_000, 0.0)
    b.add(canonical(1), 10)
    b.commit(100)
    b.begin(9_000, 0.0)  # a large transaction: its first chunk leaves in this batch
    for i in range(3):
        b.add(canonical(i), 10)
    first = b.take(0.0)
    assert first.newest_commit_us == 5_000  # not 9,000: that one has not committed here
    b.commit(200)
    assert b.take(0.0).newest_commit_us == 9_000
    assert Batch([], 300, 0, 0).newest_commit_us is None  # an idle advance
    streamed = Batch([TxnChunk(7_000, kind=PARK), TxnChunk(6_000, kind=STREAM_COMMIT)], 400, 0, 0)
    assert streamed.newest_commit_us == 6_000  # parked rows have not committed yet
