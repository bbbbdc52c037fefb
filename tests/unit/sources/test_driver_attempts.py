"""Every attempt of a run gets a sink of its own: a writer thread that outlived a failed
session keeps the old sink (its connection, its claimed epoch), so it can never close or
write on the next session's connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamer.errors import SourceUnavailable
from streamer.runtime.metrics import NullMetrics
from streamer.runtime.stopping import StopFlag
from streamer.sink.base import NOTHING_LEFT_OUT, Written
from streamer.sources.batching import Batch, BatchBuilder
from streamer.sources.driver import Driver
from streamer.sources.retry import RetryPolicy


class FakeSink:
    checkpoints: Any = None

    def __init__(self) -> None:
        self.closed = False

    def prepare(self) -> list[str]:
        return []

    def claim(self, initial_lsn: int) -> int:
        return initial_lsn

    def encode(self, batch: Batch) -> None:
        return None

    def forget_parked(self) -> None:
        return None

    def write(self, batch: Batch, flowing: Callable[[], None] = lambda: None) -> Written:
        return NOTHING_LEFT_OUT

    def close(self) -> None:
        self.closed = True


class FlakySource:
    """Fails to open the first time (a lost connection), then finishes at once."""

    moves_lsn = True
    guarded = False

    def __init__(self) -> None:
        self.opened_with: list[FakeSink] = []

    def open(self, sink: Any, builder: BatchBuilder) -> int:
        self.opened_with.append(sink)
        if len(self.opened_with) == 1:
            raise SourceUnavailable("the source went away")
        return 0

    def read(self, now: float) -> bool:
        return True

    def finished(self) -> bool:
        return True

    def idle_position(self, durable: int, now: float, ending: bool) -> int | None:
        return None

    def durable(self, result: Any, now: float) -> None:
        return None

    def tick(self, now: float, waiting: bool) -> float:
        return 0.0

    def wait_fds(self) -> list[int]:
        return []

    def close(self) -> None:
        return None


def test_a_retried_session_gets_a_new_sink_and_the_old_one_is_closed(monkeypatch: Any) -> None:
    monkeypatch.setattr(RetryPolicy, "delay_after", lambda self, exc, made_progress: 0.0)
    source = FlakySource()
    driver = Driver(
        source,
        FakeSink,
        batch_size=10,
        batch_timeout_s=0.1,
        metrics=NullMetrics(),
        stop=StopFlag(),
    )
    driver.run(once=True)
    first, second = source.opened_with
    assert first is not second
    assert first.closed and second.closed
