"""The assembler's protocol 2 half: streamed transactions parked per (sub)transaction and
applied at their Stream Commit, in commit order with the non-streamed ones."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.sources.batching import PARK, STREAM_ABORT, STREAM_COMMIT, TXN, Batch
from tests.support import frames as encode
from tests.unit.test_assembler import REL, assembler, relations_frames, row_values, transaction


def block(xid: int, rows: list[tuple[int, int]], lsn: int, first: bool = False) -> list[bytes]:
    """One stream block of `xid`: (row id, subtransaction xid) per insert."""
    frames = [encode.xlog_data(encode.stream_start(xid, first), lsn)]
    frames += [
        encode.xlog_data(encode.streamed(encode.insert(REL, row_values(i)), sub), lsn)
        for i, sub in rows
    ]
    frames.append(encode.xlog_data(encode.stream_stop(), lsn))
    return frames


def stream_commit(xid: int, commit_lsn: int) -> bytes:
    return encode.xlog_data(
        encode.stream_commit(xid, commit_lsn, commit_lsn + 16, 9_000 + commit_lsn), commit_lsn
    )


def stream_abort(xid: int, subxid: int, lsn: int) -> bytes:
    return encode.xlog_data(encode.stream_abort(xid, subxid), lsn)


def summary(batch: Batch) -> list[tuple[str, int, int, list[int]]]:
    return [
        (c.kind, c.xid, c.subxid, [int(r.source_id[-12:]) for r in c.canonical])
        for c in batch.chunks
    ]


def test_interleaved_streams_and_a_plain_transaction_keep_commit_order() -> None:
    a = assembler()
    frames = relations_frames()
    frames += block(700, [(1, 700), (2, 700)], 100, first=True)
    frames += block(701, [(10, 701)], 200, first=True)
    frames += transaction(50, 1, 300)  # a small one commits in between
    frames += block(700, [(3, 700)], 400)
    frames += [stream_commit(701, 500), stream_commit(700, 600)]  # opposite of start order
    a.feed(frames, now=0.0)
    batch = a.builder.take(0.0)
    assert summary(batch) == [
        (PARK, 700, 700, [1, 2]),
        (PARK, 701, 701, [10]),
        (TXN, 0, 0, [50]),
        (PARK, 700, 700, [3]),
        (STREAM_COMMIT, 701, 0, []),
        (STREAM_COMMIT, 700, 0, []),
    ]
    assert batch.checkpoint_lsn == 616  # the last commit's end
    assert [c.end_lsn for c in batch.chunks if c.kind == STREAM_COMMIT] == [516, 616]
    assert not a.open_streams


def test_subtransaction_rows_are_parked_apart_and_aborts_say_which() -> None:
    a = assembler()
    frames = relations_frames() + block(700, [(1, 700), (2, 701), (3, 702)], 100, first=True)
    frames += [stream_abort(700, 701, 150), stream_commit(700, 200)]
    frames += [*block(800, [(9, 800)], 300, first=True), stream_abort(800, 800, 350)]
    a.feed(frames, now=0.0)
    chunks = a.builder.take(0.0).chunks
    assert [(c.kind, c.xid, c.subxid) for c in chunks] == [
        (PARK, 700, 700),
        (PARK, 700, 701),
        (PARK, 700, 702),
        (STREAM_ABORT, 700, 701),
        (STREAM_COMMIT, 700, 0),
        (PARK, 800, 800),
        (STREAM_ABORT, 800, 800),
    ]
    assert not a.open_streams


def test_a_streamed_transaction_committed_before_the_checkpoint_is_discarded() -> None:
    a = assembler(checkpoint=1000)
    frames = relations_frames() + block(700, [(1, 700)], 100, first=True)
    frames.append(stream_commit(700, 900))  # seen again after a restart: already applied
    a.feed(frames, now=0.0)
    assert [(c.kind, c.subxid) for c in a.builder.take(0.0).chunks] == [
        (PARK, 700),
        (STREAM_ABORT, 700),
    ]


def test_no_idle_advance_while_a_streamed_transaction_is_open() -> None:
    """Confirming past an open stream could skip it after a restart if it commits at or
    before that position; --once may still finish (it commits after the stop)."""
    a = assembler()
    a.feed([*relations_frames(), *block(700, [(1, 700)], 100, first=True)], now=0.0)
    a.feed([encode.keepalive(5000)], now=0.0)
    assert (a.keepalive_end, a.idle_end) == (0, 5000)
    a.feed([*block(700, [(2, 700)], 5100)[:2], encode.keepalive(6000)], now=0.0)
    assert a.idle_end == 5000  # inside a stream block: not even for --once
    a.feed([encode.xlog_data(encode.stream_stop(), 6000), stream_commit(700, 7000)], now=0.0)
    a.feed([encode.keepalive(8000)], now=0.0)
    assert (a.keepalive_end, a.idle_end) == (8000, 8000)


def test_once_leaves_a_stream_committing_at_or_past_the_stop_position_unread() -> None:
    a = assembler(stop_lsn=500)
    frames = relations_frames() + block(700, [(1, 700)], 100, first=True)
    frames += [stream_commit(700, 600), *transaction(5, 1, 700)]
    a.feed(frames, now=0.0)
    assert a.reached_end
    assert [c.kind for c in a.builder.take(0.0).chunks] == [PARK]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=60), max_size=6))
def test_any_split_into_reads_gives_the_same_stream_chunks(cuts: list[int]) -> None:
    frames = relations_frames() + block(700, [(1, 700), (2, 701)], 100, first=True)
    frames += transaction(20, 2, 200) + block(701, [(3, 701)], 250, first=True)
    frames += [*block(700, [(4, 702)], 300), stream_abort(700, 701, 350)]
    frames += [stream_commit(700, 400), encode.keepalive(450), stream_abort(701, 701, 500)]
    whole = assembler()
    whole.feed(frames, now=0.0)
    pieces = assembler()
    bounds = [0, *sorted(c % (len(frames) + 1) for c in cuts), len(frames)]
    for start, end in itertools.pairwise(bounds):
        pieces.feed(frames[start:end], now=0.0)
    assert summary(pieces.builder.take(0.0)) == summary(whole.builder.take(0.0))
    assert (pieces.keepalive_end, pieces.idle_end, pieces.open_streams) == (
        whole.keepalive_end,
        whole.idle_end,
        whole.open_streams,
    )
