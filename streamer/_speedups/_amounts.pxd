# cython: language_level=3
cdef tuple parse_amount(object value)
cdef tuple float_literal(const char* p, Py_ssize_t n)
cdef bint exact_needed(object amount, str text)
