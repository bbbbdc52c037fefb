# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True
"""The compiled twin of `normalize.pipeline.normalize` (see `streamer/_speedups/__init__.py`).

Only the common, valid shapes of the three payload families are handled here; anything
else (every rejection, every unusual type, anything the pure code re-checks with its
exact parser) is handed to the pure function, so rejection reasons and details are the
pure code's by construction. Every check below errs on the side of handing over."""

import orjson

from streamer._speedups._chars cimport (
    PyUnicode_DATA, PyUnicode_GET_LENGTH,
    has_nul_escape, long_number_run, storable,
)
from streamer._speedups._amounts cimport exact_needed, float_literal, parse_amount
from streamer._speedups._json cimport Fields, fields_from_dict, scan_payload
from streamer._speedups._records cimport is_record_type, new_record, put
from streamer._speedups._xml cimport xml_children

cdef object _loads = orjson.loads
cdef object _JSONDecodeError = orjson.JSONDecodeError
cdef long long INT32_MAX = 2147483647
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

    if not (is_record_type(canonical, 15) and is_record_type(source_row, 5)):
        raise TypeError("the record types are not the NamedTuples this module builds")
    SourceRow, Canonical = source_row, canonical
    _CURRENCIES, _COUNTRIES = codes._CURRENCIES, codes._COUNTRIES
    _classify, _stripe_status = status.classify, stripe._status
    _status_text, _processing_ms = fields.status_text, fields.processing_ms
    _parse_merchant = parse_merchant
    XML_LIMIT = xml_blob.MAX_XML_BYTES
    _pure_normalize = pure_normalize


cdef dict _status_cache = {}
cdef dict _stripe_cache = {}
cdef Py_ssize_t STATUS_CACHE_SIZE = 4096
cdef Py_ssize_t CACHED_KEY_LENGTH = 64  # longer texts are not kept (payloads choose them)
cdef Py_ssize_t CACHED_MERCHANT_LENGTH = 512


cdef object _provider(Fields f):
    """`fields.provider_of`, or None when the pure code would reject the row."""
    value = f.provider
    if value is None:
        value = f.p_id
        if value is None:
            return "unknown"
    if type(value) is not str:
        return None
    return _normalized_provider(value)


cdef dict _provider_cache = {}
cdef dict _merchant_cache = {}


cdef object _merchant(object text):
    """`merchant.parse_merchant(text)`, or None where it rejects (the pure code then
    says why). Memoized here: the lru_cache wrapper costs several times a dict probe."""
    result = _merchant_cache.get(text)
    if result is None:
        try:
            result = _parse_merchant(text)
        except Exception:
            return None
        if len(_merchant_cache) < STATUS_CACHE_SIZE and len(text) <= CACHED_MERCHANT_LENGTH:
            _merchant_cache[text] = result
    return result


cdef object _normalized_provider(object value):
    """`fields.normalize_provider`, memoized (a handful of spellings repeat)."""
    result = _provider_cache.get(value)
    if result is None:
        result = (<str>value).strip().lower() or "unknown"
        if len(_provider_cache) < STATUS_CACHE_SIZE and len(value) <= CACHED_KEY_LENGTH:
            _provider_cache[value] = result
    return result


cdef inline bint _short(object value):
    """Whether a cache may keep this key: a short str, or anything else (None, an int)."""
    return type(value) is not str or len(<str>value) <= CACHED_KEY_LENGTH


cdef object _classified(object text):
    """`status.classify(text)`, memoized (the texts repeat; the function is pure)."""
    result = _status_cache.get(text)
    if result is None:
        result = _classify(text)
        if len(_status_cache) < STATUS_CACHE_SIZE and _short(text):
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
            if len(_stripe_cache) < STATUS_CACHE_SIZE and _short(text) and _short(st_code):
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


cdef object _finish(
    tuple row, str text, tuple fields, tuple amount, object currency_value,
    object country_value
):
    """The checks `pipeline._normalize` makes after `extract`, for a JSON-family or XML
    row the fast path located; None when any of them would reject (or re-parse)."""
    # fields: (provider, source_format, status, provider_status, processing_ms, merchant_ref)
    cdef Py_ssize_t digits
    merchant = _merchant(row[3])
    if merchant is None:
        return None
    merchant_id = (<tuple>merchant)[0]
    merchant_name = (<tuple>merchant)[1]
    ref = fields[5]
    if ref is not None and (<str>ref).strip() != (<str>merchant_id).strip():
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
    if not (storable(source_id) and storable(transactional_id) and storable(merchant_id)):
        return None
    if merchant_name is not None and not storable(merchant_name):
        return None
    if not storable(fields[0]):
        return None
    if fields[3] is not None and not storable(fields[3]):
        return None
    if created_at is not None and (type(created_at) is not str or not storable(created_at)):
        return None
    record = new_record(Canonical, 15)
    put(record, 0, source_id)
    put(record, 1, transactional_id)
    put(record, 2, merchant_id)
    put(record, 3, merchant_name)
    put(record, 4, (<tuple>merchant)[2])
    put(record, 5, fields[0])
    put(record, 6, fields[1])
    put(record, 7, amount[0])
    put(record, 8, currency)
    put(record, 9, fields[2])
    put(record, 10, fields[3])
    put(record, 11, country)
    put(record, 12, fields[4])
    put(record, 13, text)
    put(record, 14, created_at)
    return record


cdef object _fast(tuple row):
    cdef Fields f
    text = row[2]
    if type(text) is not str or type(row[3]) is not str:
        return None
    f = scan_payload(<str>text)  # reads no escape, so no "\u0000" either
    if f is None:
        if has_nul_escape(text):
            return None
        try:
            data = _loads(text)
        except _JSONDecodeError:
            return None  # the pure code's exact parser decides
        if type(data) is not dict:
            return None
        f = fields_from_dict(<dict>data)
    kind = f.type_
    if type(kind) is str and kind == "XML_BLOB":
        return _xml(row, text, f)
    if f.has_details:
        return _payu(row, text, f)
    if f.has_amt:
        return _stripe_row(row, text, f)
    return None


cdef tuple _amount_of(object value, Py_ssize_t start, Py_ssize_t length, str text):
    """The amount of a family's value: a float literal the scanner kept (its span), or
    the value itself; None where the pure code decides."""
    if length:
        if long_number_run(text):  # needs_exact: the pure code re-reads it exactly
            return None
        return float_literal(<const char*>PyUnicode_DATA(text) + start, length)
    if exact_needed(value, text):
        return None
    return parse_amount(value)


cdef object _status_of(object preferred, object fallback):
    """The provider's status text: the family's preferred key, else the other one
    (`fields.status_text` for a value that is not a string)."""
    status = preferred if preferred is not None else fallback
    return status if type(status) is str else _status_text(status)


cdef object _payu(tuple row, str text, Fields f):
    if not f.details_is_dict:
        return None
    currency = f.details_currency
    if currency is None:
        currency = f.currency
    provider_status = _status_of(f.status, f.server_txt)
    country = f.origin_iso if f.origin_iso is not None else f.card_country
    provider = _provider(f)
    if provider is None:
        return None
    amount = _amount_of(f.details_value, f.details_start, f.details_len, text)
    if amount is None:
        return None
    fields = (
        provider, "json", _classified(provider_status), provider_status, _ms(f.exec_ms), None,
    )
    return _finish(row, text, fields, amount, currency, country)


cdef object _stripe_row(tuple row, str text, Fields f):
    provider_status = _status_of(f.server_txt, f.status)
    country = f.card_country if f.card_country is not None else f.origin_iso
    provider = _provider(f)
    if provider is None:
        return None
    amount = _amount_of(f.amt, f.amt_start, f.amt_len, text)
    if amount is None:
        return None
    fields = (
        provider, "json", _stripe_classified(provider_status, f.st_code), provider_status,
        _ms(f.exec_ms), None,
    )
    return _finish(row, text, fields, amount, f.currency, country)


cdef object _xml(tuple row, str text, Fields f):
    content = f.content
    if type(content) is not str:
        return None
    # the size cap (a fast-path document is ASCII-or-BMP; the pure test decides near it)
    if PyUnicode_GET_LENGTH(content) * 4 > XML_LIMIT:
        return None
    values = xml_children(<str>content)
    if values is None:
        return None
    amount = parse_amount((<dict>values).get("Val"))
    if amount is None:
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
    return _finish(row, text, fields, amount, currency, (<dict>values).get("Org"))


cdef object normalize_row(object row):
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


def normalize(row):
    """`normalize_row` for Python callers."""
    return normalize_row(row)
