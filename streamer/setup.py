"""Idempotent setup shared by `init` and `run`: target tables, publication (before the
slot, so the slot's first change already belongs to it), slot, checkpoint row.

A slot that is missing while the target holds a checkpoint for it is never re-created:
changes made since it disappeared are gone, and only `streamer resync` may repair that.
"""

from __future__ import annotations

import logging

from streamer.config import Settings
from streamer.dbconn import connect, translated
from streamer.errors import SlotInUse, SlotProblem
from streamer.lsn import format_lsn
from streamer.replication import admin
from streamer.sink.schema import create_tables
from streamer.sink.writer import BatchWriter

log = logging.getLogger(__name__)


def ensure_all(settings: Settings) -> list[str]:
    """Create whatever is missing; returns one human line per thing created."""
    source_url, target_url = settings.require_urls()
    created: list[str] = []
    with translated("target", target_url, "creating the target tables"):
        created += [
            f"target table {settings.target_schema}.{name}"
            for name in create_tables(target_url, settings.target_schema)
        ]
    writer = BatchWriter(target_url, settings.target_schema, settings.slot)
    try:
        checkpoint = writer.read_checkpoint()
        with (
            translated("source", source_url, "setting up replication"),
            connect("source", source_url, autocommit=True) as conn,
        ):
            admin.check_source(conn, settings)
            if admin.ensure_publication(conn, settings):
                created.append(
                    f"publication {settings.publication} for {settings.qualified_source_table}"
                    " (inserts only)"
                )
            info = admin.slot_info(conn, settings.slot)
            if info is None:
                if checkpoint is not None:
                    raise SlotProblem(
                        f"replication slot {settings.slot!r} is missing on the source, but "
                        f"the target has a checkpoint for it ({format_lsn(checkpoint)}): "
                        "changes made since it disappeared were lost"
                    )
                start = admin.create_slot(conn, settings.slot)
                created.append(f"replication slot {settings.slot} at {format_lsn(start)}")
            else:
                admin.validate_slot(conn, info, settings.slot)
                start = info.confirmed_flush_lsn or 0
        if writer.ensure_checkpoint(start):
            created.append(f"checkpoint for slot {settings.slot} at {format_lsn(start)}")
    finally:
        writer.close()
    for line in created:
        log.info("created %s", line)
    return created


def drop_all(settings: Settings) -> list[str]:
    """Decommission: drop the slot (refused while a consumer is attached) and the
    publication. Target tables and the checkpoint row are kept (they hold the data)."""
    source_url, _ = settings.require_urls()
    done: list[str] = []
    with (
        translated("source", source_url, "dropping the slot"),
        connect("source", source_url, autocommit=True) as conn,
    ):
        info = admin.slot_info(conn, settings.slot)
        if info is not None:
            if info.active:
                raise SlotInUse(
                    f"replication slot {settings.slot!r} is in use (pid {info.active_pid})",
                    hint="stop `streamer run` first",
                )
            conn.execute("SELECT pg_drop_replication_slot(%s)", (settings.slot,))
            done.append(f"dropped replication slot {settings.slot}")
        if admin.drop_publication(conn, settings.publication):
            done.append(f"dropped publication {settings.publication}")
    return done or ["nothing to drop"]
