"""pgoutput logical replication messages (protocol versions 1 and 2), decoded from bytes.

Only what a consumer of INSERTs needs is decoded in full (Begin, Commit, Relation, Insert,
and protocol 2's Stream Start / Stop / Commit / Abort); other message kinds come back as
`Other` so the caller can decide to ignore or stop.

Inside a stream block (protocol 2, `streaming 'on'`) every change message carries the xid
of the (sub)transaction that made it right after its type byte; Stream Start and Stream
Commit carry the top-level xid, Stream Abort the top-level and the aborted subtransaction's.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from streamer.errors import ProtocolError

_BEGIN = struct.Struct(">QqI")
_COMMIT = struct.Struct(">BQQq")
_RELATION_HEAD = struct.Struct(">I")
_COLUMN_TAIL = struct.Struct(">Ii")
_INT16 = struct.Struct(">H")
_INT32 = struct.Struct(">I")
_INSERT_HEAD = struct.Struct(">IcH")
_STREAM_START = struct.Struct(">IB")
_STREAM_COMMIT = struct.Struct(">IBQQq")
_STREAM_ABORT = struct.Struct(">II")

ColumnValue = str | None
Buffer = bytes | memoryview
BEGIN = 0x42  # 'B'
COMMIT = 0x43  # 'C'
INSERT = 0x49  # 'I'
RELATION = 0x52  # 'R'
STREAM_START = 0x53  # 'S'
STREAM_STOP = 0x45  # 'E'
STREAM_COMMIT = 0x63  # 'c'
STREAM_ABORT = 0x41  # 'A'
STREAM_XID_SIZE = 4  # the xid after the type byte of a change inside a stream block


class Begin(NamedTuple):
    final_lsn: int  # LSN of the commit record (its start)
    commit_time_us: int
    xid: int


class Commit(NamedTuple):
    flags: int
    commit_lsn: int
    end_lsn: int  # end of the commit record: the position to confirm
    commit_time_us: int


class Column(NamedTuple):
    name: str
    type_oid: int
    is_key: bool


class Relation(NamedTuple):
    rel_id: int
    namespace: str
    name: str
    columns: tuple[Column, ...]


class Insert(NamedTuple):
    rel_id: int
    values: tuple[ColumnValue, ...]


class StreamStart(NamedTuple):
    xid: int
    first_segment: bool


class StreamStop(NamedTuple):
    pass


class StreamCommit(NamedTuple):
    xid: int
    commit_lsn: int  # start of the commit record
    end_lsn: int  # end of the commit record: the position to confirm
    commit_time_us: int


class StreamAbort(NamedTuple):
    xid: int  # the top-level transaction
    subxid: int  # the aborted subtransaction; equal to xid when the whole one aborted


class Other(NamedTuple):
    """A message kind we do not act on (Type, Origin, Update, Delete, Truncate, ...)."""

    kind: str
    rel_id: int | None


Message = (
    Begin
    | Commit
    | Relation
    | Insert
    | StreamStart
    | StreamStop
    | StreamCommit
    | StreamAbort
    | Other
)

_REL_MESSAGES = {ord("U"), ord("D")}
_STREAMED_CHANGES = {INSERT, RELATION, ord("U"), ord("D"), ord("T"), ord("Y")}


def _cstring(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(0, pos)
    return buf[pos:end].decode(), end + 1


def decode_tuple(buf: bytes, pos: int) -> tuple[tuple[ColumnValue, ...], int]:
    """TupleData → column values as text (None for NULL); returns the next position.

    Unchanged TOAST values ('u') cannot occur in INSERTs; they are reported as None.
    """
    (ncols,) = _INT16.unpack_from(buf, pos)
    pos += 2
    values: list[ColumnValue] = []
    append = values.append
    unpack_len = _INT32.unpack_from
    for _ in range(ncols):
        kind = buf[pos]
        pos += 1
        if kind in (0x74, 0x62):  # 't' text, 'b' binary (we request text)
            (length,) = unpack_len(buf, pos)
            pos += 4
            append(buf[pos : pos + length].decode())
            pos += length
        elif kind in (0x6E, 0x75):  # 'n' null, 'u' unchanged toast
            append(None)
        else:
            raise ProtocolError(f"unknown tuple column kind {kind:#x}")
    if pos > len(buf):
        raise ProtocolError("tuple data runs past the end of the message")
    return tuple(values), pos


def insert_rel_id(buf: Buffer, base: int = 0) -> int:
    """The relation id of an Insert message (starting at `base`), without decoding it."""
    rel_id: int = _INT32.unpack_from(buf, base + 1)[0]
    return rel_id


def decode_insert_columns(
    buf: bytes, slots: tuple[int, ...], width: int, base: int = 0
) -> list[ColumnValue]:
    """The hot path: pick columns out of an Insert message without decoding the rest.

    The message starts at `base` in `buf` (so a whole XLogData frame needs no slicing).
    `slots[i]` is where column i goes in the result (-1: skip it); columns after the last
    wanted one are not even walked. Only text ('t') values are decoded to str.
    """
    if buf[base + 5] != 0x4E:  # 'N': new tuple
        raise ProtocolError("insert without new tuple marker")
    out: list[ColumnValue] = [None] * width
    pos = base + 8  # 'I', rel id (4), 'N', column count (2)
    unpack_len = _INT32.unpack_from
    try:
        for slot in slots:
            kind = buf[pos]
            pos += 1
            if kind == 0x74 or kind == 0x62:  # noqa: PLR1714 ('t' text, 'b' binary)
                (length,) = unpack_len(buf, pos)
                pos += 4
                if slot >= 0:
                    out[slot] = buf[pos : pos + length].decode()
                pos += length
            elif kind != 0x6E and kind != 0x75:  # noqa: PLR1714 ('n' null, 'u' toast)
                raise ProtocolError(f"unknown tuple column kind {kind:#x}")
    except (struct.error, IndexError) as exc:
        raise ProtocolError("truncated insert message") from exc
    if pos > len(buf):
        raise ProtocolError("tuple data runs past the end of the message")
    return out


def begin_fields(buf: Buffer, base: int = 0) -> tuple[int, int]:
    """(final_lsn, commit_time_us) of the Begin message at `base`: the hot path's
    version of `decode_message`, one call per source transaction, no object built."""
    try:
        final_lsn, commit_time_us, _xid = _BEGIN.unpack_from(buf, base + 1)
    except struct.error as exc:
        raise ProtocolError("truncated or malformed pgoutput message 'B'") from exc
    return final_lsn, commit_time_us


def commit_end_lsn(buf: Buffer, base: int = 0) -> int:
    """The end LSN (the position to confirm) of the Commit message at `base`."""
    try:
        end_lsn: int = _COMMIT.unpack_from(buf, base + 1)[2]
    except struct.error as exc:
        raise ProtocolError("truncated or malformed pgoutput message 'C'") from exc
    return end_lsn


def stream_xid(buf: Buffer, base: int = 0) -> int:
    """The xid a change message inside a stream block carries (after its type byte)."""
    try:
        xid: int = _INT32.unpack_from(buf, base + 1)[0]
    except struct.error as exc:
        raise ProtocolError("truncated streamed change message") from exc
    return xid


def stream_start_fields(buf: Buffer, base: int = 0) -> tuple[int, bool]:
    """(xid, first segment) of a Stream Start message."""
    try:
        xid, first = _STREAM_START.unpack_from(buf, base + 1)
    except struct.error as exc:
        raise ProtocolError("truncated or malformed pgoutput message 'S'") from exc
    return xid, first == 1


def stream_commit_fields(buf: Buffer, base: int = 0) -> tuple[int, int, int, int]:
    """(xid, commit_lsn, end_lsn, commit_time_us) of a Stream Commit message."""
    try:
        xid, _flags, commit_lsn, end_lsn, commit_time_us = _STREAM_COMMIT.unpack_from(buf, base + 1)
    except struct.error as exc:
        raise ProtocolError("truncated or malformed pgoutput message 'c'") from exc
    return xid, commit_lsn, end_lsn, commit_time_us


def stream_abort_fields(buf: Buffer, base: int = 0) -> tuple[int, int]:
    """(xid, subxid) of a Stream Abort message (protocol 2: no abort LSN or time)."""
    try:
        xid, subxid = _STREAM_ABORT.unpack_from(buf, base + 1)
    except struct.error as exc:
        raise ProtocolError("truncated or malformed pgoutput message 'A'") from exc
    return xid, subxid


def decode_relation(buf: bytes) -> Relation:
    (rel_id,) = _RELATION_HEAD.unpack_from(buf, 1)
    namespace, pos = _cstring(buf, 5)
    name, pos = _cstring(buf, pos)
    pos += 1  # replica identity setting
    (ncols,) = _INT16.unpack_from(buf, pos)
    pos += 2
    columns = []
    for _ in range(ncols):
        flags = buf[pos]
        column_name, pos = _cstring(buf, pos + 1)
        type_oid, _typmod = _COLUMN_TAIL.unpack_from(buf, pos)
        pos += 8
        columns.append(Column(column_name, type_oid, bool(flags & 1)))
    return Relation(rel_id, namespace or "pg_catalog", name, tuple(columns))


def decode_message(buf: bytes, base: int = 0, *, streamed: bool = False) -> Message:
    """Decode one pgoutput message: the payload of an XLogData frame, starting at `base`
    in `buf` (so a whole frame needs no slicing). `streamed`: the message is inside a
    stream block, so a change message carries an xid after its type byte (skipped here:
    the layout after it is that of protocol 1, hence the shifted base)."""
    if len(buf) <= base:
        raise ProtocolError("empty pgoutput message")
    kind = buf[base]
    try:
        if kind == STREAM_START:
            return StreamStart(*stream_start_fields(buf, base))
        if kind == STREAM_STOP:
            return StreamStop()
        if kind == STREAM_COMMIT:
            return StreamCommit(*stream_commit_fields(buf, base))
        if kind == STREAM_ABORT:
            return StreamAbort(*stream_abort_fields(buf, base))
        if streamed and kind in _STREAMED_CHANGES:
            stream_xid(buf, base)  # present, or a clear error
            shifted = bytes([kind]) + bytes(buf[base + 1 + STREAM_XID_SIZE :])
            return decode_message(shifted)
        if kind == 0x42:  # 'B'
            return Begin(*_BEGIN.unpack_from(buf, base + 1))
        if kind == 0x43:  # 'C'
            return Commit(*_COMMIT.unpack_from(buf, base + 1))
        if kind == 0x49:  # 'I'
            rel_id, new, _ = _INSERT_HEAD.unpack_from(buf, base + 1)
            if new != b"N":
                raise ProtocolError(f"insert without new tuple marker: {new!r}")
            values, _ = decode_tuple(buf, base + 6)
            return Insert(rel_id, values)
        if kind == 0x52:  # 'R'
            return decode_relation(buf[base:])
        rel_id = _INT32.unpack_from(buf, base + 1)[0] if kind in _REL_MESSAGES else None
        return Other(chr(kind), rel_id)
    except (struct.error, ValueError, IndexError) as exc:
        raise ProtocolError(f"truncated or malformed pgoutput message {chr(kind)!r}") from exc
