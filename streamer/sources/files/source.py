"""Files mode's source: objects under an S3 prefix, each read once into the target.

Each cycle lists the prefix (ListObjectsV2, from the newest completed partition less a
lookback, or everything with `--full-relist`), records new object versions as `pending`
(`catalog`), then processes the due files in key order: claim one, stream its records
into the builder as chunks of at most a batch of records, each carrying a `FileCursor`
that the sink's fence commits with the chunk's rows (`sink/files.py`). A file that
cannot be read becomes a failure chunk (its message, no rows) and the run goes on.

A new cycle starts only when every chunk pushed so far is durable: a file's status in
`processed_files` is then exactly what the next listing must see.

Objects are downloaded ahead by `--workers` threads (`prefetch`) to local spool files,
removed once read.
With `--sqs-queue-url`, S3 event notifications start a cycle early (`notifications`).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Final

from streamer.config import Settings
from streamer.normalize.records import Canonical, SourceRow
from streamer.pgtime import now_pg_us, unix_to_pg_us
from streamer.runtime.metrics import Metrics
from streamer.runtime.progress import Progress
from streamer.sink.base import Sink, WriteResult
from streamer.sink.files import CANONICAL, DONE, FAILED, MORE, REJECTED, FileCursor
from streamer.sources.accounting import RunSummary
from streamer.sources.base import CursorSource
from streamer.sources.batching import ROW_OVERHEAD_BYTES, BatchBuilder
from streamer.sources.files.catalog import Catalog, DueFile
from streamer.sources.files.errors import ObjectChanged, UnreadableFile
from streamer.sources.files.formats import FileFormat, Record, detect_format, read_records
from streamer.sources.files.notifications import Notifications
from streamer.sources.files.prefetch import Prefetcher, discard
from streamer.sources.files.s3 import Bucket, parse_files_url, partition_of, start_after

log = logging.getLogger(__name__)

MAX_LATE_KEYS: Final = 1000  # notified keys before the listing window, listed one by one
HEARTBEAT_S: Final = 10.0
MAX_CHUNK_BYTES: Final = 16 * 1024 * 1024  # well below the driver's batch byte limit
MAX_MESSAGE_CHARS: Final = 300


class _Open:
    """The file being read: its claim, its record stream, what to clean up."""

    def __init__(self, due: DueFile, attempt: int, position: int) -> None:
        self.due = due
        self.attempt = attempt
        self.position = position
        self.records: Iterator[Record] | None = None
        self.stream: BinaryIO | None = None
        self.spool: Path | None = None

    def close(self) -> None:
        if self.stream is not None:
            with contextlib.suppress(Exception):
                self.stream.close()
        if self.spool is not None:
            self.spool.unlink(missing_ok=True)


class FilesSource(CursorSource):
    """Due objects of one bucket prefix, cycle after cycle (`--once`: one cycle)."""

    # guarded (CursorSource): a resumed or retried file re-reads rows already written

    def __init__(self, settings: Settings, once: bool, metrics: Metrics) -> None:
        assert settings.files_url is not None and settings.target_url is not None
        self.settings = settings
        self.once = once
        self.metrics = metrics
        self.bucket_name, self.prefix = parse_files_url(settings.files_url)
        self.catalog = Catalog(
            settings.target_url, settings.target_schema, self.bucket_name, self.prefix
        )
        self.bucket: Bucket | None = None
        self.prepared = False
        self.completed = self.failed = self.skipped = 0
        self._done = False
        self._queue: Prefetcher | None = None
        self._file: _Open | None = None
        self._in_cycle = False
        self._next_cycle_at = 0.0
        self._unconfirmed = 0  # chunks pushed, not yet durable
        self._sizes: dict[int, int] = {}
        self._spool_dir: str | None = None
        self._notices: Notifications | None = None
        self._covered: list[str] = []  # messages the current cycle's listing covers
        self._acks: list[str] = []  # messages to delete once the cycle is durable
        self._progress: Progress | None = None

    # -- the Source seam -------------------------------------------------------------
    def open(self, sink: Sink, builder: BatchBuilder) -> int:
        self._builder = builder
        if not self.prepared:
            for line in sink.prepare():
                log.info("%s", line)
            self.prepared = True
        sink.claim(0)
        if self.bucket is None:
            self.bucket = Bucket(self.bucket_name)
        self._spool_dir = tempfile.mkdtemp(prefix="streamer-files-")
        self._queue = Prefetcher(self.bucket, self._spool_dir, self.settings.files_workers)
        self._in_cycle, self._unconfirmed = False, 0
        self._covered, self._acks = [], []  # a retry: these messages are delivered again
        if self.settings.files_sqs_url and not self.once:
            self._notices = Notifications(
                self.settings.files_sqs_url, self.bucket_name, self.prefix, self.metrics
            )
            self._notices.start()
        return 0

    def read(self, now: float) -> bool:
        """One step: start a cycle, open the next due file, or push one chunk."""
        if self._done:
            return True
        if self._file is None and not self._queue:  # nothing due nor downloading
            if self._in_cycle:
                self._end_cycle(now)
                return True
            if self._unconfirmed or not self._builder.empty:
                return True
            if self._notices is not None and self._acks:  # their cycle is durable
                self._notices.delete(self._acks)
                self._acks = []
            early = self._notices is not None and self._notices.pending()
            if now < self._next_cycle_at and not early:
                return True
            self._start_cycle()
            return False
        if self._file is None:
            self._open_next(now)
        else:
            self._push_chunk(now)
        return False

    def finished(self) -> bool:
        return self._done

    def durable(self, result: WriteResult, now: float) -> None:
        for chunk in result.batch.chunks:
            if chunk.cursor is None or chunk.end_lsn is None:
                continue
            self._unconfirmed -= 1
            state = chunk.cursor.split(":", 5)[4]
            if state == DONE:
                self.completed += 1
                self.metrics.files.labels("completed").inc()
                file_id = int(chunk.cursor.split(":", 1)[0])
                self.metrics.file_bytes.inc(self._sizes.pop(file_id, 0))
            elif state == FAILED:
                self.failed += 1
                self.metrics.files.labels("failed").inc()
            else:
                continue
            if self._progress is not None:
                self._progress.update(1)

    def tick(self, now: float, waiting: bool) -> float:
        pending = self._queue.last_modified() if self._queue is not None else []
        if self._file is not None and self._file.due.last_modified is not None:
            pending.append(self._file.due.last_modified)
        age = time.time() - min(p.timestamp() for p in pending) if pending else 0.0
        self.metrics.oldest_pending_file_age.set(max(0.0, age))
        if self._in_cycle or self._file is not None:
            return 0.0
        return min(HEARTBEAT_S, max(0.0, self._next_cycle_at - now))

    def wait_fds(self) -> list[int]:
        idle = not (self._in_cycle or self._file is not None or self._unconfirmed)
        return [self._notices.fileno()] if self._notices is not None and idle else []

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._queue is not None:
            self._queue.close()
            self._queue = None
        if self._notices is not None:  # undeleted messages come back: one more cycle
            self._notices.close()
            self._notices = None
        if self._progress is not None:
            self._progress.finish()
            self._progress = None
        self.catalog.close()
        if self._spool_dir is not None:
            shutil.rmtree(self._spool_dir, ignore_errors=True)
            self._spool_dir = None

    def line(self, summary: RunSummary) -> str:
        return (
            f"files completed {self.completed}, files failed {self.failed}, "
            f"rows normalized {summary.rows_normalized}, "
            f"rows rejected {summary.rows_rejected}, seconds {summary.seconds:.2f}"
        )

    # -- cycles ----------------------------------------------------------------------
    def _start_cycle(self) -> None:
        assert self.bucket is not None
        newest = self.catalog.newest_completed_key()
        partition = partition_of(newest, self.prefix) if newest else None
        after = start_after(
            self.prefix,
            partition,
            self.settings.files_lookback_days,
            full=self.settings.files_full_relist,
        )
        keys, self._covered = self._notices.take() if self._notices is not None else ([], [])
        # notified keys the listing cannot include (older than the lookback): late objects
        late = sorted({key for key in keys if after is not None and key <= after})
        listed = []
        objects = self.bucket.list_objects(self.prefix, after)
        for obj in itertools.chain(objects, self.bucket.list_keys(late[:MAX_LATE_KEYS])):
            fmt = detect_format(obj.ref.key)
            if fmt is None:
                self.skipped += 1
                self.metrics.files.labels("skipped").inc()
            else:
                listed.append((obj, fmt))
        self.catalog.add(listed)
        due = self.catalog.due()
        assert self._queue is not None
        self._queue.add(due)
        self._in_cycle = True
        if self.once and sys.stderr.isatty():
            self._progress = Progress("files", len(due), unit="files", log_off_tty=False)
        log.info(
            "listed %d objects under s3://%s/%s (%d due)",
            len(listed),
            self.bucket_name,
            self.prefix,
            len(due),
        )

    def _end_cycle(self, now: float) -> None:
        self._in_cycle = False
        self._acks += self._covered
        self._covered = []
        if self.once:
            self._done = True
        else:
            self._next_cycle_at = now + self.settings.poll_interval_seconds

    # -- one file --------------------------------------------------------------------
    def _open_next(self, now: float) -> None:
        assert self._queue is not None
        due, download = self._queue.next()
        claimed = self.catalog.claim(due.file_id)
        if claimed is None:  # no longer due (reset or finished by someone else)
            download.cancel()
            download.add_done_callback(discard)
            return
        current = _Open(due, *claimed)
        self._file = current
        self._sizes[due.file_id] = due.ref.size
        try:
            current.spool = download.result()
            current.records = self._records(current, current.spool)
        except (UnreadableFile, ObjectChanged) as exc:
            self._fail(current, exc, now)

    def _records(self, current: _Open, spool: Path) -> Iterator[Record]:
        due = current.due
        if due.fmt is FileFormat.PARQUET:
            source: BinaryIO | Path = spool
        else:
            current.stream = source = spool.open("rb")
        return read_records(
            due.fmt,
            source,
            due.ref,
            max_json_bytes=self.settings.files_max_bytes,
            start=current.position,
        )

    def _commit_us(self, due: DueFile) -> int:
        modified: datetime | None = due.last_modified
        return unix_to_pg_us(modified.timestamp()) if modified is not None else now_pg_us()

    def _push_chunk(self, now: float) -> None:
        """Up to a batch of the file's records as one chunk, with its cursor."""
        current = self._file
        assert current is not None and current.records is not None
        builder, normalizer = self._builder, self._builder.normalizer
        start = current.position
        kinds: list[str] = []
        nbytes = 0
        builder.begin(self._commit_us(current.due), now)
        state = MORE
        try:
            while len(kinds) < self.settings.batch_size and nbytes < MAX_CHUNK_BYTES:
                record = next(current.records, None)
                if record is None:
                    state = DONE
                    break
                item = record.item
                if isinstance(item, SourceRow):
                    result = normalizer(item)
                    size = len(item.data) + len(item.merchant)
                else:
                    result, size = item, len(item.raw) + len(item.merchant)
                builder.add(result, size)
                kinds.append(CANONICAL if type(result) is Canonical else REJECTED)
                nbytes += size + ROW_OVERHEAD_BYTES
        except (UnreadableFile, ObjectChanged) as exc:
            builder.abandon_open()
            self._fail(current, exc, now)
            return
        end = start + len(kinds)
        current.position = end
        cursor = FileCursor(current.due.file_id, current.attempt, start, end, state, "".join(kinds))
        builder.commit(0, cursor.encode())
        self._unconfirmed += 1
        if state == DONE:
            self._finish(current)

    def _fail(self, current: _Open, exc: Exception, now: float) -> None:
        """A failure chunk: no rows, the file's one-line error message."""
        message = " ".join(str(exc).split())[:MAX_MESSAGE_CHARS] or type(exc).__name__
        log.warning("file %s failed: %s", current.due.ref.key, message)
        pos = current.position
        cursor = FileCursor(current.due.file_id, current.attempt, pos, pos, FAILED, message=message)
        self._builder.begin(self._commit_us(current.due), now)
        self._builder.commit(0, cursor.encode())
        self._unconfirmed += 1
        self._sizes.pop(current.due.file_id, None)
        self._finish(current)

    def _finish(self, current: _Open) -> None:
        current.close()
        self._file = None
