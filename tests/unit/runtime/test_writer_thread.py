"""`WriterThread.submit` steps aside (GIL released) until the batch's rows flow to the
target, so the writer's round trips before the COPY do not wait for the CPU-bound loop;
the wait is bounded, and the results still come back through the queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from streamer.runtime import writer_thread
from streamer.runtime.writer_thread import HANDOFF_TIMEOUT_S, WriterThread
from streamer.sink.base import NOTHING_LEFT_OUT, Written
from streamer.sources.batching import PARK, Batch, TxnChunk


class SlowSink:
    """Signals `flowing` after `before_s`, then finishes `after_s` later."""

    checkpoints: Any = None

    def __init__(self, before_s: float, after_s: float, *, signal: bool = True) -> None:
        self.before_s, self.after_s, self.signal = before_s, after_s, signal
        self.release = threading.Event()
        self.flowed_at: float | None = None

    def write(self, batch: Batch, flowing: Callable[[], None] = lambda: None) -> Written:
        time.sleep(self.before_s)
        if self.signal:
            self.flowed_at = time.monotonic()
            flowing()
        self.release.wait(self.after_s)
        return NOTHING_LEFT_OUT


def batch(rows: int = 1) -> Batch:
    return Batch([TxnChunk(0, 1)], 1, rows, 0)


@pytest.fixture
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the signal (or the write's end) may end the wait, however busy the machine."""
    monkeypatch.setattr(writer_thread, "HANDOFF_TIMEOUT_S", 5.0)


def wait_for_result(writer: WriterThread) -> list[Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if done := writer.results():
            return done
        time.sleep(0.001)
    raise AssertionError("no result")


@pytest.mark.usefixtures("patient")
def test_submit_returns_once_the_rows_flow_not_when_the_write_ends() -> None:
    sink = SlowSink(before_s=0.002, after_s=5.0)
    writer = WriterThread(sink)  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        writer.submit(batch())
        returned = time.monotonic()
        assert sink.flowed_at is not None and sink.flowed_at <= returned  # waited for it
        assert returned - started < 1.0  # and not for the write (5 s)
        assert writer.busy
        sink.release.set()
        assert len(wait_for_result(writer)) == 1 and not writer.busy
    finally:
        sink.release.set()
        writer.stop()


def test_the_wait_is_bounded_when_the_rows_never_flow() -> None:
    sink = SlowSink(before_s=0.0, after_s=5.0, signal=False)  # e.g. a slow fence
    writer = WriterThread(sink)  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        writer.submit(batch())
        waited = time.monotonic() - started
        assert HANDOFF_TIMEOUT_S * 0.9 <= waited < 1.0
    finally:
        sink.release.set()
        writer.stop()


class FailingSink:
    checkpoints: Any = None

    def write(self, batch: Batch, flowing: Callable[[], None] = lambda: None) -> Written:
        raise RuntimeError("target gone")


@pytest.mark.usefixtures("patient")
def test_a_failed_write_ends_the_wait_and_reaches_the_loop() -> None:
    writer = WriterThread(FailingSink())  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        writer.submit(batch())
        assert time.monotonic() - started < 1.0
        with pytest.raises(RuntimeError, match="target gone"):
            wait_for_result(writer)
    finally:
        writer.stop()


@pytest.mark.usefixtures("patient")
@pytest.mark.parametrize(
    "quiet",
    [Batch([], 1, 0, 0), Batch([TxnChunk(0, kind=PARK, xid=7, subxid=7)], None, 1, 0)],
    ids=["no rows (an idle advance)", "parked rows (their own statements)"],
)
def test_batches_without_the_writers_copy_are_not_waited_for(quiet: Batch) -> None:
    sink = SlowSink(before_s=0.0, after_s=5.0, signal=False)
    writer = WriterThread(sink)  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        writer.submit(quiet)
        assert time.monotonic() - started < 1.0
    finally:
        sink.release.set()
        writer.stop()
