# cython: language_level=3
"""The output buffer of the compiled COPY writers (`_copy`: text, `_copybin`: binary)."""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Resize
from libc.string cimport memcpy


cdef class _Out:
    cdef bytearray buf
    cdef char* base
    cdef Py_ssize_t used
    cdef Py_ssize_t cap

    cdef inline char* reserve(self, Py_ssize_t extra) except NULL:
        """Room for `extra` more bytes at `base + used` (nothing is committed until
        `used` moves, so a writer may give up half-way)."""
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

    cdef int write_escaped(self, const char* src, Py_ssize_t n) except -1
    cdef int finish(self) except -1
