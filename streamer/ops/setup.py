"""Idempotent setup shared by `init` and `run`: target tables, publication (before the
slot, so the slot's first change already belongs to it), slot, checkpoint row.

A slot that is missing while the target holds a checkpoint for it is never re-created:
changes made since it disappeared are gone, and only `streamer resync` may repair that.
"""

from __future__ import annotations

import logging

from streamer.config import Settings
from streamer.errors import SlotProblem
from streamer.lsn import format_lsn
from streamer.runtime.dbconn import connect, translated
from streamer.sink.tables import ensure_tables
from streamer.sink.writer import BatchWriter
from streamer.sources.backfill import copy_rows, result_line
from streamer.sources.slot import admin
from streamer.sources.slot.snapshot import ExportedSlot

log = logging.getLogger(__name__)


def ensure_all(
    settings: Settings, backfill: str = "all", *, writer: BatchWriter | None = None
) -> list[str]:
    """Create whatever is missing; returns one human line per thing done.

    A new slot is created with an exported snapshot and, unless `backfill` is "none", the
    rows already in the source table are copied in that snapshot before the checkpoint
    is handed to the stream. A copy that was killed part-way is resumed here.

    `writer` (the caller's, left open) saves a target connection, which is most of the
    start-up of a short `run --once`. The caller prints or logs the lines (once).
    """
    source_url, target_url = settings.require_urls()
    own_writer = writer is None
    if writer is None:
        writer = BatchWriter(target_url, settings.target_schema, settings.slot)
    done: list[str] = []
    try:
        done += writer.prepare()
        checkpoint = writer.checkpoints.read()
        state, cursor = writer.checkpoints.backfill_state()
        with (
            translated("source", source_url, "setting up replication"),
            connect("source", source_url, autocommit=True) as conn,
        ):
            admin.require_primary(conn, admin.server_address(conn))
            admin.check_source(conn, settings)
            if admin.ensure_publication(conn, settings):
                done.append(
                    f"created publication {settings.publication} for "
                    f"{settings.qualified_source_table} (inserts only)"
                )
            info = admin.slot_info(conn, settings.slot)
            if info is not None:
                admin.validate_slot(conn, info, settings.slot)
        if info is None:
            if checkpoint is not None:
                raise SlotProblem(
                    f"replication slot {settings.slot!r} is missing on the source, but "
                    f"the target has a checkpoint for it ({format_lsn(checkpoint)}): "
                    "changes made since it disappeared were lost"
                )
            done += _create_slot_and_backfill(settings, writer, backfill)
        else:
            start = info.confirmed_flush_lsn or 0
            if checkpoint is None and backfill != "none":
                # The slot exists but nothing was recorded for it: an earlier setup died
                # between creating the slot and marking its backfill. The copy must still
                # happen (without the lost snapshot; duplicate-skipping writes keep the
                # set exact).
                writer.checkpoints.set_backfill(f"pending:{backfill}", start)
                state, cursor = f"pending:{backfill}", None
                done.append(f"checkpoint for slot {settings.slot} at {format_lsn(start)}")
            elif writer.checkpoints.ensure(start):
                done.append(f"created checkpoint for slot {settings.slot} at {format_lsn(start)}")
            if state is not None and state.startswith("pending:"):
                mode = state.split(":", 1)[1]
                log.info("resuming the %s backfill after id %s", mode, cursor)
                writer.checkpoints.claim(start)
                result = copy_rows(settings, writer, start, mode, after_id=cursor)
                writer.checkpoints.set_backfill(f"done:{mode}")
                done.append(f"resumed and finished: {result_line(result)}")
    finally:
        if own_writer:
            writer.close()
    return done


def _create_slot_and_backfill(settings: Settings, writer: BatchWriter, mode: str) -> list[str]:
    """New slot with an exported snapshot; copy the existing rows in that snapshot."""
    source_url, _ = settings.require_urls()
    done = []
    with (
        translated("source", source_url, "creating the slot"),
        ExportedSlot(source_url, settings.slot, settings.slot_failover) as exported,
    ):
        lsn = exported.consistent_lsn
        failover = " with failover" if exported.failover else ""
        done.append(f"created replication slot {settings.slot}{failover} at {format_lsn(lsn)}")
        if mode == "none":
            writer.checkpoints.ensure(lsn)
        else:
            # Pending first, committed before the copy: a killed copy is resumed later.
            writer.checkpoints.set_backfill(f"pending:{mode}", lsn)
            writer.checkpoints.claim(lsn)
            result = copy_rows(settings, writer, lsn, mode, snapshot=exported.snapshot_name)
            writer.checkpoints.set_backfill(f"done:{mode}")
            done.append(result_line(result))
    done.append(f"checkpoint for slot {settings.slot} at {format_lsn(lsn)}")
    return done


def resync(settings: Settings) -> list[str]:
    """The explicit repair for a lost slot: drop it if it still exists, create a new one
    with an exported snapshot, copy every source row not yet in the target (the guarded
    writes skip those already there), and move the checkpoint to the new consistent
    point."""
    source_url, target_url = settings.require_urls()
    done: list[str] = []
    ensure_tables(target_url, settings.target_schema)
    with (
        translated("source", source_url, "preparing the resync"),
        connect("source", source_url, autocommit=True) as conn,
    ):
        admin.require_primary(conn, admin.server_address(conn))
        admin.check_source(conn, settings)
        if admin.ensure_publication(conn, settings):
            done.append(f"created publication {settings.publication}")
        if admin.drop_idle_slot(conn, settings.slot):
            done.append(f"dropped replication slot {settings.slot}")
    writer = BatchWriter(target_url, settings.target_schema, settings.slot)
    try:
        done += _create_slot_and_backfill(settings, writer, "all")
    finally:
        writer.close()
    return done


def drop_all(settings: Settings) -> list[str]:
    """Decommission: drop the slot (refused while a consumer is attached) and the
    publication. Target tables and the checkpoint row are kept (they hold the data)."""
    source_url, _ = settings.require_urls()
    done: list[str] = []
    with (
        translated("source", source_url, "dropping the slot"),
        connect("source", source_url, autocommit=True) as conn,
    ):
        if admin.drop_idle_slot(conn, settings.slot):
            done.append(f"dropped replication slot {settings.slot}")
        if admin.drop_publication(conn, settings.publication):
            done.append(f"dropped publication {settings.publication}")
    return done or ["nothing to drop"]
