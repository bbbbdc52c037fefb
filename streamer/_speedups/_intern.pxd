# cython: language_level=3
cdef object intern_ascii(const char* p, Py_ssize_t n)
