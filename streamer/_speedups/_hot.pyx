# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True, embedsignature=False
"""Compiled twins of the per-row hot path (see `streamer/_speedups/__init__.py`).

Each function here is an optimisation of a pure-Python function, which stays the
specification:

- `RowBuilder`: `pgoutput.relations._row_builder`'s `build` (`decode_insert_columns`
  plus the `SourceRow`), byte for byte the same walk, the same errors in the same order;
- `normalize`: `normalize.pipeline.normalize`. Only the common, valid shapes of the JSON
  families and of XML blobs are handled here; anything else (every rejection, every
  unusual type, anything the pure code re-checks with its exact parser) is handed to the
  pure function, so rejection reasons and details are the pure code's by construction;
- `format_rows`: psycopg's `format_row_text` of `row + tail` for rows of str / None /
  int / finite Decimal; any other row is formatted by psycopg itself.

Untrusted bytes are only read within bounds checked against the buffer length; every
failure is a Python exception, never a crash.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdio cimport snprintf
from libc.string cimport memchr, memcpy, strcspn

import orjson
from decimal import Decimal

from streamer.errors import ProtocolError

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    int PyUnicode_KIND(object)
    void* PyUnicode_DATA(object)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index)
    const char* PyUnicode_AsUTF8AndSize(object, Py_ssize_t*) except NULL

cdef object _tuple_new = tuple.__new__
cdef object _loads = orjson.loads
cdef object _JSONDecodeError = orjson.JSONDecodeError
cdef object _Decimal = Decimal
cdef long long INT32_MAX = 2147483647
cdef long long INTEGER_LIMIT = 1000000000000000000  # 10**18
cdef Py_ssize_t MAX_INTEGER_DIGITS = 18
cdef Py_ssize_t MAX_FRACTION_DIGITS = 32

# Bound by `bind` (from `normalize.pipeline`, once its modules exist: importing them
# here would import `streamer.normalize`, which imports this module).
cdef object _pure_normalize = None
cdef object SourceRow = None
cdef object Canonical = None
cdef dict _CURRENCIES = None
cdef dict _COUNTRIES = None
cdef object _classify = None
cdef object _stripe_status = None
cdef object _status_text = None
cdef object _processing_ms = None
cdef object _parse_merchant = None
cdef Py_ssize_t XML_LIMIT = 0


def bind(pure_normalize):
    """Give the module the pure normalizer it hands the uncommon rows to, and the
    tables and helpers of the pure modules it shares."""
    global _pure_normalize, SourceRow, Canonical, _CURRENCIES, _COUNTRIES, _classify
    global _stripe_status, _status_text, _processing_ms, _parse_merchant, XML_LIMIT
    from streamer.normalize import codes, fields, status, stripe, xml_blob
    from streamer.normalize.merchant import parse_merchant
    from streamer.normalize.records import Canonical as canonical, SourceRow as source_row

    SourceRow, Canonical = source_row, canonical
    _CURRENCIES, _COUNTRIES = codes._CURRENCIES, codes._COUNTRIES
    _classify, _stripe_status = status.classify, stripe._status
    _status_text, _processing_ms = fields.status_text, fields.processing_ms
    _parse_merchant = parse_merchant
    XML_LIMIT = xml_blob.MAX_XML_BYTES
    _pure_normalize = pure_normalize


# -- decoding: Insert TupleData -> SourceRow ------------------------------------------
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
        return _tuple_new(
            SourceRow,
            (
                o0 or "",
                o1 or "",
                o2 if o2 is not None else "null",
                o3 if o3 is not None else "null",
                o4,
            ),
        )


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
                record = normalizer(row)
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


# -- normalizing: the common valid shapes, else the pure function ----------------------
cdef bint _storable(object text):
    """`text.is_storable`: no NUL, no lone surrogate."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), i
    cdef int kind
    cdef void* data
    cdef Py_UCS4 c
    data = PyUnicode_DATA(text)
    if PyUnicode_IS_ASCII(text):
        return memchr(data, 0, n) == NULL
    kind = PyUnicode_KIND(text)
    for i in range(n):
        c = PyUnicode_READ(kind, data, i)
        if c == 0 or (0xD800 <= c <= 0xDFFF):
            return False
    return True


cdef bint _long_number_run(object text):
    """A run of 16 or more characters of `0-9.` (json_payload.needs_exact's test)."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), i, run = 0
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef Py_UCS4 c
    for i in range(n):
        c = PyUnicode_READ(kind, data, i)
        if (0x30 <= c <= 0x39) or c == 0x2E:
            run += 1
            if run >= 16:
                return True
        else:
            run = 0
    return False


cdef bint _has_nul_escape(object text):
    return "\\u0000" in text


cdef dict _status_cache = {}
cdef dict _stripe_cache = {}
cdef Py_ssize_t STATUS_CACHE_SIZE = 4096


cdef object _provider(dict data):
    """`fields.provider_of`, or None when the pure code would reject the row."""
    value = data.get("provider")
    if value is None:
        value = data.get("p_id")
        if value is None:
            return "unknown"
    if type(value) is not str:
        return None
    return _normalized_provider(value)


cdef dict _provider_cache = {}


cdef object _normalized_provider(object value):
    """`fields.normalize_provider`, memoized (a handful of spellings repeat)."""
    result = _provider_cache.get(value)
    if result is None:
        result = (<str>value).strip().lower() or "unknown"
        if len(_provider_cache) < STATUS_CACHE_SIZE:
            _provider_cache[value] = result
    return result




cdef object _classified(object text):
    """`status.classify(text)`, memoized (the texts repeat; the function is pure)."""
    result = _status_cache.get(text)
    if result is None:
        result = _classify(text)
        if len(_status_cache) < STATUS_CACHE_SIZE:
            _status_cache[text] = result
    return result


cdef object _stripe_classified(object text, object st_code):
    """`stripe._status(text, st_code)`, memoized for exact int / str / None codes."""
    cdef object key
    if st_code is None or type(st_code) is int or type(st_code) is str:
        key = (text, st_code)
        result = _stripe_cache.get(key)
        if result is None:
            result = _stripe_status(text, st_code)
            if len(_stripe_cache) < STATUS_CACHE_SIZE:
                _stripe_cache[key] = result
        return result
    return _stripe_status(text, st_code)


cdef object _ms(object value):
    """`fields.processing_ms`."""
    cdef long long n
    if value is None:
        return None
    if type(value) is int:
        if value < 0 or value > INT32_MAX:
            return None
        return value
    return _processing_ms(value)


cdef tuple _amount(object value):
    """`amounts.parse_amount` for the common valid forms, or None (pure decides)."""
    cdef Py_ssize_t n, i, dot, int_digits, frac_digits, lead
    cdef int kind
    cdef void* data
    cdef Py_UCS4 c
    cdef double f
    if type(value) is float:
        f = value
        if 0.0 < f < 1e16:
            text = repr(value)
            if "e" in text:
                return None
            fraction = (<str>text).partition(".")[2]
            return (_Decimal(text), 0 if fraction == "0" else len(fraction))
        return None
    if type(value) is int:
        if value <= 0 or value >= INTEGER_LIMIT:  # 0: the pure code re-checks "-0"
            return None
        return (_Decimal(value), 0)
    if type(value) is str:
        # digits, optionally "." digits; no surrounding space (the pure code strips it)
        n = PyUnicode_GET_LENGTH(value)
        if n == 0 or not PyUnicode_IS_ASCII(value):
            return None
        kind = PyUnicode_KIND(value)
        data = PyUnicode_DATA(value)
        dot = -1
        for i in range(n):
            c = PyUnicode_READ(kind, data, i)
            if c == 0x2E:
                if dot >= 0:
                    return None
                dot = i
            elif not (0x30 <= c <= 0x39):
                return None
        if dot == 0 or dot == n - 1:
            return None
        int_digits = n if dot < 0 else dot
        lead = 0
        while lead < int_digits and PyUnicode_READ(kind, data, lead) == 0x30:
            lead += 1
        if int_digits - lead > MAX_INTEGER_DIGITS:
            return None
        frac_digits = 0
        if dot >= 0:
            i = n - 1
            while i > dot and PyUnicode_READ(kind, data, i) == 0x30:
                i -= 1
            frac_digits = i - dot
        return (_Decimal(value), frac_digits)
    return None


cdef object _finish(
    tuple row, str text, tuple fields, object amount_value, object currency_value,
    object country_value
):
    """The checks `pipeline._normalize` makes after `extract`, for a JSON-family or XML
    row the fast path located; None when any of them would reject (or re-parse)."""
    # fields: (provider, source_format, status, provider_status, processing_ms, merchant_ref)
    cdef Py_ssize_t digits
    try:
        merchant = _parse_merchant(row[3])
    except Exception:
        return None
    merchant_id = (<tuple>merchant)[0]
    merchant_name = (<tuple>merchant)[1]
    ref = fields[5]
    if ref is not None and (<str>ref).strip() != (<str>merchant_id).strip():
        return None
    amount = _amount(amount_value)
    if amount is None:
        return None
    digits = amount[1]
    if currency_value is None:
        currency = None
        if digits > MAX_FRACTION_DIGITS:
            return None
    else:
        if type(currency_value) is not str:
            return None
        info = _CURRENCIES.get(currency_value)
        if info is None:
            return None
        currency = (<tuple>info)[0]
        minor = (<tuple>info)[1]
        if minor is None:
            if digits > MAX_FRACTION_DIGITS:
                return None
        elif digits > <Py_ssize_t>minor:
            return None
    if country_value is None:
        country = None
    else:
        if type(country_value) is not str:
            return None
        country = _COUNTRIES.get(country_value)
        if country is None:
            return None
    source_id, transactional_id, created_at = row[0], row[1], row[4]
    if type(source_id) is not str or type(transactional_id) is not str:
        return None
    if not (_storable(source_id) and _storable(transactional_id) and _storable(merchant_id)):
        return None
    if merchant_name is not None and not _storable(merchant_name):
        return None
    if not _storable(fields[0]):
        return None
    if fields[3] is not None and not _storable(fields[3]):
        return None
    if created_at is not None and (type(created_at) is not str or not _storable(created_at)):
        return None
    return _tuple_new(
        Canonical,
        (
            source_id,
            transactional_id,
            merchant_id,
            merchant_name,
            (<tuple>merchant)[2],
            fields[0],
            fields[1],
            amount[0],
            currency,
            fields[2],
            fields[3],
            country,
            fields[4],
            text,
            created_at,
        ),
    )


cdef object _fast(tuple row):
    text = row[2]
    if type(text) is not str or type(row[3]) is not str:
        return None
    if _has_nul_escape(text):
        return None
    try:
        data = _loads(text)
    except _JSONDecodeError:
        return None  # the pure code's exact parser decides
    if type(data) is not dict:
        return None
    kind = (<dict>data).get("type")
    if type(kind) is str and kind == "XML_BLOB":
        return _xml(row, text, <dict>data)
    if "amount_details" in <dict>data:
        return _payu(row, text, <dict>data)
    if "amt" in <dict>data:
        return _stripe_row(row, text, <dict>data)
    return None


cdef object _exact_needed(object amount, str text):
    """`json_payload.needs_exact` (conservative: True sends the row to the pure code)."""
    if type(amount) is float:
        return amount == 0.0 or _long_number_run(text)
    if type(amount) is int:
        return amount == 0
    return False


cdef object _payu(tuple row, str text, dict data):
    details = data.get("amount_details")
    if type(details) is not dict:
        return None
    amount = (<dict>details).get("value")
    currency = (<dict>details).get("currency")
    if currency is None:
        currency = data.get("currency")
    provider_status = data.get("status")
    if provider_status is None:
        provider_status = data.get("server_txt")
    if type(provider_status) is not str:
        provider_status = _status_text(provider_status)
    country = data.get("origin_iso")
    if country is None:
        country = data.get("card_country")
    provider = _provider(data)
    if provider is None:
        return None
    if _exact_needed(amount, text):
        return None
    fields = (
        provider, "json", _classified(provider_status), provider_status,
        _ms(data.get("exec_ms")), None,
    )
    return _finish(row, text, fields, amount, currency, country)


cdef object _stripe_row(tuple row, str text, dict data):
    provider_status = data.get("server_txt")
    if provider_status is None:
        provider_status = data.get("status")
    if type(provider_status) is not str:
        provider_status = _status_text(provider_status)
    country = data.get("card_country")
    if country is None:
        country = data.get("origin_iso")
    provider = _provider(data)
    if provider is None:
        return None
    amount = data.get("amt")
    if _exact_needed(amount, text):
        return None
    fields = (
        provider, "json", _stripe_classified(provider_status, data.get("st_code")),
        provider_status, _ms(data.get("exec_ms")), None,
    )
    return _finish(row, text, fields, amount, data.get("currency"), country)


# -- XML blobs: a strict subset parsed here, everything else by the pure code ----------
cdef frozenset _KNOWN = frozenset({"MerchID", "Org", "Val", "Stat", "Cur", "Currency", "Provider"})


cdef inline bint _name_char(Py_UCS4 c, bint first):
    if (0x41 <= c <= 0x5A) or (0x61 <= c <= 0x7A) or c == 0x5F:
        return True
    return not first and ((0x30 <= c <= 0x39) or c == 0x2D or c == 0x2E)


cdef inline bint _xml_space(Py_UCS4 c):
    return c == 0x20 or c == 0x09 or c == 0x0A


cdef inline bint _text_char(Py_UCS4 c):
    """Character data this parser passes through unchanged (expat would too)."""
    if c < 0x20:
        return c == 0x09 or c == 0x0A
    if c == 0x3C or c == 0x26 or c == 0x3E:  # '<' '&' '>' (']]>' needs '>')
        return False
    if 0xD800 <= c <= 0xDFFF or c == 0xFFFE or c == 0xFFFF:
        return False
    return c < 0x110000


cdef dict _xml_children(str content):
    """`xml_blob._children` for documents of the form `<Tx>` (space) then children
    `<Name>text</Name>` (space) and `</Tx>` (space): ASCII names, no attributes, no
    markup other than those tags, no '&', '>', CR or control characters in the text, no
    known child twice. Anything else returns None (the pure parser decides)."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(content), i = 0, start, name_end, text_start
    cdef Py_ssize_t text_end, a, b
    cdef int kind = PyUnicode_KIND(content)
    cdef void* data = PyUnicode_DATA(content)
    cdef Py_UCS4 c
    cdef dict values = {}
    cdef set seen = set()
    # "<Tx>"
    if n < 9:
        return None
    if not (
        PyUnicode_READ(kind, data, 0) == 0x3C and PyUnicode_READ(kind, data, 1) == 0x54
        and PyUnicode_READ(kind, data, 2) == 0x78 and PyUnicode_READ(kind, data, 3) == 0x3E
    ):
        return None
    i = 4
    while True:
        while i < n and _xml_space(PyUnicode_READ(kind, data, i)):
            i += 1
        if i >= n or PyUnicode_READ(kind, data, i) != 0x3C:
            return None
        i += 1
        if i < n and PyUnicode_READ(kind, data, i) == 0x2F:  # "</Tx>" then space only
            if not (
                i + 3 < n and PyUnicode_READ(kind, data, i + 1) == 0x54
                and PyUnicode_READ(kind, data, i + 2) == 0x78
                and PyUnicode_READ(kind, data, i + 3) == 0x3E
            ):
                return None
            i += 4
            while i < n and _xml_space(PyUnicode_READ(kind, data, i)):
                i += 1
            return values if i == n else None
        start = i
        while i < n and _name_char(PyUnicode_READ(kind, data, i), i == start):
            i += 1
        if i == start or i >= n or PyUnicode_READ(kind, data, i) != 0x3E:
            return None
        name_end = i
        i += 1
        text_start = i
        while i < n and _text_char(PyUnicode_READ(kind, data, i)):
            i += 1
        text_end = i
        # "</" same name ">"
        if i + 2 + (name_end - start) >= n:
            return None
        if PyUnicode_READ(kind, data, i) != 0x3C or PyUnicode_READ(kind, data, i + 1) != 0x2F:
            return None
        i += 2
        for a in range(start, name_end):
            if PyUnicode_READ(kind, data, i) != PyUnicode_READ(kind, data, a):
                return None
            i += 1
        if PyUnicode_READ(kind, data, i) != 0x3E:
            return None
        i += 1
        tag = content[start:name_end]
        if tag not in _KNOWN:
            continue
        if tag in seen:
            return None
        seen.add(tag)
        a, b = text_start, text_end
        while a < b and _xml_space(PyUnicode_READ(kind, data, a)):
            a += 1
        while b > a and _xml_space(PyUnicode_READ(kind, data, b - 1)):
            b -= 1
        if b > a:
            values[tag] = content[a:b]


cdef object _xml(tuple row, str text, dict data):
    content = data.get("content")
    if type(content) is not str:
        return None
    # the size cap (a fast-path document is ASCII-or-BMP; the pure test decides near it)
    if PyUnicode_GET_LENGTH(content) * 4 > XML_LIMIT:
        return None
    values = _xml_children(<str>content)
    if values is None:
        return None
    provider = (<dict>values).get("Provider")
    stat = (<dict>values).get("Stat")
    currency = (<dict>values).get("Cur")
    if currency is None:
        currency = (<dict>values).get("Currency")
    if provider is None:
        provider = "unknown"
    else:
        provider = _normalized_provider(provider)
    fields = (provider, "xml", _classified(stat), stat, None, (<dict>values).get("MerchID"))
    return _finish(row, text, fields, (<dict>values).get("Val"), currency,
                   (<dict>values).get("Org"))


def normalize(row):
    """`pipeline.normalize`: the fast path for common valid rows, else the pure code."""
    cdef object result = None
    if type(row) is SourceRow:
        try:
            result = _fast(<tuple>row)
        except Exception:
            result = None
    if result is None:
        return _pure_normalize(row)
    return result


# -- COPY text ---------------------------------------------------------------------------
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
