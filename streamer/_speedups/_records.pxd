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


cdef extern from *:
    """
    /* CPython 3.14 caches a tuple's hash in the object (-1: not computed yet), and
       tuple.__new__ sets it; a zeroed allocation would claim a hash of 0. */
    static inline void streamer_reset_tuple_hash(PyObject *op) {
    #if PY_VERSION_HEX >= 0x030E0000
        ((PyTupleObject *)op)->ob_hash = -1;
    #else
        (void)op;
    #endif
    }
    """
    void streamer_reset_tuple_hash(object record)


cdef inline object new_record(object cls, Py_ssize_t width):
    """An instance of `cls` with `width` empty slots, to be filled by `put`."""
    record = PyType_GenericAlloc(<PyTypeObject*>cls, width)
    streamer_reset_tuple_hash(record)
    return record


cdef inline void put(object record, Py_ssize_t pos, object value):
    Py_INCREF(value)
    PyTuple_SET_ITEM(record, pos, value)


cdef inline bint is_record_type(object cls, Py_ssize_t width):
    """A NamedTuple class: a direct tuple subclass of `width` fields, no instance dict."""
    return (
        isinstance(cls, type) and (<type>cls).__bases__ == (tuple,)
        and len(getattr(cls, "_fields", ())) == width and (<type>cls).__dictoffset__ == 0
    )
