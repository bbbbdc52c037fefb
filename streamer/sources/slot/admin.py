"""Source-side setup and inspection over a regular SQL connection: preflight checks,
the publication, the slot. Names are validated in config and quoted with sql.Identifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from streamer.config import Settings, url_hosts
from streamer.errors import PreflightFailed, SlotInUse, SlotProblem, SourceUnavailable
from streamer.lsn import parse_lsn

FAILOVER_VERSION = 170000  # failover slots and slot synchronization: PostgreSQL 17+

# How to make the next failover keep the slot (the exit-3 hint after a lost slot).
SYNC_ADVICE = (
    "to survive the next failover, create the slot with failover (PostgreSQL 17+, "
    "STREAMER_SLOT_FAILOVER=auto or on) and on each standby set sync_replication_slots = on, "
    "hot_standby_feedback = on, primary_slot_name, and a dbname in primary_conninfo; on the "
    "primary set synchronized_standby_slots to the standby's physical slot "
    "(`streamer check --standby URL` verifies; README, High availability)"
)


@dataclass(frozen=True)
class SlotInfo:
    plugin: str
    database: str
    active: bool
    active_pid: int | None
    wal_status: str | None
    confirmed_flush_lsn: int | None
    restart_lsn: int | None
    failover: bool | None = None  # None before PostgreSQL 17
    synced: bool | None = None  # true: a standby's copy kept by slot synchronization
    invalidation_reason: str | None = None


def _scalar(conn: psycopg.Connection[Any], query: Any, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def check_source(conn: psycopg.Connection[Any], settings: Settings) -> None:
    """The fatal preflight subset: logical WAL, a replication-capable role, the table."""
    wal_level = _scalar(conn, "SHOW wal_level")
    if wal_level != "logical":
        raise PreflightFailed(
            f"wal_level is '{wal_level}' on the source, logical replication needs 'logical'",
            hint="set wal_level = logical in postgresql.conf (or ALTER SYSTEM) and restart "
            "the source server",
        )
    can_replicate = _scalar(
        conn,
        "SELECT rolreplication OR rolsuper"
        " OR EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'rds_replication'"
        "            AND pg_has_role(current_user, r.oid, 'member'))"
        " FROM pg_roles WHERE rolname = current_user",
    )
    if not can_replicate:
        user = _scalar(conn, "SELECT current_user")
        raise PreflightFailed(
            f"role {user!r} lacks the REPLICATION attribute on the source",
            hint=f"run ALTER ROLE {user} REPLICATION as a superuser (see sql/01_role.sql)",
        )
    if _scalar(conn, "SELECT to_regclass(%s)", (source_table_literal(settings),)) is None:
        raise PreflightFailed(
            f"source table {settings.qualified_source_table} does not exist",
            hint="check STREAMER_SOURCE_TABLE / --source-table",
        )


def source_table_literal(settings: Settings) -> str:
    """`"schema"."table"` text for regclass lookups (names are validated identifiers)."""
    return f'"{settings.source_schema}"."{settings.source_table}"'


def ensure_publication(conn: psycopg.Connection[Any], settings: Settings) -> bool:
    """Create the insert-only publication for the source table; True when created."""
    exists = _scalar(
        conn, "SELECT 1 FROM pg_publication WHERE pubname = %s", (settings.publication,)
    )
    if exists:
        return False
    try:
        conn.execute(
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}.{} WITH (publish = 'insert')").format(
                sql.Identifier(settings.publication),
                sql.Identifier(settings.source_schema),
                sql.Identifier(settings.source_table),
            )
        )
    except psycopg.errors.InsufficientPrivilege:
        raise PreflightFailed(
            f"this role may not create publication {settings.publication!r} "
            f"(it must own {settings.qualified_source_table})",
            hint="have the table owner run sql/02_publication.sql",
        ) from None
    return True


def drop_publication(conn: psycopg.Connection[Any], name: str) -> bool:
    """Drop the publication if it exists; True when dropped."""
    if not _scalar(conn, "SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)):
        return False
    conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(name)))
    return True


def drop_idle_slot(conn: psycopg.Connection[Any], slot: str) -> bool:
    """Drop the slot if it exists and nobody streams from it; True when dropped."""
    info = slot_info(conn, slot)
    if info is None:
        return False
    if info.active:
        raise SlotInUse(
            f"replication slot {slot!r} is in use (pid {info.active_pid})",
            hint="stop `streamer run` first",
        )
    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    return True


def slot_info(conn: psycopg.Connection[Any], slot: str) -> SlotInfo | None:
    ha = (
        "failover, synced, invalidation_reason"
        if conn.info.server_version >= FAILOVER_VERSION
        else "NULL::bool, NULL::bool, NULL::text"
    )
    row = conn.execute(
        "SELECT plugin, database, active, active_pid, wal_status,"
        f" confirmed_flush_lsn::text, restart_lsn::text, {ha}"
        " FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    if row is None:
        return None
    plugin, database, active, pid, wal_status, confirmed, restart, failover, synced, why = row
    return SlotInfo(
        plugin=plugin or "",
        database=database or "",
        active=bool(active),
        active_pid=pid,
        wal_status=wal_status,
        confirmed_flush_lsn=parse_lsn(confirmed) if confirmed else None,
        restart_lsn=parse_lsn(restart) if restart else None,
        failover=failover,
        synced=synced,
        invalidation_reason=why,
    )


def failover_wanted(setting: str, server_version: int) -> bool:
    """STREAMER_SLOT_FAILOVER against the server: auto means on for PostgreSQL 17+."""
    if setting == "off":
        return False
    if server_version >= FAILOVER_VERSION:
        return True
    if setting == "on":
        raise PreflightFailed(
            f"--slot-failover on needs PostgreSQL 17 or later; the source runs {server_version}",
            hint="use --slot-failover auto or off on this source",
        )
    return False


def server_address(conn: psycopg.Connection[Any]) -> str:
    """`host:port` of the server `conn` reached, as libpq names it (one of the URL's)."""
    return f"{conn.info.host}:{conn.info.port}"


def serving_host(conn: psycopg.Connection[Any], url: str) -> str:
    """A metric label: the configured `host:port` (from the URL, never from the server)
    that `conn` reached; "other" when libpq's answer matches none of them."""
    here = server_address(conn)
    return here if here in url_hosts(url) else "other"


def require_primary(conn: psycopg.Connection[Any], where: str) -> None:
    """Logical changes are streamed from a primary only: a standby's slots are the
    synchronized copies (unusable until promotion) or different slots altogether."""
    if _scalar(conn, "SELECT pg_is_in_recovery()"):
        raise SourceUnavailable(
            f"the source at {where} is a standby (in recovery), not a primary",
            hint="list the primary and its standbys in the source URL "
            "(postgresql://h1:5432,h2:5432/db: streamer then asks libpq for the primary)",
        )


def validate_slot(conn: psycopg.Connection[Any], info: SlotInfo, slot: str) -> None:
    """A slot we can stream from: pgoutput, in this database, WAL not lost."""
    database = _scalar(conn, "SELECT current_database()")
    if info.plugin != "pgoutput" or info.database != database:
        raise SlotProblem(
            f"replication slot {slot!r} exists but is not a pgoutput slot of database "
            f"{database!r} (plugin {info.plugin or 'physical'!r}, database {info.database!r})",
            hint="choose another --slot name",
        )
    if info.wal_status == "lost":
        raise SlotProblem(f"replication slot {slot!r} is lost (its WAL was removed)")
    if info.invalidation_reason:
        synced = " (a synchronized copy that the standby invalidated)" if info.synced else ""
        raise SlotProblem(
            f"replication slot {slot!r} is invalid{synced}: {info.invalidation_reason}",
            hint=f"run `streamer resync` to rebuild the slot and backfill what it missed; "
            f"{SYNC_ADVICE}",
        )


def create_slot(conn: psycopg.Connection[Any], slot: str) -> int:
    """Create the pgoutput slot; returns its consistent point."""
    lsn = _scalar(
        conn, "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,)
    )
    return parse_lsn(lsn)


def current_wal_lsn(conn: psycopg.Connection[Any]) -> int:
    return parse_lsn(_scalar(conn, "SELECT pg_current_wal_lsn()::text"))
