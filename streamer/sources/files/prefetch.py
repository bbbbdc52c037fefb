"""Downloads ahead: the next due objects are copied to local spool files by a pool of
`--workers` threads while the driver parses and writes the current one.

Why download, not parse, ahead: parsing and normalizing hold the GIL, so parsing in
threads would not run faster, while S3 reads are mostly waiting. Files are still taken
(claimed, read, committed) strictly in key order. At most `workers` objects are spooled
ahead, on disk, in 1 MiB pieces: memory does not grow with object size or count (disk
holds up to `workers` objects).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from streamer.sources.files.catalog import DueFile
from streamer.sources.files.s3 import Bucket


class Prefetcher:
    def __init__(self, bucket: Bucket, directory: str, workers: int) -> None:
        self._bucket = bucket
        self._directory = directory
        self._workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="streamer-s3")
        self._waiting: deque[DueFile] = deque()
        self._ahead: deque[tuple[DueFile, Future[Path]]] = deque()

    def add(self, due: Iterable[DueFile]) -> None:
        self._waiting.extend(due)
        self._fill()

    def __bool__(self) -> bool:
        return bool(self._waiting or self._ahead)

    def next(self) -> tuple[DueFile, Future[Path]]:
        """The next due file in order and its download (`result()` waits for it and
        raises what the download raised)."""
        self._fill()
        taken = self._ahead.popleft()
        self._fill()
        return taken

    def last_modified(self) -> list[datetime]:
        """When each file not yet taken was last modified (for the pending-age gauge)."""
        dues = [*self._waiting, *(due for due, _ in self._ahead)]
        return [due.last_modified for due in dues if due.last_modified is not None]

    def _fill(self) -> None:
        while self._waiting and len(self._ahead) < self._workers:
            due = self._waiting.popleft()
            future = self._pool.submit(self._bucket.spool_object, due.ref, self._directory)
            self._ahead.append((due, future))

    def close(self) -> None:
        """Drop what is not taken; downloads under way finish, then are deleted."""
        self._waiting.clear()
        for _, future in self._ahead:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for _, future in self._ahead:
            discard(future)
        self._ahead.clear()


def discard(future: Future[Path]) -> None:
    """Delete a finished download (if it succeeded)."""
    if future.done() and not future.cancelled() and future.exception() is None:
        with contextlib.suppress(OSError):
            future.result().unlink(missing_ok=True)
