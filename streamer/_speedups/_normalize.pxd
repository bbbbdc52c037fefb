# cython: language_level=3
cdef object normalize_row(object row)
