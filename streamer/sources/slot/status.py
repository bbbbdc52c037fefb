"""Standby status updates: the one owner of the positions reported to the source.

The rules (invariant 2 of DESIGN.md):
- `flushed` (what moves the slot's confirmed_flush_lsn) never exceeds what the sink said
  is durable, and never moves backwards;
- `written` is the newest server position seen, never behind `flushed`;
- updates are paced: one when the flush position moves, one every interval otherwise
  (asking for a reply, so a silent link is noticed), and an immediate one when the server
  asks.
"""

from __future__ import annotations

from streamer.pgoutput.frames import build_status_update


class StatusReporter:
    def __init__(self, start: int, interval_s: float) -> None:
        self.written = start
        self.flushed = start
        self.durable = start
        self.interval_s = interval_s
        self.last_sent = float("-inf")

    def saw(self, position: int) -> None:
        """The server sent data up to `position` (commit end or keepalive WAL end)."""
        self.written = max(self.written, position)

    def made_durable(self, position: int) -> bool:
        """The sink committed up to `position`; True when the flush position can move."""
        self.durable = max(self.durable, position)
        return self.durable > self.flushed

    def due(self, now: float) -> bool:
        return now - self.last_sent >= self.interval_s

    def update(self, now: float, now_pg_us: int, reply: bool = False) -> bytes:
        """The next status update message (positions clamped as the rules say)."""
        self.flushed = max(self.flushed, self.durable)
        self.written = max(self.written, self.flushed)
        self.last_sent = now
        return build_status_update(self.written, self.flushed, self.flushed, now_pg_us, reply)
