# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of `ReplicationStream.read_frames`'s loop (see
`streamer/sources/slot/stream.py`, the specification): one `PQconsumeInput`, then
`PQgetCopyData(async)` until nothing more is buffered, each frame copied straight into
`bytes` (psycopg's wrapper makes a buffer object and a memoryview per frame, ~1,250
instructions, and the decoder copies it into bytes anyway).

libpq is not linked: the PGconn struct belongs to the libpq psycopg loaded (psycopg_binary
bundles its own), and another version's functions must never touch it. `bind` takes that
library's functions from the already-loaded file (`dlopen` with RTLD_NOLOAD) instead."""

from cpython.bytes cimport PyBytes_FromStringAndSize

cdef extern from "<dlfcn.h>" nogil:
    void* dlopen(const char* path, int mode)
    void* dlsym(void* handle, const char* name)
    char* dlerror()
    int RTLD_NOW
    int RTLD_NOLOAD

ctypedef int (*consume_input_f)(void* conn) noexcept nogil
ctypedef int (*get_copy_data_f)(void* conn, char** buffer, int async_) noexcept nogil
ctypedef void (*freemem_f)(void* ptr) noexcept nogil

cdef consume_input_f PQconsumeInput = NULL
cdef get_copy_data_f PQgetCopyData = NULL
cdef freemem_f PQfreemem = NULL

# read_frames' outcome, beside the frames (which the caller drops unless READ).
READ = 0  # stopped at `limit` frames or at nothing more buffered yet
ENDED = -1  # PQgetCopyData -1: the server ended COPY
COPY_FAILED = -2  # PQgetCopyData -2: psycopg's "receiving copy data failed"
CONSUME_FAILED = -3  # PQconsumeInput 0: psycopg's "consuming input failed"


def bind(str path):
    """Take the three functions from the libpq at `path`, which must already be loaded.
    Returns None when bound, else why not (nothing is bound then)."""
    cdef bytes name = path.encode()
    cdef void* handle = dlopen(name, RTLD_NOW | RTLD_NOLOAD)
    if handle == NULL:
        error = dlerror()
        return (<bytes>error).decode(errors="replace") if error != NULL else "not loaded"
    cdef void* consume = dlsym(handle, b"PQconsumeInput")
    cdef void* get = dlsym(handle, b"PQgetCopyData")
    cdef void* free = dlsym(handle, b"PQfreemem")
    if consume == NULL or get == NULL or free == NULL:
        return f"{path} lacks PQconsumeInput, PQgetCopyData or PQfreemem"
    global PQconsumeInput, PQgetCopyData, PQfreemem
    PQconsumeInput = <consume_input_f>consume
    PQgetCopyData = <get_copy_data_f>get
    PQfreemem = <freemem_f>free
    return None  # the handle stays open: the functions must outlive this call


def read_frames(long long pgconn_ptr, Py_ssize_t limit):
    """(frames, outcome): up to `limit` CopyData frames already received on the PGconn
    at `pgconn_ptr` (psycopg's `PGconn.pgconn_ptr`), as bytes, and one of READ, ENDED,
    COPY_FAILED or CONSUME_FAILED. Never blocks (async PQgetCopyData)."""
    if PQgetCopyData == NULL:
        raise RuntimeError("the libpq functions are not bound")
    cdef void* conn = <void*><size_t>pgconn_ptr
    cdef list frames = []
    cdef char* buffer = NULL
    cdef int nbytes
    cdef Py_ssize_t count = 0
    if PQconsumeInput(conn) != 1:
        return frames, CONSUME_FAILED
    while count < limit:
        nbytes = PQgetCopyData(conn, &buffer, 1)
        if nbytes > 0:
            try:
                frame = PyBytes_FromStringAndSize(buffer, nbytes)
            finally:
                PQfreemem(buffer)
                buffer = NULL
            frames.append(frame)
            count += 1
        elif nbytes == 0:
            break
        else:
            if buffer != NULL:  # libpq sets none for -1/-2; freed all the same
                PQfreemem(buffer)
            return frames, COPY_FAILED if nbytes == -2 else ENDED
    return frames, READ
