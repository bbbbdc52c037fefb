"""`streamer check`: the preflight checklist, each failure with its fix.

`init` and `run` run the fatal subset (admin.check_source) before touching anything; this
command runs everything and reports instead of stopping at the first problem.
"""

from __future__ import annotations

from collections.abc import Callable

from streamer.config import Settings, describe_url
from streamer.errors import StreamerError
from streamer.ops.checklist import Conn, Result
from streamer.ops.checklist import one as _one
from streamer.ops.failover_checks import failover_checks, standby_checks
from streamer.runtime.dbconn import connect
from streamer.sink.tables import missing
from streamer.sources.slot import admin


def source_checks(conn: Conn, settings: Settings) -> list[Result]:
    out: list[Result] = []
    wal_level = _one(conn, "SHOW wal_level")
    out.append(
        Result(
            "wal_level",
            "ok" if wal_level == "logical" else "fail",
            f"{wal_level}",
            "set wal_level = logical and restart the source",
        )
    )
    slot = admin.slot_info(conn, settings.slot)
    used = int(_one(conn, "SELECT count(*) FROM pg_replication_slots"))
    limit = int(_one(conn, "SHOW max_replication_slots"))
    free = limit - used
    out.append(
        Result(
            "max_replication_slots",
            "ok" if free > 0 or slot else "fail",
            f"{used} of {limit} used",
            "raise max_replication_slots (restart needed)",
        )
    )
    senders = int(_one(conn, "SELECT count(*) FROM pg_stat_replication"))
    max_senders = int(_one(conn, "SHOW max_wal_senders"))
    out.append(
        Result(
            "max_wal_senders",
            "ok" if senders < max_senders else "fail",
            f"{senders} of {max_senders} used",
            "raise max_wal_senders (restart needed)",
        )
    )
    try:
        admin.check_source(conn, settings)
        out.append(Result("replication privilege and source table", "ok", "present"))
    except StreamerError as exc:
        if "wal_level" not in str(exc):
            out.append(Result("replication privilege and source table", "fail", str(exc)))
    pub = conn.execute(
        "SELECT pubinsert, pubupdate, pubdelete, pubtruncate,"
        " EXISTS (SELECT 1 FROM pg_publication_tables t WHERE t.pubname = p.pubname"
        "         AND t.schemaname = %s AND t.tablename = %s)"
        " FROM pg_publication p WHERE pubname = %s",
        (settings.source_schema, settings.source_table, settings.publication),
    ).fetchone()
    if pub is None:
        out.append(
            Result(
                "publication",
                "warn",
                f"{settings.publication} missing",
                "run `streamer init` (or sql/02_publication.sql as the table owner)",
            )
        )
    else:
        insert, update, delete, truncate, covers = pub
        if not covers or not insert:
            out.append(
                Result(
                    "publication",
                    "fail",
                    f"{settings.publication} does not publish inserts of "
                    f"{settings.qualified_source_table}",
                    "ALTER PUBLICATION ... ADD TABLE / SET (publish = 'insert')",
                )
            )
        elif update or delete or truncate:
            out.append(
                Result(
                    "publication",
                    "warn",
                    "publishes more than inserts",
                    "ALTER PUBLICATION ... SET (publish = 'insert')",
                )
            )
        else:
            out.append(Result("publication", "ok", "covers the table, inserts only"))
    if slot is None:
        out.append(Result("slot", "warn", f"{settings.slot} missing", "run `streamer init`"))
    elif slot.plugin != "pgoutput":
        out.append(Result("slot", "fail", f"plugin {slot.plugin}", "choose another --slot"))
    elif slot.wal_status == "lost":
        out.append(Result("slot", "fail", "WAL lost", "run `streamer resync`"))
    else:
        out.append(Result("slot", "ok", f"pgoutput, wal_status {slot.wal_status}"))
    out += failover_checks(conn, settings, slot)
    tracked = _one(conn, "SHOW track_commit_timestamp")
    out.append(
        Result(
            "track_commit_timestamp",
            "ok",
            "on: verify reports a missing row as soon as a later commit is applied"
            if tracked == "on"
            else "off (optional: on lets verify report a missing row at once instead of "
            "waiting --settle seconds; restart needed)",
        )
    )
    keep = _one(conn, "SHOW max_slot_wal_keep_size")
    out.append(
        Result(
            "max_slot_wal_keep_size",
            "warn" if keep in ("-1", None) else "ok",
            f"{keep}",
            "set a limit so an abandoned slot cannot fill the disk",
        )
    )
    return out


def target_checks(conn: Conn, settings: Settings) -> list[Result]:
    out: list[Result] = []
    sync = _one(conn, "SHOW synchronous_commit")
    out.append(
        Result(
            "target synchronous_commit",
            "ok" if sync != "off" else "warn",
            f"{sync}",
            "streamer forces it on for its own sessions; set it on server-wide too",
        )
    )
    gaps = missing(conn, settings.target_schema)
    absent = gaps.tables + [f"column {table}.{column}" for table, column, _ in gaps.columns]
    out.append(
        Result(
            "target tables",
            "warn" if absent else "ok",
            f"missing: {', '.join(absent)}" if absent else "present",
            "run `streamer init` (it adds what an upgrade needs)",
        )
    )
    return out


def run_checks(settings: Settings, standby_url: str | None = None) -> list[Result]:
    """Every check; with `standby_url`, the standby's slot synchronization settings too."""
    source_url, target_url = settings.require_urls()
    results: list[Result] = []
    sources: list[tuple[str, str, Callable[[Conn, Settings], list[Result]]]] = [
        ("source", source_url, source_checks),
        ("target", target_url, target_checks),
    ]
    if standby_url is not None:
        sources.append(("standby", standby_url, standby_checks))
    for role, url, run in sources:
        try:
            with connect(role, url, autocommit=True) as conn:
                results.append(Result(f"{role} reachable", "ok", f"{describe_url(url)}"))
                results += run(conn, settings)
        except StreamerError as exc:
            results.append(Result(f"{role} reachable", "fail", str(exc)))
    return results
