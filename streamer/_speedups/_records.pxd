# cython: language_level=3
"""Building the pure code's NamedTuple records without `tuple.__new__`'s argument
parsing and its intermediate tuple: allocated as the type's own instance (what
`tuple.__new__(cls, values)` does inside), then filled once. Only for exact tuple
subclasses of the expected width, which `is_record_type` checks at bind time."""

cdef extern from "Python.h":
    ctypedef struct PyTypeObject:
        pass
    object PyType_GenericAlloc(PyTypeObject* cls, Py_ssize_t items)
    void Py_INCREF(object)
    void PyTuple_SET_ITEM(object record, Py_ssize_t pos, object value)


cdef inline object new_record(object cls, Py_ssize_t width):
    """An instance of `cls` with `width` empty slots, to be filled by `put`."""
    return PyType_GenericAlloc(<PyTypeObject*>cls, width)


cdef inline void put(object record, Py_ssize_t pos, object value):
    Py_INCREF(value)
    PyTuple_SET_ITEM(record, pos, value)


cdef inline bint is_record_type(object cls, Py_ssize_t width):
    """A NamedTuple class: a direct tuple subclass of `width` fields, no instance dict."""
    return (
        isinstance(cls, type) and (<type>cls).__bases__ == (tuple,)
        and len(getattr(cls, "_fields", ())) == width and (<type>cls).__dictoffset__ == 0
    )
