# cython: language_level=3
cdef dict xml_children(str content)
