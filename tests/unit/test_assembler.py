"""The pure half of the replication loop: frames -> normalized rows by transaction."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.errors import ProtocolError
from streamer.pgoutput.relations import RelationCache
from streamer.sources.batching import Batch, BatchBuilder
from streamer.sources.slot.assembler import TransactionAssembler
from tests.support import frames as encode

REL, OTHER = 16390, 16400
MERCHANT = orjson.dumps({"id": "m1", "name": "Shop", "country": "CL"}).decode()


def row_values(i: int, amount: str = "1.50") -> list[str | None]:
    data = orjson.dumps({"amt": amount, "p_id": "Stripe", "currency": "USD"}).decode()
    uid = f"00000000-0000-0000-0000-{i:012d}"
    return [uid, data, MERCHANT, uid, "2026-11-28 04:00:00", None, None]


def transaction(first_id: int, rows: int, final_lsn: int, rel: int = REL) -> list[bytes]:
    """Begin, `rows` inserts, Commit; the commit record starts at final_lsn and ends 16 later."""
    frames = [encode.xlog_data(encode.begin(final_lsn, 1_000_000 + final_lsn, 700), final_lsn)]
    frames += [
        encode.xlog_data(encode.insert(rel, row_values(first_id + i)), final_lsn)
        for i in range(rows)
    ]
    frames.append(
        encode.xlog_data(encode.commit(final_lsn, final_lsn + 16, 1_000_000 + final_lsn), final_lsn)
    )
    return frames


def relations_frames() -> list[bytes]:
    return [
        encode.xlog_data(
            encode.relation(REL, "public", "raw_transactions", encode.SEED_SOURCE_COLUMNS), 0
        ),
        encode.xlog_data(encode.relation(OTHER, "public", "other", encode.SEED_SOURCE_COLUMNS), 0),
    ]


def assembler(checkpoint: int = 0, stop_lsn: int | None = None) -> TransactionAssembler:
    builder = BatchBuilder(max_rows=10_000, max_bytes=10**9, timeout_s=60)
    relations = RelationCache("public", "raw_transactions")
    return TransactionAssembler(relations, builder, checkpoint, stop_lsn)


def taken(a: TransactionAssembler) -> Batch:
    return a.builder.take(0.0)


def test_rows_arrive_normalized_and_grouped_by_transaction() -> None:
    a = assembler()
    frames = relations_frames() + transaction(1, 2, 1000) + transaction(3, 1, 2000)
    frames += transaction(10, 1, 3000, rel=OTHER)  # another table: its rows are ignored
    assert a.feed(frames, now=0.0) is False
    batch = taken(a)
    assert [c.end_lsn for c in batch.chunks] == [1016, 2016, 3016]
    assert [len(c.canonical) for c in batch.chunks] == [2, 1, 0]
    assert batch.chunks[0].canonical[0].amount == pytest.approx(1.5)
    assert batch.checkpoint_lsn == 3016 and a.received == 3016


def test_rows_that_fail_normalization_become_rejections() -> None:
    a = assembler()
    bad = encode.xlog_data(encode.insert(REL, row_values(9, amount="-1")), 1000)
    frames = relations_frames() + transaction(1, 1, 1000)
    a.feed([*frames[:-1], bad, frames[-1]], now=0.0)
    (chunk,) = taken(a).chunks
    assert (len(chunk.canonical), [r.reason for r in chunk.rejected]) == (1, ["invalid_amount"])


def test_transactions_before_the_checkpoint_are_skipped() -> None:
    a = assembler(checkpoint=2016)
    frames = relations_frames() + transaction(1, 2, 1000) + transaction(3, 1, 2016)
    a.feed(frames, now=0.0)
    batch = taken(a)
    assert [c.end_lsn for c in batch.chunks] == [2032]  # commit record at 2016: not applied
    assert not a.skipping and a.received == 2032


def test_stop_position_leaves_later_transactions_unread() -> None:
    a = assembler(stop_lsn=2000)
    frames = relations_frames() + transaction(1, 1, 1000) + transaction(2, 1, 2000)
    a.feed(frames, now=0.0)
    assert a.reached_end
    assert [c.end_lsn for c in taken(a).chunks] == [1016]
    assert not a.builder.in_transaction


def test_keepalives_move_received_and_only_outside_transactions_keepalive_end() -> None:
    a = assembler()
    txn = transaction(1, 1, 1000)
    assert a.feed([*relations_frames(), txn[0], encode.keepalive(5000)], now=0.0) is False
    assert (a.received, a.keepalive_end) == (5000, 0)  # a transaction is open
    assert a.feed([*txn[1:], encode.keepalive(6000, reply_requested=True)], now=0.0) is True
    assert (a.received, a.keepalive_end) == (6000, 6000)
    a.feed(transaction(2, 1, 7000)[:1], now=0.0)
    assert a.keepalive_end == 0  # reset when a transaction begins


def test_unknown_frame_kind_and_insert_before_its_relation_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="frame type"):
        assembler().feed([b"z123"], now=0.0)
    with pytest.raises(ProtocolError, match="before its Relation"):
        assembler().feed(transaction(1, 1, 1000), now=0.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=6))
def test_any_split_into_reads_gives_the_same_batches(cuts: list[int]) -> None:
    frames = relations_frames()
    for t in range(5):
        frames += transaction(10 * t, t % 3, 1000 * (t + 1))
        frames.append(encode.keepalive(1000 * (t + 1) + 500))
    whole = assembler(checkpoint=2016, stop_lsn=5000)
    whole.feed(frames, now=0.0)
    pieces = assembler(checkpoint=2016, stop_lsn=5000)
    bounds = [0, *sorted(c % (len(frames) + 1) for c in cuts), len(frames)]
    for start, end in itertools.pairwise(bounds):
        pieces.feed(frames[start:end], now=0.0)
    assert pieces.reached_end == whole.reached_end
    assert (pieces.received, pieces.keepalive_end) == (whole.received, whole.keepalive_end)
    assert [(c.end_lsn, c.canonical) for c in taken(pieces).chunks] == [
        (c.end_lsn, c.canonical) for c in taken(whole).chunks
    ]


def test_a_protocol_error_names_the_lsn_and_message_type_of_its_frame() -> None:
    begin, _, commit = transaction(1, 1, 0x4000)
    bad = encode.xlog_data(encode.insert(REL, row_values(1))[:20], 0x5000)  # cut short
    with pytest.raises(ProtocolError) as error:
        assembler().feed([*relations_frames(), begin, bad, commit], now=0.0)
    assert (error.value.lsn, error.value.message_type) == (0x5000, "I")
