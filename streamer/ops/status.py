"""`streamer status`: one look at the slot and the target, with a health verdict usable
as a cron or Nagios check (exit 0 healthy, 1 not)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from streamer.config import Settings
from streamer.lsn import format_lsn, parse_lsn
from streamer.runtime.dbconn import connect, translated
from streamer.sink.tables import CHECKPOINTS, PARKED, PARKED_REJECTED, REJECTED, TRANSACTIONS
from streamer.sources.slot import admin


@dataclass
class Status:
    slot: str
    slot_exists: bool = False
    slot_active: bool | None = None
    wal_status: str | None = None
    slot_failover: bool | None = None  # None before PostgreSQL 17
    slot_synced: bool | None = None
    source_host: str | None = None  # host:port of the server that answered (the primary)
    confirmed_flush_lsn: str | None = None
    checkpoint_lsn: str | None = None
    current_wal_lsn: str | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    retained_wal_bytes: int | None = None
    last_applied_commit: str | None = None
    transactions: int | None = None
    rejected: int | None = None
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    open_streamed_transactions: int = 0  # in progress on the source, rows parked (protocol 2)
    parked_rows: int = 0
    healthy: bool = True
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        verdict = "healthy" if self.healthy else "UNHEALTHY: " + "; ".join(self.problems)
        reasons = ", ".join(f"{k} {v}" for k, v in self.rejected_by_reason.items()) or "none"
        return [
            f"source host          {self.source_host}",
            f"slot                 {self.slot} ({'active' if self.slot_active else 'inactive'}"
            f", wal_status {self.wal_status}, failover {_flag(self.slot_failover)}"
            f", synced {_flag(self.slot_synced)})"
            if self.slot_exists
            else f"slot                 {self.slot} MISSING",
            f"confirmed flush LSN  {self.confirmed_flush_lsn}",
            f"checkpoint LSN       {self.checkpoint_lsn}",
            f"lag                  {self.lag_bytes} bytes, {self.lag_seconds} s",
            f"retained WAL         {self.retained_wal_bytes} bytes",
            f"last applied commit  {self.last_applied_commit}",
            f"rows                 {self.transactions} normalized, {self.rejected} rejected",
            f"rejected by reason   {reasons}",
            f"streamed, open       {self.open_streamed_transactions} transactions "
            f"({self.parked_rows} rows parked)",
            f"verdict              {verdict}",
        ]


def _flag(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def gather(
    settings: Settings, max_lag_bytes: int | None = None, max_lag_seconds: float | None = None
) -> Status:
    source_url, target_url = settings.require_urls()
    status = Status(slot=settings.slot)
    with (
        translated("source", source_url, "reading the slot"),
        connect("source", source_url, autocommit=True) as conn,
    ):
        status.source_host = admin.server_address(conn)
        admin.require_primary(conn, status.source_host)
        current = admin.current_wal_lsn(conn)
        info = admin.slot_info(conn, settings.slot)
    status.current_wal_lsn = format_lsn(current)
    if info is not None:
        status.slot_exists = True
        status.slot_active = info.active
        status.wal_status = info.wal_status
        status.slot_failover, status.slot_synced = info.failover, info.synced
        if info.confirmed_flush_lsn is not None:
            status.confirmed_flush_lsn = format_lsn(info.confirmed_flush_lsn)
        if info.restart_lsn is not None:
            status.retained_wal_bytes = max(0, current - info.restart_lsn)
    try:
        checkpoint, moved, last = _read_target(settings, target_url, status)
    except psycopg.errors.UndefinedTable:
        checkpoint, moved, last = None, None, None
        status.problems.append("target tables missing (run `streamer init`)")
    if last is not None:
        status.last_applied_commit = last.isoformat()
    if checkpoint is not None:
        status.checkpoint_lsn = format_lsn(checkpoint)
        status.lag_bytes = max(0, current - checkpoint)
        # Behind the source: how long since the checkpoint last moved. A healthy stream
        # moves it at least every few seconds even when raw_transactions is quiet (the
        # idle advance), so this grows only when streamer is stopped or stuck.
        status.lag_seconds = (
            0.0
            if status.lag_bytes == 0 or moved is None
            else round(max(0.0, time.time() - moved.timestamp()), 3)
        )
    _judge(status, info, checkpoint, max_lag_bytes, max_lag_seconds)
    return status


def _read_target(
    settings: Settings, target_url: str, status: Status
) -> tuple[int | None, datetime | None, datetime | None]:
    """(checkpoint LSN, when it last moved, newest applied source commit)."""
    schema = sql.Identifier(settings.target_schema)
    with (
        translated("target", target_url, "reading the target tables"),
        connect("target", target_url, autocommit=True) as conn,
    ):
        row = conn.execute(
            sql.SQL("SELECT lsn::text, updated_at FROM {}.{} WHERE slot_name = %s").format(
                schema, sql.Identifier(CHECKPOINTS)
            ),
            (settings.slot,),
        ).fetchone()
        checkpoint = parse_lsn(row[0]) if row else None
        moved: datetime | None = row[1] if row else None
        tx = sql.SQL("{}.{}").format(schema, sql.Identifier(TRANSACTIONS))
        rej = sql.SQL("{}.{}").format(schema, sql.Identifier(REJECTED))
        counts = conn.execute(
            sql.SQL(
                "SELECT (SELECT count(*) FROM {tx}), (SELECT count(*) FROM {rej}),"
                " greatest((SELECT max(source_committed_at) FROM {tx}),"
                "          (SELECT max(source_committed_at) FROM {rej}))"
            ).format(tx=tx, rej=rej)
        ).fetchone()
        assert counts is not None
        status.transactions, status.rejected = int(counts[0]), int(counts[1])
        last: datetime | None = counts[2]
        status.rejected_by_reason = {
            reason: int(n)
            for reason, n in conn.execute(
                sql.SQL("SELECT reason, count(*) FROM {} GROUP BY 1 ORDER BY 1").format(rej)
            ).fetchall()
        }
        _read_parked(conn, settings, status)
    return checkpoint, moved, last


def _read_parked(conn: psycopg.Connection[Any], settings: Settings, status: Status) -> None:
    """Streamed transactions still in progress: their parked rows, by xid (the tables
    appear with the first `run` of a version that streams)."""
    found = conn.execute(
        "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL,"
        " to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL",
        (settings.target_schema, PARKED, settings.target_schema, PARKED_REJECTED),
    ).fetchone()
    if not found or not all(found):
        return
    schema = sql.Identifier(settings.target_schema)
    row = conn.execute(
        sql.SQL(
            "SELECT count(DISTINCT xid), count(*) FROM (SELECT xid FROM {}.{} WHERE"
            " slot_name = %(s)s UNION ALL SELECT xid FROM {}.{} WHERE slot_name = %(s)s) p"
        ).format(schema, sql.Identifier(PARKED), schema, sql.Identifier(PARKED_REJECTED)),
        {"s": settings.slot},
    ).fetchone()
    if row is not None:
        status.open_streamed_transactions, status.parked_rows = int(row[0]), int(row[1])


def _judge(
    status: Status,
    info: admin.SlotInfo | None,
    checkpoint: int | None,
    max_lag_bytes: int | None,
    max_lag_seconds: float | None,
) -> None:
    problems = status.problems
    if info is None:
        problems.append("slot missing (run `streamer resync`)")
    elif info.wal_status == "lost":
        problems.append("slot lost its WAL (run `streamer resync`)")
    if checkpoint is None:
        if not problems:
            problems.append("no checkpoint for this slot (run `streamer init`)")
    elif info is not None and (info.confirmed_flush_lsn or 0) > checkpoint:
        problems.append("checkpoint behind the slot's confirmed position")
    if max_lag_bytes is not None and (status.lag_bytes or 0) > max_lag_bytes:
        problems.append(f"lag {status.lag_bytes} bytes > {max_lag_bytes}")
    if max_lag_seconds is not None and (status.lag_seconds or 0) > max_lag_seconds:
        problems.append(f"lag {status.lag_seconds} s > {max_lag_seconds}")
    status.healthy = not problems
