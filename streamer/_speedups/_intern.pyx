# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Short ASCII strings by their bytes: the same str object for the same bytes.

The payload scanner (`_json`) makes its statuses, currencies and countries here: a
value seen before is returned without an allocation, and with its hash already cached,
so the dict lookups that follow cost no hashing either. A fixed table, FNV-1a indexed,
one entry a slot (a collision replaces the entry): memory stays bounded whatever the
payloads hold, and a miss only costs the str it would have cost anyway."""

from cpython.unicode cimport PyUnicode_DecodeASCII
from cpython.ref cimport PyObject, Py_XDECREF
from libc.string cimport memcmp

from streamer._speedups._chars cimport PyUnicode_DATA, PyUnicode_GET_LENGTH
from streamer._speedups._records cimport Py_INCREF

cdef enum:
    TABLE_SIZE = 1024  # a power of two
    INTERN_MAX = 32  # longer strings are made fresh each time

cdef PyObject* _table[1024]


cdef object intern_ascii(const char* p, Py_ssize_t n):
    """The str of the ASCII bytes `p[:n]`, interned when short."""
    cdef unsigned long long h = 1469598103934665603ULL
    cdef Py_ssize_t k
    cdef PyObject* hit
    if n > INTERN_MAX:
        return PyUnicode_DecodeASCII(p, n, NULL)
    for k in range(n):
        h = (h ^ <unsigned char>p[k]) * 1099511628211ULL
    k = <Py_ssize_t>(h & (TABLE_SIZE - 1))
    hit = _table[k]
    if hit != NULL and PyUnicode_GET_LENGTH(<object>hit) == n:
        if memcmp(PyUnicode_DATA(<object>hit), p, n) == 0:
            return <object>hit
    value = PyUnicode_DecodeASCII(p, n, NULL)
    Py_INCREF(value)
    Py_XDECREF(_table[k])
    _table[k] = <PyObject*>value
    return value
