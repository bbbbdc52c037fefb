"""The slot stream as a `Source`: pgoutput v1 over a logical replication slot.

Opening checks the slot (exit 3 when it is missing, lost, or confirmed past the target
checkpoint), claims the checkpoint, and starts replication there; frames are decoded by
the pure `TransactionAssembler`; the `StatusReporter` owns what is confirmed upstream.

Invariants kept here (see DESIGN.md):
- the flush position sent upstream is the durable target checkpoint, never more, never
  moving backwards (the reporter clamps it);
- transactions whose commit record starts before the claimed checkpoint are skipped
  (they were applied: their end LSN ≤ checkpoint; the assembler does the skipping);
- a transaction is applied whole or not at all; a stop abandons the open one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from streamer.config import Settings
from streamer.errors import ConfigError, SlotProblem, SourceUnavailable
from streamer.lsn import format_lsn
from streamer.pgoutput.relations import RelationCache
from streamer.pgtime import now_pg_us
from streamer.runtime.dbconn import connect, pinned, translated
from streamer.sink.base import Sink, WriteResult
from streamer.sources.batching import BatchBuilder
from streamer.sources.decisions import idle_position, once_finished
from streamer.sources.slot import admin
from streamer.sources.slot.assembler import TransactionAssembler
from streamer.sources.slot.status import StatusReporter
from streamer.sources.slot.stream import MAX_FRAMES_PER_READ, ReplicationStream

log = logging.getLogger(__name__)

STATUS_INTERVAL_S: Final = 10.0
RECEIVE_TIMEOUT_MIN_S: Final = 5.0
ONCE_REPLY_INTERVAL_S: Final = 0.2

Setup = Callable[[Sink], object]


class SlotSource:
    moves_lsn = True
    guarded = False

    def __init__(
        self,
        settings: Settings,
        once: bool,
        setup: Setup | None = None,
        on_host: Callable[[str], object] | None = None,
    ) -> None:
        self.settings = settings
        self._on_host = on_host  # told the metric label of each server streamed from
        self.source_url, _ = settings.require_urls()
        self.once = once
        self.stop_lsn: int | None = None  # with once: the source WAL position at the start
        self._setup = setup  # tables, publication, slot: first opening only
        self._stream: ReplicationStream | None = None
        self._assembler: TransactionAssembler | None = None
        self._status: StatusReporter | None = None

    # -- opening -----------------------------------------------------------------------
    def open(self, sink: Sink, builder: BatchBuilder) -> int:
        settings = self.settings
        if self._setup is not None:
            self._setup(sink)
            self._setup = None
        checkpoint = sink.checkpoints.read()
        with (
            translated("source", self.source_url, "checking the slot"),
            connect("source", self.source_url, autocommit=True) as conn,
        ):
            host, label = admin.server_address(conn), admin.serving_host(conn, self.source_url)
            admin.require_primary(conn, host)
            stream_url = pinned(self.source_url, conn)  # the stream checks the same server
            admin.check_source(conn, settings)
            info = admin.slot_info(conn, settings.slot)
            if info is None:
                raise _missing_slot(settings.slot, host, checkpoint)
            admin.validate_slot(conn, info, settings.slot)
            current = admin.current_wal_lsn(conn)
            if self.once and self.stop_lsn is None:
                self.stop_lsn = current
            confirmed = info.confirmed_flush_lsn or 0
            if checkpoint is not None and confirmed > checkpoint:
                raise SlotProblem(
                    f"replication slot {settings.slot!r} was confirmed up to "
                    f"{format_lsn(confirmed)}, ahead of the target checkpoint "
                    f"{format_lsn(checkpoint)}: the changes in between are not in the target"
                )
            if checkpoint is not None and checkpoint > current:
                raise SlotProblem(
                    f"the target checkpoint {format_lsn(checkpoint)} is ahead of the WAL of "
                    f"the source at {host} ({format_lsn(current)}): this server never had "
                    "changes the target applied (a standby promoted before it received them)",
                    hint="run `streamer resync`; set synchronized_standby_slots on the "
                    "primary so logical changes never get ahead of the standby",
                )
            enable = _failover_to_enable(
                settings.slot_failover, settings.slot, info, conn.info.server_version
            )
        self._stream = stream = ReplicationStream(stream_url)
        if stream.in_recovery():
            raise SourceUnavailable(f"the source at {host} became a standby; waiting for a primary")
        if enable:
            stream.enable_failover(settings.slot)
            log.info("turned failover on for replication slot %s", settings.slot)
        if self._on_host is not None:
            self._on_host(label)
        wal_sender_timeout = parse_duration(stream.server_setting("wal_sender_timeout"))
        self.streaming = use_streaming(settings.streaming, stream.server_version())
        # START_REPLICATION before the claim: a slot in use by a live streamer fails here,
        # before its checkpoint epoch is bumped (which would fence it).
        stream.start(settings.slot, settings.publication, checkpoint or 0, self.streaming)
        claimed = sink.claim(checkpoint if checkpoint is not None else confirmed)
        # Always, streaming or not: rows parked by an earlier streaming session must not
        # wait for a later transaction that happens to reuse their xid.
        sink.forget_parked()
        relations = RelationCache(settings.source_schema, settings.source_table)
        self._builder = builder
        self._assembler = TransactionAssembler(relations, builder, claimed, self.stop_lsn)
        interval = min(STATUS_INTERVAL_S, max(0.5, wal_sender_timeout / 3))
        self._status = StatusReporter(claimed, interval)
        # Every periodic status update asks for a reply, so a healthy link always brings
        # something within a few intervals; silence beyond that means a dead or half-open
        # connection, which TCP alone may take minutes to notice.
        self._receive_timeout = max(3 * interval, RECEIVE_TIMEOUT_MIN_S)
        self._last_frame_at = time.monotonic()
        self._read_this_turn = False
        self._last_idle_advance = 0.0
        self._last_reply_request = 0.0
        log.info(
            "streaming slot=%s publication=%s from checkpoint %s",
            settings.slot,
            settings.publication,
            format_lsn(claimed),
        )
        self._send_status()
        return claimed

    # -- reading -----------------------------------------------------------------------
    def read(self, now: float) -> bool:
        stream, assembler = self._stream, self._assembler
        assert stream is not None and assembler is not None and self._status is not None
        self._read_this_turn = True
        frames = stream.read_frames()
        if frames:
            self._last_frame_at = now
            if assembler.feed(frames, now):
                self._last_idle_advance = 0.0  # the server waits on us: advance now
                self._send_status()
            self._status.saw(assembler.received)
        elif now - self._last_frame_at > self._receive_timeout:
            raise SourceUnavailable(
                f"no data from the source for {now - self._last_frame_at:.0f}s "
                "(connection dead or half-open)"
            )
        return len(frames) < MAX_FRAMES_PER_READ

    def finished(self) -> bool:
        a = self._assembler
        assert a is not None
        return once_finished(
            self.stop_lsn, a.reached_end, a.idle_end, a.builder.in_transaction, a.skipping
        )

    def idle_position(self, durable: int, now: float, ending: bool) -> int | None:
        """Nothing in flight: record the server's WAL end so the slot releases WAL written
        by other tables and databases meanwhile."""
        a = self._assembler
        assert a is not None
        position = idle_position(
            a.keepalive_end,
            durable,
            skipping=a.skipping,
            ending=ending,
            now=now,
            last_advance=self._last_idle_advance,
        )
        if position is not None:
            self._last_idle_advance = now
        return position

    def durable(self, result: WriteResult, now: float) -> None:
        assert self._status is not None
        lsn = result.batch.checkpoint_lsn
        if lsn is not None and self._status.made_durable(lsn):
            self._send_status()

    def tick(self, now: float, waiting: bool) -> float:
        status = self._status
        assert status is not None
        if not self._read_this_turn:  # not reading (backpressure, ending): no silence
            self._last_frame_at = now
        self._read_this_turn = False
        if status.due(now):
            self._send_status(reply=True)
        # in once mode, ask where the server is, so a drained stream learns its end
        asking = self.stop_lsn is not None and waiting
        if asking and now - self._last_reply_request >= ONCE_REPLY_INTERVAL_S:
            self._send_status(reply=True)
            self._last_reply_request = now
        timeout = status.interval_s - (now - status.last_sent)
        if self.stop_lsn is not None:
            timeout = min(timeout, ONCE_REPLY_INTERVAL_S)
        return timeout

    def wait_fds(self) -> list[int]:
        return [self._stream.fileno] if self._stream is not None else []

    def _send_status(self, reply: bool = False) -> None:
        assert self._stream is not None and self._status is not None
        self._stream.send(self._status.update(time.monotonic(), now_pg_us(), reply))

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


STREAMING_MIN_VERSION: Final = 140000


def use_streaming(setting: str, server_version: int) -> bool:
    """pgoutput protocol 2 with streaming: `on` and `auto` where the server has it (14+),
    `off` never. `on` on an older server is a configuration error, said at start."""
    supported = server_version >= STREAMING_MIN_VERSION
    if setting == "on" and not supported:
        raise ConfigError(
            f"--streaming on needs PostgreSQL 14 or newer on the source "
            f"(server_version_num {server_version})",
            hint="use --streaming auto or off",
        )
    return setting != "off" and supported


def _missing_slot(slot: str, host: str, checkpoint: int | None) -> SlotProblem:
    """Exit 3: with a checkpoint, the likely story is a failover to a server the slot was
    not synchronized to, so the hint says how to make the next one survivable."""
    if checkpoint is None:
        return SlotProblem(f"replication slot {slot!r} does not exist on the source at {host}")
    return SlotProblem(
        f"replication slot {slot!r} does not exist on the source at {host} (target checkpoint "
        f"{format_lsn(checkpoint)}): it was dropped, or this server was promoted and the slot "
        "was not synchronized to it",
        hint=f"run `streamer resync` to rebuild the slot and backfill what it missed; "
        f"{admin.SYNC_ADVICE}",
    )


def _failover_to_enable(setting: str, slot: str, info: admin.SlotInfo, server_version: int) -> bool:
    """An existing slot without failover is switched on only when the operator said `on`
    (a deliberate choice); under `auto` it is reported (`check`, a warning) instead,
    since failover makes this slot's changes wait for the standbys named in
    synchronized_standby_slots."""
    if info.failover is not False or not admin.failover_wanted(setting, server_version):
        return False
    if setting == "on":
        return True
    log.warning(
        "replication slot %s has no failover: a failover of the source would lose it "
        "(see `streamer check`)",
        slot,
    )
    return False


def parse_duration(text: str | None) -> float:
    """`60s`, `2000ms`, `1min` → seconds (wal_sender_timeout); 60 when unknown or 0."""
    if not text:
        return 60.0
    units = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number) :] or "ms"
    try:
        value = float(number) * units.get(unit, 1.0)
    except ValueError:
        return 60.0
    return value if value > 0 else 60.0
