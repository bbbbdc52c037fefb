# cython: language_level=3
"""Character-level helpers shared by the compiled modules (inlined where cimported).

The CPython accessors read a str's code points in place, with no copy; the scans are the
pure code's tests (`normalize.text.is_storable`, `json_payload.needs_exact`) over them."""

from libc.string cimport memchr, memcmp

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    int PyUnicode_KIND(object)
    void* PyUnicode_DATA(object)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index)
    const char* PyUnicode_AsUTF8AndSize(object, Py_ssize_t*) except NULL


cdef inline bint storable(object text):
    """`text.is_storable`: no NUL, no lone surrogate."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), i
    cdef int kind
    cdef void* data = PyUnicode_DATA(text)
    cdef Py_UCS4 c
    if PyUnicode_IS_ASCII(text):
        return memchr(data, 0, n) == NULL
    kind = PyUnicode_KIND(text)
    for i in range(n):
        c = PyUnicode_READ(kind, data, i)
        if c == 0 or (0xD800 <= c <= 0xDFFF):
            return False
    return True


cdef inline bint long_number_run(object text):
    """A run of 16 or more characters of `0-9.` (json_payload.needs_exact's test)."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), i, run = 0
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef const unsigned char* ascii
    cdef Py_UCS4 c
    if kind == 1:  # one byte a code point: the common case, scanned as bytes
        ascii = <const unsigned char*>data
        for i in range(n):
            if (0x30 <= ascii[i] <= 0x39) or ascii[i] == 0x2E:
                run += 1
                if run >= 16:
                    return True
            else:
                run = 0
        return False
    for i in range(n):
        c = PyUnicode_READ(kind, data, i)
        if (0x30 <= c <= 0x39) or c == 0x2E:
            run += 1
            if run >= 16:
                return True
        else:
            run = 0
    return False


cdef inline bint has_nul_escape(object text):
    """`"\\u0000" in text` (the JSON escape of NUL, which no column may hold)."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    cdef const char* start
    cdef const char* end
    cdef const char* hit
    if PyUnicode_KIND(text) != 1:
        return "\\u0000" in text
    start = <const char*>PyUnicode_DATA(text)
    end = start + n
    while True:
        hit = <const char*>memchr(start, 0x5C, end - start)
        if hit == NULL or end - hit < 6:
            return False
        if memcmp(hit + 1, b"u0000", 5) == 0:
            return True
        start = hit + 1
