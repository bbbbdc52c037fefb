# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True
"""The fast path's view of a JSON payload (`Fields`), from orjson's dict or read
straight from the text.

`scan_payload` reads an ASCII payload without building a dict: one strict pass over
the JSON grammar, keeping only the keys the three families use. Short strings come
from an intern table keyed by their bytes, so a status or currency seen before is the
same str object, hash already computed, and costs no allocation. It accepts a subset of
JSON and returns None for anything outside it (an escape, a duplicate known key, an
array, a nested object other than `amount_details`, a float with an exponent, ...):
the caller then parses with orjson, so the scanner can only be narrower, never
different. Floats are kept as literal spans: the caller turns the common ones into
exact amounts without a binary float round trip, and hands the others back."""

cimport cython
from libc.string cimport memcmp

from streamer._speedups._chars cimport PyUnicode_DATA, PyUnicode_GET_LENGTH, PyUnicode_IS_ASCII
from streamer._speedups._intern cimport intern_ascii

cdef object _MISSING = object()
cdef Py_ssize_t MAX_NUMBER_LENGTH = 300  # below 1e300: no double overflows


@cython.freelist(8)
cdef class Fields:
    def __cinit__(self):
        self.type_ = self.content = self.amt = self.p_id = self.provider = None
        self.exec_ms = self.st_code = self.server_txt = self.status = None
        self.card_country = self.origin_iso = self.currency = None
        self.details_value = self.details_currency = None


cdef Fields fields_from_dict(dict data):
    """The view of an orjson dict: `data.get` of each key."""
    cdef Fields f = Fields()
    f.type_ = data.get("type")
    f.content = data.get("content")
    f.amt = data.get("amt")
    f.has_amt = f.amt is not None or "amt" in data
    details = data.get("amount_details", _MISSING)
    f.has_details = details is not _MISSING
    if type(details) is dict:
        f.details_is_dict = True
        f.details_value = (<dict>details).get("value")
        f.details_currency = (<dict>details).get("currency")
    f.p_id = data.get("p_id")
    f.provider = data.get("provider")
    f.exec_ms = data.get("exec_ms")
    f.st_code = data.get("st_code")
    f.server_txt = data.get("server_txt")
    f.status = data.get("status")
    f.card_country = data.get("card_country")
    f.origin_iso = data.get("origin_iso")
    f.currency = data.get("currency")
    return f


# -- the scanner ---------------------------------------------------------------------------
cdef enum Kind:
    BAD = 0
    STRING = 1
    INTEGER = 2
    FLOAT = 3
    OTHER = 4  # true, false, null
    OBJECT = 5


cdef struct Cursor:
    const char* p
    Py_ssize_t n
    Py_ssize_t i
    Py_ssize_t start  # of the last value read (a string: after its quote)
    Py_ssize_t length


cdef inline void _space(Cursor* c):
    cdef char ch
    while c.i < c.n:
        ch = c.p[c.i]
        if ch != 0x20 and ch != 0x0A and ch != 0x09 and ch != 0x0D:
            return
        c.i += 1


cdef bint _string_span(Cursor* c):
    """A string with no escape and no control character; `c.i` is at its quote."""
    cdef unsigned char ch
    c.i += 1
    c.start = c.i
    while c.i < c.n:
        ch = <unsigned char>c.p[c.i]
        if ch == 0x22:
            c.length = c.i - c.start
            c.i += 1
            return True
        if ch == 0x5C or ch < 0x20:
            return False
        c.i += 1
    return False


cdef inline bint _digit(Cursor* c):
    return c.i < c.n and 0x30 <= c.p[c.i] <= 0x39


cdef Kind _number(Cursor* c):
    """A JSON number: INTEGER, FLOAT (a fraction, no exponent), or BAD."""
    c.start = c.i
    if c.i < c.n and c.p[c.i] == 0x2D:
        c.i += 1
    if not _digit(c):
        return BAD
    if c.p[c.i] == 0x30:
        c.i += 1
    else:
        while _digit(c):
            c.i += 1
    kind = INTEGER
    if c.i < c.n and c.p[c.i] == 0x2E:
        c.i += 1
        if not _digit(c):
            return BAD
        while _digit(c):
            c.i += 1
        kind = FLOAT
    if c.i < c.n and (c.p[c.i] == 0x65 or c.p[c.i] == 0x45):
        return BAD  # an exponent: orjson decides
    c.length = c.i - c.start
    if c.length > MAX_NUMBER_LENGTH:
        return BAD  # it may overflow a double, which orjson refuses: let it say so
    return kind


cdef Kind _word(Cursor* c):
    cdef const char* at = c.p + c.i
    cdef Py_ssize_t left = c.n - c.i
    if left >= 4 and (memcmp(at, b"true", 4) == 0 or memcmp(at, b"null", 4) == 0):
        c.i += 4
        return OTHER
    if left >= 5 and memcmp(at, b"false", 5) == 0:
        c.i += 5
        return OTHER
    return BAD


cdef object _simple(Cursor* c, Kind kind):
    """The Python value of a STRING, INTEGER or OTHER just read."""
    cdef const char* at
    cdef long long value = 0
    cdef Py_ssize_t k
    cdef bint negative
    if kind == STRING:
        return intern_ascii(c.p + c.start, c.length)
    if kind == INTEGER:
        at = c.p + c.start
        negative = at[0] == 0x2D
        if c.length - negative > 18:
            raise OverflowError  # a long integer: orjson decides
        for k in range(negative, c.length):
            value = value * 10 + (at[k] - 0x30)
        return -value if negative else value
    if c.p[c.i - 1] == 0x65:  # true / false (c.i is past the word)
        return c.p[c.i - 2] == 0x75
    return None


cdef enum Key:
    UNKNOWN = 0
    K_TYPE, K_CONTENT, K_AMT, K_P_ID, K_PROVIDER, K_EXEC_MS, K_ST_CODE, K_SERVER_TXT
    K_STATUS, K_CARD_COUNTRY, K_ORIGIN_ISO, K_CURRENCY, K_AMOUNT_DETAILS


cdef inline bint _is(const char* at, Py_ssize_t n, const char* name, Py_ssize_t size):
    return n == size and memcmp(at, name, size) == 0


cdef Key _key(const char* at, Py_ssize_t n):
    if n == 3:
        return K_AMT if _is(at, n, b"amt", 3) else UNKNOWN
    if n == 4:
        if _is(at, n, b"type", 4):
            return K_TYPE
        return K_P_ID if _is(at, n, b"p_id", 4) else UNKNOWN
    if n == 6:
        return K_STATUS if _is(at, n, b"status", 6) else UNKNOWN
    if n == 7:
        if _is(at, n, b"content", 7):
            return K_CONTENT
        if _is(at, n, b"exec_ms", 7):
            return K_EXEC_MS
        return K_ST_CODE if _is(at, n, b"st_code", 7) else UNKNOWN
    if n == 8:
        if _is(at, n, b"provider", 8):
            return K_PROVIDER
        return K_CURRENCY if _is(at, n, b"currency", 8) else UNKNOWN
    if n == 10:
        if _is(at, n, b"server_txt", 10):
            return K_SERVER_TXT
        return K_ORIGIN_ISO if _is(at, n, b"origin_iso", 10) else UNKNOWN
    if n == 12:
        return K_CARD_COUNTRY if _is(at, n, b"card_country", 12) else UNKNOWN
    if n == 14:
        return K_AMOUNT_DETAILS if _is(at, n, b"amount_details", 14) else UNKNOWN
    return UNKNOWN


cdef Kind _value(Cursor* c):
    """Read a string, number or word at `c.i` (nested structures are not read here)."""
    cdef char ch
    if c.i >= c.n:
        return BAD
    ch = c.p[c.i]
    if ch == 0x22:
        return STRING if _string_span(c) else BAD
    if ch == 0x2D or 0x30 <= ch <= 0x39:
        return _number(c)
    if ch == 0x74 or ch == 0x66 or ch == 0x6E:
        return _word(c)
    return BAD


cdef bint _members(Cursor* c, Fields f, bint nested) except -1:
    """The members of an object whose "{" is at `c.i`, up to its "}" (assigned to `f`:
    the payload's keys, or with `nested` those of `amount_details`)."""
    cdef unsigned int seen = 0, bit
    cdef Py_ssize_t key_start, key_length
    cdef Key key
    cdef Kind kind
    c.i += 1
    _space(c)
    if c.i < c.n and c.p[c.i] == 0x7D:
        c.i += 1
        return True
    while True:
        if c.i >= c.n or c.p[c.i] != 0x22 or not _string_span(c):
            return False
        key_start, key_length = c.start, c.length
        _space(c)
        if c.i >= c.n or c.p[c.i] != 0x3A:
            return False
        c.i += 1
        _space(c)
        if nested:
            if _is(c.p + key_start, key_length, b"value", 5):
                key = K_AMT
            elif _is(c.p + key_start, key_length, b"currency", 8):
                key = K_CURRENCY
            else:
                key = UNKNOWN
        else:
            key = _key(c.p + key_start, key_length)
        if key != UNKNOWN:
            bit = 1u << <int>key
            if seen & bit:
                return False  # a duplicate: orjson keeps the last, let it decide
            seen |= bit
        if key == K_AMOUNT_DETAILS and c.i < c.n and c.p[c.i] == 0x7B:
            f.has_details = f.details_is_dict = True
            if not _members(c, f, True):
                return False
        else:
            kind = _value(c)
            if kind == BAD or not _assign(c, f, key, kind, nested):
                return False
        _space(c)
        if c.i >= c.n:
            return False
        if c.p[c.i] == 0x2C:
            c.i += 1
            _space(c)
            continue
        if c.p[c.i] == 0x7D:
            c.i += 1
            return True
        return False


cdef bint _assign(Cursor* c, Fields f, Key key, Kind kind, bint nested) except -1:
    if key == UNKNOWN:
        return True
    if kind == FLOAT:  # only an amount may be a float here; its literal is kept
        if key != K_AMT:
            return False
        if nested:
            f.details_start, f.details_len = c.start, c.length
        else:
            f.has_amt = True
            f.amt_start, f.amt_len = c.start, c.length
        return True
    value = _simple(c, kind)
    if nested:
        if key == K_AMT:
            f.details_value = value
        else:
            f.details_currency = value
        return True
    if key == K_TYPE:
        f.type_ = value
    elif key == K_CONTENT:
        f.content = value
    elif key == K_AMT:
        f.has_amt = True
        f.amt = value
    elif key == K_P_ID:
        f.p_id = value
    elif key == K_PROVIDER:
        f.provider = value
    elif key == K_EXEC_MS:
        f.exec_ms = value
    elif key == K_ST_CODE:
        f.st_code = value
    elif key == K_SERVER_TXT:
        f.server_txt = value
    elif key == K_STATUS:
        f.status = value
    elif key == K_CARD_COUNTRY:
        f.card_country = value
    elif key == K_ORIGIN_ISO:
        f.origin_iso = value
    elif key == K_CURRENCY:
        f.currency = value
    elif key == K_AMOUNT_DETAILS:
        f.has_details = True  # present, not an object: the family is told apart by it
    return True


cdef Fields scan_payload(str text):
    """The view of an ASCII JSON object payload, or None (orjson decides)."""
    cdef Cursor c
    cdef Fields f
    if not PyUnicode_IS_ASCII(text):
        return None
    c.p = <const char*>PyUnicode_DATA(text)
    c.n = PyUnicode_GET_LENGTH(text)
    c.i = 0
    _space(&c)
    if c.i >= c.n or c.p[c.i] != 0x7B:
        return None
    f = Fields()
    try:
        if not _members(&c, f, False):
            return None
    except OverflowError:
        return None
    _space(&c)
    return f if c.i == c.n else None
