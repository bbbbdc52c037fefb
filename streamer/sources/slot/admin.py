"""Source-side setup and inspection over a regular SQL connection: preflight checks,
the publication, the slot. Names are validated in config and quoted with sql.Identifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from streamer.config import Settings
from streamer.errors import PreflightFailed, SlotInUse, SlotProblem
from streamer.lsn import parse_lsn


@dataclass(frozen=True)
class SlotInfo:
    plugin: str
    database: str
    active: bool
    active_pid: int | None
    wal_status: str | None
    confirmed_flush_lsn: int | None
    restart_lsn: int | None


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
    row = conn.execute(
        "SELECT plugin, database, active, active_pid, wal_status,"
        " confirmed_flush_lsn::text, restart_lsn::text"
        " FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    if row is None:
        return None
    plugin, database, active, pid, wal_status, confirmed, restart = row
    return SlotInfo(
        plugin=plugin or "",
        database=database or "",
        active=bool(active),
        active_pid=pid,
        wal_status=wal_status,
        confirmed_flush_lsn=parse_lsn(confirmed) if confirmed else None,
        restart_lsn=parse_lsn(restart) if restart else None,
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


def create_slot(conn: psycopg.Connection[Any], slot: str) -> int:
    """Create the pgoutput slot; returns its consistent point."""
    lsn = _scalar(
        conn, "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,)
    )
    return parse_lsn(lsn)


def current_wal_lsn(conn: psycopg.Connection[Any]) -> int:
    return parse_lsn(_scalar(conn, "SELECT pg_current_wal_lsn()::text"))
