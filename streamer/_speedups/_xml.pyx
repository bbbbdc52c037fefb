# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled XML fast path: `xml_blob._children` for a strict subset of documents.

Only documents that expat would read the same way and that need no entity, attribute,
comment or CDATA handling are parsed here; `xml_children` returns None for anything
else, and the pure parser (defusedxml) decides. So the subset can only be narrower than
the pure code's, never different."""

from streamer._speedups._chars cimport PyUnicode_GET_LENGTH, PyUnicode_KIND, PyUnicode_DATA, PyUnicode_READ

cdef frozenset _KNOWN = frozenset({"MerchID", "Org", "Val", "Stat", "Cur", "Currency", "Provider"})


cdef inline bint _name_char(Py_UCS4 c, bint first):
    if (0x41 <= c <= 0x5A) or (0x61 <= c <= 0x7A) or c == 0x5F:
        return True
    return not first and ((0x30 <= c <= 0x39) or c == 0x2D or c == 0x2E)


cdef inline bint _xml_space(Py_UCS4 c):
    return c == 0x20 or c == 0x09 or c == 0x0A


cdef inline bint _text_char(Py_UCS4 c):
    """Character data this parser passes through unchanged (expat would too)."""
    if c < 0x20:
        return c == 0x09 or c == 0x0A
    if c == 0x3C or c == 0x26 or c == 0x3E:  # '<' '&' '>' (']]>' needs '>')
        return False
    if 0xD800 <= c <= 0xDFFF or c == 0xFFFE or c == 0xFFFF:
        return False
    return c < 0x110000


cdef dict xml_children(str content):
    """`xml_blob._children` for documents of the form `<Tx>` (space) then children
    `<Name>text</Name>` (space) and `</Tx>` (space): ASCII names, no attributes, no
    markup other than those tags, no '&', '>', CR or control characters in the text, no
    known child twice. Anything else returns None (the pure parser decides)."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(content), i = 0, start, name_end, text_start
    cdef Py_ssize_t text_end, a, b
    cdef int kind = PyUnicode_KIND(content)
    cdef void* data = PyUnicode_DATA(content)
    cdef Py_UCS4 c
    cdef dict values = {}
    cdef set seen = set()
    # "<Tx>"
    if n < 9:
        return None
    if not (
        PyUnicode_READ(kind, data, 0) == 0x3C and PyUnicode_READ(kind, data, 1) == 0x54
        and PyUnicode_READ(kind, data, 2) == 0x78 and PyUnicode_READ(kind, data, 3) == 0x3E
    ):
        return None
    i = 4
    while True:
        while i < n and _xml_space(PyUnicode_READ(kind, data, i)):
            i += 1
        if i >= n or PyUnicode_READ(kind, data, i) != 0x3C:
            return None
        i += 1
        if i < n and PyUnicode_READ(kind, data, i) == 0x2F:  # "</Tx>" then space only
            if not (
                i + 3 < n and PyUnicode_READ(kind, data, i + 1) == 0x54
                and PyUnicode_READ(kind, data, i + 2) == 0x78
                and PyUnicode_READ(kind, data, i + 3) == 0x3E
            ):
                return None
            i += 4
            while i < n and _xml_space(PyUnicode_READ(kind, data, i)):
                i += 1
            return values if i == n else None
        start = i
        while i < n and _name_char(PyUnicode_READ(kind, data, i), i == start):
            i += 1
        if i == start or i >= n or PyUnicode_READ(kind, data, i) != 0x3E:
            return None
        name_end = i
        i += 1
        text_start = i
        while i < n and _text_char(PyUnicode_READ(kind, data, i)):
            i += 1
        text_end = i
        # "</" same name ">"
        if i + 2 + (name_end - start) >= n:
            return None
        if PyUnicode_READ(kind, data, i) != 0x3C or PyUnicode_READ(kind, data, i + 1) != 0x2F:
            return None
        i += 2
        for a in range(start, name_end):
            if PyUnicode_READ(kind, data, i) != PyUnicode_READ(kind, data, a):
                return None
            i += 1
        if PyUnicode_READ(kind, data, i) != 0x3E:
            return None
        i += 1
        tag = content[start:name_end]
        if tag not in _KNOWN:
            continue
        if tag in seen:
            return None
        seen.add(tag)
        a, b = text_start, text_end
        while a < b and _xml_space(PyUnicode_READ(kind, data, a)):
            a += 1
        while b > a and _xml_space(PyUnicode_READ(kind, data, b - 1)):
            b -= 1
        if b > a:
            values[tag] = content[a:b]

