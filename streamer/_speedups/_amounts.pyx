# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True
"""Exact amounts for the fast path: `amounts.parse_amount` for the common valid forms,
as (Decimal, digits after the point); None wherever the pure code must decide."""

from cpython.unicode cimport PyUnicode_DecodeASCII
from decimal import Decimal

from streamer._speedups._chars cimport (
    PyUnicode_DATA, PyUnicode_GET_LENGTH, PyUnicode_IS_ASCII, PyUnicode_KIND, PyUnicode_READ,
    long_number_run,
)

cdef object _Decimal = Decimal
cdef long long INTEGER_LIMIT = 1000000000000000000  # 10**18
cdef Py_ssize_t MAX_INTEGER_DIGITS = 18
cdef Py_ssize_t FLOAT_DIGITS = 15  # DBL_DIG: decimals this long survive a double intact


cdef tuple float_literal(const char* p, Py_ssize_t n):
    """What `parse_amount(float(literal))` gives, for a JSON literal `[1-9][0-9]*.[0-9]+`
    of at most 15 significant digits; None otherwise.

    Why it is the same: such a decimal converts to a double and back unchanged, and no
    shorter decimal gives that double, so `repr` of the float is the literal without its
    trailing zeros (keeping ".0"), in positional notation (1 <= value < 1e15)."""
    cdef Py_ssize_t dot = 0, end = n, k
    cdef char text[40]
    if n > 32 or not (0x31 <= p[0] <= 0x39):
        return None
    while dot < n and p[dot] != 0x2E:
        dot += 1
    if dot >= n - 1:
        return None
    while end > dot + 1 and p[end - 1] == 0x30:
        end -= 1
    if dot + (end - dot - 1) > FLOAT_DIGITS:
        return None
    for k in range(end):
        text[k] = p[k]
    if end == dot + 1:  # "100.00" -> "100.0"
        text[end] = 0x30
        return (_Decimal(PyUnicode_DecodeASCII(text, end + 1, NULL)), 0)
    return (_Decimal(PyUnicode_DecodeASCII(text, end, NULL)), end - dot - 1)


cdef tuple parse_amount(object value):
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


cdef bint exact_needed(object amount, str text):
    """`json_payload.needs_exact` (conservative: True sends the row to the pure code)."""
    if type(amount) is float:
        return amount == 0.0 or long_number_run(text)
    if type(amount) is int:
        return amount == 0
    return False


