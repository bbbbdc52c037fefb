"""Source-side gauges refreshed on their own connection and schedule, so lag and WAL
retention stay true while the stream is idle or stuck (a stuck main loop is exactly when
an operator needs them)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg

from streamer.errors import StreamerError
from streamer.lsn import parse_lsn
from streamer.pgtime import pg_us_to_unix
from streamer.runtime.dbconn import connect
from streamer.runtime.health import RunState
from streamer.runtime.metrics import Metrics

log = logging.getLogger(__name__)

SLOT_QUERY = (
    "SELECT pg_current_wal_lsn()::text,"
    " (SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = %s)"
)


def lag_seconds(state: RunState, now: float) -> float:
    """0 when caught up; else the age of the oldest commit received but not applied, or,
    when it has not even been received yet, the time since we were last caught up."""
    if state.oldest_pending_commit_us is not None:
        return max(0.0, now - pg_us_to_unix(state.oldest_pending_commit_us))
    if state.caught_up:
        return 0.0
    return max(0.0, now - state.caught_up_at)


def refresh(conn: psycopg.Connection[Any], slot: str, metrics: Metrics, state: RunState) -> None:
    row = conn.execute(SLOT_QUERY, (slot,)).fetchone()
    assert row is not None
    current = parse_lsn(row[0])
    if state.checkpoint_lsn:
        metrics.lag_bytes.set(max(0, current - state.checkpoint_lsn))
    if row[1] is not None:
        metrics.retained_wal.set(max(0, current - parse_lsn(row[1])))
    metrics.lag_seconds.set(lag_seconds(state, time.time()))


class SourceMonitor:
    def __init__(
        self, url: str, slot: str, metrics: Metrics, state: RunState, interval_s: float = 5.0
    ) -> None:
        self._url = url
        self._slot = slot
        self._metrics = metrics
        self._state = state
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="streamer-monitor", daemon=True)

    def start(self) -> SourceMonitor:
        self._thread.start()
        return self

    def _loop(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = connect("source", self._url, autocommit=True)
                refresh(conn, self._slot, self._metrics, self._state)
            except (psycopg.Error, StreamerError) as exc:
                log.debug("source monitor: %s", str(exc).splitlines()[0] if str(exc) else exc)
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(self._interval)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(5)
