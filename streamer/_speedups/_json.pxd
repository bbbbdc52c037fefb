# cython: language_level=3

cdef class Fields:
    """What the fast path reads of a payload: each key `data.get(key)` would give
    (None when absent), whether "amt" / "amount_details" are present, and for the two
    amounts, when the scanner read them, the span of a float literal in the text."""
    cdef object type_, content, amt, p_id, provider, exec_ms, st_code, server_txt
    cdef object status, card_country, origin_iso, currency
    cdef object details_value, details_currency
    cdef bint has_amt, has_details, details_is_dict
    cdef Py_ssize_t amt_start, amt_len, details_start, details_len


cdef Fields fields_from_dict(dict data)
cdef Fields scan_payload(str text)
