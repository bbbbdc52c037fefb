"""Replication frames as a PostgreSQL server sends them (the inverse of `messages` and
`frames`): pgoutput v1 Begin / Relation / Insert / Commit inside XLogData, and primary
keepalives. Used to replay streams without a server, by the unit tests and by the
hot-path benchmark (`bench/hotpath.py`); the streamer itself never encodes these.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

# The decoders' own layouts, so the two directions cannot drift apart.
from streamer.pgoutput.frames import _KEEPALIVE, _XLOG_HEADER, KEEPALIVE, XLOG_DATA
from streamer.pgoutput.messages import _BEGIN, _COMMIT, _STREAM_ABORT, _STREAM_COMMIT, _STREAM_START

SEED_SOURCE_COLUMNS: Final = (
    ("id", 2950),  # uuid
    ("data", 3802),  # jsonb
    ("merchant", 3802),
    ("transactional_id", 2950),
    ("created_at", 1114),  # timestamp
    ("processed", 16),  # boolean
    ("processed_at", 1114),
)
"""The seed's `raw_transactions` (streamer.ops.demo.SOURCE_DDL) as a Relation message
describes it: (column, type oid), in table order."""


def xlog_data(message: bytes, wal_start: int, wal_end: int = 0, server_time_us: int = 0) -> bytes:
    """An XLogData ('w') frame around one pgoutput message."""
    return bytes([XLOG_DATA]) + _XLOG_HEADER.pack(wal_start, wal_end, server_time_us) + message


def keepalive(wal_end: int, reply_requested: bool = False, server_time_us: int = 0) -> bytes:
    """A primary keepalive ('k') frame."""
    return bytes([KEEPALIVE]) + _KEEPALIVE.pack(wal_end, server_time_us, reply_requested)


def begin(final_lsn: int, commit_time_us: int, xid: int) -> bytes:
    return b"B" + _BEGIN.pack(final_lsn, commit_time_us, xid)


def commit(commit_lsn: int, end_lsn: int, commit_time_us: int) -> bytes:
    return b"C" + _COMMIT.pack(0, commit_lsn, end_lsn, commit_time_us)


def relation(rel_id: int, namespace: str, name: str, columns: Sequence[tuple[str, int]]) -> bytes:
    """A Relation message; `columns` are (name, type oid), none part of the key."""
    parts = [
        b"R",
        struct.pack(">I", rel_id),
        namespace.encode() + b"\0",
        name.encode() + b"\0",
        b"d",  # replica identity: default
        struct.pack(">H", len(columns)),
    ]
    for column, type_oid in columns:
        parts += [b"\0", column.encode() + b"\0", struct.pack(">Ii", type_oid, -1)]
    return b"".join(parts)


def insert(rel_id: int, values: Sequence[str | None]) -> bytes:
    """An Insert message; values in text format, None for NULL."""
    parts = [b"I", struct.pack(">I", rel_id), b"N", struct.pack(">H", len(values))]
    for value in values:
        if value is None:
            parts.append(b"n")
        else:
            raw = value.encode()
            parts += [b"t", struct.pack(">I", len(raw)), raw]
    return b"".join(parts)


# -- protocol 2: streamed transactions ------------------------------------------------
def stream_start(xid: int, first_segment: bool) -> bytes:
    return b"S" + _STREAM_START.pack(xid, 1 if first_segment else 0)


def stream_stop() -> bytes:
    return b"E"


def stream_commit(xid: int, commit_lsn: int, end_lsn: int, commit_time_us: int) -> bytes:
    return b"c" + _STREAM_COMMIT.pack(xid, 0, commit_lsn, end_lsn, commit_time_us)


def stream_abort(xid: int, subxid: int) -> bytes:
    return b"A" + _STREAM_ABORT.pack(xid, subxid)


def streamed(change: bytes, xid: int) -> bytes:
    """A change message (Insert, Relation, ...) as sent inside a stream block: the xid
    of its (sub)transaction right after the type byte."""
    return change[:1] + struct.pack(">I", xid) + change[1:]
