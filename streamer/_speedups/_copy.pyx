# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True
"""Compiled twins of the COPY text preparation (see `streamer/_speedups/__init__.py`):

- `format_rows`: psycopg's `format_row_text` of `row + tail` for rows of str / None /
  int / finite Decimal; any other row is formatted by psycopg itself;
- `encode_chunks`: `copy_text.encode_batch`'s loop, commit info once per transaction."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from libc.stdio cimport snprintf
from libc.string cimport memchr, memcpy, strcspn
from decimal import Decimal

from streamer._speedups._chars cimport PyUnicode_AsUTF8AndSize

cdef object _Decimal = Decimal


cdef inline char _escape(unsigned char b):
    if b == 0x08:
        return 0x62  # b
    if b == 0x09:
        return 0x74  # t
    if b == 0x0A:
        return 0x6E  # n
    if b == 0x0B:
        return 0x76  # v
    if b == 0x0C:
        return 0x66  # f
    if b == 0x0D:
        return 0x72  # r
    if b == 0x5C:
        return 0x5C  # backslash
    return 0


cdef const char* _SPECIAL = b"\x08\t\n\x0b\x0c\r\\"  # the bytes COPY text escapes


cdef class _Out:
    """A bytearray written through a C pointer (`used` bytes of `cap` are valid)."""

    cdef bytearray buf
    cdef char* base
    cdef Py_ssize_t used
    cdef Py_ssize_t cap

    def __cinit__(self, bytearray buf):
        self.buf = buf
        self.used = PyByteArray_GET_SIZE(buf)
        self.cap = self.used
        self.base = PyByteArray_AS_STRING(buf)

    cdef inline char* reserve(self, Py_ssize_t extra) except NULL:
        if self.used + extra > self.cap:
            self.cap = max(self.cap * 2, self.used + extra + 4096)
            PyByteArray_Resize(self.buf, self.cap)
            self.base = PyByteArray_AS_STRING(self.buf)
        return self.base + self.used

    cdef inline int write_raw(self, const char* src, Py_ssize_t n) except -1:
        cdef char* dst = self.reserve(n)
        memcpy(dst, src, n)
        self.used += n
        return 0

    cdef int write_escaped(self, const char* src, Py_ssize_t n) except -1:
        """`src` must be NUL-terminated with no NUL inside (strcspn finds the specials)."""
        cdef char* dst = self.reserve(2 * n + 1)
        cdef Py_ssize_t i = 0, j = 0, span
        while True:
            span = <Py_ssize_t>strcspn(src + i, _SPECIAL)
            memcpy(dst + j, src + i, span)
            i += span
            j += span
            if i >= n:
                break
            dst[j] = 0x5C
            dst[j + 1] = _escape(<unsigned char>src[i])
            i += 1
            j += 2
        self.used += j
        return 0

    cdef int finish(self) except -1:
        PyByteArray_Resize(self.buf, self.used)
        self.cap = self.used
        self.base = PyByteArray_AS_STRING(self.buf)
        return 0


cdef int _field(_Out out, object value) except -1:
    """Write one field; 1 when its type is not handled here (nothing written then)."""
    cdef const char* s
    cdef Py_ssize_t n
    if value is None:
        out.write_raw(b"\\N", 2)
        return 0
    t = type(value)
    if t is str:
        s = PyUnicode_AsUTF8AndSize(value, &n)  # raises on a lone surrogate
        if memchr(s, 0, n) != NULL:
            return 1  # psycopg refuses NUL: let it say so
        out.write_escaped(s, n)
        return 0
    if t is int or (t is _Decimal and value.is_finite()):
        text = str(value).encode()
        out.write_raw(PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text))
        return 0
    return 1


def format_rows(list rows, tuple tail, bytearray buf, object fallback, object transformer):
    """Append to `buf` the COPY text of `row + tail` for each row, as psycopg's
    `format_row_text` (`fallback`) would; rows with other value types, a NUL or a lone
    surrogate are handed to `fallback` itself."""
    cdef _Out out = _Out(buf)
    cdef Py_ssize_t mark, k
    cdef bint ok
    cdef tuple row
    for item in rows:
        row = <tuple>item
        mark = out.used
        ok = True
        try:
            for value in row:
                if _field(out, value):
                    ok = False
                    break
                out.write_raw(b"\t", 1)
            if ok:
                for value in tail:
                    if _field(out, value):
                        ok = False
                        break
                    out.write_raw(b"\t", 1)
        except UnicodeEncodeError:
            ok = False
        if ok:
            if out.used > mark:  # the last tab becomes the newline
                out.base[out.used - 1] = 0x0A
            continue
        out.used = mark
        out.finish()
        fallback(tuple(row) + tail, transformer, out.buf)
        out.used = out.cap = PyByteArray_GET_SIZE(out.buf)
        out.base = PyByteArray_AS_STRING(out.buf)
    out.finish()


# -- the batch: commit info once per transaction, then its rows --------------------------
cdef long long PG_EPOCH_OFFSET_US = 946684800000000
cdef object _LSN_LIMIT = 2 ** 64


cdef object _commit_info(object chunk, object second_iso, object pure_commit_info):
    """`copy_text.commit_info`: (pg_us_to_iso(commit time), format_lsn(end LSN))."""
    cdef char text[48]
    cdef long long unix_us, seconds, micros
    cdef unsigned long long lsn
    cdef int written
    commit_us = chunk.commit_time_us
    end_lsn = chunk.end_lsn
    if (
        type(commit_us) is not int or type(end_lsn) is not int
        or not (-PG_EPOCH_OFFSET_US <= commit_us < (1LL << 62))
        or not (0 <= end_lsn < _LSN_LIMIT)
    ):
        return pure_commit_info(chunk)
    unix_us = <long long>commit_us + PG_EPOCH_OFFSET_US
    seconds = unix_us // 1000000
    micros = unix_us % 1000000
    second = second_iso(seconds)
    written = snprintf(text, sizeof(text), ".%06lld+00:00", micros)
    committed_at = second + text[:written].decode("ascii")
    lsn = end_lsn
    written = snprintf(text, sizeof(text), "%llX/%llX", lsn >> 32, lsn & 0xFFFFFFFFULL)
    return (committed_at, text[:written].decode("ascii"))


def encode_chunks(
    list chunks, object txn_kind, object rejected_fields, object fallback, object transformer,
    bytearray canonical_out, bytearray rejected_out, object second_iso, object pure_commit_info,
):
    """`copy_text.encode_batch`'s loop: for each whole transaction chunk, its commit
    info (`commit_info`) and the COPY text of its rows and rejected rows."""
    for chunk in chunks:
        if chunk.end_lsn is None or chunk.kind != txn_kind:
            continue
        tail = _commit_info(chunk, second_iso, pure_commit_info)
        format_rows(chunk.canonical, tail, canonical_out, fallback, transformer)
        rejected = chunk.rejected
        if rejected:
            format_rows([rejected_fields(row) for row in rejected], tail, rejected_out, fallback, transformer)
