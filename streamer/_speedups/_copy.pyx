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

from cpython.unicode cimport PyUnicode_DecodeASCII
from streamer._speedups._chars cimport PyUnicode_AsUTF8AndSize, PyUnicode_GET_LENGTH

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
    """A bytearray written through a C pointer (`used` bytes of `cap` are valid); the
    fields and the inline writers are declared in `_copy.pxd`, for `_copybin` too."""

    def __cinit__(self, bytearray buf):
        self.buf = buf
        self.used = PyByteArray_GET_SIZE(buf)
        self.cap = self.used
        self.base = PyByteArray_AS_STRING(buf)

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
        text = str(value)  # ASCII digits (and sign, point, exponent)
        s = PyUnicode_AsUTF8AndSize(text, &n)
        out.write_raw(s, n)
        return 0
    return 1


cdef int _format_rows(
    list rows, object tail, const char* tail_text, Py_ssize_t tail_len, _Out out,
    object fallback, object transformer,
) except -1:
    """Append the COPY text of `row + tail` for each row, as psycopg's `format_row_text`
    (`fallback`) would; rows with other value types, a NUL or a lone surrogate are handed
    to `fallback` itself. `tail_text`, when given, is the tail's own COPY text with a tab
    after each value (written once per row instead of formatting the tail again); `tail`
    may then be None, and is made from it only for a row `fallback` formats."""
    cdef Py_ssize_t mark
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
            if ok and tail_text != NULL:
                out.write_raw(tail_text, tail_len)
            elif ok:
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
        if tail is None:
            tail = _tail_values(tail_text, tail_len)
        fallback(tuple(row) + tail, transformer, out.buf)
        out.used = out.cap = PyByteArray_GET_SIZE(out.buf)
        out.base = PyByteArray_AS_STRING(out.buf)
    return 0


def format_rows(list rows, tuple tail, bytearray buf, object fallback, object transformer):
    """`_format_rows` into `buf`, for Python callers."""
    cdef _Out out = _Out(buf)
    _format_rows(rows, tail, NULL, 0, out, fallback, transformer)
    out.finish()


# -- the batch: commit info once per transaction, then its rows --------------------------
cdef long long PG_EPOCH_OFFSET_US = 946684800000000
cdef object _LSN_LIMIT = 2 ** 64
cdef long long _last_second = -1 << 62  # the second whose `second_iso` text is cached
cdef char _last_second_text[32]
cdef Py_ssize_t SECOND_TEXT_SIZE = 19  # "YYYY-MM-DDTHH:MM:SS"


cdef int _second_text(long long seconds, object second_iso) except -1:
    """`second_iso(seconds)` into `_last_second_text` (commits share their second);
    1 when its text is not the usual 19 ASCII characters (the pure code formats it)."""
    global _last_second
    cdef const char* s
    cdef Py_ssize_t n
    if seconds == _last_second:
        return 0
    text = second_iso(seconds)
    if type(text) is not str or PyUnicode_GET_LENGTH(text) != SECOND_TEXT_SIZE:
        return 1
    s = PyUnicode_AsUTF8AndSize(text, &n)
    if n != SECOND_TEXT_SIZE:
        return 1
    memcpy(_last_second_text, s, n)
    _last_second = seconds
    return 0


cdef Py_ssize_t _commit_text(object chunk, object second_iso, char* out) except -2:
    """`copy_text.commit_info` as COPY text into `out` (at least 64 bytes):
    "<committed_at>\t<end LSN>\t", its length returned; -1 when the pure function
    must format it (values out of the common range)."""
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
        return -1
    unix_us = <long long>commit_us + PG_EPOCH_OFFSET_US
    seconds = unix_us // 1000000
    micros = unix_us % 1000000
    if _second_text(seconds, second_iso):
        return -1
    memcpy(out, _last_second_text, SECOND_TEXT_SIZE)
    lsn = end_lsn
    written = snprintf(
        out + SECOND_TEXT_SIZE, 44, ".%06lld+00:00\t%llX/%llX\t",
        micros, lsn >> 32, lsn & 0xFFFFFFFFULL,
    )
    return SECOND_TEXT_SIZE + written


cdef tuple _tail_values(const char* text, Py_ssize_t length):
    """(committed_at, LSN) back from their COPY text "<committed_at>\t<LSN>\t"."""
    cdef Py_ssize_t split = <Py_ssize_t>(<const char*>memchr(text, 0x09, length) - text)
    return (
        PyUnicode_DecodeASCII(text, split, NULL),
        PyUnicode_DecodeASCII(text + split + 1, length - split - 2, NULL),
    )


def encode_chunks(
    list chunks, object txn_kind, object rejected_fields, object fallback, object transformer,
    bytearray canonical_out, bytearray rejected_out, object second_iso, object pure_commit_info,
    bint with_canonical,
):
    """`copy_text.encode_batch`'s loop: for each whole transaction chunk, its commit
    info (`commit_info`) and the COPY text of its rows (`with_canonical`) and rejected
    rows."""
    cdef _Out canonical = _Out(canonical_out), rejected = _Out(rejected_out)
    cdef char text[64]
    cdef Py_ssize_t length
    for chunk in chunks:
        if chunk.end_lsn is None or chunk.kind != txn_kind:
            continue
        if not with_canonical and not chunk.rejected:
            continue  # nothing of this transaction goes as text
        length = _commit_text(chunk, second_iso, text)
        tail = pure_commit_info(chunk) if length < 0 else None
        if with_canonical:
            _format_rows(
                chunk.canonical, tail, text if length >= 0 else NULL, length, canonical,
                fallback, transformer,
            )
        if chunk.rejected:
            _format_rows(
                [rejected_fields(row) for row in chunk.rejected], tail,
                text if length >= 0 else NULL, length, rejected, fallback, transformer,
            )
    canonical.finish()
    rejected.finish()
