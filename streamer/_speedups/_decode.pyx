# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True
"""Compiled twins of the decoding hot path (see `streamer/_speedups/__init__.py`):

- `RowBuilder`: `pgoutput.relations._row_builder`'s `build` (`decode_insert_columns`
  plus the `SourceRow`), byte for byte the same walk, the same errors in the same order;
- `feed_plain`: `TransactionAssembler.feed` over a run of plain Begin / Insert / Commit
  frames, with the `BatchBuilder` calls it makes.

Untrusted bytes are only read within bounds checked against the buffer length; every
failure is a Python exception, never a crash."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8

from streamer._speedups._normalize cimport normalize_row
from streamer._speedups._records cimport is_record_type, new_record, put
from streamer._speedups import _normalize
from streamer.errors import ProtocolError

cdef object _normalize_def = _normalize.normalize
cdef object SourceRow = None
cdef object Canonical = None


def bind():
    """Take the record types from `normalize.records` (imported late: see `_normalize`)."""
    global SourceRow, Canonical
    from streamer.normalize.records import Canonical as canonical, SourceRow as source_row

    if not (is_record_type(canonical, 15) and is_record_type(source_row, 5)):
        raise TypeError("the record types are not the NamedTuples this module builds")
    SourceRow, Canonical = source_row, canonical


cdef class RowBuilder:
    """`relations._row_builder`'s `build`: Insert message bytes -> `SourceRow`."""

    cdef tuple slots
    cdef Py_ssize_t width

    def __cinit__(self, tuple slots, Py_ssize_t width):
        if width != 5:
            raise ValueError("a SourceRow has 5 fields")
        self.slots = slots
        self.width = width

    def __call__(self, bytes message, Py_ssize_t base=0):
        return self.build(message, base)

    cdef object build(self, bytes message, Py_ssize_t base):
        cdef const unsigned char* buf = <const unsigned char*>PyBytes_AS_STRING(message)
        cdef Py_ssize_t size = PyBytes_GET_SIZE(message)
        cdef Py_ssize_t pos, length, end, i, slot
        cdef unsigned char kind
        cdef object o0 = None, o1 = None, o2 = None, o3 = None, o4 = None
        if base < 0:
            raise IndexError("index out of range")  # the pure walk never sees one
        if base + 5 >= size:
            raise IndexError("index out of range")
        if buf[base + 5] != 0x4E:
            raise ProtocolError("insert without new tuple marker")
        pos = base + 8
        for i in range(len(self.slots)):
            slot = <Py_ssize_t>self.slots[i]
            if pos >= size:
                raise ProtocolError("truncated insert message")
            kind = buf[pos]
            pos += 1
            if kind == 0x74 or kind == 0x62:
                if pos + 4 > size:
                    raise ProtocolError("truncated insert message")
                length = (
                    (<Py_ssize_t>buf[pos] << 24) | (<Py_ssize_t>buf[pos + 1] << 16)
                    | (<Py_ssize_t>buf[pos + 2] << 8) | <Py_ssize_t>buf[pos + 3]
                )
                pos += 4
                if slot >= 0:
                    end = pos + length
                    if end > size:
                        end = size  # a slice stops at the end; the check below fires
                    value = PyUnicode_DecodeUTF8(<const char*>buf + pos, end - pos, NULL)
                    if slot >= 5:  # the pure list assignment's IndexError, translated
                        raise ProtocolError("truncated insert message")
                    if slot == 0:
                        o0 = value
                    elif slot == 1:
                        o1 = value
                    elif slot == 2:
                        o2 = value
                    elif slot == 3:
                        o3 = value
                    else:
                        o4 = value
                pos += length
            elif kind != 0x6E and kind != 0x75:
                raise ProtocolError(f"unknown tuple column kind {kind:#x}")
        if pos > size:
            raise ProtocolError("tuple data runs past the end of the message")
        row = new_record(SourceRow, 5)
        put(row, 0, o0 or "")
        put(row, 1, o1 or "")
        put(row, 2, o2 if o2 is not None else "null")
        put(row, 3, o3 if o3 is not None else "null")
        put(row, 4, o4)
        return row


# -- the assembler's run of plain inserts ------------------------------------------------
cdef Py_ssize_t XLOG_HEADER_SIZE = 25


cdef inline unsigned long long _u64(const unsigned char* p):
    cdef unsigned long long v = 0
    cdef int k
    for k in range(8):
        v = (v << 8) | p[k]
    return v


def feed_plain(
    list frames, Py_ssize_t i, long long rel_id, RowBuilder row_builder, object builder,
    Py_ssize_t overhead, object skip_before, object stop_lsn, object now, object received,
):
    """`TransactionAssembler.feed` for a run of plain XLogData Begin / Insert / Commit
    frames outside any stream block, not skipping, Inserts of relation `rel_id` only
    (with `BatchBuilder.begin`, `row`/`add` and `commit`). Stops, leaving it to the
    pure loop, at any other frame, a Begin that starts skipping or reaches the stop
    position, or any frame that raises (the pure loop raises it again with its
    position). Returns (next index, received, whether a Begin was applied).
    `builder` must be exactly a `BatchBuilder` (the caller checks)."""
    cdef Py_ssize_t n = len(frames), size
    cdef const unsigned char* buf
    cdef long long got
    cdef unsigned long long lsn
    cdef long long commit_us
    cdef bytes data
    cdef bint began = False
    cdef unsigned char tag
    chunk = builder._open
    normalizer = builder.normalizer
    cdef bint compiled = normalizer is _normalize_def
    added = 0
    try:
        while i < n:
            data = bytes(frames[i])
            size = PyBytes_GET_SIZE(data)
            buf = <const unsigned char*>PyBytes_AS_STRING(data)
            if size <= XLOG_HEADER_SIZE or buf[0] != 0x77:  # 'w' XLogData
                break
            tag = buf[XLOG_HEADER_SIZE]
            if tag == 0x49:  # 'I'
                if chunk is None or size < XLOG_HEADER_SIZE + 8:
                    break
                got = (
                    (<long long>buf[26] << 24) | (<long long>buf[27] << 16)
                    | (<long long>buf[28] << 8) | <long long>buf[29]
                )
                if got != rel_id:
                    break
                try:
                    row = row_builder.build(data, XLOG_HEADER_SIZE)
                except Exception:
                    break
                record = normalize_row(row) if compiled else normalizer(row)
                if type(record) is Canonical:
                    chunk.canonical.append(record)
                else:
                    chunk.rejected.append(record)
                added += len((<tuple>row)[2]) + len((<tuple>row)[3]) + overhead
            elif tag == 0x42:  # 'B': final LSN (8), commit time (8), xid (4)
                if size < XLOG_HEADER_SIZE + 21:
                    break
                lsn = _u64(buf + 26)
                commit_us = <long long>_u64(buf + 34)
                final_lsn = lsn
                if final_lsn < skip_before or (stop_lsn is not None and final_lsn >= stop_lsn):
                    break
                if added:
                    builder._open_bytes += added
                    added = 0
                builder.begin(commit_us, now)
                chunk = builder._open
                began = True
            elif tag == 0x43:  # 'C': flags (1), commit LSN (8), end LSN (8), time (8)
                if chunk is None or size < XLOG_HEADER_SIZE + 26:
                    break
                end_lsn = _u64(buf + 35)
                if end_lsn > received:
                    received = end_lsn
                if added:
                    builder._open_bytes += added
                    added = 0
                builder.commit(end_lsn)
                chunk = None
            else:
                break
            i += 1
    finally:
        if added:
            builder._open_bytes += added
    return i, received, began
