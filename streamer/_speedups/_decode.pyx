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
from cpython.ref cimport PyObject, Py_XDECREF
from streamer._speedups._records cimport (
    Py_INCREF, PyType_GenericAlloc, PyTypeObject, is_record_type, new_record, put,
)
from streamer._speedups import _normalize
from streamer.errors import ProtocolError

from types import MemberDescriptorType as _MemberDescriptor

cdef extern from "structmember.h":
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
    int T_OBJECT_EX

cdef extern from "Python.h":
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member

cdef object _normalize_def = _normalize.normalize
cdef object SourceRow = None
cdef object Canonical = None

# `TxnChunk` (a slots dataclass) built without its Python `__init__`: allocated as its
# own type, then each slot written at its offset with the value `__init__` would give
# it. Offsets and defaults are read from the class at bind time; anything unexpected
# (a field without a plain default, a slot that is not an object member) disables this
# and the class is called instead.
cdef int MAX_FIELDS = 16
cdef Py_ssize_t _offsets[16]
cdef int _field_kinds[16]  # 0: the commit time, 1: a new list, 2: the default below
cdef list _defaults = []
cdef int _field_count = 0
cdef Py_ssize_t _END_LSN = -1, _CURSOR = -1
cdef object TxnChunk = None


def bind():
    """Take the record types (imported late: see `_normalize`)."""
    global SourceRow, Canonical
    from streamer.normalize.records import Canonical as canonical, SourceRow as source_row

    if not (is_record_type(canonical, 15) and is_record_type(source_row, 5)):
        raise TypeError("the record types are not the NamedTuples this module builds")
    SourceRow, Canonical = source_row, canonical


cdef _bind_chunk():
    """Read `TxnChunk`'s layout (at the first run: `sources.batching` imports the
    normalizer, which binds this module)."""
    global TxnChunk, _field_count, _END_LSN, _CURSOR
    import dataclasses
    from streamer.sources.batching import TxnChunk as txn_chunk

    TxnChunk = txn_chunk
    _field_count, _END_LSN, _CURSOR = 0, -1, -1
    fields = dataclasses.fields(txn_chunk)
    _field_count = 0
    if len(fields) > MAX_FIELDS or fields[0].name != "commit_time_us":
        return
    _defaults.clear()
    for k, field in enumerate(fields):
        descriptor = txn_chunk.__dict__.get(field.name)
        if type(descriptor) is not _MemberDescriptor:
            return
        member = (<PyMemberDescrObject*>descriptor).d_member
        if member.type != T_OBJECT_EX:
            return
        _offsets[k] = member.offset
        if k == 0:
            _field_kinds[k] = 0
        elif field.default_factory is list:
            _field_kinds[k] = 1
        elif field.default is not dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            _field_kinds[k] = 2
        else:
            return
        _defaults.append(field.default)
        if field.name == "end_lsn":
            _END_LSN = member.offset
        elif field.name == "cursor":
            _CURSOR = member.offset
    if _END_LSN >= 0 and _CURSOR >= 0:
        _field_count = len(fields)


def chunk_layout_known():
    """Whether the compiled run builds `TxnChunk`s itself (else it leaves every frame to
    the pure loop); for the tests."""
    if TxnChunk is None:
        _bind_chunk()
    return _field_count > 0


cdef inline void _set_slot(object obj, Py_ssize_t offset, object value):
    """Write an object slot (what the member descriptor's __set__ does)."""
    cdef PyObject** slot = <PyObject**>((<char*><PyObject*>obj) + offset)
    cdef PyObject* old = slot[0]
    Py_INCREF(value)
    slot[0] = <PyObject*>value
    Py_XDECREF(old)


cdef object _new_chunk(long long commit_time_us):
    """`TxnChunk(commit_time_us)` (only called once `_bind_chunk` read its layout)."""
    cdef int k
    chunk = PyType_GenericAlloc(<PyTypeObject*>TxnChunk, 0)
    for k in range(_field_count):
        if _field_kinds[k] == 0:
            _set_slot(chunk, _offsets[k], commit_time_us)
        elif _field_kinds[k] == 1:
            _set_slot(chunk, _offsets[k], [])
        else:
            _set_slot(chunk, _offsets[k], _defaults[k])
    return chunk


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


cdef inline long long _u32(const unsigned char* p):
    return (
        (<long long>p[0] << 24) | (<long long>p[1] << 16) | (<long long>p[2] << 8)
        | <long long>p[3]
    )


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
    (with `BatchBuilder.begin`, `row`/`add` and `commit`, whose state is kept in C
    variables during the run and written back at its end). Stops, leaving it to the
    pure loop, at any other frame, a Begin that starts skipping or reaches the stop
    position, or any frame that raises (the pure loop raises it again with its
    position). Returns (next index, received, whether a Begin was applied).
    `builder` must be exactly a `BatchBuilder` (the caller checks)."""
    cdef Py_ssize_t n = len(frames), size
    cdef const unsigned char* buf
    cdef unsigned long long lsn, end_lsn, skip = skip_before, stop = 0
    cdef unsigned long long newest = received
    cdef bint has_stop = stop_lsn is not None, began = False
    cdef bint compiled = builder.normalizer is _normalize_def
    cdef bint has_oldest = builder._oldest is not None
    cdef unsigned char tag
    cdef bytes data
    cdef list canonical = None, rejected = None
    cdef list done = builder._done
    cdef long long open_bytes = builder._open_bytes
    cdef long long done_rows = builder._done_rows, done_bytes = builder._done_bytes
    normalizer = builder.normalizer
    if TxnChunk is None:
        _bind_chunk()
    if _field_count == 0:  # an unexpected TxnChunk layout: the pure loop does it all
        return i, received, False
    if has_stop:
        stop = stop_lsn
    chunk = builder._open
    if chunk is not None:
        canonical, rejected = chunk.canonical, chunk.rejected
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
                if _u32(buf + 26) != rel_id:
                    break
                try:
                    row = row_builder.build(data, XLOG_HEADER_SIZE)
                except Exception:
                    break
                record = normalize_row(row) if compiled else normalizer(row)
                if type(record) is Canonical:
                    canonical.append(record)
                else:
                    rejected.append(record)
                open_bytes += len((<tuple>row)[2]) + len((<tuple>row)[3]) + overhead
            elif tag == 0x42:  # 'B': final LSN (8), commit time (8), xid (4)
                if size < XLOG_HEADER_SIZE + 21:
                    break
                lsn = _u64(buf + 26)
                if lsn < skip or (has_stop and lsn >= stop):
                    break
                chunk = _new_chunk(<long long>_u64(buf + 34))  # BatchBuilder.begin
                canonical, rejected = chunk.canonical, chunk.rejected
                open_bytes = 0
                if not has_oldest:
                    builder._oldest = now
                    has_oldest = True
                began = True
            elif tag == 0x43:  # 'C': flags (1), commit LSN (8), end LSN (8), time (8)
                if chunk is None or size < XLOG_HEADER_SIZE + 26:
                    break
                end_lsn = _u64(buf + 35)
                if end_lsn > newest:
                    newest = end_lsn
                _set_slot(chunk, _END_LSN, end_lsn)  # BatchBuilder.commit
                _set_slot(chunk, _CURSOR, None)
                done.append(chunk)
                done_rows += len(canonical) + len(rejected)
                done_bytes += open_bytes
                chunk = canonical = rejected = None
                open_bytes = 0
            else:
                break
            i += 1
    finally:
        builder._open = chunk
        builder._open_bytes = open_bytes
        builder._done_rows = done_rows
        builder._done_bytes = done_bytes
    return i, newest, began
