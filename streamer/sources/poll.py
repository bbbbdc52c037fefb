"""Poll mode: `streamer run --mode poll`, for sources without logical replication.

Some operators only get a read-only role on the lake, or cannot switch `wal_level`. Poll
mode needs nothing but SELECT on the source table: each cycle reads rows in keyset order
over `(created_at, id)`, starting `overlap` seconds before the newest `created_at` seen so
far, skips the ids the target already holds, and writes the rest through the same
normalizer and the same guarded writer as the stream (duplicates in either table are
skipped, so overlapping reads are harmless).

Why an overlap: `created_at` is the *start* time of the inserting transaction, so a
transaction that commits late becomes visible after rows with a later `created_at` were
already read. Re-reading the last `overlap` seconds catches every transaction that took
less than `overlap` seconds from its insert to its commit; a slower one is missed (and
`streamer verify --mode poll` reports it). The slot has no such gap.

Progress marker: a `streamer_checkpoints` row named `poll:<schema>.<table>` whose
`backfill_cursor` holds the newest `created_at` read (ISO text). It is written by the
writer's fence in the same target transaction as each chunk's rows, so it is exactly as
durable as the rows; `claim()` bumps its epoch, fencing an older poller of the same table.
Its `lsn` stays `0/0`. Rows written here get `source_lsn` 0/0 (unknown without a slot) and,
as their commit time, the source's `now()` at the start of the cycle (like a backfill).

Rows whose `created_at` is NULL or infinite cannot be placed in the keyset and are never
read here; `verify` reports them.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg import sql

from streamer.config import Settings
from streamer.errors import ConnectionFailed, PreflightFailed
from streamer.normalize import normalize
from streamer.normalize.records import Canonical, SourceRow
from streamer.ops.setup import ensure_tables
from streamer.runtime.dbconn import connect, translated
from streamer.runtime.health import RunState
from streamer.runtime.metrics import Metrics
from streamer.runtime.stopping import StopFlag
from streamer.runtime.writer_thread import WriteResult
from streamer.sink.tables import REJECTED, TRANSACTIONS
from streamer.sink.writer import BatchWriter
from streamer.sources.backfill import ZERO_UUID
from streamer.sources.batching import Batch, TxnChunk
from streamer.sources.slot.session import ONCE_MAX_ATTEMPTS, RunSummary, backoff_delay, record_batch

log = logging.getLogger(__name__)

PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
HEARTBEAT_S: Final = 10.0  # /healthz stays green through a 12-hour interval


def marker_name(settings: Settings) -> str:
    """The checkpoint row of poll mode (slot names cannot contain ':' or '.')."""
    return f"poll:{settings.qualified_source_table}"


def encode_marker(value: datetime) -> str:
    return value.isoformat()


def decode_marker(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def scan_start(marker: datetime | None, source_now: datetime, overlap_s: int) -> datetime | None:
    """Where a cycle starts: `overlap` before the marker (the newest `created_at` seen,
    never recorded beyond the source's clock, see `next_marker`), or before the source's
    clock if that is earlier. None: nothing seen yet, read the whole table."""
    if marker is None:
        return None
    return min(marker, source_now) - timedelta(seconds=overlap_s)


def next_marker(previous: datetime | None, newest: datetime, cycle_now: datetime) -> datetime:
    """The marker after reading up to `newest`: never moves back, and never past the
    source's clock at the start of the cycle. A row dated in the future (or a clock
    stepped back) must not make the next cycle skip rows created before it."""
    marker = newest if previous is None else max(previous, newest)
    return min(marker, cycle_now)


@dataclass
class PollSummary:
    applied: RunSummary = field(default_factory=RunSummary)  # rows written, timing
    cycles: int = 0
    rows_read: int = 0
    already_present: int = 0
    marker: datetime | None = None

    def line(self) -> str:
        seen = encode_marker(self.marker) if self.marker is not None else "none"
        return (
            f"rows normalized {self.applied.rows_normalized}, "
            f"rows rejected {self.applied.rows_rejected}, "
            f"rows already present {self.already_present}, newest created_at {seen}, "
            f"seconds {self.applied.seconds:.2f}"
        )


class Poller:
    """One source table polled into the target; owns the target writer."""

    def __init__(
        self, settings: Settings, stop: StopFlag, metrics: Metrics, state: RunState
    ) -> None:
        self.source_url, self.target_url = settings.require_urls()
        self.settings = settings
        self.stop = stop
        self.metrics = metrics
        self.state = state
        self.prepared = False
        self.summary = PollSummary()
        ident = sql.Identifier
        self.table = sql.SQL("{}.{}").format(
            ident(settings.source_schema), ident(settings.source_table)
        )
        schema = ident(settings.target_schema)
        self.present_query = sql.SQL(
            "SELECT source_id::text FROM {s}.{tx} WHERE source_id = ANY(%(ids)s::uuid[])"
            " UNION ALL"
            " SELECT source_id::text FROM {s}.{rej} WHERE source_id = ANY(%(ids)s::uuid[])"
        ).format(s=schema, tx=ident(TRANSACTIONS), rej=ident(REJECTED))
        self.writer = BatchWriter(self.target_url, settings.target_schema, marker_name(settings))

    def prepare(self) -> None:
        """Target tables, the marker row (claimed), and a read of the source table, so a
        missing table, column or privilege fails before the first cycle."""
        ensure_tables(self.target_url, self.settings.target_schema)
        self.writer.claim(0)
        _, cursor = self.writer.backfill_state()
        self.summary.marker = decode_marker(cursor)
        probe = sql.SQL(
            "SELECT id, transactional_id, data, merchant, created_at FROM {} LIMIT 0"
        ).format(self.table)
        with (
            translated("source", self.source_url, "checking the source table"),
            connect("source", self.source_url, autocommit=True) as conn,
        ):
            try:
                conn.execute(probe)
            except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
                raise PreflightFailed(
                    f"cannot poll {self.settings.qualified_source_table}: "
                    f"{(exc.diag.message_primary or str(exc)).strip()}",
                    hint="check STREAMER_SOURCE_TABLE / --source-table",
                ) from None
        self.prepared = True

    def cycle(self) -> None:
        """Read everything from the scan start on; each chunk commits with the marker."""
        query = sql.SQL(
            "SELECT r.id::text, r.transactional_id::text, r.data::text, r.merchant::text,"
            " r.created_at::text, r.created_at FROM {} r"
            " WHERE (r.created_at, r.id) > (%s, %s::uuid) AND isfinite(r.created_at)"
            " ORDER BY r.created_at, r.id LIMIT %s"
        ).format(self.table)
        with (
            translated("source", self.source_url, "polling the source table"),
            connect("source", self.source_url, autocommit=True) as conn,
        ):
            now_row = conn.execute("SELECT localtimestamp, now()").fetchone()
            assert now_row is not None
            marker = self.summary.marker
            naive_now, aware_now = now_row
            source_now = naive_now if marker is None or marker.tzinfo is None else aware_now
            start = scan_start(marker, source_now, self.settings.poll_overlap_seconds)
            commit_us = (aware_now - PG_EPOCH) // timedelta(microseconds=1)
            cursor: tuple[Any, str] = ("-infinity" if start is None else start, ZERO_UUID)
            while not self.stop.is_set():
                rows = conn.execute(query, (*cursor, self.settings.batch_size)).fetchall()
                if not rows:
                    break
                self._apply(rows, commit_us, (naive_now, aware_now))
                cursor = (rows[-1][5], rows[-1][0])
                self.state.beat()
                if len(rows) < self.settings.batch_size:
                    # Reached the tail as it was: end the cycle. Chasing new rows would let
                    # the cursor run ahead of transactions still open (they would fall
                    # behind it for good once the chase outlasted the overlap) and would
                    # keep a --once run from ever finishing under steady inserts.
                    break
        self.summary.cycles += 1

    def _apply(
        self, rows: Sequence[tuple[Any, ...]], commit_us: int, now: tuple[datetime, datetime]
    ) -> None:
        """Write a chunk (rows not yet in the target) together with the new marker.
        `now` is the source's clock at the cycle start, naive and aware (created_at may be
        either type)."""
        ids = [row[0] for row in rows]
        with translated("target", self.target_url, "looking up rows already written"):
            conn = self.writer.conn
            with conn.transaction():
                present = {r[0] for r in conn.execute(self.present_query, {"ids": ids})}
        chunk = TxnChunk(commit_us, end_lsn=0)
        for row in rows:
            if row[0] not in present:
                record = normalize(SourceRow(*row[:5]))
                if type(record) is Canonical:
                    chunk.canonical.append(record)
                else:
                    chunk.rejected.append(record)  # type: ignore[arg-type]
        previous = self.summary.marker
        newest: datetime = rows[-1][5]
        marker = next_marker(previous, newest, now[1] if newest.tzinfo else now[0])
        if chunk.rows or marker != previous:
            batch = Batch([chunk], None, chunk.rows, 0)
            started = time.monotonic()
            refused = self.writer.write(batch, guarded=True, backfill_cursor=encode_marker(marker))
            result = WriteResult(batch, refused, time.monotonic() - started, time.time())
            record_batch(self.metrics, self.summary.applied, result)
        self.summary.marker = marker
        self.summary.rows_read += len(rows)
        self.summary.already_present += len(present)

    def close(self) -> None:
        self.writer.close()


def run(
    settings: Settings, once: bool, stop: StopFlag, metrics: Metrics, state: RunState
) -> PollSummary:
    """Poll until stopped (or one cycle with `once`). Lost connections are retried with
    backoff: forever when polling on a schedule, a few times with `once`."""
    poller = Poller(settings, stop, metrics, state)
    rng = random.Random()
    attempt = 0
    try:
        while not stop.is_set():
            try:
                if not poller.prepared:
                    poller.prepare()
                    state.streaming = True
                poller.cycle()
            except ConnectionFailed as exc:
                poller.writer.close()
                attempt += 1
                if once and attempt >= ONCE_MAX_ATTEMPTS:
                    raise
                delay = backoff_delay(attempt, rng)
                log.warning("%s; retrying in %.1fs", exc, delay)
                if _sleep(stop, delay, state):
                    break
                continue
            attempt = 0
            state.source_connected = state.target_connected = True
            if once:
                break
            log.info("poll cycle done: %s", poller.summary.line())
            if _sleep(stop, settings.poll_interval_seconds, state):
                break
    finally:
        poller.close()
    return poller.summary


def _sleep(stop: StopFlag, seconds: float, state: RunState) -> bool:
    """Wait (True: stopped meanwhile), beating the health heartbeat on the way."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        state.beat()
        if stop.wait(min(left, HEARTBEAT_S)):
            return True
    state.beat()
    return stop.is_set()
