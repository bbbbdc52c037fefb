"""The status reporter owns what is confirmed upstream (invariant 2): the flush position
never runs ahead of what the sink made durable and never moves backwards."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.sources.slot.status import StatusReporter


def positions(message: bytes) -> tuple[int, int, int, bool]:
    written, flushed, applied, _, reply = struct.unpack(">QQQqB", message[1:])
    return written, flushed, applied, bool(reply)


def test_flush_moves_only_with_durable_positions() -> None:
    r = StatusReporter(100, interval_s=10)
    r.saw(500)  # the server sent data up to 500: not durable yet
    assert positions(r.update(0.0, 0)) == (500, 100, 100, False)
    assert r.made_durable(300) is True
    assert positions(r.update(0.0, 0, reply=True)) == (500, 300, 300, True)


def test_an_older_durable_position_never_moves_the_flush_back() -> None:
    r = StatusReporter(100, interval_s=10)
    r.made_durable(400)
    r.update(0.0, 0)
    assert r.made_durable(200) is False
    assert positions(r.update(0.0, 0))[1] == 400


def test_written_is_never_behind_flushed() -> None:
    r = StatusReporter(0, interval_s=10)
    r.made_durable(900)  # e.g. an idle advance to the keepalive WAL end
    written, flushed, _, _ = positions(r.update(0.0, 0))
    assert written >= flushed == 900


def test_updates_are_paced_by_the_interval() -> None:
    r = StatusReporter(0, interval_s=10)
    assert r.due(0.0)
    r.update(5.0, 0)
    assert not r.due(14.9)
    assert r.due(15.0)


events = st.lists(
    st.one_of(
        st.tuples(st.just("durable"), st.integers(0, 10_000)),
        st.tuples(st.just("keepalive"), st.integers(0, 10_000)),
        st.tuples(st.just("send"), st.booleans()),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 5_000), events)
def test_any_sequence_keeps_the_flush_rules(start: int, sequence: list[tuple[str, object]]) -> None:
    r = StatusReporter(start, interval_s=1)
    durable_max = start
    last_flushed = start
    last_written = start
    for kind, value in sequence:
        if kind == "durable":
            assert isinstance(value, int)
            r.made_durable(value)
            durable_max = max(durable_max, value)
        elif kind == "keepalive":
            assert isinstance(value, int)
            r.saw(value)
        else:
            written, flushed, applied, _ = positions(r.update(0.0, 0, bool(value)))
            assert flushed <= durable_max  # never ahead of what is durable
            assert flushed >= last_flushed  # never backwards
            assert flushed == durable_max  # and not held back either
            assert applied == flushed
            assert written >= flushed and written >= last_written
            last_flushed, last_written = flushed, written
