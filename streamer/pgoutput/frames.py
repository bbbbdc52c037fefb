"""CopyData envelopes of the streaming replication protocol: XLogData ('w'), primary
keepalive ('k') and the standby status update ('r') we send back."""

from __future__ import annotations

import struct
from typing import NamedTuple

_XLOG_HEADER = struct.Struct(">QQq")
_KEEPALIVE = struct.Struct(">QqB")
_STATUS_UPDATE = struct.Struct(">cQQQqB")

XLOG_DATA = 0x77  # 'w'
KEEPALIVE = 0x6B  # 'k'
XLOG_HEADER_SIZE = 1 + _XLOG_HEADER.size


class XLogData(NamedTuple):
    data_start: int
    wal_end: int
    server_time_us: int
    payload: memoryview


class Keepalive(NamedTuple):
    wal_end: int
    server_time_us: int
    reply_requested: bool


def parse_xlog_data(frame: memoryview) -> XLogData:
    """Split a 'w' frame into its header fields and the pgoutput message."""
    data_start, wal_end, server_time = _XLOG_HEADER.unpack_from(frame, 1)
    return XLogData(data_start, wal_end, server_time, frame[XLOG_HEADER_SIZE:])


def parse_keepalive(frame: memoryview | bytes) -> Keepalive:
    wal_end, server_time, reply = _KEEPALIVE.unpack_from(frame, 1)
    return Keepalive(wal_end, server_time, bool(reply))


def build_status_update(
    written: int, flushed: int, applied: int, now_us: int, reply_requested: bool = False
) -> bytes:
    """Standby status update. For a logical slot only `flushed` moves confirmed_flush_lsn,
    so callers pass the durable target checkpoint there and nothing larger."""
    return _STATUS_UPDATE.pack(b"r", written, flushed, applied, now_us, 1 if reply_requested else 0)
