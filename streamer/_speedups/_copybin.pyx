# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True
"""Compiled twin of `sink/copy_binary.py`: the binary COPY data of a batch's canonical
rows, written in C, and False wherever the pure code returns None.

Each field writer returns 0 when it wrote the field, 1 when the value is outside the
shapes encoded here; nothing it wrote counts until `used` moves (`_Out.reserve`)."""

from libc.string cimport memchr, memcpy
from decimal import Decimal

from streamer._speedups._chars cimport (
    PyUnicode_AsUTF8AndSize,
    PyUnicode_DATA,
    PyUnicode_GET_LENGTH,
    PyUnicode_IS_ASCII,
)
from streamer._speedups._copy cimport _Out

cdef object _Decimal = Decimal
cdef const char* HEADER = b"PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00"
cdef Py_ssize_t HEADER_SIZE = 19
cdef int FIELDS = 17  # TRANSACTION_COLUMNS
cdef int CANONICAL_FIELDS = 15
cdef int MAX_DIGITS = 100
cdef int MAX_EXPONENT = 100
cdef long long MIN_TIMESTAMP_US = -63082281600000000LL  # 0001-01-01
cdef long long MAX_TIMESTAMP_US = 252455615999999999LL  # 9999-12-31 23:59:59.999999


cdef inline void _be16(char* p, unsigned int v) noexcept:
    p[0] = <char>((v >> 8) & 0xFF)
    p[1] = <char>(v & 0xFF)


cdef inline void _be32(char* p, unsigned int v) noexcept:
    p[0] = <char>((v >> 24) & 0xFF)
    p[1] = <char>((v >> 16) & 0xFF)
    p[2] = <char>((v >> 8) & 0xFF)
    p[3] = <char>(v & 0xFF)


cdef inline void _be64(char* p, unsigned long long v) noexcept:
    _be32(p, <unsigned int>(v >> 32))
    _be32(p + 4, <unsigned int>(v & 0xFFFFFFFFULL))


cdef inline int _null(_Out out) except -1:
    cdef char* p = out.reserve(4)
    _be32(p, 0xFFFFFFFFU)
    out.used += 4
    return 0


cdef int _text(_Out out, object value, bint jsonb) except -1:
    """text and char(n); jsonb adds its version byte."""
    cdef const char* s
    cdef Py_ssize_t n
    cdef char* p
    if value is None:
        return _null(out)
    if type(value) is not str:
        return 1
    try:
        s = PyUnicode_AsUTF8AndSize(value, &n)
    except UnicodeEncodeError:  # a lone surrogate
        return 1
    if memchr(s, 0, n) != NULL or n > 0x3FFFFFFF:
        return 1
    p = out.reserve(5 + n)
    _be32(p, <unsigned int>(n + jsonb))
    if jsonb:
        p[4] = 1
    memcpy(p + 4 + jsonb, s, n)
    out.used += 4 + jsonb + n
    return 0


cdef inline int _hex(unsigned char c) noexcept:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


cdef int _uuid(_Out out, object value) except -1:
    cdef const unsigned char* s
    cdef char* p
    cdef int i, j = 4, high, low
    if value is None:
        return _null(out)
    if type(value) is not str or not PyUnicode_IS_ASCII(value) or PyUnicode_GET_LENGTH(value) != 36:
        return 1
    s = <const unsigned char*>PyUnicode_DATA(value)
    p = out.reserve(20)
    _be32(p, 16)
    i = 0
    while i < 36:
        if i == 8 or i == 13 or i == 18 or i == 23:
            if s[i] != 45:  # -
                return 1
            i += 1
            continue
        high = _hex(s[i])
        low = _hex(s[i + 1])
        if high < 0 or low < 0:
            return 1
        p[j] = <char>(high * 16 + low)
        j += 1
        i += 2
    out.used += 20
    return 0


cdef int _int4(_Out out, object value) except -1:
    cdef char* p
    cdef long long number
    if value is None:
        return _null(out)
    if type(value) is not int:
        return 1
    try:
        number = value
    except OverflowError:
        return 1
    if not (-2147483648LL <= number <= 2147483647LL):
        return 1
    p = out.reserve(8)
    _be32(p, 4)
    _be32(p + 4, <unsigned int>(<int>number))
    out.used += 8
    return 0


cdef int _numeric(_Out out, object value) except -1:
    """From the decimal's own text (as COPY text sends it): its digits grouped by four
    around the point, as `copy_binary.numeric_field` does with integers."""
    cdef const char* s
    cdef Py_ssize_t n, i = 0
    cdef char digits[2 * 100 + 8]  # coefficient, then zeros up to the group boundary
    cdef int count = 0, fraction = 0, exponent = 0, exp_digits = 0, dscale, groups, zeros
    cdef int weight, first, g, k, group
    cdef bint negative = False, exp_negative = False, seen = False, point = False
    cdef unsigned short values[60]
    cdef char* p
    if value is None:
        return _null(out)
    if type(value) is not _Decimal or not value.is_finite():
        return 1
    text = str(value)
    s = PyUnicode_AsUTF8AndSize(text, &n)
    if i < n and s[i] == 45:  # -
        negative = True
        i += 1
    while i < n:  # digits, with at most one point among them
        if 48 <= s[i] <= 57:
            if seen or s[i] != 48:  # leading zeros are not coefficient digits
                if count >= MAX_DIGITS:
                    return 1
                digits[count] = s[i]
                count += 1
                seen = True
            fraction += point
        elif s[i] == 46 and not point:  # .
            point = True
        else:
            break
        i += 1
    if i < n and (s[i] == 69 or s[i] == 101):  # E
        i += 1
        if i < n and (s[i] == 43 or s[i] == 45):
            exp_negative = s[i] == 45
            i += 1
        while i < n and 48 <= s[i] <= 57:
            exponent = exponent * 10 + (s[i] - 48)
            exp_digits += 1
            if exp_digits > 6:
                return 1
            i += 1
        if exp_digits == 0:
            return 1
    if i != n:
        return 1
    exponent = (-exponent if exp_negative else exponent) - fraction
    if not (-MAX_EXPONENT <= exponent <= MAX_EXPONENT):
        return 1
    dscale = -exponent if exponent < 0 else 0
    groups = 0
    weight = 0
    if count:
        zeros = exponent + 4 * ((dscale + 3) // 4)
        for k in range(zeros):
            digits[count + k] = 48
        count += zeros
        groups = (count + 3) // 4
        first = count - 4 * (groups - 1)  # digits in the first group
        k = 0
        for g in range(groups):
            group = 0
            while k < (first if g == 0 else first + 4 * g):
                group = group * 10 + (digits[k] - 48)
                k += 1
            values[g] = <unsigned short>group
        weight = groups - 1 - (dscale + 3) // 4
        while groups and values[groups - 1] == 0:
            groups -= 1
    p = out.reserve(12 + 2 * groups)
    _be32(p, <unsigned int>(8 + 2 * groups))
    _be16(p + 4, <unsigned int>groups)
    _be16(p + 6, <unsigned int>(<unsigned short>(<short>weight)))
    _be16(p + 8, 0x4000 if negative and groups else 0)
    _be16(p + 10, <unsigned int>dscale)
    for g in range(groups):
        _be16(p + 12 + 2 * g, values[g])
    out.used += 12 + 2 * groups
    return 0


cdef inline int _two(const unsigned char* s) noexcept:
    if not (48 <= s[0] <= 57 and 48 <= s[1] <= 57):
        return -1
    return (s[0] - 48) * 10 + (s[1] - 48)


cdef inline long long _days_from_civil(int y, int m, int d) noexcept:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    cdef int era, yoe, doy, doe
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return <long long>era * 146097 + doe - 719468


cdef int _timestamp(_Out out, object value) except -1:
    """PostgreSQL's ISO text of a timestamp: YYYY-MM-DD HH:MM:SS[.f{1,6}]."""
    cdef const unsigned char* s
    cdef Py_ssize_t n, i
    cdef int year, month, day, hour, minute, second, hi, lo, dim
    cdef long long micros = 0, scale = 100000, us
    cdef char* p
    if value is None:
        return _null(out)
    if type(value) is not str or not PyUnicode_IS_ASCII(value):
        return 1
    n = PyUnicode_GET_LENGTH(value)
    if n != 19 and not (21 <= n <= 26):
        return 1
    s = <const unsigned char*>PyUnicode_DATA(value)
    hi = _two(s)
    lo = _two(s + 2)
    month = _two(s + 5)
    day = _two(s + 8)
    hour = _two(s + 11)
    minute = _two(s + 14)
    second = _two(s + 17)
    if (
        hi < 0 or lo < 0 or month < 0 or day < 0 or hour < 0 or minute < 0 or second < 0
        or s[4] != 45 or s[7] != 45 or s[10] != 32 or s[13] != 58 or s[16] != 58
    ):
        return 1
    year = hi * 100 + lo
    if n > 19:
        if s[19] != 46:
            return 1
        for i in range(20, n):
            if not (48 <= s[i] <= 57):
                return 1
            micros += (s[i] - 48) * scale
            scale //= 10
    if year < 1 or not (1 <= month <= 12) or hour > 23 or minute > 59 or second > 59:
        return 1
    if month == 2:
        dim = 29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28
    else:
        dim = 30 if month in (4, 6, 9, 11) else 31
    if not (1 <= day <= dim):
        return 1
    us = (
        (_days_from_civil(year, month, day) - 10957) * 86400
        + hour * 3600 + minute * 60 + second
    ) * 1000000 + micros
    p = out.reserve(12)
    _be32(p, 8)
    _be64(p + 4, <unsigned long long>us)
    out.used += 12
    return 0


cdef int _commit(char* tail, object chunk) except -1:
    """source_committed_at and source_lsn into `tail` (24 bytes); 1 when out of range."""
    cdef long long us
    cdef unsigned long long lsn
    commit_us = chunk.commit_time_us
    end_lsn = chunk.end_lsn
    if type(commit_us) is not int or type(end_lsn) is not int:
        return 1
    try:
        us = commit_us
        lsn = end_lsn  # raises for a negative one, or one of 2**64 and more
    except OverflowError:
        return 1
    if not (MIN_TIMESTAMP_US <= us <= MAX_TIMESTAMP_US):
        return 1
    _be32(tail, 8)
    _be64(tail + 4, <unsigned long long>us)
    _be32(tail + 12, 8)
    _be64(tail + 16, lsn)
    return 0


cdef int _row(_Out out, tuple row) except -1:
    if len(row) != CANONICAL_FIELDS:
        return 1
    return (
        _uuid(out, row[0]) or _uuid(out, row[1])
        or _text(out, row[2], False) or _text(out, row[3], False)
        or _text(out, row[4], False) or _text(out, row[5], False)
        or _text(out, row[6], False) or _numeric(out, row[7])
        or _text(out, row[8], False) or _text(out, row[9], False)
        or _text(out, row[10], False) or _text(out, row[11], False)
        or _int4(out, row[12]) or _text(out, row[13], True)
        or _timestamp(out, row[14])
    )


def encode_transactions(list chunks, object txn_kind, bytearray buf):
    """`copy_binary.encode_transactions`' loop into the empty `buf`: True when written
    (`buf` stays empty without rows), False where the pure code returns None."""
    cdef _Out out = _Out(buf)
    cdef char tail[24]
    cdef char* p
    cdef Py_ssize_t rows = 0
    out.write_raw(HEADER, HEADER_SIZE)
    for chunk in chunks:
        if chunk.end_lsn is None or chunk.kind != txn_kind or not chunk.canonical:
            continue
        if _commit(tail, chunk):
            return False
        for row in chunk.canonical:
            if not isinstance(row, tuple):
                return False
            p = out.reserve(2)
            _be16(p, FIELDS)
            out.used += 2
            if _row(out, <tuple>row):
                return False
            out.write_raw(tail, 24)
            rows += 1
    if rows:
        out.write_raw(b"\xff\xff", 2)
    else:
        out.used = 0
    out.finish()
    return True
