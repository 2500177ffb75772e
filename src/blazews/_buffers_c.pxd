# C types for the compiled build of _buffers_py.py (Cython pure-Python mode): the
# .py stays the one source; this file only adds types. See setup.py.

cimport cython

cdef bint _COMPILED, _LOCKED

cpdef bint _exported(bytearray buf)


cdef class BufferPool:
    cdef public tuple _tiers
    cdef long long[::1] _sizes
    cdef public Py_ssize_t _ntiers
    cdef public Py_ssize_t _largest
    cdef public Py_ssize_t _max_bytes
    cdef list _stacks
    cdef list _keys
    cdef long long[::1] _counts
    cdef public set _held
    cdef public Py_ssize_t _held_bytes
    cdef public Py_ssize_t _hits
    cdef public Py_ssize_t _misses
    cdef public Py_ssize_t _unpooled
    cdef public Py_ssize_t _returned
    cdef public Py_ssize_t _dropped
    cdef public object _lock

    @cython.locals(i=Py_ssize_t, n=Py_ssize_t, stack=list, keys=list)
    cpdef bytearray get(self, object size)

    cdef void _count_unpooled(self) except *

    @cython.locals(size=Py_ssize_t, i=Py_ssize_t, n=Py_ssize_t, stack=list, keys=list)
    cpdef void put(self, object buf) except *

    cdef void _drop(self) except *
