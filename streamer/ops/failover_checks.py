"""`streamer check`, high availability: what a failover of the source needs (PostgreSQL
17+ failover slots), read on the primary and, with `--standby URL`, on the standby.

A slot survives a promotion only if it was created with failover, the standby
synchronizes it (sync_replication_slots, hot_standby_feedback, primary_slot_name, a
dbname in primary_conninfo), and the primary keeps logical changes from getting ahead of
that standby (synchronized_standby_slots). Each failed check says how to fix it.
"""

from __future__ import annotations

import psycopg
import psycopg.conninfo

from streamer.config import Settings
from streamer.errors import StreamerError
from streamer.ops.checklist import Conn, Result, one
from streamer.sources.slot import admin

RELOAD = "SELECT pg_reload_conf()"


def failover_checks(conn: Conn, settings: Settings, slot: admin.SlotInfo | None) -> list[Result]:
    """The primary's side: the slot's failover flag and synchronized_standby_slots."""
    version = conn.info.server_version
    if version < admin.FAILOVER_VERSION:
        return [
            Result(
                "failover slots",
                "warn",
                f"PostgreSQL {version // 10000}: slots are not synchronized to standbys, "
                "a failover of the source loses the slot",
                "upgrade the source to PostgreSQL 17+ for failover slots",
            )
        ]
    try:
        wanted = admin.failover_wanted(settings.slot_failover, version)
    except StreamerError:  # pragma: no cover (17+ accepts every setting)
        wanted = False
    out = [_slot_failover(settings, slot, wanted)]
    if wanted:
        out.append(_synchronized_standby_slots(conn))
    return out


def _slot_failover(settings: Settings, slot: admin.SlotInfo | None, wanted: bool) -> Result:
    name = "slot failover"
    if not wanted:
        return Result(
            name,
            "warn",
            "--slot-failover off: a failover of the source loses the slot",
            "use --slot-failover auto (or on)",
        )
    if slot is None:
        return Result(name, "ok", "the slot will be created with failover")
    if slot.failover:
        synced = ", synchronized from the former primary" if slot.synced else ""
        return Result(name, "ok", f"on{synced}")
    return Result(
        name,
        "fail",
        f"{settings.slot} was created without failover: a failover of the source loses it",
        f"run ALTER_REPLICATION_SLOT {settings.slot} (FAILOVER true) on a replication "
        f'connection (psql "dbname=<db> replication=database"), or start `streamer run '
        "--slot-failover on` once (it does that), or re-create it with `streamer resync`",
    )


def _synchronized_standby_slots(conn: Conn) -> Result:
    name = "synchronized_standby_slots"
    value = str(one(conn, "SHOW synchronized_standby_slots") or "")
    listed = [s.strip() for s in value.split(",") if s.strip()]
    physical = {
        row[0]: bool(row[1])
        for row in conn.execute(
            "SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'physical'"
        ).fetchall()
    }
    if not listed:
        if not physical:
            return Result(name, "ok", "empty (no physical standby slot on this server)")
        return Result(
            name,
            "fail",
            "empty: logical changes may get ahead of the standbys, so after a failover the "
            "target may hold changes the new primary never had",
            f"ALTER SYSTEM SET synchronized_standby_slots = '{sorted(physical)[0]}'; {RELOAD}",
        )
    missing = [s for s in listed if s not in physical]
    if missing:
        return Result(
            name,
            "fail",
            f"names {', '.join(missing)}, not a physical slot on this server "
            "(logical changes wait for it forever)",
            "create it for the standby (pg_create_physical_replication_slot) or remove it "
            f"from synchronized_standby_slots; {RELOAD}",
        )
    idle = [s for s in listed if not physical[s]]
    if idle:
        return Result(
            name,
            "fail",
            f"{', '.join(idle)} not active: no standby streams from it, so logical changes wait",
            "start the standby (primary_slot_name = that slot), or remove the slot from "
            f"synchronized_standby_slots; {RELOAD}",
        )
    return Result(name, "ok", f"{value} (physical, active)")


def standby_checks(conn: Conn, settings: Settings) -> list[Result]:
    """The standby's side, on a connection to the standby (`check --standby URL`)."""
    if not one(conn, "SELECT pg_is_in_recovery()"):
        return [
            Result("standby in recovery", "fail", "this server is a primary", "give a standby URL")
        ]
    out = [Result("standby in recovery", "ok", "yes")]
    if conn.info.server_version < admin.FAILOVER_VERSION:
        version = conn.info.server_version // 10000
        out.append(
            Result(
                "standby slot synchronization",
                "fail",
                f"PostgreSQL {version} cannot synchronize slots",
                "upgrade the standby to PostgreSQL 17+",
            )
        )
        return out
    for setting, want in (
        ("wal_level", "logical"),
        ("sync_replication_slots", "on"),
        ("hot_standby_feedback", "on"),
    ):
        value = one(conn, f"SHOW {setting}")
        restart = " and restart the standby" if setting == "wal_level" else f"; {RELOAD}"
        out.append(
            Result(
                f"standby {setting}",
                "ok" if value == want else "fail",
                str(value),
                f"ALTER SYSTEM SET {setting} = {want}{restart}",
            )
        )
    slot_name = one(conn, "SHOW primary_slot_name")
    out.append(
        Result(
            "standby primary_slot_name",
            "ok" if slot_name else "fail",
            str(slot_name) if slot_name else "not set",
            "create a physical slot on the primary (SELECT pg_create_physical_replication_slot"
            f"('standby1')), ALTER SYSTEM SET primary_slot_name = 'standby1'; {RELOAD}; and "
            "list it in the primary's synchronized_standby_slots",
        )
    )
    out.append(_primary_conninfo_dbname(conn))
    out.append(_synced_slot(conn, settings))
    return out


def _primary_conninfo_dbname(conn: Conn) -> Result:
    name = "standby primary_conninfo dbname"
    fix = (
        "add dbname=<any database> to primary_conninfo (ALTER SYSTEM SET primary_conninfo = "
        f"'... dbname=postgres'; {RELOAD}): slot synchronization connects to a database"
    )
    try:
        text = str(one(conn, "SHOW primary_conninfo") or "")
    except psycopg.errors.InsufficientPrivilege:
        return Result(
            name,
            "fail",
            "this role may not read primary_conninfo",
            "GRANT pg_read_all_settings TO <this role> on the primary (it replicates)",
        )
    try:
        dbname = psycopg.conninfo.conninfo_to_dict(text).get("dbname")
    except psycopg.ProgrammingError:
        dbname = None
    return Result(name, "ok" if dbname else "fail", str(dbname or "missing"), fix)


def _synced_slot(conn: Conn, settings: Settings) -> Result:
    name = "standby synchronized slot"
    info = admin.slot_info(conn, settings.slot)
    if info is None:
        return Result(
            name,
            "warn",
            f"{settings.slot} not on the standby (yet)",
            "create the slot with failover (`streamer init`, --slot-failover auto), fix the "
            "settings above, and let the standby catch up",
        )
    if info.invalidation_reason or not info.synced:
        state = info.invalidation_reason or "not a synchronized slot"
        return Result(
            name, "fail", f"{settings.slot}: {state}", "fix the settings above, then resync"
        )
    return Result(name, "ok", f"{settings.slot} synchronized")
