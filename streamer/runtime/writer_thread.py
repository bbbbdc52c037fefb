"""Runs the target writer beside the replication loop, one batch at a time.

The replication loop must keep answering keepalives while the target commits (a slow
target must not get the replication connection killed by wal_sender_timeout), and reading
the next batch while the previous one is written uses the second core.

One interpreter runs both threads, and the loop is CPU-bound while it decodes: each round
trip the writer makes before its rows flow (BEGIN, the checkpoint fence, COPY) waited for
the GIL, for up to the loop's next switch, while the target sat idle. `submit` therefore
steps aside until the rows flow (bounded by `HANDOFF_TIMEOUT_S`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from typing import Final

from streamer.sink.base import Sink, WriteResult
from streamer.sources.batching import Batch

# Longest the loop steps aside for a new batch: the writer's few round trips before its
# rows flow take well under a millisecond on an idle GIL; a target slow to answer (a lock
# on the checkpoint row) must not hold the loop, which answers the source's keepalives.
HANDOFF_TIMEOUT_S: Final = 0.005


class WriterThread:
    """One batch in flight; results (or the sink's exception) come back through a queue
    and a wake-up pipe the driver's loop selects on."""

    def __init__(self, writer: Sink) -> None:
        self._writer = writer
        # each batch with its own "rows flow" event: a late signal of one batch can never
        # end the wait for the next
        self._inbox: queue.Queue[tuple[Batch, threading.Event] | None] = queue.Queue(maxsize=1)
        self._outbox: queue.Queue[WriteResult | BaseException] = queue.Queue()
        self._busy = False
        # The main loop selects on this pipe together with the replication socket, so a
        # finished write wakes it immediately.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._thread = threading.Thread(target=self._work, name="streamer-writer", daemon=True)
        self._thread.start()

    @property
    def fileno(self) -> int:
        return self._wake_r

    @property
    def busy(self) -> bool:
        return self._busy

    def submit(self, batch: Batch) -> None:
        """Hand a batch over, and wait (GIL released) until its rows flow to the target,
        the write ends, or `HANDOFF_TIMEOUT_S` passes. Batches whose rows are not copied
        by the writer's own COPY (none at all, or protocol 2 streams, parked by their own
        statements) are not waited for."""
        assert not self._busy, "one batch in flight at a time"
        self._busy = True
        flowing = threading.Event()
        self._inbox.put((batch, flowing))
        if batch.rows and not batch.streamed:
            flowing.wait(HANDOFF_TIMEOUT_S)

    def results(self) -> list[WriteResult]:
        """Finished writes; re-raises the writer's exception in the caller's thread."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        items: list[WriteResult | BaseException] = []
        try:
            while True:
                items.append(self._outbox.get_nowait())
        except queue.Empty:
            pass
        done: list[WriteResult] = []
        for item in items:
            self._busy = False
            if isinstance(item, BaseException):
                raise item
            done.append(item)
        return done

    def _work(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            batch, flowing = item
            started = time.perf_counter()
            try:
                written = self._writer.write(batch, flowing.set)
            except BaseException as exc:  # handed to the main loop, which decides
                self._outbox.put(exc)
            else:
                duration = time.perf_counter() - started
                self._outbox.put(
                    WriteResult(batch, written.refused, duration, time.time(), written.skipped)
                )
            flowing.set()
            os.write(self._wake_w, b"x")

    def stop(self, timeout: float = 30.0) -> None:
        """Let the batch in flight finish (or fail), then end the thread."""
        self._inbox.put(None)
        self._thread.join(timeout)
        if not self._thread.is_alive():  # a stuck write may still signal on the pipe
            os.close(self._wake_r)
            os.close(self._wake_w)
