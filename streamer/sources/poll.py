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
`backfill_cursor` holds the newest `created_at` read (ISO text). It is each chunk's cursor,
so the sink's fence writes it in the same target transaction as the chunk's rows: it is
exactly as durable as the rows; `claim()` bumps its epoch, fencing an older poller.
Its `lsn` stays `0/0`. Rows written here get `source_lsn` 0/0 (unknown without a slot) and,
as their commit time, the source's `now()` at the start of the cycle (like a backfill).

Rows whose `created_at` is NULL or infinite cannot be placed in the keyset and are never
read here; `verify` reports them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg import sql

from streamer.config import Settings
from streamer.errors import PreflightFailed
from streamer.normalize.records import SourceRow
from streamer.runtime.dbconn import connect, translated
from streamer.sink.base import Sink
from streamer.sources.accounting import RunSummary
from streamer.sources.base import ZERO_UUID, CursorSource
from streamer.sources.batching import BatchBuilder

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
class _Cycle:
    """One pass over the table from the scan start to the tail as it was."""

    conn: psycopg.Connection[Any]
    commit_us: int  # the source's now() at the start, as every row's commit time
    now: tuple[datetime, datetime]  # the source's clock at the start, naive and aware
    cursor: tuple[Any, str]  # keyset position: (created_at, id)


class PollSource(CursorSource):
    """The source table read by keyset, cycle after cycle (`--once`: one cycle)."""

    # guarded (CursorSource): the overlap re-reads rows already written

    def __init__(self, settings: Settings, once: bool) -> None:
        self.source_url, _ = settings.require_urls()
        self.settings = settings
        self.once = once
        self.prepared = False
        self.cycles = 0
        self.rows_read = 0
        self.marker: datetime | None = None  # newest created_at handed to the writer
        self._done = False
        self._cycle: _Cycle | None = None
        self._next_cycle_at = 0.0
        ident = sql.Identifier
        self.table = sql.SQL("{}.{}").format(
            ident(settings.source_schema), ident(settings.source_table)
        )
        self.query = sql.SQL(
            "SELECT r.id::text, r.transactional_id::text, r.data::text, r.merchant::text,"
            " r.created_at::text, r.created_at FROM {} r"
            " WHERE (r.created_at, r.id) > (%s, %s::uuid) AND isfinite(r.created_at)"
            " ORDER BY r.created_at, r.id LIMIT %s"
        ).format(self.table)

    def open(self, sink: Sink, builder: BatchBuilder) -> int:
        """Target tables, the marker row (claimed), and a read of the source table, so a
        missing table, column or privilege fails before the first cycle."""
        self._builder = builder
        if not self.prepared:
            sink.prepare()
        sink.claim(0)
        _, cursor = sink.checkpoints.backfill_state()
        self.marker = decode_marker(cursor)
        if not self.prepared:
            self._probe()
            self.prepared = True
        self._next_cycle_at = 0.0
        return 0

    def _probe(self) -> None:
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

    def read(self, now: float) -> bool:
        """One page of the current cycle (starting one when it is due)."""
        if self._done or (self._cycle is None and now < self._next_cycle_at):
            return True
        with translated("source", self.source_url, "polling the source table"):
            cycle = self._cycle or self._start_cycle()
            size = self.settings.batch_size
            rows = cycle.conn.execute(self.query, (*cycle.cursor, size)).fetchall()
            if rows:
                self._push(rows, cycle)
                cycle.cursor = (rows[-1][5], rows[-1][0])
        if len(rows) < size:
            # Reached the tail as it was: end the cycle. Chasing new rows would let the
            # cursor run ahead of transactions still open (they would fall behind it for
            # good once the chase outlasted the overlap) and would keep a --once run from
            # ever finishing under steady inserts.
            self._end_cycle(now)
            return True
        return False

    def _start_cycle(self) -> _Cycle:
        conn = connect("source", self.source_url, autocommit=True)
        now_row = conn.execute("SELECT localtimestamp, now()").fetchone()
        assert now_row is not None
        naive_now, aware_now = now_row
        marker = self.marker
        source_now = naive_now if marker is None or marker.tzinfo is None else aware_now
        start = scan_start(marker, source_now, self.settings.poll_overlap_seconds)
        commit_us = (aware_now - PG_EPOCH) // timedelta(microseconds=1)
        cursor: tuple[Any, str] = ("-infinity" if start is None else start, ZERO_UUID)
        self._cycle = _Cycle(conn, commit_us, (naive_now, aware_now), cursor)
        return self._cycle

    def _push(self, rows: list[tuple[Any, ...]], cycle: _Cycle) -> None:
        """A page as one chunk, its cursor the marker after it."""
        builder = self._builder
        builder.begin(cycle.commit_us, 0.0)
        for row in rows:
            builder.row(SourceRow(*row[:5]))
        newest: datetime = rows[-1][5]
        self.marker = next_marker(
            self.marker, newest, cycle.now[1] if newest.tzinfo else cycle.now[0]
        )
        builder.commit(0, encode_marker(self.marker))
        self.rows_read += len(rows)

    def _end_cycle(self, now: float) -> None:
        self._close_cycle()
        self.cycles += 1
        log.info(
            "poll cycle %d done: %d rows read, newest created_at %s",
            self.cycles,
            self.rows_read,
            encode_marker(self.marker) if self.marker is not None else "none",
        )
        if self.once:
            self._done = True
        else:
            self._next_cycle_at = now + self.settings.poll_interval_seconds

    def finished(self) -> bool:
        return self._done

    def tick(self, now: float, waiting: bool) -> float:
        if self._cycle is not None:
            return 0.0
        return min(HEARTBEAT_S, max(0.0, self._next_cycle_at - now))

    def _close_cycle(self) -> None:
        if self._cycle is not None:
            self._cycle.conn.close()
            self._cycle = None

    def close(self) -> None:
        self._close_cycle()

    def line(self, summary: RunSummary) -> str:
        seen = encode_marker(self.marker) if self.marker is not None else "none"
        return (
            f"rows normalized {summary.rows_normalized}, "
            f"rows rejected {summary.rows_rejected}, "
            f"rows already present {summary.already_present}, newest created_at {seen}, "
            f"seconds {summary.seconds:.2f}"
        )
